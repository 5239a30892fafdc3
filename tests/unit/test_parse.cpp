// flow::parse_int64 and flow::quote_token.

#include "support.hpp"

#include <cstdint>
#include <limits>
#include <string>

namespace {

constexpr const char* not_integer = "is not an integer";
constexpr const char* out_of_range = "is outside the int64 range";

} // namespace

TEST_CASE("parse_int64: accepts signed decimal integers over the whole range",
          "[parse]") {
  struct ok_case {
    const char* text;
    std::int64_t value;
  };
  auto c = GENERATE(values<ok_case>({
    {"0", 0},
    {"5", 5},
    {"+5", 5},
    {"-5", -5},
    {"-0", 0},
    {"+0", 0},
    {"007", 7},
    {"9223372036854775807", std::numeric_limits<std::int64_t>::max()},
    {"+9223372036854775807", std::numeric_limits<std::int64_t>::max()},
    {"-9223372036854775808", std::numeric_limits<std::int64_t>::min()},
  }));
  INFO("token \"" << c.text << "\"");
  std::string why = "untouched";
  auto x = flow::parse_int64(c.text, why);
  REQUIRE(x.has_value());
  CHECK(*x == c.value);
}

TEST_CASE("parse_int64: rejects malformed tokens as not an integer", "[parse]") {
  auto text = GENERATE(as<std::string>{}, "", "-", "+", "+-5", "-+5", "++5",
                       "--5", "1e3", "12abc", " 5", "5 ", "0x10", "1.5",
                       "abc", "5-", "\t5");
  INFO("token \"" << text << "\"");
  std::string why;
  auto x = flow::parse_int64(text, why);
  CHECK_FALSE(x.has_value());
  CHECK(why == not_integer);
}

TEST_CASE("parse_int64: rejects integers beyond int64 as out of range",
          "[parse]") {
  auto text = GENERATE(as<std::string>{}, "9223372036854775808",
                       "-9223372036854775809", "+9223372036854775808",
                       "99999999999999999999999999999");
  INFO("token \"" << text << "\"");
  std::string why;
  auto x = flow::parse_int64(text, why);
  CHECK_FALSE(x.has_value());
  CHECK(why == out_of_range);
}

TEST_CASE("parse_int64: a long digit run followed by garbage is not an integer",
          "[parse]") {
  std::string why;
  CHECK_FALSE(flow::parse_int64("99999999999999999999abc", why));
  CHECK(why == not_integer);
}

TEST_CASE("parse_int64: parses only the given view, not what follows it",
          "[parse]") {
  std::string text = "12345";
  std::string why;
  auto x = flow::parse_int64(std::string_view{text}.substr(0, 3), why);
  REQUIRE(x);
  CHECK(*x == 123);
}

TEST_CASE("quote_token: quotes short tokens as they are", "[parse]") {
  CHECK(flow::quote_token("abc") == "'abc'");
  CHECK(flow::quote_token("") == "''");
}

TEST_CASE("quote_token: escapes control characters so messages stay on one line",
          "[parse]") {
  CHECK(flow::quote_token(std::string{"a\nb\x01"}) == "'a\\x0ab\\x01'");
  CHECK(flow::quote_token(std::string{"\x7f"}) == "'\\x7f'");
}

TEST_CASE("quote_token: shortens very long tokens and says so", "[parse]") {
  std::string token(1000, 'x');
  auto q = flow::quote_token(token);
  CHECK(q.size() < 100);
  CHECK(q.find("1000 bytes") != std::string::npos);
  CHECK(q.rfind("'" + std::string(40, 'x') + "'", 0) == 0);
}
