// Row sources and partitioned reads against a real server: streaming,
// NULLs and bad values, partition boundaries, the shared snapshot, errors
// with SQL states, and push-down equal to the row path.

#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <map>
#include <random>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <pqxx/connection>
#include <pqxx/result>
#include <pqxx/stream_to>
#include <pqxx/transaction>

#include "flow/flow.hpp"
#include "flow/pg/pg.hpp"
#include "pg_fixture.hpp"

using namespace flow;
using namespace flow::test;

namespace {

using opt_int = std::optional<std::int64_t>;

/// Creates schema.t(k bigint, v bigint) holding `rows` (nullopt: NULL).
pg::table_name make_table(const std::string& schema,
                          const std::vector<std::pair<opt_int, opt_int>>& rows,
                          const std::string& name = "t") {
  pg::table_name t{schema, name};
  pqxx::connection conn{conninfo()};
  pqxx::work tx{conn};
  tx.exec("CREATE TABLE " + t.quoted() + " (k bigint, v bigint)");
  pqxx::stream_to out{tx, t.quoted()};
  for (auto& [k, v] : rows)
    out << std::make_tuple(k, v);
  out.complete();
  tx.exec("ANALYZE " + t.quoted());
  tx.commit();
  return t;
}

using kv = std::pair<opt_int, opt_int>;

/// Drains a source in this thread (no actor system needed).
template <class T>
std::vector<T> drain(source<T>& src, std::size_t batch = 1000) {
  std::vector<T> result;
  while (!src->exhausted()) {
    auto xs = src->next(batch);
    if (xs.empty())
      break;
    result.insert(result.end(), xs.begin(), xs.end());
  }
  return result;
}

auto decode_kv = [](const pg::row_view& r) {
  return kv{r.opt_int64(0), r.opt_int64(1)};
};

/// Reads every partition; returns the rows per partition.
std::vector<std::vector<kv>> read_partitions(const pg::read_spec& spec) {
  auto read = pg::partitioned_read::open(spec);
  REQUIRE(read);
  auto srcs = read->row_sources<kv>(decode_kv);
  REQUIRE(srcs);
  REQUIRE(srcs->size() == read->ranges().size());
  std::vector<std::vector<kv>> result;
  for (auto& s : *srcs) {
    CHECK(s->blocking());
    result.push_back(drain(s));
  }
  return result;
}

std::vector<kv> sorted(std::vector<kv> xs) {
  std::sort(xs.begin(), xs.end());
  return xs;
}

std::vector<kv> flatten(const std::vector<std::vector<kv>>& parts) {
  std::vector<kv> all;
  for (auto& p : parts)
    all.insert(all.end(), p.begin(), p.end());
  return all;
}

pg::read_spec spec_for(const pg::table_name& t, std::size_t partitions) {
  pg::read_spec s;
  s.conninfo = conninfo();
  s.table = t;
  s.columns = {"k", "v"};
  s.partition_column = "k";
  s.partitions = partitions;
  return s;
}

std::string error_text(const caf::error& err) {
  return describe(err);
}

} // namespace

TEST_CASE("row source: streams a query's rows in batches, NULLs as nothing",
          "[pg][source]") {
  auto schema = fresh_schema("stream");
  std::vector<kv> rows;
  std::mt19937_64 rng{1};
  for (int i = 0; i < 5000; ++i)
    rows.emplace_back(i % 7 == 0 ? opt_int{} : opt_int{i},
                      i % 11 == 0 ? opt_int{}
                                  : opt_int{static_cast<std::int64_t>(rng())});
  auto t = make_table(schema, rows);
  auto src = pg::from_query<kv>(conninfo(), "SELECT k, v FROM " + t.quoted(),
                                decode_kv);
  REQUIRE(src);
  CHECK((*src)->blocking());
  auto first = (*src)->next(333);
  CHECK(first.size() == 333);
  auto rest = drain(*src, 1000);
  std::vector<kv> got(first.begin(), first.end());
  got.insert(got.end(), rest.begin(), rest.end());
  CHECK(sorted(got) == sorted(rows));
  CHECK((*src)->exhausted());
  CHECK((*src)->next(10).empty());
}

