// Fuzzes the integer text source (flow::from_text_file, also what reads
// standard input): the fuzz input is the file, read through the real source.
//
// Properties, against a model that splits the input into lines and tokens:
// valid input yields exactly the model's integers, in order, whatever the
// batch size; invalid input (a token that is not an int64 or is longer than
// 4096 bytes) fails with input_error naming the file and the line of the
// first bad token, after yielding only integers that precede it; batches
// never exceed the requested size and the source ends.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "flow/parse.hpp"
#include "flow/source.hpp"
#include "input_file.hpp"
#include "reference.hpp"

namespace {

constexpr std::size_t max_token = 4096;

struct expectation {
  std::vector<std::int64_t> values;
  bool fails = false;
  std::uint64_t line = 0;
  std::string what; // a piece of the expected message
};

expectation model(std::string_view input) {
  expectation e;
  for (auto& line : flow::fuzz::tokens_by_line(input)) {
    for (auto& tok : line) {
      if (tok.text.size() > max_token) {
        e.fails = true;
        e.line = tok.line;
        e.what = "is too long";
        return e;
      }
      std::int64_t v = 0;
      auto status = flow::fuzz::reference_int64(tok.text, v);
      if (status != flow::fuzz::int_status::ok) {
        e.fails = true;
        e.line = tok.line;
        e.what = status == flow::fuzz::int_status::out_of_range
                   ? "is outside the int64 range"
                   : "is not an integer";
        return e;
      }
      e.values.push_back(v);
    }
  }
  return e;
}

void check_source(const std::string& path, std::size_t input_size,
                  const expectation& want, std::size_t max) {
  auto src = flow::from_text_file(path);
  FLOW_FUZZ_CHECK(src->blocking());
  std::vector<std::int64_t> got;
  bool failed = false;
  try {
    // Every call but the last yields at least one element.
    for (std::size_t calls = 0; !src->exhausted(); ++calls) {
      FLOW_FUZZ_CHECK(calls <= input_size + 1);
      auto s = src->next(max);
      FLOW_FUZZ_CHECK(s.size() <= max);
      got.insert(got.end(), s.data(), s.data() + s.size());
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
    // Batches handed out before the error hold only good integers.
    FLOW_FUZZ_CHECK(got.size() <= want.values.size());
    for (std::size_t i = 0; i < got.size(); ++i)
      FLOW_FUZZ_CHECK(got[i] == want.values[i]);
  }
  if (!failed) {
    FLOW_FUZZ_CHECK(!want.fails);
    FLOW_FUZZ_CHECK(got == want.values);
  }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data,
                                      std::size_t size) {
  static flow::fuzz::input_file file;
  file.write(data, size);
  auto want = model({reinterpret_cast<const char*>(data), size});
  // One element per batch exercises the state kept between calls; 1000 is
  // more than most inputs hold. (Not the engine's large batches: the source
  // reserves room for one, and allocating that much per run slows the fuzzer
  // a hundredfold under ASan.)
  check_source(file.path(), size, want, 1);
  check_source(file.path(), size, want, 1000);
  return 0;
}
