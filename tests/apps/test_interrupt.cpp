// SIGINT/SIGTERM and dead letters in the programs: a signal stops the job,
// the batches in flight drain, the partial result is printed marked partial
// and the exit code is 128 + signal; a second signal aborts at once. Reducer
// failures are injected through the FLOW_TEST_POISON hook.
//
// The signal tests feed the program through a FIFO: the writer sends all of
// its data, waits until the program has had ample time to take it in (the
// input then blocks, so nothing more can arrive), and only then signals. The
// accepted prefix is therefore the whole data, and the partial result is
// exact.

#include <catch2/catch.hpp>

#include <chrono>
#include <set>
#include <string>

#include "json_fields.hpp"
#include "run_program.hpp"

using flow::test::lines_of;
using flow::test::run_program;
using flow::test::temp_file;

namespace {

const std::string sum_path = FLOW_SUM_PATH;
const std::string keyed_path = FLOW_KEYED_PATH;

std::string quote(const std::string& x) {
  return "'" + x + "'";
}

/// A shell script: `producer` writes into a FIFO read by `program args`;
/// `after_data` runs (in the writer) once the data is written; the script
/// exits with the program's exit code.
flow::test::run_result run_fifo(const std::string& env,
                                const std::string& program,
                                const std::string& args,
                                const std::string& producer,
                                const std::string& after_data) {
  std::string script
    = "set -u; d=$(mktemp -d); f=$d/in; mkfifo $f; " + env + " "
      + quote(program) + " --input $f " + args + " & pid=$!; "
      + "{ " + producer + "; " + after_data + "; sleep 60; } > $f & w=$!; "
      + "wait $pid; rc=$?; kill $w 2>/dev/null; rm -rf $d; exit $rc";
  return run_program("/bin/sh", {"-c", script});
}

} // namespace

TEST_CASE("interrupt: SIGINT stops flow-sum, prints the exact partial sum "
          "marked partial and exits 130",
          "[apps][interrupt]") {
  auto r = run_fifo("", sum_path, "--json --batch 1000",
                    "seq 1 100000", "sleep 1; kill -INT $pid");
  INFO(r.err);
  CHECK(r.rc == 130);
  auto lines = lines_of(r.out);
  REQUIRE(lines.size() == 1);
  auto& line = lines[0];
  CHECK(flow::test::json_field(line, "partial") == "true");
  CHECK(flow::test::json_field(line, "ok") == "false");
  CHECK(flow::test::json_field(line, "emitted") == "100000");
  CHECK(flow::test::json_field(line, "aggregated") == "100000");
  CHECK(flow::test::json_field(line, "abandoned") == "0");
  CHECK(flow::test::json_field(line, "sum") == "5000050000");
  CHECK(r.err.find("PARTIAL result") != std::string::npos);
  CHECK(r.err.find("SIGINT") != std::string::npos);
}

TEST_CASE("interrupt: SIGTERM stops flow-keyed with partial keys and exit 143",
          "[apps][interrupt]") {
  auto r = run_fifo("", keyed_path, "--json --batch 100",
                    "for i in $(seq 1 1000); do echo \"k$((i % 3)) $i\"; done",
                    "sleep 1; kill -TERM $pid");
  INFO(r.err);
  CHECK(r.rc == 143);
  auto lines = lines_of(r.out);
  REQUIRE(lines.size() == 3);
  std::int64_t total = 0;
  for (auto& line : lines) {
    CHECK(flow::test::json_field(line, "partial") == "true");
    total += std::stoll(flow::test::json_field(line, "sum"));
  }
  CHECK(total == 500500);
  CHECK(r.err.find("SIGTERM") != std::string::npos);
}

TEST_CASE("interrupt: the table marks the partial row", "[apps][interrupt]") {
  auto r = run_fifo("", sum_path, "--batch 1000", "seq 1 5000",
                    "sleep 1; kill -INT $pid");
  CHECK(r.rc == 130);
  CHECK(r.out.find("PART") != std::string::npos);
  CHECK(r.out.find("12502500") != std::string::npos);
}

TEST_CASE("interrupt: a drain that times out reports the abandoned elements",
          "[apps][interrupt]") {
  // Every batch takes 3 s to reduce; the drain may take 0 s.
  auto r = run_fifo("FLOW_TEST_REDUCER_DELAY_MS=3000", sum_path,
                    "--json --batch 1000 --workers 1 --drain-timeout 0",
                    "seq 1 10000", "sleep 1; kill -INT $pid");
  INFO(r.err);
  CHECK(r.rc == 130);
  auto lines = lines_of(r.out);
  REQUIRE(lines.size() == 1);
  auto emitted = std::stoull(flow::test::json_field(lines[0], "emitted"));
  auto aggregated = std::stoull(flow::test::json_field(lines[0], "aggregated"));
  auto abandoned = std::stoull(flow::test::json_field(lines[0], "abandoned"));
  CHECK(abandoned > 0);
  CHECK(emitted == aggregated + abandoned);
  CHECK(r.err.find("abandoned") != std::string::npos);
}