TEST_CASE("row source: text kept in the batch's batch_text reads back "
          "exactly and outlives the next batches",
          "[pg][source][batch_text]") {
  auto schema = fresh_schema("batchtext");
  auto t = pg::quote_ident(schema) + ".t";
  // Escapes, NULL beside the empty string, multi-byte text, and fields far
  // longer than a chunk of the store (16 KiB first, 1 MiB at most).
  exec("CREATE TABLE " + t + " (id int, a text, b text)");
  exec("INSERT INTO " + t + " SELECT g, CASE WHEN g % 5 = 0 THEN NULL "
       "WHEN g % 5 = 1 THEN '' ELSE 'v' || g || E'\\t\\\\\\n\\r' "
       "|| repeat('é', g % 40) END, CASE WHEN g % 997 = 0 THEN "
       "repeat('x', 40000 + g) WHEN g % 4999 = 0 THEN repeat('y', 3000000) "
       "ELSE g::text END FROM generate_series(1, 12000) g");
  auto q = "SELECT id, a, b FROM " + t + " ORDER BY id";
  struct owned {
    std::int64_t id;
    std::optional<std::string> a, b;
    bool operator==(const owned& o) const {
      return id == o.id && a == o.a && b == o.b;
    }
  };
  struct viewed {
    std::int64_t id = 0;
    std::optional<std::string_view> a, b;
  };
  auto copy = [](const std::optional<std::string_view>& x) {
    return x ? std::optional<std::string>{std::string{*x}} : std::nullopt;
  };
  // The reference: a std::string per field.
  auto ref_src = pg::from_query<owned>(conninfo(), q,
                                       [&copy](const pg::row_view& r) {
                                         return owned{r.int64(0),
                                                      copy(r.opt_text(1)),
                                                      copy(r.opt_text(2))};
                                       });
  REQUIRE(ref_src);
  auto ref = drain(*ref_src, 1000);
  REQUIRE(ref.size() == 12000);
  // The same through views into each batch's text; every batch is held
  // until the end, so a view into a store that moved, was reused or was
  // freed with its batch would read garbage (and ASan would say so).
  auto src = pg::from_query<viewed>(
    conninfo(), q,
    [](const pg::row_view& r, viewed& v, pg::batch_text& text) {
      v.id = r.int64(0);
      v.a = text.keep(r.opt_text(1));
      v.b = text.keep(r.opt_text(2));
    });
  REQUIRE(src);
  std::vector<slice<viewed>> held;
  while (!(*src)->exhausted()) {
    auto xs = (*src)->next(777);
    if (xs.empty())
      break;
    held.push_back(std::move(xs));
  }
  CHECK(held.size() == (12000 + 776) / 777);
  std::vector<owned> got;
  for (auto& b : held)
    for (auto& v : b)
      got.push_back(owned{v.id, copy(v.a), copy(v.b)});
  REQUIRE(got.size() == ref.size());
  CHECK(got == ref);
  CHECK(got[4].a == std::nullopt);   // id 5: NULL
  CHECK(got[0].a == std::string{}); // id 1: empty, not NULL
  CHECK(got[1].a->rfind("v2\t\\\n\r", 0) == 0);
  CHECK(got[4998].b->size() == 3000000);
}

TEST_CASE("row source: a value that does not fit fails with row, column and "
          "value",
          "[pg][source]") {
  auto schema = fresh_schema("badval");
  exec("CREATE TABLE " + pg::quote_ident(schema)
       + ".t (id int, x text, n numeric)");
  exec("INSERT INTO " + pg::quote_ident(schema)
       + ".t SELECT g, g::text, g FROM generate_series(1, 100) g");
  exec("INSERT INTO " + pg::quote_ident(schema)
       + ".t VALUES (101, '12x', 1), (102, '5', 1e20), (103, NULL, 1)");
  auto q = "SELECT id, x, n FROM " + pg::quote_ident(schema)
           + ".t ORDER BY id";
  SECTION("text that is not an integer") {
    auto src = pg::from_query<std::int64_t>(
      conninfo(), q, [](const pg::row_view& r) { return r.int64(1); });
    REQUIRE(src);
    try {
      drain(*src, 64);
      FAIL("no error");
    } catch (const input_error& e) {
      std::string what = e.what();
      CHECK(e.code() == errc::bad_input);
      CHECK(what.find("row 101") != std::string::npos);
      CHECK(what.find("column 2") != std::string::npos);
      CHECK(what.find("'12x'") != std::string::npos);
    }
  }
  SECTION("a number outside int64") {
    auto src = pg::from_query<std::int64_t>(
      conninfo(), q, [](const pg::row_view& r) { return r.int64(2); });
    REQUIRE(src);
    try {
      drain(*src, 64);
      FAIL("no error");
    } catch (const input_error& e) {
      std::string what = e.what();
      CHECK(what.find("row 102") != std::string::npos);
      CHECK(what.find("does not fit") != std::string::npos);
    }
  }
  SECTION("NULL where a value is required, through a pipeline") {
    auto src = pg::from_query<std::int64_t>(
      conninfo(), q, [](const pg::row_view& r) { return r.int64(1); });
    REQUIRE(src);
    auto res = pipeline<std::int64_t>{}
                 .add(std::move(*src))
                 .reduce(sum_by_label())
                 .batch_size(50)
                 .run();
    REQUIRE_FALSE(res);
    CHECK(code_of(res.error()) == errc::bad_input);
    CHECK(error_text(res.error()).find("row 101") != std::string::npos);
  }
}

