#pragma once

/// @file
/// Keys of the manager's aggregates: a 64-bit integer, a string, or a tuple
/// of integers, strings, booleans and NULLs (a composite key).

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <caf/error.hpp>
#include <caf/meta/load_callback.hpp>
#include <caf/meta/type_name.hpp>

namespace flow {

/// One part of a composite key: NULL, a boolean, an int64 or a string.
class key_part {
public:
  /// What the part holds.
  enum class kind : std::uint8_t {
    /// SQL's NULL (a missing value; all NULLs are equal, as in GROUP BY).
    null = 0,
    /// false or true.
    boolean = 1,
    /// A 64-bit integer.
    integer = 2,
    /// A string.
    string = 3,
  };

  /// NULL.
  key_part() noexcept = default;

  /// NULL.
  key_part(std::nullopt_t) noexcept {
    // nop
  }

  /// A boolean.
  key_part(bool x) noexcept : kind_(kind::boolean), int_(x ? 1 : 0) {
    // nop
  }

  /// An integer.
  key_part(std::int64_t x) noexcept : kind_(kind::integer), int_(x) {
    // nop
  }

  /// An integer (disambiguates `int` literals).
  key_part(int x) noexcept : kind_(kind::integer), int_(x) {
    // nop
  }

  /// A string.
  key_part(std::string x) : kind_(kind::string), str_(std::move(x)) {
    // nop
  }

  /// A string.
  key_part(const char* x) : kind_(kind::string), str_(x) {
    // nop
  }

  /// What the part holds.
  kind type() const noexcept {
    return kind_;
  }

  /// True for NULL.
  bool is_null() const noexcept {
    return kind_ == kind::null;
  }

  /// The boolean (false unless `type() == kind::boolean`).
  bool as_bool() const noexcept {
    return kind_ == kind::boolean && int_ != 0;
  }

  /// The integer (0 unless `type() == kind::integer`).
  std::int64_t as_int() const noexcept {
    return kind_ == kind::integer ? int_ : 0;
  }

  /// The string (empty unless `type() == kind::string`).
  const std::string& as_string() const noexcept {
    return str_;
  }

  /// Equal type and value.
  friend bool operator==(const key_part& x, const key_part& y) noexcept {
    return x.kind_ == y.kind_ && x.int_ == y.int_ && x.str_ == y.str_;
  }

  /// Negation of `==`.
  friend bool operator!=(const key_part& x, const key_part& y) noexcept {
    return !(x == y);
  }

private:
  kind kind_ = kind::null;
  std::int64_t int_ = 0;
  std::string str_;
};

/// Renders a part: NULL, true/false, the integer, or the string as is.
std::string to_string(const key_part& x);

/// A key of the manager's keyed aggregates: an int64, a string, or a
/// composite of parts (see `key_part`). Integers order before strings, strings
/// before composites; integers order numerically, strings bytewise, composites
/// part by part (NULL < booleans < integers < strings within a part, a
/// shorter tuple before its extensions). Composites are held encoded in one
/// string whose bytewise order is that order, so they hash and compare as
/// fast as strings.
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
  key(std::string x) : kind_(string_kind), str_(std::move(x)) {
    // nop
  }

  /// A string key.
  key(const char* x) : kind_(string_kind), str_(x) {
    // nop
  }

  /// A composite key of the given parts (GROUP BY several columns).
  static key composite(const std::vector<key_part>& parts);

  /// A composite key of the given parts.
  static key composite(std::initializer_list<key_part> parts) {
    return composite(std::vector<key_part>(parts));
  }

  /// A composite key of parts appended one by one: for decoders that make
  /// a key per row (no vector of parts, no string per part). Equal to
  /// `composite` of the same parts.
  class builder {
  public:
    /// Starts an empty tuple (keeps the buffer's capacity).
    void clear() noexcept {
      buf_.clear();
    }

    /// Appends a NULL part.
    void add_null();

    /// Appends a boolean part.
    void add_bool(bool x);

    /// Appends an integer part.
    void add_int(std::int64_t x);

    /// Appends a string part.
    void add_string(std::string_view x);

    /// The composite key of the parts appended so far.
    key build() const {
      key result;
      result.kind_ = composite_kind;
      result.str_ = buf_;
      return result;
    }

  private:
    std::string buf_;
  };

  /// True when this key holds a string.
  bool is_string() const noexcept {
    return kind_ == string_kind;
  }

  /// True when this key holds an integer.
  bool is_int() const noexcept {
    return kind_ == int_kind;
  }

  /// True when this key is a composite.
  bool is_composite() const noexcept {
    return kind_ == composite_kind;
  }

  /// The integer value; 0 for other keys.
  std::int64_t as_int() const noexcept {
    return int_;
  }

  /// The string value; empty for an integer key (the encoding for a
  /// composite: use `parts()`).
  const std::string& as_string() const noexcept {
    return str_;
  }

  /// The parts of a composite key; one part for an integer or a string key.
  std::vector<key_part> parts() const;

  /// Three-way comparison: negative, zero or positive.
  int compare(const key& other) const noexcept;

  /// Hash value consistent with `==`.
  std::size_t hash() const noexcept;

  /// Inspection for serialisation and `caf::deep_to_string`. Loading
  /// checks that a composite's encoding is valid.
  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f, key& x) {
    auto check = caf::meta::load_callback([&]() -> caf::error {
      return x.validate();
    });
    return f(caf::meta::type_name("flow.key"), x.kind_, x.int_, x.str_,
             check);
  }

private:
  static constexpr std::uint8_t int_kind = 0;
  static constexpr std::uint8_t string_kind = 1;
  static constexpr std::uint8_t composite_kind = 2;

  /// An error when the loaded fields are not a valid key.
  caf::error validate() const;

  std::uint8_t kind_ = int_kind;
  std::int64_t int_ = 0;
  std::string str_;
};

/// Renders the key: the integer in decimal, the string as is, a composite as
/// "(part, part, ...)" with NULL for a NULL part.
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
