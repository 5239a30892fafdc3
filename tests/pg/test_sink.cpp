// The aggregate sink: written exactly, replaced atomically, untouched by a
// failure, with names taken as names.

#include <catch2/catch.hpp>

#include <random>
#include <stdexcept>
#include <string>

#include <pqxx/connection>
#include <pqxx/result>
#include <pqxx/transaction>

#include "flow/flow.hpp"
#include "flow/pg/pg.hpp"
#include "pg_fixture.hpp"

using namespace flow;
using namespace flow::test;

namespace {

job_result random_result(std::uint64_t seed, std::size_t keys) {
  std::mt19937_64 rng{seed};
  job_result res;
  res.final = true;
  for (std::size_t i = 0; i < keys; ++i) {
    key_result k;
    k.key = static_cast<std::int64_t>(i * 3 + seed);
    for (int j = 0; j < 100; ++j)
      k.agg.add(static_cast<std::int64_t>(rng()));
    k.sources = rng() % 5;
    res.keys.push_back(k);
  }
  return res;
}

/// The table as "key|sum|count|min|max|sources" lines, ordered by key.
std::vector<std::string> contents(const pg::table_name& t) {
  pqxx::connection conn{conninfo()};
  pqxx::work tx{conn};
  std::vector<std::string> result;
  for (auto row : tx.exec("SELECT key::text || '|' || sum || '|' || count || "
                          "'|' || coalesce(min::text, 'NULL') || '|' || "
                          "coalesce(max::text, 'NULL') || '|' || sources FROM "
                          + t.quoted() + " ORDER BY key"))
    result.emplace_back(row[0].c_str());
  return result;
}

std::vector<std::string> expected_lines(const job_result& res) {
  std::vector<std::string> result;
  for (auto& k : res.keys)
    result.push_back(to_string(k.key) + "|" + to_string(k.agg.sum) + "|"
                     + std::to_string(k.agg.count) + "|"
                     + (k.agg.empty() ? "NULL" : std::to_string(k.agg.min))
                     + "|"
                     + (k.agg.empty() ? "NULL" : std::to_string(k.agg.max))
                     + "|" + std::to_string(k.sources));
  return result;
}

std::string staging_tables(const std::string& schema) {
  return scalar("SELECT count(*) FROM pg_tables WHERE schemaname = '" + schema
                + "' AND tablename LIKE 'flow_staging%'");
}

} // namespace

TEST_CASE("sink: writes every key's aggregate exactly", "[pg][sink]") {
  auto schema = fresh_schema("sink");
  auto res = random_result(1, 40);
  key_result empty;
  empty.key = std::int64_t{-5};
  res.keys.insert(res.keys.begin(), empty);
  pg::table_name t{schema, "sums"};
  REQUIRE_FALSE(pg::write_aggregates(conninfo(), t, res));
  CHECK(contents(t) == expected_lines(res));
  // A second write replaces the table.
  auto res2 = random_result(2, 7);
  REQUIRE_FALSE(pg::write_aggregates(conninfo(), t, res2));
  CHECK(contents(t) == expected_lines(res2));
  CHECK(staging_tables(schema) == "0");
}

TEST_CASE("sink: a failure midway leaves the previous table untouched",
          "[pg][sink]") {
  auto schema = fresh_schema("atomic");
  pg::table_name t{schema, "sums"};
  auto before = random_result(3, 20);
  REQUIRE_FALSE(pg::write_aggregates(conninfo(), t, before));
  auto after = random_result(4, 30);
  SECTION("the writer fails before the swap") {
    pg::sink_options opts;
    opts.before_swap = [] { throw std::runtime_error("injected failure"); };
    auto err = pg::write_aggregates(conninfo(), t, after, opts);
    REQUIRE(err);
    CHECK(describe(err).find("injected failure") != std::string::npos);
  }
  SECTION("the connection dies before the swap") {
    pg::sink_options opts;
    opts.before_swap = [] {
      // Another session kills the writer's backend mid-transaction.
      exec("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
           "query LIKE 'COPY%flow_staging%' OR (state = 'idle in "
           "transaction' AND pid <> pg_backend_pid() AND datname = "
           "current_database() AND usename = current_user)");
    };
    auto err = pg::write_aggregates(conninfo(), t, after, opts);
    REQUIRE(err);
  }
  CHECK(contents(t) == expected_lines(before));
  CHECK(staging_tables(schema) == "0");
}

TEST_CASE("sink: table and schema names with quotes, spaces and semicolons "
          "are names",
          "[pg][sink][names]") {
  auto schema = fresh_schema("we\"ird; name");
  pg::table_name t{schema, "x\"; DROP TABLE victim; --"};
  exec("CREATE TABLE " + pg::quote_ident(schema) + ".victim (a int)");
  auto res = random_result(5, 3);
  REQUIRE_FALSE(pg::write_aggregates(conninfo(), t, res));
  CHECK(contents(t) == expected_lines(res));
  CHECK(scalar("SELECT to_regclass(" + pqxx::connection{conninfo()}.quote(
                 pg::quote_ident(schema) + ".victim")
               + ") IS NOT NULL")
        == "t");
  auto err = pg::write_aggregates(conninfo(), {schema, ""}, res);
  REQUIRE(err);
  CHECK(describe(err).find("empty name") != std::string::npos);
}

TEST_CASE("sink: a missing schema is an error with its SQL state",
          "[pg][sink][error]") {
  auto err = pg::write_aggregates(conninfo(), {"no_such_schema_x", "t"},
                                  random_result(6, 2));
  REQUIRE(err);
  CHECK(code_of(err) == errc::bad_input);
  CHECK(describe(err).find("3F000 invalid_schema_name") != std::string::npos);
}