TEST_CASE("partitions: every row read exactly once, whatever the shape of the "
          "column",
          "[pg][partition]") {
  auto schema = fresh_schema("shapes");
  std::mt19937_64 rng{5};
  SECTION("empty table") {
    auto t = make_table(schema, {});
    auto parts = read_partitions(spec_for(t, 4));
    CHECK(parts.size() == 1);
    CHECK(flatten(parts).empty());
  }
  SECTION("one huge key") {
    std::vector<kv> rows;
    for (int i = 0; i < 3000; ++i)
      rows.emplace_back(7, i);
    for (int i = 0; i < 20; ++i)
      rows.emplace_back(i, -i);
    rows.emplace_back(opt_int{}, 99);
    auto t = make_table(schema, rows);
    auto parts = read_partitions(spec_for(t, 4));
    CHECK(sorted(flatten(parts)) == sorted(rows));
    // Key 7's rows cannot be split on this column: all in one partition.
    int holding = 0;
    for (auto& p : parts)
      holding += std::any_of(p.begin(), p.end(),
                             [](const kv& x) { return x.first == 7; });
    CHECK(holding == 1);
  }
  SECTION("fewer rows than partitions") {
    std::vector<kv> rows{{3, 1}, {1, 2}, {2, 3}};
    auto t = make_table(schema, rows);
    auto parts = read_partitions(spec_for(t, 8));
    CHECK(parts.size() <= rows.size() + 1);
    CHECK(sorted(flatten(parts)) == sorted(rows));
  }
  SECTION("one partition") {
    std::vector<kv> rows;
    for (int i = 0; i < 500; ++i)
      rows.emplace_back(static_cast<std::int64_t>(rng() % 100), i);
    auto t = make_table(schema, rows);
    auto parts = read_partitions(spec_for(t, 1));
    CHECK(parts.size() == 1);
    CHECK(sorted(flatten(parts)) == sorted(rows));
  }
  SECTION("skewed column: quantile ranges stay balanced") {
    std::vector<kv> rows;
    std::exponential_distribution<double> skew{0.001};
    for (int i = 0; i < 20000; ++i)
      rows.emplace_back(static_cast<std::int64_t>(skew(rng) * skew(rng)), i);
    for (int i = 0; i < 50; ++i)
      rows.emplace_back(opt_int{}, -i);
    auto t = make_table(schema, rows);
    auto parts = read_partitions(spec_for(t, 4));
    CHECK(parts.size() == 4);
    CHECK(sorted(flatten(parts)) == sorted(rows));
    for (auto& p : parts)
      CHECK(p.size() < rows.size() / 4 * 3 / 2);
  }
  SECTION("large table: bounds from a sample, still exactly once") {
    std::vector<kv> rows;
    for (int i = 0; i < 60000; ++i)
      rows.emplace_back(static_cast<std::int64_t>(rng() % 1000000) - 500000,
                        i);
    auto t = make_table(schema, rows);
    auto spec = spec_for(t, 3);
    spec.sample_pages = 20;
    auto parts = read_partitions(spec);
    CHECK(parts.size() == 3);
    CHECK(sorted(flatten(parts)) == sorted(rows));
    for (auto& p : parts)
      CHECK(p.size() > rows.size() / 10);
  }
}

