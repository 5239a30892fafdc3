// flow::pg::copy_sink: rows reach their tables exactly, escapes and NULLs
// survive, and nothing becomes visible unless the whole job commits.

#include <catch2/catch.hpp>

#include <string>

#include "flow/flow.hpp"
#include "flow/pg/copy_sink.hpp"
#include "pg_fixture.hpp"

using namespace flow;
using namespace flow::test;

namespace {

std::string q(const std::string& schema, const std::string& table) {
  return pg::table_name{schema, table}.quoted();
}

std::vector<pg::output_table> two_tables(const std::string& schema) {
  return {{{schema, "evens"}, "x bigint NOT NULL, label text", "x"},
          {{schema, "odds"}, "x bigint NOT NULL, label text", "x"}};
}

/// Routes even numbers to table 0 and odd ones to table 1, with a label
/// that needs escaping.
reducer<std::int64_t> route() {
  return [](const batch_ref<std::int64_t>& b, partial& out) {
    for (auto x : b.items) {
      pg::copy_row row{static_cast<std::uint32_t>(x % 2), {}};
      pg::append_copy_int(row.line, x);
      row.line += '\t';
      if (x % 10 == 3)
        pg::append_copy_field(row.line, std::nullopt);
      else
        pg::append_copy_field(row.line, "n\t" + std::to_string(x)
                                          + "\\\n\r\"'é");
      row.line += '\n';
      out.add(x % 2 == 0 ? "even" : "odd", x);
      out.emit(std::move(row));
    }
  };
}

caf::expected<job_result> run_routed(const std::string& schema,
                                     std::int64_t n,
                                     std::function<void()> hook = {}) {
  auto final_rows = [](const job_result& res) {
    // One row per key into table 0, from the final aggregates.
    std::vector<pg::copy_row> rows;
    for (auto& k : res.keys) {
      pg::copy_row row{0, {}};
      pg::append_copy_int(row.line, -1 - static_cast<std::int64_t>(
                                           rows.size()));
      row.line += '\t';
      pg::append_copy_field(row.line, "total " + to_string(k.key) + " "
                                        + to_string(k.agg.sum));
      row.line += '\n';
      rows.push_back(std::move(row));
    }
    return rows;
  };
  auto snk = std::make_unique<pg::copy_sink>(conninfo(), two_tables(schema),
                                             final_rows, std::move(hook));
  return pipeline<std::int64_t>{}
    .add(from_range(0, n), "x")
    .reduce(route())
    .sink(sink<pg::copy_row>{std::move(snk)})
    .batch_size(1000)
    .run();
}

} // namespace

TEST_CASE("copy_sink: rows reach their tables with escapes and NULLs intact",
          "[pg][sink][copy_sink]") {
  auto schema = fresh_schema("copysink");
  auto res = run_routed(schema, 10'000);
  REQUIRE(res);
  CHECK(res->written == 10'000);
  CHECK(scalar("SELECT count(*) FROM " + q(schema, "evens") + " WHERE x >= 0")
        == "5000");
  CHECK(scalar("SELECT count(*) FROM " + q(schema, "odds")) == "5000");
  CHECK(scalar("SELECT sum(x) FROM " + q(schema, "odds"))
        == std::to_string(25'000'000));
  CHECK(scalar("SELECT count(*) FROM " + q(schema, "odds")
               + " WHERE label IS NULL")
        == "1000");
  CHECK(scalar("SELECT label FROM " + q(schema, "evens") + " WHERE x = 42")
        == "n\t42\\\n\r\"'é");
  // The final rows, from the job's result, landed in the same transaction.
  CHECK(scalar("SELECT label FROM " + q(schema, "evens") + " WHERE x = -1")
        == "total even 24995000");
}

TEST_CASE("copy_sink: a failure before commit leaves the previous tables",
          "[pg][sink][copy_sink][atomic]") {
  auto schema = fresh_schema("copyfail");
  REQUIRE(run_routed(schema, 100));
  auto before = scalar("SELECT count(*) FROM " + q(schema, "evens"));
  auto res = run_routed(schema, 5'000,
                        [] { throw std::runtime_error("injected"); });
  REQUIRE_FALSE(res);
  CHECK(code_of(res.error()) == errc::sink_failed);
  CHECK(scalar("SELECT count(*) FROM " + q(schema, "evens")) == before);
  CHECK(scalar("SELECT count(*) FROM pg_tables WHERE schemaname = '" + schema
               + "'")
        == "2");
}

TEST_CASE("copy_sink: a duplicate key fails the commit and shows nothing",
          "[pg][sink][copy_sink][atomic]") {
  auto schema = fresh_schema("copydup");
  auto snk = std::make_unique<pg::copy_sink>(conninfo(), two_tables(schema));
  auto res = pipeline<std::int64_t>{}
               .add(from_range(0, 10), "x")
               .reduce([](const batch_ref<std::int64_t>& b, partial& out) {
                 for (auto x : b.items) {
                   (void) x;
                   out.emit(pg::copy_row{0, "7\tsame\n"});
                 }
               })
               .sink(sink<pg::copy_row>{std::move(snk)})
               .run();
  REQUIRE_FALSE(res);
  CHECK(code_of(res.error()) == errc::sink_failed);
  CHECK(describe(res.error()).find("23505") != std::string::npos);
  CHECK(scalar("SELECT count(*) FROM pg_tables WHERE schemaname = '" + schema
               + "'")
        == "0");
}

TEST_CASE("copy_sink: bad names are refused at setup, never executed",
          "[pg][sink][copy_sink]") {
  CHECK_THROWS_AS(pg::copy_sink(conninfo(), {{{"", ""}, "x int", ""}}),
                  input_error);
  std::string long_name(64, 'x');
  CHECK_THROWS_AS(pg::copy_sink(conninfo(), {{{"", long_name}, "x int", ""}}),
                  input_error);
}
