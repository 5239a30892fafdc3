// flow-etl aggregate --output of a --table is checkpointed: it reads in
// steps and commits the merged states after each in flow_resume, so a run
// killed with SIGKILL (the test hook FLOW_ETL_TEST_KILL_AFTER_STEP kills it
// right after a checkpoint, deterministically) continues with --resume and
// writes the table an uninterrupted run writes. A checkpoint of another job
// is refused, --resume without a checkpoint or with a source that takes none
// is a one-line error, and a committed output leaves no checkpoint behind.
// A run whose connections are cut (pg_terminate_backend, a server restart)
// tries again by itself (--reconnects): from its checkpoint with --output,
// else from the start, and a job file in its shared snapshot while the
// connection holding it lives.

#include <catch2/catch.hpp>

#include <cstdio>

#include <chrono>
#include <csignal>
#include <string>
#include <thread>
#include <vector>

#include "child_process.hpp"
#include "etl/agg_checkpoint.hpp"
#include "flow/pg/connection.hpp"
#include "flow/pg/ownership.hpp"
#include "json_fields.hpp"
#include "pg_fixture.hpp"
#include "run_program.hpp"

using namespace flow;
using namespace flow::test;

namespace {

const std::string prog = FLOW_ETL_PATH;

/// Every aggregate here is exact (or, as stddev, computed from exact
/// sums), so any split into steps and partitions gives identical tables.
const std::string aggs
  = "count(*), count(cents), sum(cents), avg(cents), min(cents), "
    "max(cents), stddev(cents), sum(price), avg(price), max(price), "
    "sum(ratio), avg(ratio), count(distinct cents), min(\"Region\")";

/// A schema with "Sales": group keys with NULLs, numeric(12,2) money and
/// doubles built to break naive summation; analysed, so the planner's
/// estimate sizes the steps.
std::string make_sales(const std::string& hint) {
  // Each test case runs in a process (and cluster) of its own, but start
  // from no resume state anyway.
  exec("DROP SCHEMA IF EXISTS flow_resume CASCADE");
  auto schema = fresh_schema(hint);
  auto t = pg::table_name{schema, "Sales"}.quoted();
  exec("CREATE TABLE " + t
       + " (\"Region\" text, day date, cents bigint, price numeric(12,2), "
         "ratio double precision)");
  exec("INSERT INTO " + t
       + " SELECT CASE i % 5 WHEN 0 THEN NULL WHEN 1 THEN 'Zürich' "
         "WHEN 2 THEN 'Oslo' WHEN 3 THEN '東京' ELSE 'köln' END, "
         "CASE WHEN i % 17 = 0 THEN NULL ELSE date '2024-02-27' + (i % 3) END, "
         "CASE WHEN i % 11 = 0 THEN NULL ELSE (i * 7919) % 100003 - 50000 END, "
         "CASE WHEN i % 9 = 0 THEN NULL ELSE ((i * 31) % 100000) / 100.0 END, "
         "CASE i % 4 WHEN 0 THEN 1e16 WHEN 1 THEN 1.0 WHEN 2 THEN -1e16 "
         "ELSE 0.1 * (i % 10) END "
         "FROM generate_series(1, 60000) i");
  exec("ANALYZE " + t);
  return schema;
}

/// `flow-etl aggregate` of "Sales" into `output` with `extra` options.
std::vector<std::string> agg_args(const std::string& schema,
                                  const std::string& output,
                                  std::vector<std::string> extra = {}) {
  std::vector<std::string> args{"aggregate", "--db",       conninfo(),
                                "--schema",  schema,       "--table",
                                "Sales",     "--group-by", "Region, day",
                                "--agg",     aggs,         "--json",
                                "--output",  output};
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}

/// Steps of about 8000 rows: 60000 rows take several.
const std::vector<std::string> small_steps{"--checkpoint-rows", "8000",
                                           "--partitions", "2"};

/// Rows of `a` not in `b` plus rows of `b` not in `a`.
std::string difference(const std::string& schema, const std::string& a,
                       const std::string& b) {
  auto qa = pg::table_name{schema, a}.quoted();
  auto qb = pg::table_name{schema, b}.quoted();
  return scalar("SELECT (SELECT count(*) FROM (SELECT * FROM " + qa
                + " EXCEPT ALL SELECT * FROM " + qb
                + ") x) + (SELECT count(*) FROM (SELECT * FROM " + qb
                + " EXCEPT ALL SELECT * FROM " + qa + ") y)");
}

/// The reference: one uninterrupted run without checkpoints into `ref`.
void write_reference(const std::string& schema) {
  auto ref = run_program(prog, agg_args(schema, "ref",
                                        {"--checkpoint-rows", "0"}));
  INFO(ref.err);
  REQUIRE(ref.rc == 0);
  REQUIRE(scalar("SELECT count(*) FROM "
                 + pg::table_name{schema, "ref"}.quoted())
          == scalar("SELECT count(*) FROM (SELECT DISTINCT \"Region\", day "
                    "FROM "
                    + pg::table_name{schema, "Sales"}.quoted() + ") g"));
}

std::string checkpoint_tables() {
  return scalar("SELECT count(*) FROM pg_tables WHERE schemaname = "
                "'flow_resume'");
}

/// The summary: the last line of a --json run's stdout.
std::string summary_of(const std::string& out) {
  auto lines = lines_of(out);
  return lines.empty() ? std::string{} : lines.back();
}

/// A one-line error, exit code 2, nothing on stdout.
void check_one_line_error(const run_result& res, const std::string& part) {
  INFO("stdout: " << res.out << "\nstderr: " << res.err);
  CHECK(res.rc == 2);
  CHECK(lines_of(res.err).size() == 1);
  CHECK(res.err.rfind("flow-etl: error: ", 0) == 0);
  CHECK(res.err.find(part) != std::string::npos);
  CHECK(res.out.empty());
}

/// The one checkpoint table, schema-qualified.
std::string the_checkpoint() {
  return "flow_resume."
         + scalar("SELECT quote_ident(tablename) FROM pg_tables WHERE "
                  "schemaname = 'flow_resume'");
}

/// Runs `args` with the kill hook after the first checkpoint (`hook`:
/// SIGKILL, or "1,INT": SIGINT); checks that it ended with `rc` leaving a
/// checkpoint of one step and `out` as it was.
void kill_after_first_step(const std::vector<std::string>& args,
                           const std::string& schema, const std::string& tag,
                           const std::string& hook = "1",
                           int rc = 128 + SIGKILL) {
  auto out = pg::table_name{schema, "out"}.quoted();
  auto before = scalar("SELECT md5(string_agg(t::text, '|' ORDER BY "
                       "t::text)) FROM "
                       + out + " t");
  std::vector<std::string> argv{prog};
  argv.insert(argv.end(), args.begin(), args.end());
  child run{argv, tag, "FLOW_ETL_TEST_KILL_AFTER_STEP=" + hook};
  CHECK(run.wait() == rc);
  CHECK(checkpoint_tables() == "1");
  CHECK(scalar("SELECT steps_done FROM " + the_checkpoint()) == "1");
  // The previous output is untouched.
  CHECK(scalar("SELECT md5(string_agg(t::text, '|' ORDER BY t::text)) FROM "
               + out + " t")
        == before);
}

/// An empty "out" shaped like "ref" (the previous output, untouched by a
/// killed run).
void empty_output(const std::string& schema) {
  exec("CREATE TABLE " + pg::table_name{schema, "out"}.quoted()
       + " AS SELECT * FROM " + pg::table_name{schema, "ref"}.quoted()
       + " WHERE false");
}

/// Makes checkpoint table `t` look written by a build before the state
/// columns were in the fingerprint (its last line dropped).
void as_older_build(const std::string& t) {
  exec("UPDATE " + t + " SET fingerprint = substr(fingerprint, 1, "
       "strpos(fingerprint, E'\\nstate columns ') - 1)");
  CHECK(scalar("SELECT count(*) FROM " + t
               + " WHERE strpos(fingerprint, 'state columns') = 0")
        == "1");
}

/// Slow reducers: a run of the 60000 rows in batches of 500 takes seconds,
/// long enough to cut its connections midway.
const std::string slow = "FLOW_TEST_REDUCER_DELAY_MS=40";
const std::vector<std::string> small_batches{"--batch", "500"};

/// Waits until the run committed its first checkpoint (steps_done >= 1).
bool wait_for_checkpoint() {
  for (int i = 0; i < 600; ++i) {
    auto t = scalar("SELECT quote_ident(tablename) FROM pg_tables WHERE "
                    "schemaname = 'flow_resume' LIMIT 1");
    if (!t.empty()) {
      auto done = scalar("SELECT coalesce(max(steps_done), 0) FROM "
                         "flow_resume."
                         + t);
      if (!done.empty() && done != "0")
        return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

/// Waits until some session streams rows out with COPY (a partition read).
bool wait_for_copy() {
  for (int i = 0; i < 600; ++i) {
    if (scalar("SELECT count(*) FROM pg_stat_activity WHERE state = "
               "'active' AND query LIKE 'COPY%'")
        != "0")
      return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

/// Cuts every client session but the test's own; returns how many.
std::string cut_all() {
  return scalar("SELECT count(pg_terminate_backend(pid)) FROM "
                "pg_stat_activity WHERE pid <> pg_backend_pid() AND "
                "backend_type = 'client backend'");
}

/// Cuts the sessions reading rows with COPY only.
std::string cut_readers() {
  return scalar("SELECT count(pg_terminate_backend(pid)) FROM "
                "pg_stat_activity WHERE pid <> pg_backend_pid() AND "
                "query LIKE 'COPY%'");
}

/// The group lines of a --json run (every line but the summary).
std::vector<std::string> groups_of(const std::string& out) {
  auto lines = lines_of(out);
  if (!lines.empty())
    lines.pop_back();
  return lines;
}

} // namespace

TEST_CASE("aggregate --resume after SIGKILL midway writes the table of an "
          "uninterrupted run and counts every row once",
          "[pg][aggregate][resume]") {
  auto schema = make_sales("agg_resume");
  write_reference(schema);
  // A previous output with a row no run produces: untouched by the killed
  // run, gone once the resumed run commits.
  exec("CREATE TABLE " + pg::table_name{schema, "out"}.quoted()
       + " AS SELECT * FROM " + pg::table_name{schema, "ref"}.quoted());
  exec("INSERT INTO " + pg::table_name{schema, "out"}.quoted()
       + " (count) VALUES (-1)");
  kill_after_first_step(agg_args(schema, "out", small_steps), schema,
                        "agg-resume-kill");
  auto resumed = run_program(prog, agg_args(schema, "out",
                                            with(small_steps,
                                                 {"--resume", "--verify"})));
  INFO(resumed.err);
  REQUIRE(resumed.rc == 0);
  auto summary = summary_of(resumed.out);
  INFO(summary);
  auto steps = std::stoull(json_field(summary, "steps"));
  auto resumed_rows = std::stoull(json_field(summary, "resumed_rows"));
  CHECK(steps > 2);
  CHECK(resumed_rows > 0);
  CHECK(resumed_rows < 60000);
  CHECK(json_field(summary, "rows_read") == "60000");
  CHECK(json_field(summary, "rows_aggregated") == "60000");
  CHECK(json_field(summary, "balanced") == "true");
  CHECK(json_field(summary, "verified") == "true");
  CHECK(difference(schema, "out", "ref") == "0");
  // The checkpoint went with the output's commit.
  CHECK(checkpoint_tables() == "0");
}

TEST_CASE("aggregate --output stopped by SIGINT keeps the checkpoint and "
          "the previous output, and --resume finishes the job",
          "[pg][aggregate][resume]") {
  auto schema = make_sales("agg_resume_int");
  write_reference(schema);
  empty_output(schema);
  kill_after_first_step(agg_args(schema, "out", small_steps), schema,
                        "agg-resume-int", "1,INT", 128 + SIGINT);
  CHECK(scalar("SELECT count(*) FROM "
               + pg::table_name{schema, "out"}.quoted())
        == "0");
  auto resumed = run_program(
    prog, agg_args(schema, "out", with(small_steps, {"--resume"})));
  INFO(resumed.err);
  REQUIRE(resumed.rc == 0);
  CHECK(std::stoull(json_field(summary_of(resumed.out), "resumed_rows")) > 0);
  CHECK(difference(schema, "out", "ref") == "0");
  CHECK(checkpoint_tables() == "0");
}

TEST_CASE("aggregate --resume with --pushdown after SIGKILL equals an "
          "uninterrupted run",
          "[pg][aggregate][resume]") {
  auto schema = make_sales("agg_resume_push");
  // min and max of cents and of "Region" share a range each (written to
  // and read from the checkpoint); price's are two decimal states.
  auto pushable = "count(*), sum(cents), min(price), max(price), "
                  "sum(price), avg(cents), min(cents), max(cents), "
                  "max(\"Region\"), min(\"Region\")";
  auto args = [&](const std::string& output,
                  std::vector<std::string> extra) {
    std::vector<std::string> a{"aggregate", "--db",       conninfo(),
                               "--schema",  schema,       "--table",
                               "Sales",     "--group-by", "Region, day",
                               "--agg",     pushable,     "--json",
                               "--output",  output,       "--pushdown"};
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  };
  auto ref = run_program(prog, args("ref", {"--checkpoint-rows", "0"}));
  REQUIRE(ref.rc == 0);
  empty_output(schema);
  kill_after_first_step(args("out", small_steps), schema, "agg-resume-push");
  auto resumed = run_program(prog,
                             args("out", with(small_steps, {"--resume"})));
  INFO(resumed.err);
  REQUIRE(resumed.rc == 0);
  auto summary = summary_of(resumed.out);
  INFO(summary);
  CHECK(json_field(summary, "mode") == "\"push-down\"");
  CHECK(std::stoull(json_field(summary, "resumed_rows")) > 0);
  CHECK(json_field(summary, "rows_read") == "60000");
  CHECK(difference(schema, "out", "ref") == "0");
  CHECK(checkpoint_tables() == "0");
  // A checkpoint whose states are of other types for the same job (as an
  // older build wrote: push-down states became compact) is refused by
  // name, kept, and a run without --resume starts over. Made here by
  // renaming the min(price) states in the stored bytes to the max's type.
  kill_after_first_step(args("out", small_steps), schema, "agg-resume-types");
  auto ckpt_table = the_checkpoint();
  auto hex = [](const std::string& x) {
    std::string out;
    char buf[3];
    for (unsigned char c : x) {
      std::snprintf(buf, sizeof(buf), "%02x", c);
      out += buf;
    }
    return out;
  };
  exec("UPDATE " + ckpt_table + " SET state = decode(replace(encode(state, "
       "'hex'), '" + hex("flow-etl.decimal_min") + "', '"
       + hex("flow-etl.decimal_max") + "'), 'hex')");
  auto other_types = run_program(prog,
                                 args("out", with(small_steps, {"--resume"})));
  check_one_line_error(other_types, "another version of flow-etl");
  CHECK(other_types.err.find("'flow-etl.decimal_max' states, where this "
                             "one keeps 'flow-etl.decimal_min'")
        != std::string::npos);
  CHECK(other_types.err.find("run without --resume") != std::string::npos);
  CHECK(checkpoint_tables() == "1");
  // A checkpoint of a build that wrote no state columns in its fingerprint
  // (before push-down min and max shared a range): the same job's, of
  // another version, refused as a whole. Its states could line up by type
  // with this build's columns and be merged into the wrong ones.
  as_older_build(ckpt_table);
  auto older = run_program(prog, args("out", with(small_steps, {"--resume"})));
  check_one_line_error(older, "another version of flow-etl");
  CHECK(older.err.find("it keeps other aggregator states for this job")
        != std::string::npos);
  CHECK(checkpoint_tables() == "1");
  auto again = run_program(prog, args("out", small_steps));
  INFO(again.err);
  REQUIRE(again.rc == 0);
  CHECK(difference(schema, "out", "ref") == "0");
  CHECK(checkpoint_tables() == "0");
}

TEST_CASE("aggregate --resume with nothing to resume, of another job, or "
          "without a checkpointed source is a one-line error",
          "[pg][aggregate][resume]") {
  auto schema = make_sales("agg_resume_bad");
  SECTION("nothing to resume") {
    auto r = run_program(prog,
                         agg_args(schema, "out", with(small_steps,
                                                      {"--resume"})));
    check_one_line_error(r, "no interrupted run");
  }
  SECTION("a checkpoint of another job is refused and kept") {
    exec("CREATE TABLE " + pg::table_name{schema, "out"}.quoted()
         + " (x int)");
    kill_after_first_step(agg_args(schema, "out", small_steps), schema,
                          "agg-resume-other");
    // Other aggregates, then another filter, for the same output table.
    auto other = agg_args(schema, "out", with(small_steps, {"--resume"}));
    other[10] = "count(*)";
    check_one_line_error(run_program(prog, other), "another job");
    auto filtered = run_program(
      prog, agg_args(schema, "out",
                     with(small_steps, {"--resume", "--where", "cents > 0"})));
    check_one_line_error(filtered, "another job");
    CHECK(checkpoint_tables() == "1");
    // The job that left it still resumes it.
    auto resumed = run_program(
      prog, agg_args(schema, "out", with(small_steps, {"--resume"})));
    INFO(resumed.err);
    CHECK(resumed.rc == 0);
    CHECK(checkpoint_tables() == "0");
  }
  SECTION("without --output, with --query or with --checkpoint-rows 0") {
    auto no_output = run_program(
      prog, {"aggregate", "--db", conninfo(), "--schema", schema, "--table",
             "Sales", "--agg", "count(*)", "--resume"});
    check_one_line_error(no_output, "--output");
    auto query = run_program(
      prog, {"aggregate", "--db", conninfo(), "--schema", schema, "--query",
             "SELECT * FROM \"Sales\"", "--agg", "count(*)", "--output",
             "out", "--resume"});
    check_one_line_error(query, "--table");
    auto off = run_program(
      prog, agg_args(schema, "out", {"--resume", "--checkpoint-rows", "0"}));
    check_one_line_error(off, "--checkpoint-rows");
  }
  SECTION("flow-etl run refuses --resume") {
    auto file = temp_file("[[job]]\nname = \"j\"\ntable = \"Sales\"\n"
                          "aggregates = \"count(*)\"\n");
    auto r = run_program(prog, {"run", file, "--db", conninfo(), "--schema",
                                schema, "--resume"});
    check_one_line_error(r, "not supported for job files");
  }
}

TEST_CASE("aggregate --output in steps leaves no checkpoint behind, and 1 "
          "or 3 partitions give the table of an uninterrupted run",
          "[pg][aggregate][resume]") {
  auto schema = make_sales("agg_steps");
  write_reference(schema);
  for (auto partitions : {"1", "3"}) {
    INFO("partitions " << partitions);
    auto name = std::string{"out_"} + partitions;
    auto r = run_program(prog, agg_args(schema, name,
                                        {"--checkpoint-rows", "8000",
                                         "--partitions", partitions}));
    INFO(r.err);
    REQUIRE(r.rc == 0);
    auto summary = summary_of(r.out);
    CHECK(std::stoull(json_field(summary, "steps")) > 2);
    CHECK(json_field(summary, "resumed_rows") == "0");
    CHECK(json_field(summary, "rows_read") == "60000");
    CHECK(json_field(summary, "partitions") == partitions);
    CHECK(difference(schema, name, "ref") == "0");
    CHECK(checkpoint_tables() == "0");
  }
  // The default step size (10^6 rows) makes 60000 rows one step.
  auto one = run_program(prog, agg_args(schema, "out_default"));
  REQUIRE(one.rc == 0);
  CHECK(json_field(summary_of(one.out), "steps") == "1");
  CHECK(difference(schema, "out_default", "ref") == "0");
  // Without --output nothing changes: no checkpoint fields at all.
  auto printed = run_program(prog, {"aggregate", "--db", conninfo(),
                                    "--schema", schema, "--table", "Sales",
                                    "--agg", "count(*)", "--json"});
  REQUIRE(printed.rc == 0);
  CHECK(json_field(printed.out, "steps").empty());
  CHECK(checkpoint_tables() == "0");
}

TEST_CASE("aggregate checkpoints: ranges and merged states round-trip, "
          "damage is detected and steps merge per group",
          "[pg][aggregate][resume]") {
  std::vector<pg::range> ranges{{std::nullopt, 10, false, true},
                                {10, 20, false, true},
                                {20, std::nullopt, false, true},
                                {std::nullopt, -5, true, false}};
  auto back = apps::decode_ranges(apps::encode_ranges(ranges));
  REQUIRE(back);
  REQUIRE(back->size() == ranges.size());
  for (std::size_t i = 0; i < ranges.size(); ++i) {
    CHECK((*back)[i].lo == ranges[i].lo);
    CHECK((*back)[i].hi == ranges[i].hi);
    CHECK((*back)[i].blocks == ranges[i].blocks);
    CHECK((*back)[i].nulls == ranges[i].nulls);
  }
  CHECK_FALSE(apps::decode_ranges("1 x 0 0\n"));
  CHECK_FALSE(apps::decode_ranges("1 2 0\n"));
  // Two steps with one group in common: that group's aggregates add up,
  // the others are kept, keys stay ordered, and the counts add.
  job_result a;
  a.keys.push_back({flow::key{"b"}, aggregate::of(std::vector<std::int64_t>{
                                                    1, 2}.data(), 2), 0});
  a.emitted = a.aggregated = 2;
  job_result b;
  b.keys.push_back({flow::key{"a"}, aggregate::of(std::vector<std::int64_t>{
                                                    7}.data(), 1), 0});
  b.keys.push_back({flow::key{"b"}, aggregate::of(std::vector<std::int64_t>{
                                                    -10}.data(), 1), 0});
  b.emitted = 3;
  b.aggregated = 2;
  b.rejected = 1;
  b.final = true;
  auto total = a;
  REQUIRE(apps::merge_step(total, b));
  REQUIRE(total.keys.size() == 2);
  CHECK(total.keys[0].key == flow::key{"a"});
  CHECK(total.keys[1].agg.sum == -7);
  CHECK(total.keys[1].agg.count == 3);
  CHECK(total.keys[1].agg.min == -10);
  CHECK(total.emitted == 5);
  CHECK(total.balanced());
  // The merged result survives its serialisation; cut bytes do not decode.
  auto bytes = apps::encode_result(total);
  auto loaded = apps::decode_result(bytes);
  REQUIRE(loaded);
  CHECK(loaded->keys.size() == 2);
  CHECK(loaded->keys[1].agg == total.keys[1].agg);
  CHECK(loaded->emitted == 5);
  CHECK_FALSE(apps::decode_result(bytes.substr(0, bytes.size() / 2)));
}

TEST_CASE("aggregate --output: while a run of the job is live its checkpoint "
          "is its own, and once the run is gone gc drops it",
          "[pg][aggregate][resume][gc]") {
  auto schema = make_sales("agg_owned");
  exec("CREATE TABLE " + pg::table_name{schema, "out"}.quoted() + " (x int)");
  kill_after_first_step(agg_args(schema, "out", small_steps), schema,
                        "agg-owned-kill");
  auto table = scalar("SELECT tablename FROM pg_tables WHERE schemaname = "
                      "'flow_resume'");
  REQUIRE(table.size() == 20);
  REQUIRE(table.rfind("agg_", 0) == 0);
  {
    // A live run of the job holds the checkpoint's lock (as this test does
    // here): a resume, a fresh run and gc all leave it alone.
    auto live = pg::owner_lock::try_acquire(conninfo(), table.substr(4),
                                            "the test's checkpoint");
    REQUIRE(live);
    check_one_line_error(
      run_program(prog, agg_args(schema, "out", with(small_steps,
                                                     {"--resume"}))),
      "another run of this job is in progress");
    check_one_line_error(run_program(prog, agg_args(schema, "out",
                                                    small_steps)),
                         "another run of this job is in progress");
    auto gc = run_program(prog, {"gc", "--db", conninfo(), "--json"});
    REQUIRE(gc.rc == 0);
    CHECK(json_field(summary_of(gc.out), "live") == "1");
    CHECK(json_field(summary_of(gc.out), "dropped") == "0");
    CHECK(checkpoint_tables() == "1");
    CHECK(scalar("SELECT count(*) FROM "
                 + pg::table_name{schema, "out"}.quoted())
          == "0");
  }
  // The run is gone: its checkpoint is an orphan.
  auto gc = run_program(prog, {"gc", "--db", conninfo(), "--json"});
  REQUIRE(gc.rc == 0);
  CHECK(json_field(summary_of(gc.out), "dropped") == "1");
  CHECK(checkpoint_tables() == "0");
  check_one_line_error(
    run_program(prog, agg_args(schema, "out", with(small_steps,
                                                   {"--resume"}))),
    "no interrupted run");
}

TEST_CASE("aggregate --output: connections cut by pg_terminate_backend "
          "midway are tried again from the checkpoint, and the table equals "
          "an uninterrupted run's",
          "[pg][aggregate][resume][connection]") {
  auto schema = make_sales("agg_cut");
  write_reference(schema);
  auto argv = with({prog}, agg_args(schema, "out",
                                    with(small_steps, with(small_batches,
                                                           {"--verify"}))));
  child run{argv, "agg-cut", slow};
  REQUIRE(wait_for_checkpoint());
  CHECK(cut_all() != "0");
  auto rc = run.wait();
  auto out = slurp(run.out);
  auto err = slurp(run.err);
  INFO(err);
  REQUIRE(rc == 0);
  auto summary = summary_of(out);
  INFO(summary);
  CHECK(std::stoull(json_field(summary, "reconnects")) >= 1);
  CHECK(std::stoull(json_field(summary, "resumed_rows")) > 0);
  CHECK(json_field(summary, "rows_read") == "60000");
  CHECK(json_field(summary, "rows_aggregated") == "60000");
  CHECK(json_field(summary, "verified") == "true");
  CHECK(err.find("trying again") != std::string::npos);
  CHECK(difference(schema, "out", "ref") == "0");
  CHECK(checkpoint_tables() == "0");
}

TEST_CASE("aggregate --output: a cut connection of a fresh run does not "
          "take up a checkpoint an earlier run left",
          "[pg][aggregate][resume][connection]") {
  auto schema = make_sales("agg_cut_leftover");
  write_reference(schema);
  empty_output(schema);
  // An earlier run's checkpoint, as an older build wrote it (no state
  // columns in its fingerprint): --resume would refuse it.
  kill_after_first_step(agg_args(schema, "out", small_steps), schema,
                        "agg-leftover-kill");
  auto ckpt_table = the_checkpoint();
  as_older_build(ckpt_table);
  // A fresh run in one step (it neither takes nor discards the leftover)
  // whose readers are cut: tried again from the start, not from the
  // leftover.
  auto argv = with({prog}, agg_args(schema, "out",
                                    with({"--checkpoint-rows", "1000000",
                                          "--partitions", "2"},
                                         small_batches)));
  child run{argv, "agg-cut-leftover", slow};
  REQUIRE(wait_for_copy());
  CHECK(cut_readers() != "0");
  auto rc = run.wait();
  auto out = slurp(run.out);
  auto err = slurp(run.err);
  INFO(err);
  REQUIRE(rc == 0);
  auto summary = summary_of(out);
  INFO(summary);
  CHECK(std::stoull(json_field(summary, "reconnects")) >= 1);
  CHECK(json_field(summary, "resumed_rows") == "0");
  CHECK(json_field(summary, "rows_read") == "60000");
  CHECK(difference(schema, "out", "ref") == "0");
}

TEST_CASE("aggregate: a server restart midway is tried again with the same "
          "table",
          "[pg][aggregate][resume][connection]") {
  auto schema = make_sales("agg_restart");
  write_reference(schema);
  auto argv = with({prog}, agg_args(schema, "out",
                                    with(small_steps, small_batches)));
  child run{argv, "agg-restart", slow};
  REQUIRE(wait_for_checkpoint());
  REQUIRE(server().restart());
  auto rc = run.wait();
  auto out = slurp(run.out);
  INFO(slurp(run.err));
  REQUIRE(rc == 0);
  auto summary = summary_of(out);
  CHECK(std::stoull(json_field(summary, "reconnects")) >= 1);
  CHECK(json_field(summary, "rows_read") == "60000");
  CHECK(difference(schema, "out", "ref") == "0");
  CHECK(checkpoint_tables() == "0");
}

TEST_CASE("aggregate without --output: a cut connection starts the job "
          "again and prints the same groups once",
          "[pg][aggregate][connection]") {
  auto schema = make_sales("agg_cut_print");
  std::vector<std::string> args{"aggregate", "--db",       conninfo(),
                                "--schema",  schema,       "--table",
                                "Sales",     "--group-by", "Region, day",
                                "--agg",     aggs,         "--json",
                                "--partitions", "2"};
  auto ref = run_program(prog, args);
  INFO(ref.err);
  REQUIRE(ref.rc == 0);
  child run{with(with({prog}, args), small_batches), "agg-cut-print", slow};
  REQUIRE(wait_for_copy());
  CHECK(cut_readers() != "0");
  auto rc = run.wait();
  auto out = slurp(run.out);
  INFO(slurp(run.err));
  REQUIRE(rc == 0);
  CHECK(groups_of(out) == groups_of(ref.out));
  auto summary = summary_of(out);
  CHECK(json_field(summary, "reconnects") == "1");
  CHECK(json_field(summary, "rows_read") == "60000");
  CHECK(json_field(summary, "balanced") == "true");
  CHECK(json_field(summary_of(ref.out), "reconnects") == "0");
}

TEST_CASE("aggregate --reconnects 0: a cut connection fails the run with a "
          "one-line error, the previous output stays and --resume finishes",
          "[pg][aggregate][resume][connection]") {
  auto schema = make_sales("agg_noreconnect");
  write_reference(schema);
  exec("CREATE TABLE " + pg::table_name{schema, "out"}.quoted()
       + " (x int)");
  exec("INSERT INTO " + pg::table_name{schema, "out"}.quoted()
       + " VALUES (7)");
  auto argv = with({prog}, agg_args(schema, "out",
                                    with(small_steps,
                                         with(small_batches,
                                              {"--reconnects", "0"}))));
  child run{argv, "agg-noreconnect", slow};
  REQUIRE(wait_for_checkpoint());
  CHECK(cut_all() != "0");
  auto rc = run.wait();
  auto err = slurp(run.err);
  INFO(err);
  CHECK(rc == 2);
  CHECK(err.find("flow-etl: error:") != std::string::npos);
  CHECK(err.find("trying again") == std::string::npos);
  CHECK(slurp(run.out).empty());
  CHECK(scalar("SELECT string_agg(x::text, ',') FROM "
               + pg::table_name{schema, "out"}.quoted())
        == "7");
  CHECK(checkpoint_tables() == "1");
  auto resumed = run_program(
    prog, agg_args(schema, "out", with(small_steps, {"--resume"})));
  INFO(resumed.err);
  REQUIRE(resumed.rc == 0);
  CHECK(difference(schema, "out", "ref") == "0");
}

TEST_CASE("aggregate: a snapshot whose exporting session the server ended "
          "before the readers imported it is a lost connection, tried again",
          "[pg][aggregate][connection]") {
  auto schema = make_sales("agg_snap_lost");
  auto t = pg::table_name{schema, "Sales"}.quoted();
  // The test hook ends the session holding the exported snapshot right
  // before the readers import it, as a pg_terminate_backend of every
  // session can (the 60-second soak once hit it): the import fails with
  // 22023 or 55000, which is no bad input but the lost connection.
  // With --output in steps, the steps import the coordinator's snapshot
  // too, each later than the last.
  std::vector<std::string> steps{"--output", "out", "--checkpoint-rows",
                                 "8000", "--partitions", "2"};
  for (auto source : {std::vector<std::string>{"--table", "Sales"},
                      std::vector<std::string>{"--table", "Sales",
                                               "--pushdown"},
                      std::vector<std::string>{
                        "--query", "SELECT * FROM " + t},
                      with({"--table", "Sales"}, steps),
                      with({"--table", "Sales", "--pushdown"}, steps)}) {
    child run{with({prog, "aggregate", "--db", conninfo(), "--schema",
                    schema, "--group-by", "day", "--agg", "count(*)",
                    "--reconnects", "1"},
                   source),
              "agg-snap-lost", "FLOW_TEST_END_EXPORTER=1"};
    auto rc = run.wait();
    auto err = slurp(run.err);
    INFO(source[1] + " " + source.back() + ": " + err);
    CHECK(rc == 2);
    CHECK(err.find("trying again") != std::string::npos);
    CHECK(err.find("the session that exported the snapshot ended before")
          != std::string::npos);
    // The runs in steps fail where the steps import the snapshot.
    if (source.size() > 3)
      CHECK(err.find("step 1 imported it") != std::string::npos);
    CHECK(err.find("22023") == std::string::npos);
    CHECK(err.find("55000") == std::string::npos);
    CHECK(err.find("bad_input") == std::string::npos);
  }
}

TEST_CASE("flow-etl run: a job that cannot import the shared snapshot "
          "because its session ended says so, not tried again, nothing "
          "written",
          "[pg][aggregate][run][connection]") {
  auto schema = make_sales("run_snap_lost");
  auto file = temp_file(
    "atomic = true\n"
    "[[job]]\nname = \"by_region\"\ntable = \"Sales\"\n"
    "group_by = [\"Region\"]\naggregates = [\"count(*)\"]\n"
    "output = \"o1\"\n"
    "[[job]]\nname = \"by_day\"\ntable = \"Sales\"\n"
    "group_by = [\"day\"]\naggregates = [\"count(*)\"]\n"
    "output = \"o2\"\n");
  // The test hook ends the session that exported the jobs' shared snapshot
  // right after the export: the first job's coordinator cannot import it
  // (22023), which is no bad input. Not tried again: no other session holds
  // that snapshot.
  child run{{prog, "run", file, "--db", conninfo(), "--schema", schema,
             "--reconnects", "2"},
            "run-snap-lost", "FLOW_TEST_END_EXPORTER=1"};
  auto rc = run.wait();
  auto err = slurp(run.err);
  INFO(err);
  CHECK(rc == 2);
  CHECK(err.find("the connection holding the jobs' shared snapshot was lost "
                 "with it")
        != std::string::npos);
  CHECK(err.find("Lost connection to the database server: the session that "
                 "exported the snapshot ended before job by_region imported "
                 "it")
        != std::string::npos);
  CHECK(err.find("trying again") == std::string::npos);
  CHECK(err.find("22023") == std::string::npos);
  CHECK(err.find("bad_input") == std::string::npos);
  CHECK(scalar("SELECT to_regclass('" + pg::table_name{schema, "o1"}.quoted()
               + "')")
          .empty());
  CHECK(scalar("SELECT to_regclass('" + pg::table_name{schema, "o2"}.quoted()
               + "')")
          .empty());
}

TEST_CASE("aggregate and run --reconnects: a bad value is a one-line error",
          "[pg][aggregate][connection]") {
  auto schema = make_sales("agg_reconnects_bad");
  auto file = temp_file("[[job]]\nname = \"j\"\ntable = \"Sales\"\n"
                        "aggregates = \"count(*)\"\n");
  for (auto bad : {"-1", "x", "1001"}) {
    auto r = run_program(prog, agg_args(schema, "out", {"--reconnects", bad}));
    check_one_line_error(r, "--reconnects");
    auto in_run = run_program(prog, {"run", file, "--db", conninfo(),
                                     "--schema", schema, "--reconnects", bad});
    check_one_line_error(in_run, "--reconnects");
  }
}

TEST_CASE("flow-etl run: a job whose readers are cut is tried again in the "
          "jobs' snapshot, and losing the snapshot's own connection fails "
          "the run and an atomic file writes nothing",
          "[pg][aggregate][run][connection]") {
  auto schema = make_sales("run_cut");
  auto file = temp_file(
    "atomic = true\n"
    "[[job]]\nname = \"by_region\"\ntable = \"Sales\"\n"
    "group_by = [\"Region\"]\naggregates = [\"count(*)\", "
    "\"sum(cents)\", \"sum(ratio)\"]\noutput = \"o1\"\n"
    "[[job]]\nname = \"by_day\"\ntable = \"Sales\"\n"
    "group_by = [\"day\"]\naggregates = [\"count(*)\", "
    "\"max(price)\"]\noutput = \"o2\"\n");
  std::vector<std::string> args{prog,     "run",      file,     "--db",
                                conninfo(), "--schema", schema, "--json",
                                "--partitions", "2",   "--batch",  "500"};
  auto o1 = pg::table_name{schema, "o1"}.quoted();
  auto o2 = pg::table_name{schema, "o2"}.quoted();
  auto digest = [&] {
    return scalar("SELECT md5(string_agg(t::text, '|' ORDER BY t::text)) "
                  "FROM (SELECT * FROM " + o1 + ") t")
           + scalar("SELECT md5(string_agg(t::text, '|' ORDER BY t::text)) "
                    "FROM (SELECT * FROM " + o2 + ") t");
  };
  auto ref = run_program(args[0], std::vector<std::string>(args.begin() + 1,
                                                           args.end()));
  INFO(ref.err);
  REQUIRE(ref.rc == 0);
  auto expected = digest();
  SECTION("readers cut: tried again, the same tables") {
    exec("UPDATE " + pg::table_name{schema, "o1"}.quoted()
         + " SET count = -1");
    child run{args, "run-cut-readers", slow};
    REQUIRE(wait_for_copy());
    CHECK(cut_readers() != "0");
    auto rc = run.wait();
    auto out = slurp(run.out);
    INFO(slurp(run.err));
    REQUIRE(rc == 0);
    CHECK(out.find("\"reconnects\":1") != std::string::npos);
    CHECK(groups_of(out).size() == groups_of(ref.out).size());
    CHECK(digest() == expected);
  }
  SECTION("every session cut: the shared snapshot is gone, nothing written") {
    exec("UPDATE " + pg::table_name{schema, "o1"}.quoted()
         + " SET count = -1");
    auto before = digest();
    child run{args, "run-cut-all", slow};
    REQUIRE(wait_for_copy());
    CHECK(cut_all() != "0");
    auto rc = run.wait();
    auto err = slurp(run.err);
    INFO(err);
    CHECK(rc == 2);
    CHECK(err.find("shared snapshot") != std::string::npos);
    CHECK(digest() == before);
  }
}
