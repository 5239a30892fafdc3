#pragma once

// Reads fields of the flat one-line JSON objects the programs print.

#include <string>

namespace flow::test {

/// The raw text of field `name` in a flat JSON object ("" when missing);
/// strings keep their quotes.
inline std::string json_field(const std::string& obj, const std::string& name) {
  auto needle = "\"" + name + "\":";
  auto pos = obj.find(needle);
  if (pos == std::string::npos)
    return {};
  pos += needle.size();
  auto end = pos;
  if (end < obj.size() && obj[end] == '"') {
    end = obj.find('"', end + 1);
    return end == std::string::npos ? std::string{} : obj.substr(pos, end - pos + 1);
  }
  while (end < obj.size() && obj[end] != ',' && obj[end] != '}')
    ++end;
  return obj.substr(pos, end - pos);
}

} // namespace flow::test
