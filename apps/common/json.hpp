#pragma once

// The programs' JSON lines: one flat object per line, fields in the order
// they are added (scripts and tests read them by name and position).

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "flow/aggregate.hpp"

namespace flow::apps {

/// Builds one JSON object, fields in insertion order. Values are encoded by
/// nlohmann-json, except 128-bit sums: JSON numbers have arbitrary
/// precision, so those are printed with every digit, which nlohmann-json's
/// 64-bit numbers cannot hold.
class json_object {
public:
  /// Adds a field; strings that are not valid UTF-8 get U+FFFD for the bad
  /// bytes, so the output is always valid JSON.
  json_object& add(const std::string& name, const std::string& value);
  /// Adds a string field.
  json_object& add(const std::string& name, const char* value);
  /// Adds an integer field.
  json_object& add(const std::string& name, std::int64_t value);
  /// Adds an integer field.
  json_object& add(const std::string& name, std::uint64_t value);
  /// Adds an integer field.
  json_object& add(const std::string& name, int value);
  /// Adds a 128-bit sum with every digit.
  json_object& add(const std::string& name, int128 value);
  /// A double that is not finite becomes null.
  json_object& add(const std::string& name, double value);
  /// Adds a double result in shortest round-trip form (the fewest digits
  /// that read back to the same double); inf, -inf and NaN become the
  /// strings "inf", "-inf" and "nan".
  json_object& add_exact(const std::string& name, double value);
  /// Adds true or false.
  json_object& add(const std::string& name, bool value);
  /// Adds a field whose value is already JSON text.
  json_object& add_raw(const std::string& name, const std::string& json);
  /// The object as one line of JSON.
  std::string str() const;

private:
  std::vector<std::pair<std::string, std::string>> fields_;
};

/// A double in shortest round-trip form ("0.1", "1e+300", "-0"); "inf",
/// "-inf" or "nan" when not finite.
std::string shortest(double x);

/// Escapes a string for JSON (quotes included); invalid UTF-8 bytes become
/// U+FFFD so the output is always valid JSON.
std::string json_string(const std::string& x);

} // namespace flow::apps
