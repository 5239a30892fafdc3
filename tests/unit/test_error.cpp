// flow::errc, flow::make_error, flow::describe and flow::code_of.

#include "support.hpp"

#include <set>
#include <string>

#include <caf/sec.hpp>

TEST_CASE("errc: every code has a distinct name", "[error]") {
  std::set<std::string> names;
  // out_of_memory is the last code.
  for (int i = 0; i <= static_cast<int>(flow::errc::out_of_memory); ++i)
    names.insert(flow::to_string(static_cast<flow::errc>(i)));
  CHECK(names.size()
        == static_cast<std::size_t>(flow::errc::out_of_memory) + 1);
  CHECK(names.count("unknown") == 0);
  CHECK(std::string{flow::to_string(flow::errc::spill_failed)}
        == "spill_failed");
  CHECK(std::string{flow::to_string(flow::errc::out_of_memory)}
        == "out_of_memory");
  CHECK(std::string{flow::to_string(flow::errc::reducer_failed)}
        == "reducer_failed");
  CHECK(std::string{flow::to_string(flow::errc::none)} == "none");
}

TEST_CASE("make_error: code_of and describe give back the code and the context",
          "[error]") {
  auto e = flow::make_error(flow::errc::bad_input, "file 'x', line 3: boom");
  CHECK(e);
  CHECK(flow::code_of(e) == flow::errc::bad_input);
  CHECK(flow::describe(e) == "bad_input: file 'x', line 3: boom");
}

TEST_CASE("describe: no error and errors of other categories", "[error]") {
  CHECK(flow::code_of(caf::error{}) == flow::errc::none);
  CHECK(flow::describe(caf::error{}) == "no error");
  auto other = caf::make_error(caf::sec::unexpected_message);
  CHECK(flow::code_of(other) == flow::errc::none);
  CHECK_THAT(flow::describe(other), Catch::Contains("unexpected_message"));
}
