#pragma once

/// @file
/// Keys of the manager's aggregates: a 64-bit integer or a string.

#include <cstdint>
#include <functional>
#include <string>
#include <utility>

#include <caf/meta/type_name.hpp>

namespace flow {

/// A key of the manager's keyed aggregates: either an int64 or a string.
/// Integers order before strings; integers order numerically.
class key {
public:
  /// The integer key 0.
  key() noexcept = default;

  /// An integer key.
  key(std::int64_t x) noexcept : int_(x) {
    // nop
  }

  /// An integer key (disambiguates `int` literals).
  key(int x) noexcept : int_(x) {
    // nop
  }

  /// A string key.
  key(std::string x) : is_string_(true), str_(std::move(x)) {
    // nop
  }

  /// A string key.
  key(const char* x) : is_string_(true), str_(x) {
    // nop
  }

  /// True when this key holds a string.
  bool is_string() const noexcept {
    return is_string_;
  }

  /// True when this key holds an integer.
  bool is_int() const noexcept {
    return !is_string_;
  }

  /// The integer value; 0 for a string key.
  std::int64_t as_int() const noexcept {
    return int_;
  }

  /// The string value; empty for an integer key.
  const std::string& as_string() const noexcept {
    return str_;
  }

  /// Three-way comparison: negative, zero or positive.
  int compare(const key& other) const noexcept;

  /// Hash value consistent with `==`.
  std::size_t hash() const noexcept;

  /// Inspection for serialisation and `caf::deep_to_string`.
  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f, key& x) {
    return f(caf::meta::type_name("flow.key"), x.is_string_, x.int_, x.str_);
  }

private:
  bool is_string_ = false;
  std::int64_t int_ = 0;
  std::string str_;
};

/// Renders the key: the integer in decimal, or the string as is.
std::string to_string(const key& x);

/// @relates key
inline bool operator==(const key& x, const key& y) noexcept {
  return x.compare(y) == 0;
}

/// @relates key
inline bool operator!=(const key& x, const key& y) noexcept {
  return x.compare(y) != 0;
}

/// @relates key
inline bool operator<(const key& x, const key& y) noexcept {
  return x.compare(y) < 0;
}

} // namespace flow

namespace std {

/// Hashing for unordered containers.
template <>
struct hash<flow::key> {
  size_t operator()(const flow::key& x) const noexcept {
    return x.hash();
  }
};

} // namespace std