TEST_CASE("interrupt: a second signal aborts at once without waiting for the "
          "drain",
          "[apps][interrupt]") {
  auto start = std::chrono::steady_clock::now();
  auto r = run_fifo("FLOW_TEST_REDUCER_DELAY_MS=20000", sum_path,
                    "--batch 1000 --workers 1 --drain-timeout 60",
                    "seq 1 10000",
                    "sleep 1; kill -INT $pid; sleep 0.5; kill -TERM $pid");
  auto elapsed = std::chrono::steady_clock::now() - start;
  INFO(r.err);
  CHECK(r.rc == 130);
  CHECK(r.err.find("second signal") != std::string::npos);
  CHECK(elapsed < std::chrono::seconds(15));
}

TEST_CASE("dead letters: flow-sum isolates the failing elements, writes them "
          "to the file and exits 3",
          "[apps][dead_letters]") {
  auto input = temp_file("1 2 3 7 4 5 7 6 8 9 7 10\n");
  auto dead = temp_file("");
  auto r = run_program("/bin/sh",
                       {"-c", "FLOW_TEST_POISON=7 " + quote(sum_path)
                                + " --json --batch 4 --input " + input
                                + " --dead-letter " + dead});
  INFO(r.err);
  CHECK(r.rc == 3);
  auto lines = lines_of(r.out);
  REQUIRE(lines.size() == 1);
  CHECK(flow::test::json_field(lines[0], "sum") == "48");
  CHECK(flow::test::json_field(lines[0], "dead_lettered") == "3");
  CHECK(flow::test::json_field(lines[0], "emitted") == "12");
  CHECK(flow::test::json_field(lines[0], "aggregated") == "9");
  auto out = run_program("/bin/cat", {dead});
  auto letters = lines_of(out.out);
  REQUIRE(letters.size() == 3);
  // Batches merge in any order: compare the set of indexes.
  std::set<std::string> indexes;
  for (auto& l : letters)
    indexes.insert(flow::test::json_field(l, "index"));
  CHECK(indexes == std::set<std::string>{"3", "6", "10"});
  for (auto& l : letters) {
    CHECK(flow::test::json_field(l, "value") == "\"7\"");
    CHECK(flow::test::json_field(l, "error")
          == "\"test hook: poisoned value 7\"");
  }
  CHECK(r.err.find("dead-lettered") != std::string::npos);
}

TEST_CASE("dead letters: --on-failure skip drops whole batches, fail ends the "
          "job",
          "[apps][dead_letters]") {
  auto input = temp_file("1 2 3 7 4 5 6 8 9 10 11 12\n");
  SECTION("skip") {
    auto r = run_program("/bin/sh",
                         {"-c", "FLOW_TEST_POISON=7 " + quote(sum_path)
                                  + " --json --batch 4 --on-failure skip "
                                    "--input "
                                  + input});
    INFO(r.err);
    CHECK(r.rc == 3);
    auto lines = lines_of(r.out);
    REQUIRE(lines.size() == 1);
    CHECK(flow::test::json_field(lines[0], "dead_lettered") == "4");
    CHECK(flow::test::json_field(lines[0], "sum") == "65");
  }
  SECTION("fail") {
    auto r = run_program("/bin/sh",
                         {"-c", "FLOW_TEST_POISON=7 " + quote(sum_path)
                                  + " --batch 4 --on-failure fail --input "
                                  + input});
    CHECK(r.rc == 1);
    CHECK(r.out.empty());
    CHECK(r.err.find("reducer_failed") != std::string::npos);
    CHECK(r.err.find("poisoned value 7") != std::string::npos);
  }
  SECTION("a bad policy is a usage error") {
    auto r = run_program(sum_path, {"--on-failure", "retry-forever",
                                     "--input", input});
    CHECK(r.rc == 2);
    CHECK(r.err.find("--on-failure") != std::string::npos);
  }
}

TEST_CASE("dead letters: flow-keyed renders keyed elements as 'key value'",
          "[apps][dead_letters]") {
  auto input = temp_file("a 1\nb 7\na 2\nc 7\n");
  auto dead = temp_file("");
  auto r = run_program("/bin/sh", {"-c", "FLOW_TEST_POISON=7 "
                                           + quote(keyed_path)
                                           + " --json --input " + input
                                           + " --dead-letter " + dead});
  INFO(r.err);
  CHECK(r.rc == 3);
  auto out = run_program("/bin/cat", {dead});
  auto letters = lines_of(out.out);
  REQUIRE(letters.size() == 2);
  std::set<std::string> values;
  for (auto& l : letters)
    values.insert(flow::test::json_field(l, "value"));
  CHECK(values == std::set<std::string>{"\"b 7\"", "\"c 7\""});
}
