// Fuzzes flow::parse_int64, the integer parser of the text sources and the
// command lines, and flow::quote_token, which puts hostile tokens into error
// messages.
//
// Properties: parse_int64 agrees with a strtoll-based reference on every
// input (value, or which of the two reasons); a parsed value prints back to a
// token that parses to the same value; quote_token's output is one printable
// line of bounded length that shows short printable tokens unchanged.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "flow/parse.hpp"
#include "reference.hpp"

namespace {

using flow::fuzz::int_status;

void check_parse(std::string_view token) {
  std::string why = "untouched";
  auto got = flow::parse_int64(token, why);
  std::int64_t want = 0;
  auto status = flow::fuzz::reference_int64(token, want);
  switch (status) {
    case int_status::ok:
      FLOW_FUZZ_CHECK(got.has_value());
      FLOW_FUZZ_CHECK(*got == want);
      // Success leaves the reason alone: callers reuse one string.
      FLOW_FUZZ_CHECK(why == "untouched");
      break;
    case int_status::not_integer:
      FLOW_FUZZ_CHECK(!got.has_value());
      FLOW_FUZZ_CHECK(why == "is not an integer");
      break;
    case int_status::out_of_range:
      FLOW_FUZZ_CHECK(!got.has_value());
      FLOW_FUZZ_CHECK(why == "is outside the int64 range");
      break;
  }
  if (got) {
    std::string again_why;
    auto again = flow::parse_int64(std::to_string(*got), again_why);
    FLOW_FUZZ_CHECK(again && *again == *got);
  }
}

void check_quote(std::string_view token) {
  auto q = flow::quote_token(token);
  FLOW_FUZZ_CHECK(q.size() >= 2 && q.front() == '\'');
  for (auto c : q) {
    auto u = static_cast<unsigned char>(c);
    FLOW_FUZZ_CHECK(u >= 0x20 && u != 0x7f);
  }
  // At most 40 shown bytes, each at most 4 characters ("\xNN"), plus quotes
  // and the note on the length.
  FLOW_FUZZ_CHECK(q.size() <= 2 + 40 * 4 + 64);
  bool printable = true;
  for (auto c : token) {
    auto u = static_cast<unsigned char>(c);
    printable = printable && u >= 0x20 && u != 0x7f;
  }
  if (printable && token.size() <= 40)
    FLOW_FUZZ_CHECK(q == "'" + std::string{token} + "'");
  if (token.size() > 40)
    FLOW_FUZZ_CHECK(q.find(" bytes, shortened)") != std::string::npos);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data,
                                      std::size_t size) {
  std::string_view token{reinterpret_cast<const char*>(data), size};
  check_parse(token);
  check_quote(token);
  return 0;
}
