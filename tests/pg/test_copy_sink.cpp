// flow::pg::copy_sink: rows reach their tables exactly, escapes and NULLs
// survive, and nothing becomes visible unless the whole job commits.

#include <catch2/catch.hpp>

#include <chrono>
#include <cstdio>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>

#include "flow/flow.hpp"
#include "flow/pg/copy_sink.hpp"
#include "pg_fixture.hpp"

using namespace flow;
using namespace flow::test;

namespace {

std::string q(const std::string& schema, const std::string& table) {
  return pg::table_name{schema, table}.quoted();
}

/// One table "out" of one bigint column, its primary key.
std::vector<pg::output_table> one_table(const std::string& schema) {
  return {{{schema, "out"}, "x bigint NOT NULL", "x"}};
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

// -- COPY binary ---------------------------------------------------------------

namespace {

/// "YYYY-MM-DD HH:MM:SS" as PostgreSQL prints a timestamp (years 1000-9999).
std::string timestamp_text(int y, int mo, int d, int h, int mi, int s) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%04d-%02d-%02d %02d:%02d:%02d", y, mo, d, h,
                mi, s);
  return buf;
}

} // namespace

TEST_CASE("timestamp_micros counts PostgreSQL's microseconds since 2000",
          "[pg][copy_sink][binary]") {
  CHECK(pg::timestamp_micros(2000, 1, 1) == 0);
  CHECK(pg::timestamp_micros(2000, 1, 1, 0, 0, 1) == 1'000'000);
  CHECK(pg::timestamp_micros(1999, 12, 31, 23, 59, 59) == -1'000'000);
  CHECK(pg::timestamp_micros(1970, 1, 1) == -946'684'800'000'000LL);
  CHECK(pg::timestamp_micros(2024, 3, 1) - pg::timestamp_micros(2024, 2, 28)
        == 2 * 86'400'000'000LL);
  CHECK(pg::timestamp_micros(2023, 3, 1) - pg::timestamp_micros(2023, 2, 28)
        == 86'400'000'000LL);
  // Days that do not exist, and fields out of range, are refused.
  CHECK_THROWS_AS(pg::timestamp_micros(2023, 2, 29), std::invalid_argument);
  CHECK_THROWS_AS(pg::timestamp_micros(1900, 2, 29), std::invalid_argument);
  CHECK_NOTHROW(pg::timestamp_micros(2000, 2, 29));
  CHECK_THROWS_AS(pg::timestamp_micros(2021, 4, 31), std::invalid_argument);
  CHECK_THROWS_AS(pg::timestamp_micros(2021, 13, 1), std::invalid_argument);
  CHECK_THROWS_AS(pg::timestamp_micros(2021, 0, 1), std::invalid_argument);
  CHECK_THROWS_AS(pg::timestamp_micros(0, 1, 1), std::invalid_argument);
  CHECK_THROWS_AS(pg::timestamp_micros(10000, 1, 1), std::invalid_argument);
  CHECK_THROWS_AS(pg::timestamp_micros(2021, 1, 1, 24), std::invalid_argument);
  CHECK_THROWS_AS(pg::timestamp_micros(2021, 1, 1, 0, 60),
                  std::invalid_argument);
  CHECK_THROWS_AS(pg::timestamp_micros(2021, 1, 1, 0, 0, 60),
                  std::invalid_argument);
  CHECK_THROWS_AS(pg::timestamp_micros(2021, 1, 1, -1), std::invalid_argument);
}

TEST_CASE("copy_sink: binary rows land exactly beside text rows",
          "[pg][sink][copy_sink][binary]") {
  auto schema = fresh_schema("copybin");
  std::vector<pg::output_table> tables{
    {{schema, "typed"},
     "id bigint NOT NULL, label text, at timestamp, n bigint",
     "id",
     pg::copy_format::binary},
    {{schema, "plain"}, "id bigint NOT NULL, label text", "id",
     pg::copy_format::text}};
  // Every calendar corner in one list: year 1 and 9999, leap days, 1999/2000.
  struct when {
    int y, mo, d, h, mi, s;
  };
  std::vector<when> dates{{1, 1, 1, 0, 0, 0},       {1000, 6, 15, 12, 30, 45},
                          {1900, 2, 28, 23, 59, 59}, {1970, 1, 1, 0, 0, 0},
                          {1999, 12, 31, 23, 59, 59}, {2000, 1, 1, 0, 0, 0},
                          {2000, 2, 29, 1, 2, 3},     {2024, 2, 29, 4, 5, 6},
                          {2100, 3, 1, 0, 0, 1},      {9999, 12, 31, 23, 59, 59}};
  const std::int64_t n = 5'000;
  auto reducer = [&dates](const batch_ref<std::int64_t>& b, partial& out) {
    for (auto x : b.items) {
      // Even x: a binary row; odd: a text row. The label needs escaping in
      // text format and none in binary.
      auto label = "n\t" + std::to_string(x) + "\\\n\r\"'é";
      pg::copy_row row{static_cast<std::uint32_t>(x % 2), {}};
      if (x % 2 == 0) {
        auto& w = dates[static_cast<std::size_t>(x / 2) % dates.size()];
        pg::begin_binary_row(row.line, 4);
        pg::append_binary_int(row.line, x);
        pg::append_binary_text(row.line, x % 10 == 4 ? std::nullopt
                                                     : std::optional{label});
        pg::append_binary_timestamp(
          row.line, pg::timestamp_micros(w.y, w.mo, w.d, w.h, w.mi, w.s));
        pg::append_binary_int(row.line, -x * 1'000'000'007LL);
      } else {
        pg::append_copy_int(row.line, x);
        row.line += '\t';
        pg::append_copy_field(row.line, label);
        row.line += '\n';
      }
      out.add(x % 2 == 0 ? "binary" : "text", x);
      out.emit(std::move(row));
    }
  };
  auto snk = std::make_unique<pg::copy_sink>(conninfo(), tables);
  auto res = pipeline<std::int64_t>{}
               .add(from_range(0, n), "x")
               .reduce(reducer)
               .sink(sink<pg::copy_row>{std::move(snk)})
               .batch_size(777)
               .run();
  REQUIRE(res);
  CHECK(res->written == n);
  auto typed = q(schema, "typed");
  CHECK(scalar("SELECT count(*) FROM " + typed) == "2500");
  CHECK(scalar("SELECT count(*) FROM " + q(schema, "plain")) == "2500");
  CHECK(scalar("SELECT sum(id) FROM " + typed) == std::to_string(2499 * 2500));
  CHECK(scalar("SELECT count(*) FROM " + typed + " WHERE n <> -id * "
               "1000000007")
        == "0");
  CHECK(scalar("SELECT count(*) FROM " + typed + " WHERE label IS NULL")
        == "500");
  CHECK(scalar("SELECT label FROM " + typed + " WHERE id = 42")
        == "n\t42\\\n\r\"'é");
  CHECK(scalar("SELECT label FROM " + q(schema, "plain") + " WHERE id = 43")
        == "n\t43\\\n\r\"'é");
  // Each timestamp reads back as the date and time it was made from.
  for (std::size_t i = 0; i < dates.size(); ++i) {
    auto& w = dates[i];
    auto text = scalar("SELECT to_char(at, 'YYYY-MM-DD HH24:MI:SS') FROM "
                       + typed + " WHERE id = " + std::to_string(2 * i));
    CHECK(text == timestamp_text(w.y, w.mo, w.d, w.h, w.mi, w.s));
  }
}

TEST_CASE("copy_sink: blocks of rows land like single rows and count as "
          "their rows, large or small, between single rows",
          "[pg][sink][copy_sink][blocks]") {
  auto schema = fresh_schema("copyblocks");
  std::vector<pg::output_table> tables{
    {{schema, "bin"}, "id bigint NOT NULL, label text", "id",
     pg::copy_format::binary},
    {{schema, "txt"}, "id bigint NOT NULL, label text", "id",
     pg::copy_format::text}};
  auto label = [](std::int64_t x) {
    return "n\t" + std::to_string(x) + "\\\n\"é";
  };
  // Per batch: table 0 gets its first element as a single row, the middle
  // as one block (tens of KB: passed to libpq as it is), an empty block,
  // and its last element as a single row; table 1 gets blocks of 50 rows
  // (gathered with the small rows) and its last 1000 rows as one block.
  auto reducer = [&label](const batch_ref<std::int64_t>& b, partial& out) {
    std::vector<std::int64_t> zero, other;
    for (auto x : b.items)
      (x % 3 == 0 ? zero : other).push_back(x);
    auto binary = [&](std::string& line, std::int64_t x) {
      pg::begin_binary_row(line, 2);
      pg::append_binary_int(line, x);
      pg::append_binary_text(line, x % 10 == 9 ? std::nullopt
                                               : std::optional{label(x)});
    };
    REQUIRE(zero.size() >= 3);
    pg::copy_row first{0, {}};
    binary(first.line, zero.front());
    out.emit(std::move(first));
    pg::copy_row middle{0, {}, 0};
    for (std::size_t i = 1; i + 1 < zero.size(); ++i, ++middle.rows)
      binary(middle.line, zero[i]);
    CHECK(middle.line.size() > 16384);
    out.emit(std::move(middle));
    out.emit(pg::copy_row{0, {}, 0});
    pg::copy_row last{0, {}};
    binary(last.line, zero.back());
    out.emit(std::move(last));
    pg::copy_row block{1, {}, 0};
    for (std::size_t i = 0; i < other.size(); ++i) {
      pg::append_copy_int(block.line, other[i]);
      block.line += '\t';
      pg::append_copy_field(block.line, label(other[i]));
      block.line += '\n';
      ++block.rows;
      if ((block.rows == 50 && i + 1000 < other.size())
          || i + 1 == other.size()) {
        out.emit(std::move(block));
        block = pg::copy_row{1, {}, 0};
      }
    }
    for (auto x : b.items)
      out.add(x % 3 == 0 ? "bin" : "txt", x);
  };
  const std::int64_t n = 20'000;
  auto snk = std::make_unique<pg::copy_sink>(conninfo(), tables);
  auto res = pipeline<std::int64_t>{}
               .add(from_range(0, n), "x")
               .reduce(reducer)
               .sink(sink<pg::copy_row>{std::move(snk)})
               .batch_size(5000)
               .run();
  REQUIRE(res);
  CHECK(res->written == n);
  auto bin = q(schema, "bin");
  auto txt = q(schema, "txt");
  CHECK(scalar("SELECT count(*) FROM " + bin) == "6667");
  CHECK(scalar("SELECT count(DISTINCT id) FROM " + bin) == "6667");
  CHECK(scalar("SELECT count(*) FROM " + txt) == "13333");
  CHECK(scalar("SELECT count(DISTINCT id) FROM " + txt) == "13333");
  CHECK(scalar("SELECT sum(id) FROM " + bin + " WHERE id % 3 = 0")
        == std::to_string(3 * (6666 * 6667 / 2)));
  CHECK(scalar("SELECT count(*) FROM " + bin + " WHERE id % 3 <> 0") == "0");
  CHECK(scalar("SELECT count(*) FROM " + bin + " WHERE label IS NULL")
        == "667");
  CHECK(scalar("SELECT count(*) FROM " + txt + " WHERE label IS DISTINCT "
               "FROM E'n\\t' || id || E'\\\\\\n\"é'")
        == "0");
  CHECK(scalar("SELECT label FROM " + bin + " WHERE id = 4998")
        == label(4998));
}

TEST_CASE("copy_sink: a block of 0 rows that holds data fails the job "
          "wherever it comes from, and nothing becomes visible",
          "[pg][sink][copy_sink][blocks]") {
  auto schema = fresh_schema("copybadblock");
  auto tables = two_tables(schema);
  auto visible = [&] {
    return scalar("SELECT count(*) FROM pg_tables WHERE schemaname = '"
                  + schema + "'");
  };
  SECTION("emitted by a reducer: the batch fails") {
    auto res = pipeline<std::int64_t>{}
                 .add(from_range(0, 100), "x")
                 .reduce([](const batch_ref<std::int64_t>& b, partial& out) {
                   out.add("n", static_cast<std::int64_t>(b.items.size()));
                   out.emit(pg::copy_row{0, "1\tx\n", 0});
                 })
                 .sink(sink<pg::copy_row>{
                   std::make_unique<pg::copy_sink>(conninfo(), tables)})
                 .on_failure(failure_policy::fail_fast)
                 .run();
    REQUIRE_FALSE(res);
    CHECK(describe(res.error()).find("a block of 0 rows") != std::string::npos);
  }
  SECTION("among the sink's final rows") {
    auto final_rows = [](const job_result&) {
      return std::vector<pg::copy_row>{{1, "2\ty\n", 0}};
    };
    auto res = pipeline<std::int64_t>{}
                 .add(from_range(0, 100), "x")
                 .reduce(route())
                 .sink(sink<pg::copy_row>{std::make_unique<pg::copy_sink>(
                   conninfo(), tables, final_rows)})
                 .run();
    REQUIRE_FALSE(res);
    CHECK(code_of(res.error()) == errc::sink_failed);
    CHECK(describe(res.error()).find("a block of 0 rows holds 4 bytes")
          != std::string::npos);
  }
  CHECK(visible() == "0");
}

TEST_CASE("copy_sink: a binary row of the wrong shape fails the job, shows "
          "nothing",
          "[pg][sink][copy_sink][binary][atomic]") {
  auto schema = fresh_schema("copybinbad");
  std::vector<pg::output_table> tables{{{schema, "typed"},
                                        "id bigint NOT NULL, label text", "",
                                        pg::copy_format::binary}};
  auto snk = std::make_unique<pg::copy_sink>(conninfo(), tables);
  auto res = pipeline<std::int64_t>{}
               .add(from_range(0, 100), "x")
               .reduce([](const batch_ref<std::int64_t>& b, partial& out) {
                 for (auto x : b.items) {
                   pg::copy_row row{0, {}};
                   // Three fields for a two-column table from x = 50 on.
                   pg::begin_binary_row(row.line, x < 50 ? 2 : 3);
                   pg::append_binary_int(row.line, x);
                   pg::append_binary_text(row.line, "ok");
                   if (x >= 50)
                     pg::append_binary_int(row.line, x);
                   out.emit(std::move(row));
                 }
               })
               .sink(sink<pg::copy_row>{std::move(snk)})
               .batch_size(10)
               .run();
  REQUIRE_FALSE(res);
  CHECK(code_of(res.error()) == errc::sink_failed);
  // 22P04: bad_copy_file_format, with PostgreSQL's own words.
  CHECK(describe(res.error()).find("22P04") != std::string::npos);
  CHECK(scalar("SELECT count(*) FROM pg_tables WHERE schemaname = '" + schema
               + "'")
        == "0");
}

TEST_CASE("copy_sink: open() begins the transaction early, except for a sink "
          "that adopts staged tables",
          "[pg][sink][copy_sink]") {
  auto schema = fresh_schema("copyopen");
  auto idle = [] {
    return scalar("SELECT count(*) FROM pg_stat_activity WHERE state = "
                  "'idle in transaction' AND datname = current_database()");
  };
  // A closed connection's backend leaves pg_stat_activity a moment after
  // the client returns: "none left" is waited for (up to 10 s), never
  // assumed at once.
  auto none_left = [&] {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    auto n = idle();
    while (n != "0" && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      n = idle();
    }
    return n;
  };
  REQUIRE(none_left() == "0");
  {
    // Rows stream in during the job: the staging tables are ready at once.
    pg::copy_sink plain{conninfo(), two_tables(schema)};
    plain.open();
    CHECK(idle() == "1");
    CHECK(scalar("SELECT count(*) FROM pg_stat_activity WHERE query LIKE "
                 "'CREATE TABLE%' AND datname = current_database()")
          == "1");
  }
  // Destroyed without commit: rolled back, nothing left idle.
  CHECK(none_left() == "0");
  {
    // A distributed job's manager writes only at commit: no transaction may
    // sit idle for the whole job.
    pg::copy_sink adopting{conninfo(), two_tables(schema)};
    adopting.adopt(0, {schema, "staged"});
    adopting.open();
    CHECK(idle() == "0");
  }
}

TEST_CASE("copy_sink: a binary row of more fields than a table can have is "
          "refused",
          "[pg][copy_sink][binary]") {
  std::string line;
  CHECK_NOTHROW(pg::begin_binary_row(line, 1600));
  // 65535 would be -1 in the int16 count: the end-of-data marker.
  CHECK_THROWS_AS(pg::begin_binary_row(line, 1601), std::invalid_argument);
  CHECK_THROWS_AS(pg::begin_binary_row(line, 65535), std::invalid_argument);
  CHECK(line.size() == 2);
}

TEST_CASE("copy_sink: at_commit statements run in the commit's transaction "
          "and not at all when the commit fails",
          "[pg][sink][copy_sink]") {
  auto schema = fresh_schema("copy_at_commit");
  auto tables = one_table(schema);
  exec("CREATE TABLE " + q(schema, "doomed") + " (x int)");
  auto one_row = [](const job_result&) {
    return std::vector<pg::copy_row>{{0, "1\n"}};
  };
  {
    // A failing commit: neither the output nor the statement's effect.
    pg::copy_sink snk{conninfo(), tables, one_row,
                      [] { throw std::runtime_error("test: no commit"); }};
    snk.at_commit("DROP TABLE " + q(schema, "doomed"));
    snk.open();
    job_result none;
    none.final = true;
    CHECK_THROWS(snk.commit(none));
  }
  CHECK(scalar("SELECT to_regclass('" + q(schema, "doomed") + "') IS NULL")
        == "f");
  CHECK(scalar("SELECT to_regclass('" + q(schema, "out") + "') IS NULL")
        == "t");
  pg::copy_sink snk{conninfo(), tables, one_row};
  snk.at_commit("DROP TABLE " + q(schema, "doomed"));
  snk.open();
  job_result none;
  none.final = true;
  snk.commit(none);
  CHECK(scalar("SELECT to_regclass('" + q(schema, "doomed") + "') IS NULL")
        == "t");
  CHECK(scalar("SELECT count(*) FROM " + q(schema, "out")) == "1");
}

TEST_CASE("copy_sink: a resumable sink's first step loads tables created in "
          "its own transaction, so its rows need no WAL",
          "[pg][sink][copy_sink][checkpoint]") {
  // The test server runs with wal_level = minimal, as bulk loads (and
  // flow-etl's throwaway clusters) do: rows COPYed into a table created in
  // the same transaction are not WAL-logged; the server writes the table's
  // files at commit instead. Rows written after a step committed are
  // WAL-logged like any others.
  REQUIRE(scalar("SHOW wal_level") == "minimal");
  auto schema = fresh_schema("copy_wal");
  std::vector<pg::output_table> tables{
    {{schema, "out"}, "x bigint NOT NULL, label text", "x"}};
  constexpr std::uint64_t batches = 10, per_batch = 5000;
  // 50,000 rows of ~220 bytes: about 12 MB, above wal_skip_threshold (2 MB),
  // under which the server WAL-logs a new table whole at commit anyway.
  std::string label(200, 'w');
  // Tables in flow_resume: other tests of this process may have left some.
  auto resume_tables = [] {
    return scalar("SELECT count(*) FROM pg_tables WHERE schemaname = "
                  "'flow_resume'");
  };
  auto resume_tables_before = resume_tables();
  // Runs one sink that steps every `interval`; returns the WAL it made.
  auto load = [&](std::chrono::milliseconds interval) {
    exec("DROP TABLE IF EXISTS " + q(schema, "out"));
    auto before = scalar("SELECT pg_current_wal_insert_lsn()");
    pg::copy_sink snk{conninfo(), tables};
    snk.checkpoint({{pg::range{}}, {}, interval});
    snk.open();
    for (std::uint64_t b = 0; b < batches; ++b) {
      std::vector<pg::copy_row> rows(1);
      rows[0].rows = per_batch;
      for (std::uint64_t i = 0; i < per_batch; ++i) {
        pg::append_copy_int(rows[0].line,
                            static_cast<std::int64_t>(b * per_batch + i));
        rows[0].line += '\t';
        pg::append_copy_field(rows[0].line, label);
        rows[0].line += '\n';
      }
      snk.write_batch({0, b, b * per_batch, per_batch}, rows);
    }
    job_result res;
    res.final = true;
    snk.commit(res);
    auto wal = std::stoll(scalar("SELECT pg_wal_lsn_diff("
                                 "pg_current_wal_insert_lsn(), '"
                                 + before + "')"));
    CHECK(scalar("SELECT count(*) FROM " + q(schema, "out"))
          == std::to_string(batches * per_batch));
    CHECK(scalar("SELECT sum(x) FROM " + q(schema, "out"))
          == std::to_string(batches * per_batch * (batches * per_batch - 1)
                            / 2));
    // The resume state went with the commit.
    CHECK(resume_tables() == resume_tables_before);
    return wal;
  };
  auto table_bytes = [&] {
    return std::stoll(scalar("SELECT pg_relation_size('" + q(schema, "out")
                             + "')"));
  };
  // No step before the commit: every row went into the tables its own
  // transaction created.
  auto wal_one_step = load(std::chrono::hours(1));
  auto bytes = table_bytes();
  REQUIRE(bytes > 8'000'000);
  // A step after every batch: the rows after the first are WAL-logged.
  auto wal_every_batch = load(std::chrono::milliseconds(0));
  INFO("table " << bytes << " bytes, WAL " << wal_one_step
                << " bytes in one step, " << wal_every_batch
                << " stepping after every batch");
  CHECK(wal_one_step < bytes / 4);
  CHECK(wal_every_batch > bytes / 2);
}

TEST_CASE("copy_sink: a live resumable run before its first step is 'in "
          "progress' to --resume, and 'nothing to resume' once it is gone",
          "[pg][sink][copy_sink][checkpoint]") {
  auto schema = fresh_schema("copy_live");
  auto tables = one_table(schema);
  auto message = [&] {
    auto st = pg::copy_sink::load_resume_state(conninfo(), tables);
    REQUIRE_FALSE(st);
    CHECK(code_of(st.error()) == errc::invalid_config);
    return describe(st.error());
  };
  {
    // Its state is created in the first step's transaction, not committed
    // yet: only the run's advisory lock shows it.
    pg::copy_sink live{conninfo(), tables};
    live.checkpoint({{pg::range{}}, {}, std::chrono::hours(1)});
    live.open();
    auto m = message();
    INFO(m);
    CHECK(m.find("another run of this job is in progress") != std::string::npos);
  }
  // Rolled back with its connection: nothing to resume. The lock goes with
  // the backend, a moment after the client closed it.
  std::string m;
  for (int i = 0; i < 200; ++i) {
    m = message();
    if (m.find("in progress") == std::string::npos)
      break;
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  INFO(m);
  CHECK(m.find("no interrupted run") != std::string::npos);
}
