#pragma once

/// @file
/// A (key, value) element: the input of grouped sums over any data.

#include <cstdint>

#include <caf/meta/type_name.hpp>

#include "flow/key.hpp"

namespace flow {

/// One element of keyed input, such as a `key value` line of text.
struct keyed_value {
  /// The group the value belongs to.
  flow::key key;
  /// The value.
  std::int64_t value = 0;

  /// Inspection for serialisation.
  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f,
                                                 keyed_value& x) {
    return f(caf::meta::type_name("flow.keyed_value"), x.key, x.value);
  }
};

/// @relates keyed_value
inline bool operator==(const keyed_value& x, const keyed_value& y) noexcept {
  return x.key == y.key && x.value == y.value;
}

/// A (key, value) element with a value of any type: `keyed<double>`,
/// `keyed<decimal>`, or a user struct. Crosses processes when V can be
/// serialised.
template <class V>
struct keyed {
  /// The group the value belongs to.
  flow::key key;
  /// The value.
  V value{};

  /// Inspection for serialisation.
  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f, keyed& x) {
    return f(caf::meta::type_name("flow.keyed"), x.key, x.value);
  }

  /// Equal keys and values.
  friend bool operator==(const keyed& x, const keyed& y) {
    return x.key == y.key && x.value == y.value;
  }
};

} // namespace flow
