// flow-sum as a user runs it: good input and bad input, output and exit codes.

#include <catch2/catch.hpp>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "flow/aggregate.hpp"
#include "flow/parse.hpp"
#include "flow/random.hpp"
#include "json_fields.hpp"
#include "run_program.hpp"

using namespace flow::test;

namespace {

const std::string prog = FLOW_SUM_PATH;

/// The sum flow-sum must find: the tutorial's randint(0, 10000) data of the
/// given size and seed, summed by a plain loop here.
std::string reference_sum(std::uint64_t n, std::uint64_t seed) {
  flow::uniform_ints gen{seed, 0, 10000};
  flow::int128 sum = 0;
  for (std::uint64_t i = 0; i < n; ++i)
    sum += gen(i);
  return flow::to_string(sum);
}

/// Expects exit code 2, nothing on stdout and one line on stderr that
/// contains every fragment.
void require_usage_error(const run_result& res,
                         const std::vector<std::string>& fragments) {
  INFO("stderr: " << res.err);
  CHECK(res.rc == 2);
  CHECK(res.out.empty());
  auto lines = lines_of(res.err);
  REQUIRE(lines.size() == 1);
  CHECK(lines[0].rfind("flow-sum: error: ", 0) == 0);
  for (auto& f : fragments)
    CHECK(lines[0].find(f) != std::string::npos);
}

} // namespace

TEST_CASE("flow-sum: sizes around the batch size verify and match a plain loop",
          "[apps][flow-sum]") {
  auto res = run_program(prog, {"--sizes", "0,1,5,7,8,9,1000", "--batch", "8",
                                "--seed", "7", "--json"});
  INFO("stderr: " << res.err);
  REQUIRE(res.rc == 0);
  auto lines = lines_of(res.out);
  REQUIRE(lines.size() == 7);
  std::vector<std::uint64_t> sizes{0, 1, 5, 7, 8, 9, 1000};
  for (std::size_t i = 0; i < sizes.size(); ++i) {
    INFO("line: " << lines[i]);
    CHECK(json_field(lines[i], "size") == std::to_string(sizes[i]));
    CHECK(json_field(lines[i], "elements") == std::to_string(sizes[i]));
    CHECK(json_field(lines[i], "sum") == reference_sum(sizes[i], 7));
    CHECK(json_field(lines[i], "ok") == "true");
    CHECK(json_field(lines[i], "batches")
          == std::to_string((sizes[i] + 7) / 8));
    for (auto field : {"loop_s", "accumulate_s", "libflow_s"})
      CHECK_FALSE(json_field(lines[i], field).empty());
  }
}

TEST_CASE("flow-sum: the same seed gives the same sums whatever the workers "
          "and batch size",
          "[apps][flow-sum]") {
  std::vector<std::string> sums;
  for (auto [workers, batch] : std::vector<std::pair<int, int>>{
         {1, 1000}, {2, 333}, {4, 65536}, {3, 1}}) {
    auto res = run_program(prog, {"--sizes", "20000", "--seed", "99",
                                  "--workers", std::to_string(workers),
                                  "--batch", std::to_string(batch), "--json"});
    REQUIRE(res.rc == 0);
    sums.push_back(json_field(res.out, "sum"));
  }
  CHECK(sums[0] == reference_sum(20000, 99));
  for (auto& s : sums)
    CHECK(s == sums[0]);
}

TEST_CASE("flow-sum: the table shows every default-style size as verified",
          "[apps][flow-sum]") {
  auto res = run_program(prog, {"--sizes", "5,50,500"});
  REQUIRE(res.rc == 0);
  auto lines = lines_of(res.out);
  REQUIRE(lines.size() == 4);
  CHECK(lines[0].find("accumulate s") != std::string::npos);
  for (std::size_t i = 1; i < lines.size(); ++i)
    CHECK(lines[i].find(" yes") != std::string::npos);
  CHECK(lines[1].find(reference_sum(5, 42)) != std::string::npos);
}

