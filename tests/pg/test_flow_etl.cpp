// flow-etl as a user runs it: init and sum on the test server, verified
// against the server's GROUP BY; bad input, bad names and bad servers give
// one line and exit code 2; the throwaway cluster cleans up after itself.

#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>
#include <map>
#include <random>
#include <string>
#include <vector>

#include <pqxx/connection>
#include <pqxx/result>
#include <pqxx/transaction>

#include "flow/aggregate.hpp"
#include "flow/pg/connection.hpp"
#include "json_fields.hpp"
#include "pg_fixture.hpp"
#include "run_program.hpp"

using namespace flow;
using namespace flow::test;

namespace {

const std::string prog = FLOW_ETL_PATH;

struct group {
  std::string sum;
  std::string count;
  std::string lists;
};

/// The server's own GROUP BY over schema.table.
std::map<std::string, group> group_by(const std::string& schema,
                                      const std::string& table = "elements") {
  pqxx::connection conn{conninfo()};
  pqxx::work tx{conn};
  std::map<std::string, group> result;
  for (auto row : tx.exec(
         "SELECT list_size, sum(value), count(value), count(DISTINCT list_id) "
         "FROM "
         + pg::table_name{schema, table}.quoted() + " GROUP BY list_size"))
    result[row[0].c_str()] = {row[1].c_str(), row[2].c_str(), row[3].c_str()};
  return result;
}

/// Checks flow-etl's JSON lines against the GROUP BY.
void check_json(const run_result& res,
                const std::map<std::string, group>& ref) {
  INFO("stderr: " << res.err);
  REQUIRE(res.rc == 0);
  auto lines = lines_of(res.out);
  REQUIRE(lines.size() == ref.size());
  for (auto& line : lines) {
    INFO("line: " << line);
    auto key = json_field(line, "key");
    REQUIRE(ref.count(key) == 1);
    CHECK(json_field(line, "sum") == ref.at(key).sum);
    CHECK(json_field(line, "elements") == ref.at(key).count);
    CHECK(json_field(line, "lists") == ref.at(key).lists);
    CHECK(json_field(line, "ok") == "true");
  }
}

/// A one-line error, exit code 2.
void check_one_line_error(const run_result& res) {
  INFO("stdout: " << res.out << "\nstderr: " << res.err);
  CHECK(res.rc == 2);
  CHECK(lines_of(res.err).size() == 1);
  CHECK(res.err.rfind("flow-etl: error: ", 0) == 0);
  CHECK(res.out.empty());
}

std::string db() {
  return conninfo();
}

std::string count_of(const std::string& schema, const std::string& table) {
  return scalar("SELECT count(*) FROM "
                + pg::table_name{schema, table}.quoted());
}

} // namespace

TEST_CASE("flow-etl: init then sum, rows and push-down, equal the GROUP BY",
          "[pg][flow-etl]") {
  auto schema = fresh_schema("etl");
  auto init = run_program(prog, {"init", "--db", db(), "--schema", schema,
                                 "--rows", "54321", "--ads", "500", "--seed",
                                 "7"});
  INFO("init stderr: " << init.err);
  REQUIRE(init.rc == 0);
  CHECK(count_of(schema, "elements") == "54321");
  CHECK(count_of(schema, "ads") == "500");
  auto ref = group_by(schema);
  REQUIRE(ref.size() > 1);
  check_json(run_program(prog, {"sum", "--db", db(), "--schema", schema,
                                "--json", "--partitions", "3", "--batch",
                                "1000"}),
             ref);
  check_json(run_program(prog, {"sum", "--db", db(), "--schema", schema,
                                "--json", "--pushdown", "--partitions", "4"}),
             ref);
  check_json(run_program(prog, {"sum", "--db", db(), "--schema", schema,
                                "--json", "--partitions", "1", "--by",
                                "list_id"}),
             ref);
  // The table output (no --json) says verified.
  auto table = run_program(prog, {"sum", "--db", db(), "--schema", schema});
  CHECK(table.rc == 0);
  CHECK(table.out.find("verified") != std::string::npos);
}

