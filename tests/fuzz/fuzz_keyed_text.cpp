// Fuzzes the `key value` line source (flow::keyed_from_text_file): the fuzz
// input is the file, read through the real source.
//
// Properties, against a line-by-line model: valid input (every non-blank line
// is exactly a key of printable UTF-8 and an int64 value) yields exactly the
// model's pairs, in order, whatever the batch size; invalid input fails with
// input_error naming the file and the line at fault (a key that is not
// printable UTF-8, a lonely key, a bad value, a third token, a token over 4096
// bytes), after yielding only pairs that precede it.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "flow/parse.hpp"
#include "flow/source.hpp"
#include "input_file.hpp"
#include "reference.hpp"

namespace {

constexpr std::size_t max_token = 4096;

struct expectation {
  std::vector<std::pair<std::string, std::int64_t>> pairs;
  bool fails = false;
  std::uint64_t line = 0;
  std::string what; // a piece of the expected message
};

expectation model(std::string_view input) {
  expectation e;
  auto fail = [&e](std::uint64_t line, std::string what) {
    e.fails = true;
    e.line = line;
    e.what = std::move(what);
    return e;
  };
  auto lines = flow::fuzz::tokens_by_line(input);
  for (std::size_t l = 0; l < lines.size(); ++l) {
    auto& toks = lines[l];
    if (toks.empty())
      continue;
    auto line = toks[0].line;
    if (toks[0].text.size() > max_token)
      return fail(line, "is too long");
    std::string why;
    if (!flow::fuzz::reference_printable(toks[0].text, why))
      return fail(line, why);
    if (toks.size() == 1) {
      // The source looks for the value in the next token, wherever it is; a
      // monster there is reported first, on its own line.
      for (auto k = l + 1; k < lines.size(); ++k) {
        if (lines[k].empty())
          continue;
        if (lines[k][0].text.size() > max_token)
          return fail(lines[k][0].line, "is too long");
        break;
      }
      return fail(line, "expected 'key value', found only");
    }
    if (toks[1].text.size() > max_token)
      return fail(line, "is too long");
    std::int64_t v = 0;
    auto status = flow::fuzz::reference_int64(toks[1].text, v);
    if (status == flow::fuzz::int_status::out_of_range)
      return fail(line, "is outside the int64 range");
    if (status != flow::fuzz::int_status::ok)
      return fail(line, "is not an integer");
    if (toks.size() > 2)
      return fail(line, toks[2].text.size() > max_token
                          ? "is too long"
                          : "expected 'key value', found a third token");
    e.pairs.emplace_back(std::string{toks[0].text}, v);
  }
  return e;
}

void check_source(const std::string& path, std::size_t input_size,
                  const expectation& want, std::size_t max) {
  auto src = flow::keyed_from_text_file(path);
  FLOW_FUZZ_CHECK(src->blocking());
  std::vector<std::pair<std::string, std::int64_t>> got;
  bool failed = false;
  try {
    for (std::size_t calls = 0; !src->exhausted(); ++calls) {
      FLOW_FUZZ_CHECK(calls <= input_size + 1);
      auto s = src->next(max);
      FLOW_FUZZ_CHECK(s.size() <= max);
      for (std::size_t i = 0; i < s.size(); ++i) {
        FLOW_FUZZ_CHECK(s[i].key.is_string());
        got.emplace_back(s[i].key.as_string(), s[i].value);
      }
      if (s.size() == 0)
        FLOW_FUZZ_CHECK(src->exhausted());
    }
  } catch (const flow::input_error& e) {
    failed = true;
    FLOW_FUZZ_CHECK(want.fails);
    FLOW_FUZZ_CHECK(e.code() == flow::errc::bad_input);
    std::string msg = e.what();
    auto prefix = "file " + flow::quote_token(path) + ", line "
                  + std::to_string(want.line) + ": ";
    FLOW_FUZZ_CHECK(msg.rfind(prefix, 0) == 0);
    FLOW_FUZZ_CHECK(msg.find(want.what, prefix.size()) != std::string::npos);
    FLOW_FUZZ_CHECK(got.size() <= want.pairs.size());
    for (std::size_t i = 0; i < got.size(); ++i)
      FLOW_FUZZ_CHECK(got[i] == want.pairs[i]);
  }
  if (!failed) {
    FLOW_FUZZ_CHECK(!want.fails);
    FLOW_FUZZ_CHECK(got == want.pairs);
  }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data,
                                      std::size_t size) {
  static flow::fuzz::input_file file;
  file.write(data, size);
  auto want = model({reinterpret_cast<const char*>(data), size});
  // Batches of one carry the next line's key over between calls; 1000 is
  // more than most inputs hold (and small enough for the source's reserve
  // not to cost a fresh mapping per run under ASan).
  check_source(file.path(), size, want, 1);
  check_source(file.path(), size, want, 1000);
  return 0;
}