TEST_CASE("flow-sum: --input sums zeros and negatives exactly (the tutorial "
          "stopped at the first 0)",
          "[apps][flow-sum]") {
  auto path = temp_file("5 0 7\n-3 0\n\n  12\t-1\n");
  auto res = run_program(prog, {"--input", path, "--json"});
  INFO("stderr: " << res.err);
  REQUIRE(res.rc == 0);
  auto lines = lines_of(res.out);
  REQUIRE(lines.size() == 1);
  CHECK(json_field(lines[0], "sum") == "20");
  CHECK(json_field(lines[0], "elements") == "7");
  CHECK(json_field(lines[0], "ok") == "true");
}

TEST_CASE("flow-sum: --input - reads standard input", "[apps][flow-sum]") {
  auto path = temp_file("1 2 3 4\n");
  auto res = run_program(prog, {"--input", "-", "--json"}, path);
  REQUIRE(res.rc == 0);
  CHECK(json_field(res.out, "sum") == "10");
}

TEST_CASE("flow-sum: --input of an empty file sums to 0 over 0 elements",
          "[apps][flow-sum]") {
  auto res = run_program(prog, {"--input", temp_file(""), "--json"});
  REQUIRE(res.rc == 0);
  CHECK(json_field(res.out, "sum") == "0");
  CHECK(json_field(res.out, "elements") == "0");
  CHECK(json_field(res.out, "ok") == "true");
}

TEST_CASE("flow-sum: sums beyond the int64 range stay exact",
          "[apps][flow-sum]") {
  // 4 x INT64_MAX and 2 x INT64_MIN: the exact total needs 65 bits.
  auto path = temp_file("9223372036854775807 9223372036854775807\n"
                        "9223372036854775807 9223372036854775807\n"
                        "-9223372036854775808 -9223372036854775808\n");
  auto res = run_program(prog, {"--input", path, "--json", "--batch", "2"});
  REQUIRE(res.rc == 0);
  flow::int128 expected = flow::int128{INT64_MAX} * 4
                          + flow::int128{INT64_MIN} * 2;
  CHECK(json_field(res.out, "sum") == flow::to_string(expected));
  CHECK(json_field(res.out, "ok") == "true");
}

TEST_CASE("flow-sum: streamed input keeps memory bounded", "[apps][flow-sum]") {
  // The same value repeated: the exact sum is known, and the input is much
  // larger than the memory the program may use.
  auto small = run_piped("yes 123456789 | head -n 1000000", prog,
                         {"--input", "-", "--json"});
  auto large = run_piped("yes 123456789 | head -n 20000000", prog,
                         {"--input", "-", "--json"});
  REQUIRE(small.rc == 0);
  REQUIRE(large.rc == 0);
  CHECK(json_field(large.out, "sum")
        == flow::to_string(flow::int128{123456789} * 20000000));
  CHECK(json_field(large.out, "elements") == "20000000");
  INFO("peak RSS: 10^6 elements " << small.max_rss_kib << " KiB, 2*10^7 "
                                  << large.max_rss_kib << " KiB");
  // 2*10^7 int64 would be 160 MB if held; the stream holds a few batches.
  CHECK(large.max_rss_kib < 64 * 1024);
  CHECK(large.max_rss_kib < small.max_rss_kib + 16 * 1024);
}

TEST_CASE("flow-sum: bad input is a one-line error with exit code 2",
          "[apps][flow-sum]") {
  SECTION("an unparsable number names its line and token") {
    auto path = temp_file("1 2\n3 4x 5\n");
    require_usage_error(run_program(prog, {"--input", path, "--json"}),
                        {"line 2", "'4x'", "not an integer"});
  }
  SECTION("a number outside the int64 range") {
    auto path = temp_file("1\n2\n9223372036854775808\n");
    require_usage_error(run_program(prog, {"--input", path}),
                        {"line 3", "'9223372036854775808'", "int64 range"});
  }
  SECTION("a bad token on stdin") {
    auto path = temp_file("1 2 three\n");
    require_usage_error(run_program(prog, {"--input", "-"}, path),
                        {"standard input", "line 1", "'three'"});
  }
  SECTION("an unreadable file") {
    require_usage_error(run_program(prog, {"--input", "/nonexistent/x.txt"}),
                        {"cannot open", "/nonexistent/x.txt"});
  }
  SECTION("an empty size list") {
    require_usage_error(run_program(prog, {"--sizes", ""}),
                        {"--sizes", "empty"});
  }
  SECTION("a negative size") {
    require_usage_error(run_program(prog, {"--sizes", "5,-1"}),
                        {"--sizes", "'-1'", "negative"});
  }
  SECTION("a size that is not a number") {
    require_usage_error(run_program(prog, {"--sizes", "5,,7"}),
                        {"--sizes", "size 2", "not an integer"});
  }
  SECTION("an unknown flag") {
    require_usage_error(run_program(prog, {"--frobnicate"}),
                        {"unknown option", "--frobnicate"});
  }
  SECTION("a missing option value") {
    require_usage_error(run_program(prog, {"--workers"}),
                        {"--workers", "needs a value"});
  }
  SECTION("a zero batch size") {
    require_usage_error(run_program(prog, {"--batch", "0"}), {"--batch"});
  }
  SECTION("--input together with --sizes") {
    require_usage_error(run_program(prog, {"--input", "-", "--sizes", "5"}),
                        {"exclude"});
  }
}

