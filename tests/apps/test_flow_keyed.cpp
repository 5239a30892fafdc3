// flow-keyed as a user runs it: keyed sums, presets, grouped input, errors.

#include <catch2/catch.hpp>

#include <map>
#include <string>
#include <vector>

#include "flow/aggregate.hpp"
#include "flow/random.hpp"
#include "json_fields.hpp"
#include "run_program.hpp"

using namespace flow::test;

namespace {

const std::string prog = FLOW_KEYED_PATH;

/// The per-size sums flow-keyed must find: list j of the set is generated
/// from sub-stream j of the seed, summed here by a plain loop.
std::map<std::uint64_t, flow::int128>
reference_sums(const std::vector<std::uint64_t>& sizes, std::uint64_t seed) {
  std::map<std::uint64_t, flow::int128> result;
  for (std::size_t j = 0; j < sizes.size(); ++j) {
    flow::uniform_ints gen{flow::derive_seed(seed, j), 0, 10000};
    auto& sum = result[sizes[j]];
    for (std::uint64_t i = 0; i < sizes[j]; ++i)
      sum += gen(i);
  }
  return result;
}

} // namespace

TEST_CASE("flow-keyed: lists of equal size add up under one key",
          "[apps][flow-keyed]") {
  std::vector<std::uint64_t> sizes{1000, 5, 1000, 0, 1000, 5, 70000};
  auto res = run_program(prog, {"--sizes", "1000,5,1000,0,1000,5,70000",
                                "--seed", "3", "--batch", "999", "--json"});
  INFO("stderr: " << res.err);
  REQUIRE(res.rc == 0);
  auto ref = reference_sums(sizes, 3);
  auto lines = lines_of(res.out);
  REQUIRE(lines.size() == 4); // keys 0, 5, 1000, 70000
  std::map<std::string, std::string> lists{
    {"0", "1"}, {"5", "2"}, {"1000", "3"}, {"70000", "1"}};
  for (auto& line : lines) {
    INFO("line: " << line);
    auto key = json_field(line, "key");
    REQUIRE(lists.count(key) == 1);
    auto k = std::stoull(key);
    CHECK(json_field(line, "sum") == flow::to_string(ref[k]));
    CHECK(json_field(line, "lists") == lists[key]);
    CHECK(json_field(line, "elements")
          == std::to_string(k * std::stoull(lists[key])));
    CHECK(json_field(line, "ok") == "true");
  }
}

TEST_CASE("flow-keyed: preset 3 is eight lists of 10000 under one key",
          "[apps][flow-keyed]") {
  auto res = run_program(prog, {"--preset", "3", "--json"});
  REQUIRE(res.rc == 0);
  auto lines = lines_of(res.out);
  REQUIRE(lines.size() == 1);
  CHECK(json_field(lines[0], "key") == "10000");
  CHECK(json_field(lines[0], "lists") == "8");
  CHECK(json_field(lines[0], "elements") == "80000");
  auto ref = reference_sums(std::vector<std::uint64_t>(8, 10000), 42);
  CHECK(json_field(lines[0], "sum") == flow::to_string(ref[10000]));
}

TEST_CASE("flow-keyed: the table reports each key as verified",
          "[apps][flow-keyed]") {
  auto res = run_program(prog, {"--sizes", "10,20,10"});
  REQUIRE(res.rc == 0);
  CHECK(res.out.find("sequential C++") != std::string::npos);
  int verified = 0;
  for (auto& line : lines_of(res.out))
    if (line.size() > 4 && line.compare(line.size() - 4, 4, " yes") == 0)
      ++verified;
  CHECK(verified == 2);
}

TEST_CASE("flow-keyed: --input computes a grouped sum of key value lines",
          "[apps][flow-keyed]") {
  auto path = temp_file("apple 3\nbanana -2\n\napple 0\r\n  cherry\t10\n"
                        "banana -9223372036854775808\nbanana -1\n");
  auto res = run_program(prog, {"--input", path, "--json"});
  INFO("stderr: " << res.err);
  REQUIRE(res.rc == 0);
  auto lines = lines_of(res.out);
  REQUIRE(lines.size() == 3);
  CHECK(json_field(lines[0], "key") == "\"apple\"");
  CHECK(json_field(lines[0], "sum") == "3");
  CHECK(json_field(lines[0], "elements") == "2");
  CHECK(json_field(lines[1], "key") == "\"banana\"");
  CHECK(json_field(lines[1], "sum")
        == flow::to_string(flow::int128{INT64_MIN} - 3));
  CHECK(json_field(lines[1], "elements") == "3");
  CHECK(json_field(lines[2], "key") == "\"cherry\"");
  for (auto& line : lines)
    CHECK(json_field(line, "ok") == "true");
}

TEST_CASE("flow-keyed: bad input is a one-line error with exit code 2",
          "[apps][flow-keyed]") {
  auto check = [](const run_result& res,
                  const std::vector<std::string>& fragments) {
    INFO("stderr: " << res.err);
    CHECK(res.rc == 2);
    CHECK(res.out.empty());
    auto lines = lines_of(res.err);
    REQUIRE(lines.size() == 1);
    for (auto& f : fragments)
      CHECK(lines[0].find(f) != std::string::npos);
  };
  SECTION("a line without a value") {
    check(run_program(prog, {"--input", temp_file("a 1\nb\nc 2\n")}),
          {"line 2", "'b'"});
  }
  SECTION("a value that is not a number") {
    check(run_program(prog, {"--input", temp_file("a 1\nb x2\n")}),
          {"line 2", "'x2'", "not an integer"});
  }
  SECTION("a third token on a line") {
    check(run_program(prog, {"--input", temp_file("a 1 2\n")}),
          {"line 1", "third token"});
  }
  SECTION("an unknown preset") {
    check(run_program(prog, {"--preset", "4"}), {"--preset", "'4'"});
  }
  SECTION("a negative size") {
    check(run_program(prog, {"--sizes", "-5"}), {"negative"});
  }
  SECTION("--sizes with --preset") {
    check(run_program(prog, {"--sizes", "5", "--preset", "1"}), {"exclude"});
  }
  SECTION("an unknown flag") {
    check(run_program(prog, {"--fast"}), {"unknown option"});
  }
}
