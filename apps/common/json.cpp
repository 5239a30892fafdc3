#include "common/json.hpp"

#include <charconv>
#include <cmath>
#include <cstdio>

#include <nlohmann/json.hpp>

namespace flow::apps {

namespace {

/// One value as compact JSON text.
std::string dump(const nlohmann::json& x) {
  return x.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

} // namespace

std::string json_string(const std::string& x) {
  // Printable ASCII without quote or backslash is written as it is (as
  // nlohmann-json writes it); only other strings, which need escapes or
  // UTF-8 checks, go through the library. Names and most values are plain:
  // a million output rows spent a third of their time in dump().
  for (unsigned char c : x)
    if (c < 0x20 || c >= 0x80 || c == '"' || c == '\\')
      return dump(x);
  std::string out;
  out.reserve(x.size() + 2);
  out += '"';
  out += x;
  out += '"';
  return out;
}

json_object& json_object::add_raw(const std::string& name,
                                  const std::string& json) {
  fields_.emplace_back(name, json);
  return *this;
}

json_object& json_object::add(const std::string& name,
                              const std::string& value) {
  return add_raw(name, json_string(value));
}

json_object& json_object::add(const std::string& name, const char* value) {
  return add_raw(name, json_string(value));
}

// Integers and booleans as nlohmann-json writes them, without building a
// json value for each.

json_object& json_object::add(const std::string& name, std::int64_t value) {
  return add_raw(name, std::to_string(value));
}

json_object& json_object::add(const std::string& name, std::uint64_t value) {
  return add_raw(name, std::to_string(value));
}

json_object& json_object::add(const std::string& name, int value) {
  return add_raw(name, std::to_string(value));
}

json_object& json_object::add(const std::string& name, int128 value) {
  return add_raw(name, to_string(value));
}

json_object& json_object::add(const std::string& name, double value) {
  // Nine significant digits, as the programs always wrote their timings and
  // rates (users' scripts read them); nlohmann-json would write up to 17.
  if (!std::isfinite(value))
    return add_raw(name, "null");
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.9g", value);
  return add_raw(name, buf);
}

std::string shortest(double x) {
  if (std::isnan(x))
    return "nan";
  if (std::isinf(x))
    return x > 0 ? "inf" : "-inf";
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), x);
  (void) ec; // 64 bytes hold any double's shortest form
  return std::string(buf, end);
}

json_object& json_object::add_exact(const std::string& name, double value) {
  if (!std::isfinite(value))
    return add_raw(name, json_string(shortest(value)));
  return add_raw(name, shortest(value));
}

json_object& json_object::add(const std::string& name, bool value) {
  return add_raw(name, value ? "true" : "false");
}

std::string json_object::str() const {
  std::string out = "{";
  for (auto& [name, value] : fields_) {
    if (out.size() > 1)
      out += ',';
    out += json_string(name);
    out += ':';
    out += value;
  }
  out += '}';
  return out;
}

} // namespace flow::apps