TEST_CASE("flow-sum: malformed input is a short, printable one-line error "
          "naming the line",
          "[apps][flow-sum][utf8]") {
  struct bad_case {
    std::string text;
    std::string fragment;
  };
  auto c = GENERATE(values<bad_case>({
    {"1 2\n\xff\xfe 3\n", "line 2: token '\\xff\\xfe' is not an integer"},
    {"1\n2\n12\xc0\xb0\n", "line 3: token '12\\xc0\\xb0' is not an integer"},
    {"\x80\x80\n", "line 1: token '\\x80\\x80' is not an integer"},
    {std::string{"1 2\n3\0" "4\n", 8}, "line 2: token '3\\x004' is not an integer"},
    {"1\r\n2\r\nx\xe2\x82\r\n", "line 3: token 'x\\xe2\\x82' is not an integer"},
    {"5\n\xe2\x82\xac" "5\n", "line 2: token '\xe2\x82\xac" "5' is not an integer"},
  }));
  auto res = run_program(prog, {"--input", temp_file(c.text)});
  INFO("stderr: " << flow::quote_token(res.err));
  require_usage_error(res, {c.fragment});
  std::string why;
  CHECK(flow::check_printable(lines_of(res.err).at(0), why));
}

TEST_CASE("flow-sum: a line of 10 MB of digits fails fast with a short "
          "message",
          "[apps][flow-sum][utf8]") {
  auto path = temp_file("1 2\n" + std::string(10'000'000, '9') + "\n3\n");
  auto res = run_program(prog, {"--input", path, "--json"});
  std::remove(path.c_str());
  INFO("stderr: " << flow::quote_token(res.err));
  require_usage_error(res, {"line 2", "token starting '" + std::string(32, '9')
                                        + "' is too long (more than 4096 "
                                          "bytes)"});
  CHECK(res.err.size() < 300);
}

TEST_CASE("flow-sum: lines of 10^6 spaces and CRLF line ends are valid input",
          "[apps][flow-sum]") {
  std::string spaces(1'000'000, ' ');
  auto path = temp_file("5\r\n" + spaces + "\r\n7" + spaces + "-2\r\n"
                        + spaces + "\t" + spaces + "10\n\r\n");
  auto res = run_program(prog, {"--input", path, "--json"});
  std::remove(path.c_str());
  INFO("stderr: " << res.err);
  REQUIRE(res.rc == 0);
  CHECK(json_field(res.out, "sum") == "20");
  CHECK(json_field(res.out, "elements") == "4");
  CHECK(json_field(res.out, "ok") == "true");
}

// Named so that the sanitizer run, whose shadow memory distorts RSS, leaves
// it out.
TEST_CASE("flow-sum: a 10 MB token and 10^6-space lines keep memory bounded",
          "[apps][flow-sum]") {
  auto token = temp_file("1\n" + std::string(10'000'000, '9') + "\n");
  auto spaces = temp_file("1\n" + std::string(10'000'000, ' ') + "2\n");
  auto bad = run_program(prog, {"--input", token});
  auto good = run_program(prog, {"--input", spaces, "--json"});
  std::remove(token.c_str());
  std::remove(spaces.c_str());
  INFO("peak RSS: 10 MB token " << bad.max_rss_kib << " KiB, 10 MB of "
                                << "spaces " << good.max_rss_kib << " KiB");
  CHECK(bad.rc == 2);
  CHECK(good.rc == 0);
  CHECK(json_field(good.out, "sum") == "3");
  // The reader holds one block of 1 MiB and at most 4 KiB of a token.
  CHECK(bad.max_rss_kib < 64 * 1024);
  CHECK(good.max_rss_kib < 64 * 1024);
}

