#pragma once

/// @file
/// `flow::payload_name<P>`: the short registry name of a payload type, used by
/// the state names of aggregator class templates ("flow.top_k<str,i64>"), so
/// that two instantiations never share a registry entry.

#include <cstdint>
#include <string>

namespace flow {

class key;

/// The registry name of payload type `P`. The primary template asks the type
/// itself (`static std::string P::payload_name()`), so a user struct names
/// itself without specialising anything in namespace flow.
template <class P>
struct payload_name {
  /// The name, e.g. "i64".
  static std::string value() {
    return P::payload_name();
  }
};

/// `std::int64_t` is "i64".
template <>
struct payload_name<std::int64_t> {
  /// "i64".
  static std::string value() {
    return "i64";
  }
};

/// `double` is "f64".
template <>
struct payload_name<double> {
  /// "f64".
  static std::string value() {
    return "f64";
  }
};

/// `std::string` is "str".
template <>
struct payload_name<std::string> {
  /// "str".
  static std::string value() {
    return "str";
  }
};

/// `flow::key` is "key".
template <>
struct payload_name<key> {
  /// "key".
  static std::string value() {
    return "key";
  }
};

} // namespace flow