TEST_CASE("snapshot: rows committed by another connection after the export "
          "are seen by no partition",
          "[pg][snapshot]") {
  auto schema = fresh_schema("snap");
  std::vector<kv> rows;
  for (int i = 0; i < 4000; ++i)
    rows.emplace_back(i, i);
  auto t = make_table(schema, rows);
  auto read = pg::partitioned_read::open(spec_for(t, 4));
  REQUIRE(read);
  REQUIRE(read->ranges().size() == 4);
  // Another session adds rows in every partition's range and removes some.
  exec("INSERT INTO " + t.quoted()
       + " SELECT g, -g FROM generate_series(-100, 5000, 7) g");
  exec("DELETE FROM " + t.quoted() + " WHERE k % 10 = 3");
  CHECK(scalar("SELECT count(*) FROM " + t.quoted())
        != std::to_string(rows.size()));
  auto srcs = read->row_sources<kv>(decode_kv);
  REQUIRE(srcs);
  // The coordinator may go before the partitions read: they imported it.
  read->release();
  std::vector<kv> all;
  for (auto& s : *srcs) {
    auto part = drain(s);
    all.insert(all.end(), part.begin(), part.end());
  }
  CHECK(sorted(all) == sorted(rows));
}

TEST_CASE("snapshot: the coordinator's reference query sees the same rows",
          "[pg][snapshot]") {
  auto schema = fresh_schema("snapref");
  auto t = make_table(schema, {{1, 10}, {2, 20}});
  auto read = pg::partitioned_read::open(spec_for(t, 2));
  REQUIRE(read);
  exec("INSERT INTO " + t.quoted() + " VALUES (3, 30)");
  auto q = read->query("SELECT count(*), sum(v) FROM " + t.quoted());
  REQUIRE(q);
  CHECK((*q)[0][0] == std::optional<std::string>{"2"});
  CHECK((*q)[0][1] == std::optional<std::string>{"30"});
  read->release();
  CHECK_FALSE(read->query("SELECT 1"));
}