TEST_CASE("flow-etl: init is deterministic for a seed", "[pg][flow-etl]") {
  auto a = fresh_schema("seed_a");
  auto b = fresh_schema("seed_b");
  for (auto& s : {a, b})
    REQUIRE(run_program(prog, {"init", "--db", db(), "--schema", s, "--rows",
                               "20000", "--ads", "300", "--seed", "11"})
              .rc
            == 0);
  auto digest = [](const std::string& s, const std::string& t,
                   const std::string& order) {
    return scalar("SELECT md5(string_agg(x::text, ',' ORDER BY " + order
                  + ")) FROM " + pg::table_name{s, t}.quoted() + " x");
  };
  CHECK(digest(a, "elements", "x::text") == digest(b, "elements", "x::text"));
  CHECK(digest(a, "ads", "id") == digest(b, "ads", "id"));
  // Messy on purpose: mixed formats and unusable values are present.
  auto ads = pg::table_name{a, "ads"}.quoted();
  CHECK(scalar("SELECT count(*) > 0 FROM " + ads + " WHERE price LIKE '$%,%'")
        == "t");
  CHECK(scalar("SELECT count(*) > 0 FROM " + ads + " WHERE price = 'call'")
        == "t");
  CHECK(scalar("SELECT count(*) > 0 FROM " + ads + " WHERE price IS NULL")
        == "t");
  CHECK(scalar("SELECT count(DISTINCT city) > count(DISTINCT lower(trim(city))) "
               "FROM "
               + ads)
        == "t");
  // A different seed gives different values.
  auto c = fresh_schema("seed_c");
  REQUIRE(run_program(prog, {"init", "--db", db(), "--schema", c, "--rows",
                             "20000", "--ads", "300", "--seed", "12"})
            .rc
          == 0);
  CHECK(digest(a, "elements", "x::text") != digest(c, "elements", "x::text"));
}

TEST_CASE("flow-etl: sum over random user data matches the GROUP BY, "
          "exactly beyond 64 bits",
          "[pg][flow-etl]") {
  auto schema = fresh_schema("random");
  auto t = pg::table_name{schema, "elements"}.quoted();
  exec("CREATE TABLE " + t
       + " (list_id int, list_size int, value bigint)");
  std::mt19937_64 rng{std::random_device{}()};
  auto seed = std::to_string(rng() % 1000000);
  INFO("seed " << seed);
  exec("SELECT setseed(0." + seed + ")");
  // Lists of random sizes; some values near the int64 limits so that sums
  // leave 64 bits.
  exec("INSERT INTO " + t
       + " SELECT l, s, CASE WHEN random() < 0.1 THEN 9223372036854775000 "
         "ELSE (random() * 20000 - 10000)::bigint END "
         "FROM (SELECT l, (1 + floor(random() * 6))::int * 100 AS s "
         "FROM generate_series(1, 300) l) lists, generate_series(1, s) i");
  auto ref = group_by(schema);
  check_json(run_program(prog, {"sum", "--db", db(), "--schema", schema,
                                "--json", "--partitions", "3"}),
             ref);
  check_json(run_program(prog, {"sum", "--db", db(), "--schema", schema,
                                "--json", "--pushdown", "--partitions", "3"}),
             ref);
}

TEST_CASE("flow-etl: sum reports NULL values rejected and refuses NULL "
          "lists, in every mode",
          "[pg][flow-etl]") {
  auto schema = fresh_schema("nulls");
  auto t = pg::table_name{schema, "elements"}.quoted();
  exec("CREATE TABLE " + t
       + " (list_id bigint, list_size int, value bigint)");
  // Every 7th value NULL; list 5 has only NULL values (so it is no list of
  // its size, as count(DISTINCT list_id) FILTER (WHERE value IS NOT NULL)
  // says); bigint list ids beyond 32 bits.
  exec("INSERT INTO " + t
       + " SELECT l + 5000000000, (l % 3 + 1) * 10, "
         "CASE WHEN l = 5 OR i % 7 = 0 THEN NULL ELSE i * l END "
         "FROM generate_series(1, 12) l, "
         "generate_series(1, (l % 3 + 1) * 10) i");
  auto ref = group_by(schema);
  // The reference counts lists with a value only.
  pqxx::connection conn{conninfo()};
  {
    pqxx::work tx{conn};
    for (auto row : tx.exec("SELECT list_size, count(DISTINCT list_id) "
                            "FILTER (WHERE value IS NOT NULL) FROM "
                            + t + " GROUP BY list_size"))
      ref[row[0].c_str()].lists = row[1].c_str();
  }
  auto nulls = scalar("SELECT count(*) FROM " + t + " WHERE value IS NULL");
  REQUIRE(nulls != "0");
  for (auto mode : {"rows", "pushdown", "partitions"}) {
    INFO(mode);
    std::vector<std::string> args{"sum", "--db", db(), "--schema", schema};
    if (std::string{mode} == "pushdown")
      args.push_back("--pushdown");
    if (std::string{mode} == "partitions")
      args.insert(args.end(), {"--partitions", "3", "--by", "list_id"});
    auto text = run_program(prog, args);
    // Verified: the rows sum rejects (NULL values) equal the server's count
    // of NULL values, or the run fails with exit 1.
    args.push_back("--json");
    check_json(run_program(prog, args), ref);
    CHECK(text.rc == 0);
    CHECK(text.out.find("verified") != std::string::npos);
  }
  // A NULL list: one line, exit 2, nothing written.
  exec("INSERT INTO " + t + " VALUES (NULL, 10, 1), (3, NULL, 2)");
  auto bad = run_program(prog, {"sum", "--db", db(), "--schema", schema,
                                "--output", "never"});
  check_one_line_error(bad);
  CHECK(bad.err.find("2 rows of") != std::string::npos);
  CHECK(bad.err.find("NULL list_size or list_id") != std::string::npos);
  CHECK(scalar("SELECT to_regclass('" + schema + ".never') IS NULL") == "t");
}