TEST_CASE("flow-sum: --help prints usage and exits 0", "[apps][flow-sum]") {
  auto res = run_program(prog, {"--help"});
  CHECK(res.rc == 0);
  CHECK(res.out.find("--sizes") != std::string::npos);
  CHECK(res.out.find("--input") != std::string::npos);
}

TEST_CASE("flow-sum: bad --status or --status-linger or --progress or "
          "--log-format values are usage errors",
          "[apps][flow-sum][status]") {
  require_usage_error(run_program(prog, {"--sizes", "5", "--status", "8080"}),
                      {"--status", "HOST:PORT"});
  require_usage_error(run_program(prog, {"--sizes", "5", "--status",
                                         "127.0.0.1:70000"}),
                      {"--status", "70000"});
  require_usage_error(run_program(prog, {"--sizes", "5", "--status",
                                         "127.0.0.1:x"}),
                      {"--status"});
  require_usage_error(run_program(prog, {"--sizes", "5", "--progress", "0"}),
                      {"--progress", "'0'"});
  require_usage_error(run_program(prog, {"--sizes", "5", "--progress",
                                         "soon"}),
                      {"--progress"});
  require_usage_error(run_program(prog, {"--sizes", "5", "--log-format",
                                         "xml"}),
                      {"--log-format", "xml"});
  require_usage_error(run_program(prog, {"--sizes", "5", "--status-linger",
                                         "-1"}),
                      {"--status-linger"});
}

TEST_CASE("flow-sum: --status prints the address and the output stays the same",
          "[apps][flow-sum][status]") {
  auto plain = run_program(prog, {"--sizes", "1000", "--json"});
  auto served = run_program(prog, {"--sizes", "1000", "--json", "--status",
                                   "127.0.0.1:0"});
  INFO("stderr: " << served.err);
  REQUIRE(served.rc == 0);
  CHECK(json_field(served.out, "sum") == json_field(plain.out, "sum"));
  auto lines = lines_of(served.err);
  REQUIRE(lines.size() == 1);
  CHECK(lines[0].rfind("flow-sum: status page at http://127.0.0.1:", 0) == 0);
}

TEST_CASE("flow-sum: --log-format json writes one JSON object per log line",
          "[apps][flow-sum][status]") {
  auto res = run_program(prog, {"--sizes", "1000", "--log-format", "json",
                                "--log-level", "debug"});
  INFO("stderr: " << res.err);
  REQUIRE(res.rc == 0);
  auto lines = lines_of(res.err);
  REQUIRE_FALSE(lines.empty());
  for (auto& line : lines) {
    INFO("line: " << line);
    CHECK(line.front() == '{');
    CHECK(line.back() == '}');
    CHECK(json_field(line, "level") == "\"debug\"");
    CHECK(json_field(line, "program") == "\"flow-sum\"");
    CHECK(json_field(line, "job") == "\"size 1000\"");
    CHECK(json_field(line, "time").size() == 26);
    CHECK_FALSE(json_field(line, "message").empty());
  }
}

TEST_CASE("flow-sum: --progress prints lines when stderr is not a terminal",
          "[apps][flow-sum][status]") {
  setenv("FLOW_TEST_REDUCER_DELAY_MS", "100", 1);
  auto res = run_program(prog, {"--sizes", "200000", "--batch", "10000",
                                "--reducers", "2", "--progress", "0.3"});
  unsetenv("FLOW_TEST_REDUCER_DELAY_MS");
  INFO("stderr: " << res.err);
  REQUIRE(res.rc == 0);
  auto lines = lines_of(res.err);
  REQUIRE(lines.size() >= 2);
  for (auto& line : lines) {
    CHECK(line.rfind("size 200000: ", 0) == 0);
    CHECK(line.find(" of 200000 elements (") != std::string::npos);
    CHECK(line.find('\r') == std::string::npos);
  }
}
