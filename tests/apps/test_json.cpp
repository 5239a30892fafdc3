// The programs' JSON lines (apps/common/json.cpp): the fast paths for plain
// strings, integers and booleans write exactly what nlohmann-json writes.

#include <catch2/catch.hpp>

#include <cstdint>
#include <limits>
#include <string>

#include <nlohmann/json.hpp>

#include "common/json.hpp"
#include "flow/random.hpp"

using flow::apps::json_object;
using flow::apps::json_string;

namespace {

/// nlohmann-json's text for `x`, as the programs wrote it before the fast
/// paths (bad UTF-8 replaced by U+FFFD).
std::string reference(const nlohmann::json& x) {
  return x.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

} // namespace

TEST_CASE("json: strings are written as nlohmann-json writes them",
          "[json]") {
  // Every single byte, alone and between plain characters.
  for (int b = 0; b < 256; ++b) {
    std::string one(1, static_cast<char>(b));
    INFO("byte " << b);
    CHECK(json_string(one) == reference(one));
    auto mid = "ab" + one + "cd";
    CHECK(json_string(mid) == reference(mid));
  }
  CHECK(json_string("") == "\"\"");
  CHECK(json_string("sum_cents") == "\"sum_cents\"");
  CHECK(json_string("Zürich \"q\" \\ /") == reference("Zürich \"q\" \\ /"));
  // Random strings over printable ASCII, quotes, backslashes, controls and
  // (valid and broken) UTF-8 sequences.
  const char* pieces[] = {"a", "Z", " ", "\"", "\\", "/", "\n", "\t", "\x01",
                          "\x7f", "ü", "東", "\xe2\x82", "\xff", "\xc3"};
  std::uint64_t z = 7;
  for (int i = 0; i < 2000; ++i) {
    std::string s;
    auto n = flow::mix64(z + static_cast<std::uint64_t>(i)) % 12;
    for (std::uint64_t k = 0; k < n; ++k)
      s += pieces[flow::mix64(z * 31 + static_cast<std::uint64_t>(i)
                                      * 977 + k)
                  % (sizeof(pieces) / sizeof(pieces[0]))];
    INFO(s);
    CHECK(json_string(s) == reference(s));
  }
}

TEST_CASE("json: integers, booleans and objects as nlohmann-json writes "
          "them",
          "[json]") {
  json_object o;
  o.add("i", std::int64_t{-42})
    .add("min", std::numeric_limits<std::int64_t>::min())
    .add("u", std::numeric_limits<std::uint64_t>::max())
    .add("n", 7)
    .add("t", true)
    .add("f", false)
    .add("s", std::string{"x\"y"})
    .add("c", "plain")
    .add("we\"ird name", std::int64_t{1});
  nlohmann::ordered_json ref;
  ref["i"] = std::int64_t{-42};
  ref["min"] = std::numeric_limits<std::int64_t>::min();
  ref["u"] = std::numeric_limits<std::uint64_t>::max();
  ref["n"] = 7;
  ref["t"] = true;
  ref["f"] = false;
  ref["s"] = "x\"y";
  ref["c"] = "plain";
  ref["we\"ird name"] = 1;
  CHECK(o.str() == ref.dump());
}