TEST_CASE("snapshot: a coordinator the server ended before the partitions "
          "imported its snapshot is a lost connection, not bad input",
          "[pg][snapshot][error]") {
  auto schema = fresh_schema("snaplost");
  auto t = make_table(schema, {{1, 10}, {2, 20}, {3, 30}});
  auto read = pg::partitioned_read::open(spec_for(t, 2));
  REQUIRE(read);
  auto pid = read->query("SELECT pg_backend_pid()");
  REQUIRE(pid);
  REQUIRE((*pid)[0][0]);
  CHECK_FALSE(read->exporter_lost());
  // What pg_terminate_backend of every session does to a job that is
  // between exporting the snapshot and opening its partitions. The call
  // returns before the backend is gone: wait for that.
  CHECK(scalar("SELECT pg_terminate_backend(" + *(*pid)[0][0] + ")")
        == "t");
  for (int i = 0; i < 1000
                  && scalar("SELECT count(*) FROM pg_stat_activity WHERE pid = "
                            + *(*pid)[0][0])
                       != "0";
       ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  SECTION("the coordinator says so") {
    CHECK(read->exporter_lost());
  }
  SECTION("row sources") {
    auto srcs = read->row_sources<kv>(decode_kv);
    REQUIRE_FALSE(srcs);
    CHECK(pg::connection_lost(srcs.error()));
    CHECK(error_text(srcs.error()).find("22023") == std::string::npos);
  }
  SECTION("push-down readers") {
    auto rs = read->grouped_readers("k, sum(v)", "k");
    REQUIRE_FALSE(rs);
    CHECK(pg::connection_lost(rs.error()));
  }
}

TEST_CASE("snapshot: a coordinator whose transaction an SQL error ended is "
          "no lost connection, and the partitions' import stays bad input",
          "[pg][snapshot][error]") {
  auto schema = fresh_schema("snapbad");
  auto t = make_table(schema, {{1, 10}, {2, 20}});
  auto read = pg::partitioned_read::open(spec_for(t, 2));
  REQUIRE(read);
  // The error aborts the coordinator's transaction, and the snapshot with
  // it, but the session lives on.
  REQUIRE_FALSE(read->query("SELECT 1/0"));
  CHECK_FALSE(read->exporter_lost());
  auto srcs = read->row_sources<kv>(decode_kv);
  REQUIRE_FALSE(srcs);
  CHECK(code_of(srcs.error()) == errc::bad_input);
  CHECK(error_text(srcs.error()).find("22023") != std::string::npos);
  CHECK_FALSE(pg::connection_lost(srcs.error()));
}

TEST_CASE("partitioned read: errors carry the SQL state", "[pg][error]") {
  auto schema = fresh_schema("errs");
  auto t = make_table(schema, {{1, 1}});
  SECTION("missing table") {
    auto read = pg::partitioned_read::open(
      spec_for({schema, "no_such_table"}, 2));
    REQUIRE_FALSE(read);
    CHECK(code_of(read.error()) == errc::bad_input);
    CHECK(error_text(read.error()).find("42P01 undefined_table")
          != std::string::npos);
  }
  SECTION("missing column") {
    auto spec = spec_for(t, 2);
    spec.partition_column = "nope";
    auto read = pg::partitioned_read::open(spec);
    REQUIRE_FALSE(read);
    CHECK(error_text(read.error()).find("42703") != std::string::npos);
  }
  SECTION("a selected column that does not exist fails when read") {
    auto spec = spec_for(t, 1);
    spec.columns = {"k", "missing"};
    auto read = pg::partitioned_read::open(spec);
    REQUIRE(read);
    auto srcs = read->row_sources<kv>(decode_kv);
    REQUIRE(srcs);
    try {
      drain((*srcs)[0]);
      FAIL("no error");
    } catch (const input_error& e) {
      CHECK(e.code() == errc::bad_input);
      CHECK(std::string{e.what()}.find("42703 undefined_column")
            != std::string::npos);
    }
  }
  SECTION("a partition column that is not an integer") {
    exec("CREATE TABLE " + pg::quote_ident(schema) + ".txt (k text)");
    auto spec = spec_for({schema, "txt"}, 2);
    spec.columns = {"k"};
    auto read = pg::partitioned_read::open(spec);
    REQUIRE_FALSE(read);
    CHECK(error_text(read.error()).find("not an integer column")
          != std::string::npos);
  }
  SECTION("permission denied") {
    make_role("flow_reader", "reader-pw-123");
    exec("GRANT USAGE ON SCHEMA " + pg::quote_ident(schema)
         + " TO flow_reader");
    auto spec = spec_for(t, 2);
    spec.conninfo = "host=" + server().dir() + " port="
                    + std::to_string(server().port())
                    + " dbname=postgres user=flow_reader password=reader-pw-123";
    auto read = pg::partitioned_read::open(spec);
    REQUIRE_FALSE(read);
    INFO(error_text(read.error()));
    CHECK(error_text(read.error()).find("42501 insufficient_privilege")
          != std::string::npos);
    CHECK(error_text(read.error()).find("reader-pw-123") == std::string::npos);
  }
  SECTION("wrong password: no SQL state, no password in the message") {
    make_role("flow_alice", "right-pw-456");
    auto spec = spec_for(t, 2);
    spec.conninfo = "postgresql://flow_alice:wrong-pw-789@/postgres?host="
                    + server().dir() + "&port="
                    + std::to_string(server().port());
    auto read = pg::partitioned_read::open(spec);
    REQUIRE_FALSE(read);
    auto text = error_text(read.error());
    CHECK(code_of(read.error()) == errc::source_failed);
    CHECK(text.find("password authentication failed") != std::string::npos);
    CHECK(text.find("wrong-pw-789") == std::string::npos);
    CHECK(text.find("\n") == std::string::npos);
  }
  SECTION("unreachable server") {
    auto spec = spec_for(t, 2);
    spec.conninfo = "postgresql://127.0.0.1:1/x";
    auto read = pg::partitioned_read::open(spec);
    REQUIRE_FALSE(read);
    CHECK(code_of(read.error()) == errc::source_failed);
    CHECK(error_text(read.error()).find("cannot connect") != std::string::npos);
  }
}

TEST_CASE("push-down: the server's partial aggregates merge to the row path's "
          "result",
          "[pg][pushdown]") {
  auto schema = fresh_schema("push");
  std::vector<kv> rows;
  std::mt19937_64 rng{9};
  std::uniform_int_distribution<std::int64_t> big{
    std::numeric_limits<std::int64_t>::max() / 4,
    std::numeric_limits<std::int64_t>::max()};
  for (int i = 0; i < 30000; ++i) {
    opt_int v = big(rng) * (i % 3 == 0 ? -1 : 1);
    if (i % 97 == 0)
      v.reset();
    rows.emplace_back(static_cast<std::int64_t>(rng() % 50), v);
  }
  auto t = make_table(schema, rows);
  auto spec = spec_for(t, 3);
  spec.partition_column = "v";
  // Row path: keyed sums of non-NULL values.
  auto read = pg::partitioned_read::open(spec);
  REQUIRE(read);
  auto srcs = read->row_sources<keyed_value>([](const pg::row_view& r) {
    return keyed_value{r.int64(0), r.opt_int64(1).value_or(0)};
  });
  REQUIRE(srcs);
  pipeline<keyed_value> p;
  for (auto& s : *srcs)
    p.add(std::move(s));
  auto by_rows = p.reduce(per_element<keyed_value>(
                            [](const keyed_value& x, partial& out) {
                              // NULLs were decoded as 0: count them apart.
                              out.add(x.key, x.value);
                            }))
                   .run();
  REQUIRE(by_rows);
  // Push-down.
  auto read2 = pg::partitioned_read::open(spec);
  REQUIRE(read2);
  pg::pushdown_spec pd{{"k"}, "v", [](const pg::row_view& r) {
                         return flow::key{r.int64(0)};
                       }};
  auto asrcs = read2->aggregate_sources(pd);
  REQUIRE(asrcs);
  pipeline<pg::keyed_aggregate> p2;
  for (auto& s : *asrcs)
    p2.add(std::move(s));
  auto pushed = p2.reduce(pg::merge_by_key()).run();
  REQUIRE(pushed);
  // Reference: the server's GROUP BY, sums exact as numeric.
  std::map<std::int64_t, std::pair<std::string, std::string>> ref;
  {
    pqxx::connection conn{conninfo()};
    pqxx::work tx{conn};
    for (auto row : tx.exec("SELECT k, sum(v), count(v) FROM " + t.quoted()
                            + " GROUP BY k"))
      ref[row[0].as<std::int64_t>()] = {row[1].c_str(), row[2].c_str()};
  }
  REQUIRE(pushed->keys.size() == ref.size());
  REQUIRE(by_rows->keys.size() == ref.size());
  for (std::size_t i = 0; i < ref.size(); ++i) {
    auto& pk = pushed->keys[i];
    auto& rk = by_rows->keys[i];
    auto& [sum, count] = ref.at(pk.key.as_int());
    INFO("key " << to_string(pk.key));
    CHECK(to_string(pk.agg.sum) == sum);
    CHECK(std::to_string(pk.agg.count) == count);
    // The row path counted NULLs as 0-valued rows: same sum, more rows.
    CHECK(rk.key == pk.key);
    CHECK(rk.agg.sum == pk.agg.sum);
    CHECK(rk.agg.count >= pk.agg.count);
  }
}

TEST_CASE("push-down: one partition leaves the server its parallel workers, "
          "several read their ranges without, sort_groups turns hash "
          "grouping off and min_work_mem only raises work_mem",
          "[pg][pushdown]") {
  // A parallel plan of a range is a parallel scan of the whole table with
  // the range as a filter: three partitions with workers would read the
  // table three times. Each partition reports its own session's settings.
  auto schema = fresh_schema("pushset");
  std::vector<kv> rows;
  for (std::int64_t i = 1; i <= 3000; ++i)
    rows.emplace_back(i, opt_int{i});
  auto t = make_table(schema, rows);
  auto server_workers = scalar("SHOW max_parallel_workers_per_gather");
  REQUIRE(server_workers != "0");
  for (std::size_t parts : {1, 3}) {
    for (bool sort : {false, true}) {
      auto spec = spec_for(t, parts);
      spec.sort_groups = sort;
      auto read = pg::partitioned_read::open(spec);
      REQUIRE(read);
      auto rs = read->grouped_readers(
        "current_setting('max_parallel_workers_per_gather'), "
        "current_setting('enable_hashagg'), count(*)",
        "");
      REQUIRE(rs);
      REQUIRE(rs->size() == parts);
      std::int64_t seen = 0;
      for (auto& r : *rs) {
        auto* row = r.next();
        REQUIRE(row);
        INFO(parts << " partition(s), sort_groups " << sort);
        CHECK(row->opt_text(0).value_or("")
              == (parts == 1 ? server_workers : "0"));
        CHECK(row->opt_text(1).value_or("") == (sort ? "off" : "on"));
        seen += row->int64(2);
        CHECK_FALSE(r.next());
      }
      CHECK(seen == 3000);
    }
  }
  // min_work_mem raises the sessions' work_mem, never lowers it.
  for (std::string start : {"4MB", "256MB"}) {
    auto spec = spec_for(t, 3);
    spec.conninfo = conninfo() + " options='-c work_mem=" + start + "'";
    spec.min_work_mem = 64 << 20;
    auto read = pg::partitioned_read::open(spec);
    REQUIRE(read);
    auto rs = read->grouped_readers("current_setting('work_mem')", "");
    REQUIRE(rs);
    for (auto& r : *rs) {
      auto* row = r.next();
      REQUIRE(row);
      INFO("work_mem at first " << start);
      CHECK(row->opt_text(0).value_or("")
            == (start == "4MB" ? "64MB" : "256MB"));
    }
  }
}

TEST_CASE("partition tickets: another connection reads a partition in the "
          "read's snapshot, exactly the rows the read's own reader gets",
          "[pg][partition][ticket]") {
  auto schema = fresh_schema("tickets");
  std::vector<kv> rows;
  for (int i = 0; i < 4000; ++i)
    rows.emplace_back(i % 97, i);
  rows.emplace_back(opt_int{}, -1);
  auto t = make_table(schema, rows);
  for (std::string by : {"k", "ctid"}) {
    auto spec = spec_for(t, 3);
    spec.partition_column = by;
    // With a password in the connection string: the tickets carry none.
    make_role("ticketeer", "s3cret-ticket");
    exec("GRANT USAGE ON SCHEMA " + pg::quote_ident(schema)
         + " TO ticketeer");
    exec("GRANT SELECT ON " + t.quoted() + " TO ticketeer");
    auto secret = conninfo() + " user=ticketeer password=s3cret-ticket";
    spec.conninfo = secret;
    auto read = pg::partitioned_read::open(spec);
    REQUIRE(read);
    auto tickets = read->tickets();
    REQUIRE(tickets);
    REQUIRE(tickets->size() == read->ranges().size());
    for (auto& ticket : *tickets) {
      CHECK(ticket.conninfo.find("s3cret") == std::string::npos);
      CHECK(ticket.encode().find("s3cret") == std::string::npos);
      CHECK(ticket.conninfo.find("ticketeer") != std::string::npos);
    }
    // Rows committed after the export are not seen through a ticket either.
    exec("INSERT INTO " + t.quoted() + " VALUES (5, 123456)");
    std::vector<kv> seen;
    for (auto& ticket : *tickets) {
      // The ticket crosses as text and never holds the password.
      auto back = pg::partition_ticket::decode(ticket.encode());
      REQUIRE(back);
      CHECK(back->encode() == ticket.encode());
      CHECK(back->snapshot == read->snapshot_id());
      auto reader = pg::open_partition(*back, conninfo());
      REQUIRE(reader);
      source<kv> src{std::make_unique<pg::row_source<kv, decltype(decode_kv)>>(
        std::move(*reader), decode_kv)};
      auto xs = drain(src);
      seen.insert(seen.end(), xs.begin(), xs.end());
    }
    CHECK(sorted(seen) == sorted(rows));
    exec("DELETE FROM " + t.quoted() + " WHERE v = 123456");
    // Once the exporting transaction ended, the snapshot is gone.
    read->release();
    auto late = pg::open_partition(tickets->front(), conninfo());
    REQUIRE(!late);
    CHECK(error_text(late.error()).find("snapshot") != std::string::npos);
  }
}

TEST_CASE("partition tickets: malformed text is refused with a clear error",
          "[pg][ticket]") {
  pg::partition_ticket t;
  t.conninfo = "host='/tmp/x y' dbname='a''b'";
  t.table = {"s;1", "t\"2"};
  t.columns = {"a", "b:c", ""};
  t.partition_column = "ctid";
  t.part.lo = -5;
  t.part.blocks = true;
  t.index = 1;
  t.count = 3;
  t.snapshot = "00000003-0000001B-1";
  t.offset = 17;
  t.extra = {"flow_dist", "", "a:b"};
  t.filter = "value > 1 AND city = 'a;b'";
  auto text = t.encode();
  auto back = pg::partition_ticket::decode(text);
  REQUIRE(back);
  CHECK(back->conninfo == t.conninfo);
  CHECK(back->table.schema == "s;1");
  CHECK(back->table.table == "t\"2");
  CHECK(back->columns == t.columns);
  CHECK(back->part.lo == opt_int{-5});
  CHECK(!back->part.hi);
  CHECK(back->part.blocks);
  CHECK(!back->part.nulls);
  CHECK(back->index == 1);
  CHECK(back->count == 3);
  CHECK(back->offset == 17);
  CHECK(back->extra == t.extra);
  CHECK(back->filter == t.filter);
  for (auto bad : {std::string{}, std::string{"hello"}, text.substr(0, 30),
                   text + "x", "flow.partition.1;" + text.substr(17)}) {
    auto r = pg::partition_ticket::decode(bad);
    REQUIRE(!r);
    CHECK(code_of(r.error()) == errc::bad_input);
    CHECK(error_text(r.error()).find("partition ticket") != std::string::npos);
  }
  // An index outside the count.
  t.index = 3;
  CHECK(!pg::partition_ticket::decode(t.encode()));
}

TEST_CASE("without_password: the connection string crosses without its "
          "secret",
          "[pg][redact]") {
  auto a = pg::without_password("host=db port=5433 user=u password=s3cret "
                                "dbname=app");
  REQUIRE(a);
  CHECK(a->find("s3cret") == std::string::npos);
  CHECK(a->find("password") == std::string::npos);
  CHECK(a->find("host='db'") != std::string::npos);
  CHECK(a->find("port='5433'") != std::string::npos);
  auto b = pg::without_password("postgresql://u:hunter22@db:5433/app");
  REQUIRE(b);
  CHECK(b->find("hunter22") == std::string::npos);
  auto k = pg::without_password("host=db sslpassword=keypass1 "
                                "passfile=/home/m/.pgpass sslmode=require");
  REQUIRE(k);
  CHECK(k->find("keypass1") == std::string::npos);
  CHECK(k->find(".pgpass") == std::string::npos);
  CHECK(k->find("sslmode='require'") != std::string::npos);
  CHECK(b->find("dbname='app'") != std::string::npos);
  auto c = pg::without_password(R"(host='/tmp/it\'s' dbname=x)");
  REQUIRE(c);
  CHECK(c->find(R"(host='/tmp/it\'s')") != std::string::npos);
  CHECK(pg::without_password("")->empty());
  auto bad = pg::without_password("host=db password='hunter22");
  REQUIRE(!bad);
  CHECK(code_of(bad.error()) == errc::invalid_config);
  CHECK(error_text(bad.error()).find("hunter22") == std::string::npos);
  CHECK(error_text(bad.error()).find("connection string") != std::string::npos);
}

TEST_CASE("ctid_partitions: a table larger than a quarter of the shared "
          "buffers is read as one partition",
          "[pg][partition]") {
  auto schema = fresh_schema("cachefit");
  pg::table_name small{schema, "small"};
  pg::table_name big{schema, "big"};
  exec("CREATE TABLE " + small.quoted() + " AS SELECT g FROM "
       "generate_series(1, 1000) g");
  auto buffers = std::stoll(scalar("SELECT setting FROM pg_settings WHERE "
                                   "name = 'shared_buffers'"));
  // Rows of about 1 kB: just over a quarter of the buffers.
  auto rows = buffers * 8 / 4 * 9 / 8 + 100;
  exec("CREATE TABLE " + big.quoted() + " AS SELECT g, repeat('x', 1000) AS "
       "pad FROM generate_series(1, " + std::to_string(rows) + ") g");
  auto a = pg::ctid_partitions(conninfo(), small, 4);
  REQUIRE(a);
  CHECK(*a == 4);
  auto b = pg::ctid_partitions(conninfo(), big, 4);
  REQUIRE(b);
  CHECK(*b == 1);
  auto c = pg::ctid_partitions(conninfo(), small, 0);
  REQUIRE(c);
  CHECK(*c == 1);
  auto missing = pg::ctid_partitions(conninfo(), {schema, "nope"}, 4);
  REQUIRE(!missing);
  CHECK(error_text(missing.error()).find("42P01") != std::string::npos);
  exec("DROP TABLE " + big.quoted());
}
