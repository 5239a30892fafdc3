// flow::parse_int64, flow::quote_token and flow::check_printable.

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

TEST_CASE("quote_token: escapes bytes that are not UTF-8 and keeps valid "
          "characters",
          "[parse][utf8]") {
  struct quote_case {
    std::string token;
    std::string quoted;
  };
  auto c = GENERATE(values<quote_case>({
    {"\xff", "'\\xff'"},                              // never in UTF-8
    {"12\xfe", "'12\\xfe'"},
    {"\xc0\xaf", "'\\xc0\\xaf'"},                    // overlong '/'
    {"\xe0\x80\xaf", "'\\xe0\\x80\\xaf'"},          // overlong, 3 bytes
    {"\x80x", "'\\x80x'"},                             // lone continuation
    {"\xe2\x82", "'\\xe2\\x82'"},                    // truncated
    {"\xed\xa0\x80", "'\\xed\\xa0\\x80'"},          // surrogate
    {"\xf4\x90\x80\x80", "'\\xf4\\x90\\x80\\x80'"}, // above U+10FFFF
    {std::string{"1\0" "2", 3}, "'1\\x002'"},         // NUL
    {"\xc2\x9b[2J", "'\\xc2\\x9b[2J'"},              // C1 CSI
    {"caf\xc3\xa9", "'caf\xc3\xa9'"},                 // é
    {"\xf0\x9f\x8d\x8e", "'\xf0\x9f\x8d\x8e'"},       // 4-byte emoji
    {"a\xcc\x81", "'a\xcc\x81'"},                     // combining acute
  }));
  INFO("quoted: " << flow::quote_token(c.token));
  CHECK(flow::quote_token(c.token) == c.quoted);
}

TEST_CASE("quote_token: shortens at a character boundary", "[parse][utf8]") {
  // 39 ASCII bytes, then 4-byte characters: the first would end at byte 43.
  std::string token = std::string(39, 'x') + "\xf0\x9f\x8d\x8e\xf0\x9f\x8d\x8e";
  CHECK(flow::quote_token(token)
        == "'" + std::string(39, 'x') + "' (47 bytes, shortened)");
  // Invalid bytes past the limit are not shown either.
  std::string junk(1000, '\xff');
  auto q = flow::quote_token(junk);
  std::string shown;
  for (int i = 0; i < 40; ++i)
    shown += "\\xff";
  CHECK(q == "'" + shown + "' (1000 bytes, shortened)");
  std::string why;
  CHECK(flow::check_printable(q, why));
}

TEST_CASE("check_printable: accepts printable UTF-8 and names what is wrong "
          "otherwise",
          "[parse][utf8]") {
  std::string why = "untouched";
  for (std::string ok : {"", "key", "caf\xc3\xa9", "\xf0\x9f\x8d\x8e",
                         "a\xcc\x81", "\xe2\x80\x8b" /* zero width space */}) {
    INFO("text: " << ok);
    CHECK(flow::check_printable(ok, why));
  }
  CHECK(why == "untouched");
  for (std::string bad : {"\xff", "ab\x80", "\xc0\xaf", "\xe2\x82",
                          "\xed\xa0\x80"}) {
    INFO("text: " << flow::quote_token(bad));
    CHECK_FALSE(flow::check_printable(bad, why));
    CHECK(why == "is not valid UTF-8");
  }
  for (std::string bad : {std::string{"a\0b", 3}, std::string{"a\x1b[31m"},
                          std::string{"\x7f"}, std::string{"\xc2\x85"}}) {
    INFO("text: " << flow::quote_token(bad));
    CHECK_FALSE(flow::check_printable(bad, why));
    CHECK(why == "contains a control character");
  }
}
