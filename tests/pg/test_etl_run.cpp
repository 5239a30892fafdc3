// flow-etl run as a user runs it: job files whose mistakes are reported as
// one line naming the file, the line and the key (exit 2, nothing printed,
// no database needed); good files whose outputs equal the server's own
// GROUP BY; --check; atomic = true leaving every output as it was when a
// later job fails; and the documented example, run against its sales table.

#include <catch2/catch.hpp>

#include <chrono>
#include <thread>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "child_process.hpp"
#include "flow/pg/connection.hpp"
#include "pg_fixture.hpp"
#include "run_program.hpp"

using namespace flow;
using namespace flow::test;

namespace {

const std::string prog = FLOW_ETL_PATH;
const std::string examples = FLOW_EXAMPLES_DIR;

/// A one-line error, exit code 2, nothing on stdout; returns the line.
std::string one_line_error(const run_result& res) {
  INFO("stdout: " << res.out << "\nstderr: " << res.err);
  CHECK(res.rc == 2);
  CHECK(lines_of(res.err).size() == 1);
  CHECK(res.err.rfind("flow-etl: error: ", 0) == 0);
  CHECK(res.out.empty());
  return res.err;
}

/// `flow-etl run FILE ARGS...` for a job file holding `text`; returns the
/// error line of a run that must fail, and the file's path in `path`.
std::string run_error(const std::string& text, std::string& path,
                      const std::vector<std::string>& args = {}) {
  path = temp_file(text);
  std::vector<std::string> argv{"run", path};
  argv.insert(argv.end(), args.begin(), args.end());
  return one_line_error(run_program(prog, argv));
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

/// A connection string whose search_path is `schema`: the jobs' tables,
/// queries and outputs then all live there.
std::string db_in(const std::string& schema) {
  return conninfo() + " options='-csearch_path=" + schema + "'";
}

std::string read_text(const std::string& path) {
  std::ifstream in{path, std::ios::binary};
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

/// examples/etl/sales.sql, run in `schema`.
void load_sales(const std::string& schema) {
  exec("SET LOCAL search_path TO " + pg::quote_ident(schema) + ";\n"
       + read_text(examples + "/etl/sales.sql"));
}

/// Rows in `a` but not in `b` plus rows in `b` but not in `a` (both
/// SELECTs): 0 when they are equal as sets.
std::string except_both_ways(const std::string& a, const std::string& b) {
  return scalar("SELECT count(*) FROM ((" + a + " EXCEPT ALL " + b
                + ") UNION ALL (" + b + " EXCEPT ALL " + a + ")) d");
}

bool exists(const std::string& schema, const std::string& table) {
  return scalar("SELECT to_regclass('" + pg::quote_ident(schema) + "."
                + pg::quote_ident(table) + "') IS NOT NULL")
         == "t";
}

const std::string good_job = "[[job]]\n"
                             "name = \"x\"\n"
                             "table = \"sales\"\n"
                             "aggregates = [\"count(*)\"]\n";

} // namespace

// -- mistakes in the file: one line, file:line, the key ------------------------

TEST_CASE("flow-etl run: a TOML syntax error names the file and its line",
          "[pg][flow-etl][run][error]") {
  std::string path;
  auto err = run_error("atomic = true\n"
                       "[[job]]\n"
                       "name = \"x\n"
                       "table = \"sales\"\n",
                       path, {"--db", conninfo()});
  CHECK(contains(err, path + ":3: "));
}

TEST_CASE("flow-etl run: an unknown key is an error naming it and the key "
          "meant",
          "[pg][flow-etl][run][error]") {
  std::string path;
  auto err = run_error("[[job]]\n"
                       "name = \"daily\"\n"
                       "table = \"sales\"\n"
                       "agregates = [\"count(*)\"]\n",
                       path, {"--db", conninfo()});
  CHECK(contains(err, path + ":4: job \"daily\": key 'agregates': unknown key"));
  CHECK(contains(err, "did you mean 'aggregates'?"));
  SECTION("also in [defaults] where atomic says it belongs at the top") {
    err = run_error("[defaults]\n"
                    "verify = true\n"
                    "atomic = true\n"
                    + good_job,
                    path, {"--db", conninfo()});
    CHECK(contains(err, path + ":3: [defaults]: key 'atomic': unknown key"));
    CHECK(contains(err, "top-level"));
  }
}

TEST_CASE("flow-etl run: a value of the wrong type names file and line and "
          "key",
          "[pg][flow-etl][run][error]") {
  std::string path;
  auto err = run_error("[[job]]\n"
                       "name = \"daily\"\n"
                       "table = \"sales\"\n"
                       "\n"
                       "aggregates = 5\n",
                       path, {"--db", conninfo()});
  CHECK(contains(err, path + ":5: job \"daily\": key 'aggregates': "));
  CHECK(contains(err, "got an integer"));
  err = run_error("[defaults]\npartitions = \"4\"\n" + good_job, path);
  CHECK(contains(err, path + ":2: [defaults]: key 'partitions': "));
  err = run_error("[[job]]\nname = \"x\"\ntable = \"sales\"\n"
                  "group_by = \"region, day\"\naggregates = \"count(*)\"\n",
                  path);
  CHECK(contains(err, path + ":4: job \"x\": key 'group_by': "));
}

TEST_CASE("flow-etl run: a bad aggregate names file and line and key at the "
          "line of its array element",
          "[pg][flow-etl][run][error]") {
  std::string path;
  auto err = run_error("[[job]]\n"
                       "name = \"daily\"\n"
                       "table = \"sales\"\n"
                       "aggregates = [\n"
                       "  \"sum(cents)\",\n"
                       "  \"summ(price)\",\n"
                       "]\n",
                       path, {"--db", conninfo()});
  CHECK(contains(err, path + ":6: job \"daily\": key 'aggregates': "));
  CHECK(contains(err, "summ"));
  SECTION("two aggregates of one name in different strings") {
    err = run_error("[[job]]\nname = \"d\"\ntable = \"sales\"\n"
                    "aggregates = [\"sum(cents)\",\n \"sum(cents)\"]\n",
                    path);
    CHECK(contains(err, path + ":5: job \"d\": key 'aggregates': "));
    CHECK(contains(err, "sum_cents"));
  }
}

TEST_CASE("flow-etl run: a job needs exactly one of table and query",
          "[pg][flow-etl][run][error]") {
  std::string path;
  auto err = run_error("[[job]]\n"
                       "name = \"nowhere\"\n"
                       "aggregates = [\"count(*)\"]\n",
                       path, {"--db", conninfo()});
  CHECK(contains(err, path + ":1: job \"nowhere\": "));
  CHECK(contains(err, "'table'"));
  CHECK(contains(err, "'query'"));
  err = run_error("[[job]]\n"
                  "name = \"both\"\n"
                  "table = \"sales\"\n"
                  "query = \"SELECT 1 AS one\"\n"
                  "aggregates = [\"count(*)\"]\n",
                  path, {"--db", conninfo()});
  CHECK(contains(err, path + ":4: job \"both\": key 'query': "));
}

TEST_CASE("flow-etl run: duplicate job names and output tables are errors",
          "[pg][flow-etl][run][error]") {
  std::string path;
  auto err = run_error(good_job + "output = \"a\"\n\n" + good_job
                         + "output = \"b\"\n",
                       path, {"--db", conninfo()});
  CHECK(contains(err, path + ":8: job \"x\": key 'name': "));
  CHECK(contains(err, "line 1"));
  err = run_error("[[job]]\nname = \"one\"\ntable = \"sales\"\n"
                  "aggregates = \"count(*)\"\noutput = \"same\"\n"
                  "[[job]]\nname = \"two\"\ntable = \"sales\"\n"
                  "aggregates = \"sum(cents)\"\noutput = \"same\"\n",
                  path, {"--db", conninfo()});
  CHECK(contains(err, path + ":10: job \"two\": key 'output': "));
  CHECK(contains(err, "\"one\""));
}

TEST_CASE("flow-etl run: a missing file or file name and an unknown option",
          "[pg][flow-etl][run][error]") {
  auto missing = temp_file("") + ".does-not-exist.toml";
  auto err = one_line_error(
    run_program(prog, {"run", missing, "--db", conninfo()}));
  CHECK(contains(err, missing));
  CHECK(contains(err, "No such file"));
  err = one_line_error(run_program(prog, {"run"}));
  CHECK(contains(err, "no job file"));
  auto path = temp_file(good_job);
  err = one_line_error(
    run_program(prog, {"run", path, "--db", conninfo(), "--frobnicate"}));
  CHECK(contains(err, "unknown option '--frobnicate'"));
  err = one_line_error(run_program(prog, {"run", path, "--partitions", "x"}));
  CHECK(contains(err, "--partitions"));
}

TEST_CASE("flow-etl run: without a database the error says the throwaway "
          "cluster was empty",
          "[pg][flow-etl][run][cluster][error]") {
  for (auto var : {"PGHOST", "PGHOSTADDR", "PGPORT", "PGDATABASE", "PGSERVICE",
                   "PGUSER"})
    ::unsetenv(var);
  auto path = temp_file(good_job);
  auto res = run_program(prog, {"run", path});
  INFO("stdout: " << res.out << "\nstderr: " << res.err);
  CHECK(res.rc == 2);
  CHECK(res.out.empty());
  // The notice that a cluster was started, then the one-line error.
  auto lines = lines_of(res.err);
  REQUIRE(lines.size() == 2);
  CHECK(lines[1].rfind("flow-etl: error: " + path + ":1: job \"x\": ", 0)
        == 0);
  CHECK(contains(lines[1], "empty throwaway cluster"));
}

// -- good files: against the implementation of aggregate.hpp -------------------

TEST_CASE("flow-etl run: two jobs with atomic = true write outputs equal to "
          "the server's GROUP BY",
          "[pg][flow-etl][run]") {
  auto schema = fresh_schema("run_good");
  load_sales(schema);
  auto path = temp_file(
    "atomic = true\n"
    "[defaults]\n"
    "verify = true\n"
    "partitions = 3\n"
    "\n"
    "[[job]]\n"
    "name = \"by_region_day\"\n"
    "table = \"sales\"\n"
    "where = \"cents > 0\"\n"
    "group_by = [\"region\", \"day\"]\n"
    "aggregates = [\"sum(cents), count(*)\", \"count(price)\",\n"
    "  \"min(price), max(price)\", \"sum(price) AS total_price\",\n"
    "  \"avg(price) AS avg_price\", \"stddev(ratio)\"]\n"
    "output = \"by_region_day\"\n"
    "\n"
    "[[job]]\n"
    "name = \"by_city\"\n"
    "query = \"SELECT \\\"City\\\", cents, day FROM sales\"\n"
    "group_by = [\"City\"]\n"
    "aggregates = [\"count(*) AS n\", \"count(distinct cents) AS dc\",\n"
    "  \"min(day)\", \"max(cents) AS top\"]\n"
    "output = \"by_city\"\n");
  auto res = run_program(prog, {"run", path, "--db", db_in(schema)});
  INFO("stdout: " << res.out << "\nstderr: " << res.err);
  REQUIRE(res.rc == 0);
  auto s = pg::quote_ident(schema) + ".";
  CHECK(scalar("SELECT count(*) FROM " + s + "by_region_day") != "0");
  CHECK(except_both_ways(
          "SELECT region, day, sum_cents, count, count_price, min_price, "
          "max_price, total_price FROM "
            + s + "by_region_day",
          "SELECT region, day, sum(cents), count(*), count(price), "
          "min(price), max(price), sum(price) FROM "
            + s + "sales WHERE cents > 0 GROUP BY region, day")
        == "0");
  // avg and stddev are computed differently from the server: equal to a
  // relative 1e-9, NULL where the server's is NULL.
  CHECK(scalar("SELECT count(*) FROM " + s
               + "by_region_day o JOIN (SELECT region, day, avg(price) a, "
                 "stddev(ratio) d FROM "
               + s
               + "sales WHERE cents > 0 GROUP BY region, day) r "
                 "ON o.region IS NOT DISTINCT FROM r.region AND o.day = r.day "
                 "WHERE NOT coalesce(abs(o.avg_price::float8 - r.a::float8) "
                 "<= 1e-9 * greatest(1, abs(r.a::float8)), false) "
                 "OR NOT coalesce((o.stddev_ratio IS NULL AND r.d IS NULL) "
                 "OR abs(o.stddev_ratio - r.d) <= 1e-9 * greatest(1, "
                 "abs(r.d)), false)")
        == "0");
  CHECK(scalar("SELECT count(*) FROM " + s + "by_city") == "6");
  CHECK(except_both_ways(
          "SELECT \"City\", n, dc, min_day, top FROM " + s + "by_city",
          "SELECT \"City\", count(*), count(DISTINCT cents), min(day), "
          "max(cents) FROM "
            + s + "sales GROUP BY \"City\"")
        == "0");
}

TEST_CASE("flow-etl run --check: a good file is OK with exit 0 and nothing "
          "written",
          "[pg][flow-etl][run]") {
  auto schema = fresh_schema("run_check");
  load_sales(schema);
  // The command line's --schema wins over the file's [defaults].
  auto path = temp_file("[defaults]\n"
                        "schema = \"no_such_schema\"\n"
                        "[[job]]\n"
                        "name = \"a\"\n"
                        "table = \"sales\"\n"
                        "group_by = [\"City\"]\n"
                        "aggregates = [\"sum(cents)\", \"avg(price)\"]\n"
                        "output = \"a_out\"\n"
                        "[[job]]\n"
                        "name = \"b\"\n"
                        "table = \"sales\"\n"
                        "aggregates = \"quantile(ratio, 0.9) AS p90\"\n");
  auto res = run_program(prog, {"run", "--check", path, "--db", conninfo(),
                                "--schema", schema});
  INFO("stdout: " << res.out << "\nstderr: " << res.err);
  CHECK(res.rc == 0);
  CHECK(res.err.empty());
  auto lines = lines_of(res.out);
  REQUIRE_FALSE(lines.empty());
  CHECK(lines.back() == path + ": 2 jobs OK");
  CHECK_FALSE(exists(schema, "a_out"));
  // A check asks the server for no estimate of the groups, and its debug
  // log says none (it once said "the server estimates 0 groups").
  auto debug = run_program(prog, {"run", "--check", path, "--db", conninfo(),
                                  "--schema", schema, "--log-level", "debug"});
  INFO("stderr (debug): " << debug.err);
  CHECK(debug.rc == 0);
  CHECK(debug.err.find("estimate") == std::string::npos);
  // A run does ask: job "a" groups by a column, job "b" has none.
  auto ran = run_program(prog, {"run", path, "--db", conninfo(), "--schema",
                                schema, "--log-level", "debug"});
  INFO("stderr (run): " << ran.err);
  CHECK(ran.rc == 0);
  CHECK(ran.err.find("a: the server estimates ") != std::string::npos);
  CHECK(ran.err.find("b: no estimate of the groups") != std::string::npos);
  CHECK(ran.err.find("estimates 0 groups") == std::string::npos);
}

TEST_CASE("flow-etl run --check: a missing column is one line naming it",
          "[pg][flow-etl][run][error]") {
  auto schema = fresh_schema("run_check_bad");
  load_sales(schema);
  auto path = temp_file("[[job]]\n"
                        "name = \"ok\"\n"
                        "table = \"sales\"\n"
                        "aggregates = \"count(*)\"\n"
                        "\n"
                        "[[job]]\n"
                        "name = \"typo\"\n"
                        "table = \"sales\"\n"
                        "group_by = [\"regoin\"]\n"
                        "aggregates = \"sum(cents)\"\n");
  auto err = one_line_error(
    run_program(prog, {"run", "--check", path, "--db", db_in(schema)}));
  CHECK(contains(err, "regoin"));
  CHECK(contains(err, path + ":6: job \"typo\": "));
  // A run checks first, too: nothing runs, nothing is printed.
  err = one_line_error(run_program(prog, {"run", path, "--db", db_in(schema)}));
  CHECK(contains(err, "regoin"));
}

TEST_CASE("flow-etl run: with atomic = true a failing later job leaves every "
          "output as it was",
          "[pg][flow-etl][run][sink]") {
  auto schema = fresh_schema("run_atomic");
  load_sales(schema);
  auto s = pg::quote_ident(schema) + ".";
  // Job 2 fails while it reads (division by zero for every row with a
  // region), after job 1 has computed its result: no check can see it.
  auto jobs = [](bool atomic) {
    return std::string{"atomic = "} + (atomic ? "true" : "false")
           + "\n"
             "[[job]]\n"
             "name = \"first\"\n"
             "table = \"sales\"\n"
             "group_by = [\"region\"]\n"
             "aggregates = [\"sum(cents)\"]\n"
             "output = \"first_out\"\n"
             "[[job]]\n"
             "name = \"second\"\n"
             "table = \"sales\"\n"
             "where = \"cents / (region - region) > 0\"\n"
             "aggregates = [\"count(*)\"]\n"
             "output = \"second_out\"\n";
  };
  SECTION("an output table that existed keeps its rows") {
    exec("CREATE TABLE " + s + "first_out (sentinel text)");
    exec("INSERT INTO " + s + "first_out VALUES ('before')");
    auto res = run_program(prog, {"run", temp_file(jobs(true)), "--db",
                                  db_in(schema)});
    INFO("stdout: " << res.out << "\nstderr: " << res.err);
    CHECK(res.rc == 2);
    CHECK(contains(res.err, "division by zero"));
    CHECK(scalar("SELECT string_agg(sentinel, ',') FROM " + s + "first_out")
          == "before");
    CHECK_FALSE(exists(schema, "second_out"));
  }
  SECTION("an output table that did not exist is not created") {
    auto res = run_program(prog, {"run", temp_file(jobs(true)), "--db",
                                  db_in(schema)});
    INFO("stdout: " << res.out << "\nstderr: " << res.err);
    CHECK(res.rc == 2);
    CHECK_FALSE(exists(schema, "first_out"));
    CHECK_FALSE(exists(schema, "second_out"));
  }
  SECTION("without atomic the first job's output is committed") {
    auto res = run_program(prog, {"run", temp_file(jobs(false)), "--db",
                                  db_in(schema)});
    INFO("stdout: " << res.out << "\nstderr: " << res.err);
    CHECK(res.rc == 2);
    REQUIRE(exists(schema, "first_out"));
    CHECK(except_both_ways("SELECT region, sum_cents FROM " + s + "first_out",
                           "SELECT region, sum(cents) FROM " + s
                             + "sales GROUP BY region")
          == "0");
    CHECK_FALSE(exists(schema, "second_out"));
  }
}

TEST_CASE("flow-etl run: the documented example checks and runs against "
          "its sales table",
          "[pg][flow-etl][run][docs]") {
  auto schema = fresh_schema("run_example");
  load_sales(schema);
  auto file = examples + "/etl/revenue.toml";
  auto check = run_program(prog, {"run", "--check", file, "--db",
                                  db_in(schema)});
  INFO("check stdout: " << check.out << "\nstderr: " << check.err);
  CHECK(check.rc == 0);
  CHECK(contains(check.out, file + ": 3 jobs OK"));
  auto res = run_program(prog, {"run", file, "--db", db_in(schema)});
  INFO("stdout: " << res.out << "\nstderr: " << res.err);
  CHECK(res.rc == 0);
  CHECK(exists(schema, "revenue"));
  CHECK(exists(schema, "prices_by_city"));
  CHECK(except_both_ways(
          "SELECT region, day, sum_cents, count FROM "
            + pg::quote_ident(schema) + ".revenue",
          "SELECT region, day, sum(cents), count(*) FROM "
            + pg::quote_ident(schema)
            + ".sales WHERE cents > 0 GROUP BY region, day")
        == "0");
}

TEST_CASE("flow-etl run: every job reads one snapshot taken before the first",
          "[pg][flow-etl][run]") {
  auto schema = fresh_schema("run_snap");
  auto a = pg::table_name{schema, "slow"}.quoted();
  auto b = pg::table_name{schema, "later"}.quoted();
  exec("CREATE TABLE " + a + " AS SELECT g FROM generate_series(1, 40) g");
  exec("CREATE TABLE " + b + " AS SELECT g FROM generate_series(1, 5) g");
  // The first job takes about 2 s (a sleep per row); rows committed into
  // the second job's table meanwhile must not be seen by it.
  auto path = temp_file("[[job]]\n"
                        "name = \"first\"\n"
                        "table = \"slow\"\n"
                        "where = \"pg_sleep(0.05) IS NOT NULL\"\n"
                        "aggregates = [\"count(*)\"]\n"
                        "[[job]]\n"
                        "name = \"second\"\n"
                        "table = \"later\"\n"
                        "aggregates = [\"count(*)\", \"sum(g)\"]\n");
  child run{{prog, "run", path, "--db", db_in(schema), "--json", "--verify",
             "--partitions", "1"},
            "run-snapshot"};
  // Commit new rows once the first job is reading (its COPY is active on
  // the server: the snapshot was taken before it), while it still reads.
  bool inserted = false;
  for (int i = 0; i < 1200 && !inserted && run.running(); ++i) {
    auto active = scalar("SELECT count(*) FROM pg_stat_activity WHERE state "
                         "= 'active' AND query LIKE 'COPY%pg_sleep(0.05)%' "
                         "AND pid <> pg_backend_pid()");
    if (active != "0") {
      exec("INSERT INTO " + b + " SELECT g FROM generate_series(6, 9) g");
      inserted = true;
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds{25});
    }
  }
  REQUIRE(inserted);
  auto rc = run.wait();
  auto out = slurp(run.out);
  INFO("stdout: " << out << "\nstderr: " << slurp(run.err));
  REQUIRE(rc == 0);
  CHECK(scalar("SELECT count(*) FROM " + b) == "9");
  auto lines = lines_of(out);
  REQUIRE(lines.size() == 4);
  // The second job's group: the 5 rows of the snapshot, verified in it.
  CHECK(lines[2] == "{\"count\":5,\"sum_g\":15}");
  CHECK(lines[3].find("\"verified\":true") != std::string::npos);
}
