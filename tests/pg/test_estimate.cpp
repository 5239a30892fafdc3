// Partitions of a partitioned read report the planner's row estimate as
// their size hint, flagged as an estimate, and a job's statistics carry it.

#include <catch2/catch.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>

#include "flow/flow.hpp"
#include "flow/pg/pg.hpp"
#include "pg_fixture.hpp"

using namespace flow;
using namespace flow::test;

namespace {

/// Creates schema.big(k bigint, v bigint) with `rows` rows k = 0 .. rows-1,
/// analysed.
pg::table_name make_big_table(const std::string& schema, std::int64_t rows) {
  pg::table_name t{schema, "big"};
  exec("CREATE TABLE " + t.quoted() + " (k bigint, v bigint)");
  exec("INSERT INTO " + t.quoted() + " SELECT i, i % 7 FROM generate_series(0, "
       + std::to_string(rows - 1) + ") i");
  exec("ANALYZE " + t.quoted());
  return t;
}

/// A read of columns k and v of `t` in `parts` partitions by `column`.
pg::read_spec make_spec(const pg::table_name& t, const std::string& column,
                        std::size_t parts) {
  pg::read_spec s;
  s.conninfo = conninfo();
  s.table = t;
  s.columns = {"k", "v"};
  s.partition_column = column;
  s.partitions = parts;
  return s;
}

/// True when `estimate` is within 20 % of `actual`.
bool near(std::uint64_t estimate, std::uint64_t actual) {
  auto diff = estimate > actual ? estimate - actual : actual - estimate;
  return static_cast<double>(diff) <= 0.2 * static_cast<double>(actual);
}

} // namespace

TEST_CASE("partitioned read: each partition's size hint is the planner's "
          "estimate within 20 % of its rows, and the job's stats carry it",
          "[pg][estimate]") {
  auto schema = fresh_schema("estimate");
  constexpr std::int64_t rows = 200000;
  auto t = make_big_table(schema, rows);
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  for (std::string column : {"ctid", "k"}) {
    for (std::size_t parts : {std::size_t{1}, std::size_t{3}}) {
      INFO("partition column " << column << ", " << parts << " partitions");
      auto spec = make_spec(t, column, parts);
      auto read = pg::partitioned_read::open(spec);
      REQUIRE(read);
      auto srcs = read->row_sources<keyed_value>([](const pg::row_view& r) {
        return keyed_value{r.int64(1), r.int64(0)};
      });
      REQUIRE(srcs);
      REQUIRE(srcs->size() == parts);
      std::vector<std::uint64_t> hints;
      for (auto& s : *srcs) {
        auto hint = s->size_hint();
        REQUIRE(hint);
        CHECK(s->size_is_estimate());
        hints.push_back(*hint);
      }
      pipeline<keyed_value> p;
      for (auto& s : *srcs)
        p.add(std::move(s));
      auto job = p.reduce(sum_by_key()).start(sys);
      REQUIRE(job);
      auto res = job->wait();
      REQUIRE(res);
      CHECK(res->emitted == static_cast<std::uint64_t>(rows));
      auto stats = job->stats();
      REQUIRE(stats.sources.size() == parts);
      for (std::size_t i = 0; i < parts; ++i) {
        auto& src = stats.sources[i];
        INFO("partition " << i << ": estimate " << hints[i] << ", rows "
                          << src.emitted);
        REQUIRE(src.total);
        CHECK(*src.total == hints[i]);
        CHECK(src.total_is_estimate);
        CHECK(src.emitted > 0);
        CHECK(near(hints[i], src.emitted));
      }
    }
  }
}

TEST_CASE("partitioned read: a table never analysed has no size hint",
          "[pg][estimate]") {
  auto schema = fresh_schema("estimate_none");
  pg::table_name t{schema, "fresh"};
  exec("CREATE TABLE " + t.quoted()
       + " (k bigint, v bigint) WITH (autovacuum_enabled = false)");
  exec("INSERT INTO " + t.quoted()
       + " SELECT i, i FROM generate_series(1, 1000) i");
  auto spec = make_spec(t, "ctid", 2);
  auto read = pg::partitioned_read::open(spec);
  REQUIRE(read);
  auto rs = read->readers();
  REQUIRE(rs);
  for (auto& r : *rs)
    CHECK_FALSE(r.estimate());
}
