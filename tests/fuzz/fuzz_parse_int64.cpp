// Fuzzes libflow/src/parse.cpp: flow::parse_int64, the integer parser of the
// text sources and the command lines; flow::quote_token, which puts hostile
// tokens into error messages; flow::check_printable, which vets keys.
//
// Properties: parse_int64 agrees with a strtoll-based reference on every
// input (value, or which of the two reasons); a parsed value prints back to a
// token that parses to the same value; quote_token's output is one printable
// line (valid UTF-8, no control characters) of bounded length that shows
// short printable tokens unchanged; check_printable agrees with a code-point
// decoder, reason included.

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
  // One printable line, whatever the token holds.
  std::string why;
  FLOW_FUZZ_CHECK(flow::fuzz::reference_printable(q, why));
  // At most 40 shown bytes (41 when a two-byte control character straddles
  // the limit), each at most 4 characters ("\xNN"), plus quotes and the note
  // on the length.
  FLOW_FUZZ_CHECK(q.size() <= 2 + 41 * 4 + 64);
  bool printable = flow::fuzz::reference_printable(token, why);
  if (printable && token.size() <= 40)
    FLOW_FUZZ_CHECK(q == "'" + std::string{token} + "'");
  if (token.size() > 40)
    FLOW_FUZZ_CHECK(q.find(" bytes, shortened)") != std::string::npos);
}

void check_printable(std::string_view text) {
  std::string want_why;
  bool want = flow::fuzz::reference_printable(text, want_why);
  std::string why = "untouched";
  FLOW_FUZZ_CHECK(flow::check_printable(text, why) == want);
  FLOW_FUZZ_CHECK(why == (want ? "untouched" : want_why));
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data,
                                      std::size_t size) {
  std::string_view token{reinterpret_cast<const char*>(data), size};
  check_parse(token);
  check_quote(token);
  check_printable(token);
  return 0;
}
