// Partitions by block ranges (ctid): every row read exactly once, whatever
// the data's skew, and only rows of the snapshot.

#include <catch2/catch.hpp>

#include "flow/flow.hpp"
#include "flow/pg/read.hpp"
#include "pg_fixture.hpp"

using namespace flow;
using namespace flow::test;

namespace {

/// A read of `columns` of `t` in `parts` block ranges.
pg::read_spec ctid_spec(const pg::table_name& t,
                        std::vector<std::string> columns, std::size_t parts) {
  pg::read_spec spec;
  spec.conninfo = conninfo();
  spec.table = t;
  spec.columns = std::move(columns);
  spec.partition_column = "ctid";
  spec.partitions = parts;
  return spec;
}

} // namespace

TEST_CASE("partitioned read by ctid: every row once, for any partition count",
          "[pg][read][ctid]") {
  auto schema = fresh_schema("ctid");
  pg::table_name t{schema, "skewed"};
  // One huge key and a few small ones: ranges of the column could not split
  // it, block ranges can.
  exec("CREATE TABLE " + t.quoted() + " (k int, v bigint)");
  exec("INSERT INTO " + t.quoted()
       + " SELECT CASE WHEN i % 50 = 0 THEN i ELSE 7 END, i "
         "FROM generate_series(1, 30000) i");
  auto expected_sum = scalar("SELECT sum(v) FROM " + t.quoted());
  auto expected_count = scalar("SELECT count(*) FROM " + t.quoted());
  for (std::size_t parts : {1u, 2u, 3u, 7u, 500u}) {
    INFO("partitions " << parts);
    auto read = pg::partitioned_read::open(ctid_spec(t, {"k", "v"}, parts));
    REQUIRE(read);
    // More partitions than blocks collapse into fewer ranges.
    CHECK(read->ranges().size() <= parts);
    CHECK(read->ranges().front().blocks);
    auto srcs = read->row_sources<keyed_value>([](const pg::row_view& r) {
      return keyed_value{flow::key{"all"}, r.int64(1)};
    });
    REQUIRE(srcs);
    // Rows added after the snapshot must not be seen by any partition.
    exec("INSERT INTO " + t.quoted() + " VALUES (1, 1000000000)");
    read->release();
    pipeline<keyed_value> p;
    for (auto& s : *srcs)
      p.add(std::move(s));
    auto res = p.reduce(sum_by_key()).batch_size(1000).run();
    REQUIRE(res);
    REQUIRE(res->keys.size() == 1);
    CHECK(to_string(res->keys[0].agg.sum) == expected_sum);
    CHECK(std::to_string(res->keys[0].agg.count) == expected_count);
    exec("DELETE FROM " + t.quoted() + " WHERE v = 1000000000");
  }
}

TEST_CASE("partitioned read by ctid: an empty table is one empty range",
          "[pg][read][ctid]") {
  auto schema = fresh_schema("ctid_empty");
  pg::table_name t{schema, "empty"};
  exec("CREATE TABLE " + t.quoted() + " (v bigint)");
  auto read = pg::partitioned_read::open(ctid_spec(t, {"v"}, 4));
  REQUIRE(read);
  CHECK(read->ranges().size() == 1);
  auto srcs = read->row_sources<std::int64_t>(
    [](const pg::row_view& r) { return r.int64(0); });
  REQUIRE(srcs);
  read->release();
  pipeline<std::int64_t> p;
  for (auto& s : *srcs)
    p.add(std::move(s), "v");
  auto res = p.reduce(sum_by_label()).run();
  REQUIRE(res);
  CHECK(res->emitted == 0);
}