TEST_CASE("flow-etl: --output writes the verified sums atomically",
          "[pg][flow-etl][sink]") {
  auto schema = fresh_schema("output");
  REQUIRE(run_program(prog, {"init", "--db", db(), "--schema", schema,
                             "--rows", "3000", "--ads", "10"})
            .rc
          == 0);
  auto res = run_program(prog, {"sum", "--db", db(), "--schema", schema,
                                "--output", "sums", "--json"});
  INFO(res.err);
  REQUIRE(res.rc == 0);
  auto ref = group_by(schema);
  pqxx::connection conn{conninfo()};
  pqxx::work tx{conn};
  auto rows = tx.exec("SELECT key, sum, count, sources FROM "
                      + pg::table_name{schema, "sums"}.quoted());
  REQUIRE(rows.size() == ref.size());
  for (auto row : rows) {
    auto& g = ref.at(row[0].c_str());
    CHECK(g.sum == row[1].c_str());
    CHECK(g.count == row[2].c_str());
    CHECK(g.lists == row[3].c_str());
  }
}

TEST_CASE("flow-etl: bad names, tables and values: one line, exit 2, "
          "nothing written",
          "[pg][flow-etl][error]") {
  auto schema = fresh_schema("bad");
  REQUIRE(run_program(prog, {"init", "--db", db(), "--schema", schema,
                             "--rows", "1000", "--ads", "10"})
            .rc
          == 0);
  auto before = count_of(schema, "elements");
  SECTION("missing table") {
    auto res = run_program(prog, {"sum", "--db", db(), "--schema", schema,
                                  "--table", "nope", "--output", "out"});
    check_one_line_error(res);
    CHECK(res.err.find("42P01 undefined_table") != std::string::npos);
  }
  SECTION("an injection attempt is just a name that does not exist") {
    auto res = run_program(prog, {"sum", "--db", db(), "--schema", schema,
                                  "--table",
                                  "x\"; DROP TABLE elements; --"});
    check_one_line_error(res);
    CHECK(res.err.find("42P01") != std::string::npos);
    CHECK(count_of(schema, "elements") == before);
    auto res2 = run_program(prog, {"sum", "--db", db(), "--schema",
                                   schema + "\"; DROP SCHEMA " + schema
                                     + " CASCADE; --"});
    check_one_line_error(res2);
    CHECK(count_of(schema, "elements") == before);
  }
  SECTION("a schema with quotes, spaces and semicolons works as a name") {
    auto odd = fresh_schema("o\"d d;");
    auto init = run_program(prog, {"init", "--db", db(), "--schema", odd,
                                   "--rows", "2000", "--ads", "5"});
    REQUIRE(init.rc == 0);
    check_json(run_program(prog, {"sum", "--db", db(), "--schema", odd,
                                  "--json"}),
               group_by(odd));
  }
  SECTION("an empty or overlong name is refused") {
    check_one_line_error(run_program(prog, {"sum", "--db", db(), "--table",
                                            ""}));
    check_one_line_error(run_program(
      prog, {"sum", "--db", db(), "--table", std::string(64, 'x')}));
  }
  SECTION("a column of another type is refused before a row is read, "
          "naming it and its type") {
    // sum runs through aggregate, which reads the catalog first: a text
    // value column is refused whatever it holds (it used to be parsed row
    // by row, and failed at the first value that was not an integer).
    exec("CREATE TABLE " + pg::quote_ident(schema)
         + ".texty (list_id int, list_size int, value text)");
    exec("INSERT INTO " + pg::quote_ident(schema)
         + ".texty SELECT 1, 10, g::text FROM generate_series(1, 50) g");
    exec("INSERT INTO " + pg::quote_ident(schema)
         + ".texty VALUES (1, 10, '12x')");
    auto res = run_program(prog, {"sum", "--db", db(), "--schema", schema,
                                  "--table", "texty", "--by", "list_id",
                                  "--output", "never"});
    check_one_line_error(res);
    CHECK(res.err.find("column \"value\"") != std::string::npos);
    CHECK(res.err.find("is text") != std::string::npos);
    CHECK(scalar("SELECT to_regclass('" + schema + ".never') IS NULL") == "t");
    exec("CREATE TABLE " + pg::quote_ident(schema)
         + ".money (list_id int, list_size int, value numeric(12,2))");
    auto res2 = run_program(prog, {"sum", "--db", db(), "--schema", schema,
                                   "--table", "money", "--pushdown"});
    check_one_line_error(res2);
    CHECK(res2.err.find("is numeric(12,2)") != std::string::npos);
    exec("CREATE TABLE " + pg::quote_ident(schema)
         + ".nolist (list_size int, value bigint)");
    auto res3 = run_program(prog, {"sum", "--db", db(), "--schema", schema,
                                   "--table", "nolist"});
    check_one_line_error(res3);
    CHECK(res3.err.find("no column \"list_id\"") != std::string::npos);
  }
  SECTION("permission denied") {
    make_role("flow_nobody", "nobody-pw-1");
    auto res = run_program(
      prog, {"sum", "--db",
             "host=" + server().dir() + " port="
               + std::to_string(server().port())
               + " dbname=postgres user=flow_nobody password=nobody-pw-1",
             "--schema", schema});
    check_one_line_error(res);
    INFO("stderr: " << res.err);
    CHECK(res.err.find("42501 insufficient_privilege") != std::string::npos);
    CHECK(res.err.find("nobody-pw-1") == std::string::npos);
  }
}

TEST_CASE("flow-etl: unreachable server, wrong password, unknown command",
          "[pg][flow-etl][error]") {
  SECTION("unreachable") {
    auto res = run_program(prog, {"sum", "--db",
                                  "postgresql://127.0.0.1:1/x"});
    check_one_line_error(res);
    CHECK(res.err.find("cannot connect") != std::string::npos);
  }
  SECTION("wrong password, never shown") {
    make_role("flow_bob", "bob-right-pw");
    std::string secret = "bob-WRONG-pw-42";
    auto res = run_program(
      prog, {"sum", "--db",
             "postgresql://flow_bob:" + secret + "@/postgres?host="
               + server().dir() + "&port=" + std::to_string(server().port())});
    check_one_line_error(res);
    CHECK(res.err.find("password authentication failed") != std::string::npos);
    CHECK(res.err.find(secret) == std::string::npos);
    CHECK(res.err.find("flow_bob:***@") != std::string::npos);
  }
  SECTION("an unknown command") {
    auto res = run_program(prog, {"frobnicate"});
    check_one_line_error(res);
    CHECK(res.err.find("unknown command 'frobnicate'") != std::string::npos);
  }
  SECTION("bad option") {
    check_one_line_error(run_program(prog, {"sum", "--partitions", "x"}));
  }
}

TEST_CASE("flow-etl: without a database it runs in a throwaway cluster and "
          "removes it",
          "[pg][flow-etl][cluster]") {
  for (auto var : {"PGHOST", "PGHOSTADDR", "PGPORT", "PGDATABASE", "PGSERVICE",
                   "PGUSER"})
    ::unsetenv(var);
  auto res = run_program(prog, {"sum", "--rows", "5000", "--ads", "10",
                                "--json", "--partitions", "2"});
  INFO("stderr: " << res.err);
  REQUIRE(res.rc == 0);
  CHECK(lines_of(res.out).size() > 1);
  for (auto& line : lines_of(res.out))
    CHECK(json_field(line, "ok") == "true");
  auto pos = res.err.find("throwaway PostgreSQL 15 cluster in ");
  REQUIRE(pos != std::string::npos);
  auto dir = res.err.substr(pos + 35);
  dir = dir.substr(0, dir.find(' '));
  INFO("dir " << dir);
  CHECK(dir.rfind("/", 0) == 0);
  CHECK_FALSE(std::filesystem::exists(dir));
  SECTION("clean runs init first and verifies its output") {
    auto cl = run_program(prog, {"clean", "--rows", "100", "--ads", "3000",
                                 "--json"});
    INFO("stderr: " << cl.err);
    REQUIRE(cl.rc == 0);
    CHECK(json_field(cl.out, "ads") == "3000");
    CHECK(json_field(cl.out, "ok") == "true");
  }
  SECTION("--keep keeps it and says how to connect") {
    auto kept = run_program(prog, {"init", "--rows", "100", "--ads", "1",
                                   "--keep"});
    REQUIRE(kept.rc == 0);
    auto p = kept.err.find("--db '");
    REQUIRE(p != std::string::npos);
    auto conn = kept.err.substr(p + 6);
    conn = conn.substr(0, conn.find('\''));
    auto sum = run_program(prog, {"sum", "--db", conn, "--json"});
    CHECK(sum.rc == 0);
    auto s = kept.err.find("stop and remove it with: ");
    REQUIRE(s != std::string::npos);
    auto cmd = kept.err.substr(s + 25);
    cmd = cmd.substr(0, cmd.find('\n'));
    CHECK(std::system(cmd.c_str()) == 0);
  }
}
