// flow-etl aggregate as a user runs it on their own table: quoted,
// mixed-case and non-ASCII names, NULLs in keys and values, money in
// numeric(12,2), doubles built to break naive summation, booleans, dates and
// timestamps; every aggregate compared with the server's GROUP BY, the
// output table with the server's result (EXCEPT both ways), partitions and
// queries giving identical output, injection attempts harmless, bad input
// one line and exit 2 with the previous output untouched. Also the --agg
// grammar itself (no database).

#include <catch2/catch.hpp>

#include <caf/binary_deserializer.hpp>
#include <caf/binary_serializer.hpp>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <stdexcept>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "common/cli.hpp"
#include "etl/agg_plan.hpp"
#include "etl/agg_spec.hpp"
#include "etl/agg_values.hpp"
#include "flow/detail/u64_set.hpp"
#include "flow/exact_sum.hpp"
#include "flow/options.hpp"
#include "flow/pg/connection.hpp"
#include "json_fields.hpp"
#include "pg_fixture.hpp"
#include "run_program.hpp"

using namespace flow;
using namespace flow::test;
using flow::apps::agg_func;

namespace {

const std::string prog = FLOW_ETL_PATH;

/// `flow-etl aggregate` of `table` in `schema`, grouped by k, with `aggs`
/// as JSON, and `extra` options.
run_result aggregate_in(const std::string& schema, const std::string& table,
                        const std::string& aggs,
                        const std::vector<std::string>& extra = {}) {
  std::vector<std::string> args{"aggregate", "--db",       conninfo(),
                                "--schema",  schema,       "--table",
                                table,       "--group-by", "k",
                                "--agg",     aggs,         "--json"};
  args.insert(args.end(), extra.begin(), extra.end());
  return run_program(prog, args);
}

/// `aggregate_in` of table "f".
run_result aggregate_f(const std::string& schema, const std::string& aggs,
                       const std::vector<std::string>& extra = {}) {
  return aggregate_in(schema, "f", aggs, extra);
}

/// A fresh schema (named after `hint`) with table "f" (`columns`) holding
/// the rows of `select`. Autovacuum is off for it: its statistics are the
/// ones the test's own ANALYZE makes, or none.
std::string table_f(const std::string& hint, const std::string& columns,
                    const std::string& select) {
  auto schema = fresh_schema(hint);
  auto t = pg::table_name{schema, "f"}.quoted();
  exec("CREATE TABLE " + t + " (" + columns
       + ") WITH (autovacuum_enabled = false)");
  exec("INSERT INTO " + t + " " + select);
  return schema;
}

/// Adds to `s` the limbs of `x` in window `w`, computed in double as the
/// server computes them (apps/etl/agg_plan.cpp, float_limbs_sql), each
/// required to be an integer of at most `bound` in magnitude.
void add_limbs(double x, apps::limb_window w, exact_fsum& s, double bound) {
  // The server's arithmetic (float_limbs_sql): R_k = rint(x * 2^(53k - E)),
  // the last one not rounded.
  for (int k = 1; k <= w.limbs; ++k) {
    double r = x * std::ldexp(1.0, 53 * k - w.top);
    double l = k < w.limbs ? std::rint(r) : r;
    if (k > 1)
      l -= std::rint(x * std::ldexp(1.0, 53 * (k - 1) - w.top)) * 0x1p53;
    REQUIRE(l == std::floor(l));
    REQUIRE(std::fabs(l) <= bound);
    auto mag = static_cast<std::uint64_t>(std::fabs(l));
    std::uint32_t digits[2] = {static_cast<std::uint32_t>(mag),
                               static_cast<std::uint32_t>(mag >> 32)};
    REQUIRE(s.add_scaled(l < 0, digits, 2, w.top - 53 * k, 0));
  }
}

/// A one-line error, exit code 2, nothing on stdout.
void check_one_line_error(const run_result& res) {
  INFO("stdout: " << res.out << "\nstderr: " << res.err);
  CHECK(res.rc == 2);
  CHECK(lines_of(res.err).size() == 1);
  CHECK(res.err.rfind("flow-etl: error: ", 0) == 0);
  CHECK(res.out.empty());
}

/// A schema with the table "Sales Data": every awkward case at once.
std::string make_sales(const std::string& hint, int rows = 3000) {
  auto schema = fresh_schema(hint);
  auto t = pg::table_name{schema, "Sales Data"}.quoted();
  exec("CREATE TABLE " + t
       + " (\"Region\" text, day date, \"is ok\" boolean, \"we\"\"ird\" int, "
         "cents bigint, price numeric(12,2), ratio double precision, "
         "at timestamptz, big numeric)");
  // ratio: 1e16, 1, -1e16, ... plus small values: a naive float sum loses
  // the 1s; region: NULLs and non-ASCII; values NULL now and then.
  exec("INSERT INTO " + t
       + " SELECT CASE i % 6 WHEN 0 THEN NULL WHEN 1 THEN 'Zürich' "
         "WHEN 2 THEN 'köln' WHEN 3 THEN 'Ålesund' WHEN 4 THEN '東京' "
         "ELSE 'Oslo' END, date '2024-02-27' + (i % 4), "
         "CASE WHEN i % 7 = 0 THEN NULL ELSE i % 2 = 0 END, i % 13, "
         "CASE WHEN i % 11 = 0 THEN NULL ELSE (i * 7919) % 100003 - 50000 END, "
         "CASE WHEN i % 9 = 0 THEN NULL ELSE ((i * 31) % 100000) / 100.0 END, "
         "CASE i % 4 WHEN 0 THEN 1e16 WHEN 1 THEN 1.0 WHEN 2 THEN -1e16 "
         "ELSE 0.1 * (i % 10) END, "
         "timestamptz '2024-01-01 00:00:00+02' + i * interval '1 minute "
         "0.25 second', "
         "(i % 97)::numeric * 1000000000000.123 "
         "FROM generate_series(1, "
       + std::to_string(rows) + ") i");
  exec("ANALYZE " + t);
  return schema;
}

/// Every line of stdout but the JSON summary (the last).
std::vector<std::string> group_lines(const run_result& res) {
  auto lines = lines_of(res.out);
  if (!lines.empty())
    lines.pop_back();
  return lines;
}

const std::string all_aggs
  = "count(*), count(cents), sum(cents), avg(cents), min(cents), "
    "max(cents), stddev(cents), sum(price), avg(price), min(price), "
    "max(price) AS \"Max Price\", sum(ratio), avg(ratio), min(ratio), "
    "max(ratio), stddev(ratio), count(distinct \"we\"\"ird\"), "
    "approx_count_distinct(cents), quantile(cents, 0.5), "
    "quantile(price, 0.9), min(at), max(at), min(\"Region\"), "
    "max(day), sum(big), count(\"is ok\")";

} // namespace

// -- the grammar ----------------------------------------------------------------

TEST_CASE("aggregate grammar: functions, quoted names, aliases and default "
          "names",
          "[pg][aggregate]") {
  auto aggs = apps::parse_agg_list(
    "SUM(cents), count(*), Count( DISTINCT \"User Id\" ) as users, "
    "quantile(latency, 0.95), approx_count_distinct(x), avg(\"a\"\"b\")");
  REQUIRE(aggs.size() == 6);
  CHECK(aggs[0].func == agg_func::sum);
  CHECK(aggs[0].name == "sum_cents");
  CHECK(aggs[1].func == agg_func::count_rows);
  CHECK(aggs[1].name == "count");
  CHECK(aggs[2].func == agg_func::count_distinct);
  CHECK(aggs[2].column == "User Id");
  CHECK(aggs[2].name == "users");
  CHECK(aggs[3].func == agg_func::quantile);
  CHECK(aggs[3].q == 0.95);
  CHECK(aggs[3].name == "quantile_latency_0.95");
  CHECK(aggs[4].name == "approx_count_distinct_x");
  CHECK(aggs[5].column == "a\"b");
  CHECK(aggs[5].name == "avg_a\"b");
  CHECK(apps::parse_agg_list("count(distinct x)")[0].name
        == "count_distinct_x");
  // "distinct" alone is a column called distinct.
  CHECK(apps::parse_agg_list("count(distinct)")[0].column == "distinct");
}

TEST_CASE("aggregate grammar: bad lists are refused with the expression named",
          "[pg][aggregate]") {
  auto refused = [](const std::string& text, const std::string& part) {
    INFO(text);
    try {
      apps::parse_agg_list(text);
      FAIL("accepted");
    } catch (const apps::usage_error& e) {
      INFO(e.what());
      CHECK(std::string{e.what()}.find(part) != std::string::npos);
    }
  };
  refused("", "no aggregate");
  refused("sum(cents", "expected ')'");
  refused("median(x)", "unknown function 'median'");
  refused("sum(*)", "only count takes *");
  refused("quantile(x, 1.5)", "q must be a number from 0 to 1");
  refused("quantile(x)", "two arguments");
  refused("count(*), sum(x) AS count", "two aggregates are named 'count'");
  refused("sum(x) sum(y)", "expected ',' or the end");
  refused("sum(\"x)", "unterminated");
  refused("sum(x); DROP TABLE t", "unexpected character ';'");
  auto names = apps::parse_name_list(" region , \"Day, of week\", \"a\"\"b\"");
  REQUIRE(names.size() == 3);
  CHECK(names[0] == "region");
  CHECK(names[1] == "Day, of week");
  CHECK(names[2] == "a\"b");
  CHECK(apps::parse_name_list("").empty());
  CHECK_THROWS_AS(apps::parse_name_list("a,,b"), apps::usage_error);
  CHECK_THROWS_AS(apps::parse_name_list("a,a"), apps::usage_error);
  CHECK_THROWS_AS(apps::parse_name_list("a\"b"), apps::usage_error);
}

TEST_CASE("aggregate push-down: a float sum part's decimal digits become the "
          "limbs a digit-at-a-time conversion gives",
          "[aggregate][pushdown]") {
  // The reference: one decimal digit a pass over base-2^32 limbs.
  auto reference = [](const std::string& digits) {
    std::vector<std::uint32_t> m;
    for (auto ch : digits) {
      std::uint64_t carry = static_cast<std::uint64_t>(ch - '0');
      for (auto& d : m) {
        auto v = std::uint64_t{d} * 10 + carry;
        d = static_cast<std::uint32_t>(v);
        carry = v >> 32;
      }
      if (carry != 0)
        m.push_back(static_cast<std::uint32_t>(carry));
    }
    return m;
  };
  std::mt19937_64 rng{11};
  for (int i = 0; i < 5000; ++i) {
    // 1 to 80 digits, some with leading zeros, some all nines (the carries).
    auto len = 1 + rng() % 80;
    std::string digits;
    for (std::size_t j = 0; j < len; ++j)
      digits += i % 7 == 0 ? '9'
                : i % 5 == 0 && j < 10 ? '0'
                                       : static_cast<char>('0' + rng() % 10);
    auto sign = i % 2 == 0 ? std::string{} : std::string{"-"};
    auto part = apps::parse_float_sum_part("1075:" + sign + digits);
    INFO(digits);
    REQUIRE(part.digits == reference(digits));
    CHECK(part.negative == (i % 2 == 1));
    CHECK(part.exp2 == 1075 - 52);
  }
  // 2^32 and 2^64 - 1 exactly, zero as no limbs.
  CHECK(apps::parse_float_sum_part("0:4294967296").digits
        == std::vector<std::uint32_t>{0, 1});
  CHECK(apps::parse_float_sum_part("0:18446744073709551615").digits
        == std::vector<std::uint32_t>{0xffffffffu, 0xffffffffu});
  CHECK(apps::parse_float_sum_part("0:000").digits.empty());
  CHECK_THROWS_AS(apps::parse_float_sum_part("0:12x4"), std::runtime_error);
}

TEST_CASE("aggregate push-down: the server's float sum fields add exactly, "
          "and a field that is not one is refused naming it",
          "[pg][aggregate][pushdown]") {
  // A field is "B:S": the sum S of the bucket's values scaled by 2^(52 - B).
  auto sum_of = [](std::initializer_list<const char*> fields) {
    exact_fsum s;
    for (auto f : fields)
      apps::add_float_sum_field(s, f);
    return s.value();
  };
  CHECK(sum_of({"0:4503599627370496"}) == 1.0);
  CHECK(sum_of({"0:-4503599627370496"}) == -1.0);
  CHECK(sum_of({"8:3"}) == std::ldexp(3.0, -44));
  // The least subnormal, in the subnormals' bucket (scaled by 2^1132).
  CHECK(sum_of({"-1080:288230376151711744"}) == std::ldexp(1.0, -1074));
  // 2^53 + 1 cannot be one double: the exact sum rounds once, at the end.
  CHECK(sum_of({"56:562949953421312", "0:4503599627370496",
                "0:4503599627370496"})
        == 9007199254740994.0);
  // A sum beyond 2^64, in more than two 32-bit digits.
  CHECK(sum_of({"100:340282366920938463463374607431768211456"})
        == std::ldexp(1.0, 176));
  // Non-finite buckets: NaN; +inf count + 2^40 * -inf count.
  CHECK(std::isnan(sum_of({"NaN:2"})));
  CHECK(sum_of({"Infinity:3"}) == std::numeric_limits<double>::infinity());
  CHECK(sum_of({"Infinity:2199023255552"})
        == -std::numeric_limits<double>::infinity());
  CHECK(std::isnan(sum_of({"Infinity:1099511627777"})));
  auto refused = [](const char* field, const std::string& why) {
    INFO(field);
    exact_fsum s;
    s.add(2.5);
    try {
      apps::add_float_sum_field(s, field);
      FAIL("accepted");
    } catch (const std::runtime_error& e) {
      INFO(e.what());
      CHECK(std::string{e.what()}.find(std::string{"'"} + field + "'")
            != std::string::npos);
      CHECK(std::string{e.what()}.find(why) != std::string::npos);
    }
    // Nothing of a refused field joins the sum.
    CHECK(s.value() == 2.5);
    CHECK(s.count() == 1);
  };
  refused("4503599627370496", "no ':'");
  refused("0:", "no sum");
  refused("0:-", "no sum");
  refused("0:12a", "the sum is not an integer");
  refused("0:1.5", "the sum is not an integer");
  refused("x:12", "the bucket is not an integer");
  refused("8x:12", "the bucket is not an integer");
  refused(":12", "the bucket is not an integer");
  refused("1100:1", "beyond the exact float sum's range");
  refused("-1080:1", "not a multiple of 2^-1074"); // 2^-1132
  // Limbs: several parts, each S * 2^(B - 52), added together.
  CHECK(sum_of({"1:4503599627370496;0:4503599627370496"}) == 3.0);
  CHECK(sum_of({"0:4503599627370496;-53:-4503599627370496"})
        == 1.0 - std::ldexp(1.0, -53));
  // A refused part, even the last, leaves the sum as it was.
  for (auto field : {"0:4503599627370496;x:2", "0:1;0:", "0:1;1100:1"}) {
    INFO(field);
    exact_fsum s;
    s.add(2.5);
    CHECK_THROWS_AS(apps::add_float_sum_field(s, field), std::runtime_error);
    CHECK(s.value() == 2.5);
    CHECK(s.count() == 1);
  }
}

TEST_CASE("aggregate push-down: the 48-byte float sum state equals the "
          "exact sum of its fields, and what does not fit it moves to the heap",
          "[pg][aggregate][pushdown]") {
  using apps::part_fsum;
  auto bytes = [](part_fsum& x) {
    std::vector<char> buf;
    caf::binary_serializer sink{nullptr, buf};
    REQUIRE(!sink(x));
    return buf;
  };
  auto load = [](const std::vector<char>& buf, part_fsum& x) {
    caf::binary_deserializer source{nullptr, buf};
    return source(x);
  };
  auto check_same = [&](part_fsum& p, const exact_fsum& e) {
    CHECK(p.exact() == e);
    auto v = p.value();
    auto w = e.value();
    CHECK((v == w || (std::isnan(v) && std::isnan(w))));
    CHECK(std::signbit(v) == std::signbit(w));
    // Serialised and loaded: the same sum, and equal sums give equal bytes.
    auto b = bytes(p);
    part_fsum q;
    REQUIRE(!load(b, q));
    CHECK(q.exact() == e);
    CHECK(q.compact() == p.compact());
    CHECK(bytes(q) == b);
  };
  // Random limbs of random windows (as the server sends them), in fields of
  // one to four parts, against exact_fsum; then merged in halves.
  std::uint64_t z = 11;
  auto next = [&] {
    z = z * 6364136223846793005ULL + 1442695040888963407ULL;
    return z;
  };
  for (int round = 0; round < 200; ++round) {
    INFO("round " << round);
    int limbs = 1 + static_cast<int>(next() % 4);
    int top = static_cast<int>(next() % 400) - 200;
    part_fsum all;
    part_fsum half[2];
    exact_fsum expected;
    for (int row = 0; row < 50; ++row) {
      std::string field;
      for (int k = 1; k <= limbs; ++k) {
        // A partition's sum of limbs: up to 2^53 times a few thousand rows.
        auto mag = next() >> (1 + next() % 63);
        bool neg = next() % 2 == 0;
        auto b = top - 53 * k + 52;
        field += (k > 1 ? ";" : "") + std::to_string(b) + ":"
                 + (neg && mag != 0 ? "-" : "") + std::to_string(mag);
        std::uint32_t d[2] = {static_cast<std::uint32_t>(mag),
                              static_cast<std::uint32_t>(mag >> 32)};
        REQUIRE(expected.add_scaled(neg && mag != 0, d, 2, b - 52, 0));
      }
      all.add_field(field);
      half[row % 2].add_field(field);
    }
    CHECK(all.compact());
    check_same(all, expected);
    half[0].merge(half[1]);
    CHECK(half[0].compact());
    check_same(half[0], expected);
    CHECK(half[0] == all);
  }
  // The buckets' fields: NaN, the infinities, and parts far apart (2^1000
  // and 2^-1000) leave the integer for the heap; still exact, and merging
  // or adding after that keeps being exact.
  for (auto fields : std::vector<std::vector<std::string>>{
         {"0:4503599627370496", "NaN:2"},
         {"Infinity:3", "0:1"},
         {"0:-4503599627370496", "Infinity:2199023255552"},
         {"1052:4503599627370496", "-948:4503599627370496",
          "-948:-4503599627370496", "1052:-4503599627370496", "0:3"},
         {"-1080:288230376151711744", "-1080:576460752303423488", "0:1"},
         // Rounded from the integer: the least subnormal, subnormals,
         // DBL_MAX, and DBL_MAX plus half an ulp (a tie: to even, inf),
         // ties between two doubles either way, negative too.
         {"-1022:1"},
         {"-1022:3", "-1021:-1", "-970:4503599627370495"},
         {"1023:9007199254740991", "1021:1"},
         {"1023:9007199254740991", "1022:1"},
         {"1023:-9007199254740991", "1022:-1"},
         {"52:9007199254740993"},
         {"52:9007199254740995"},
         {"52:-9007199254740993", "-200:1"},
         {"200:9007199254740993", "0:-1"},
         {"200:9007199254740993", "0:1"},
         // 2^63 - 1 at 2^200 and at 2^0: 263 bits, more than the integer.
         {"252:9223372036854775807", "52:-9223372036854775807", "52:1"}}) {
    part_fsum p;
    part_fsum merged;
    exact_fsum e;
    for (auto& f : fields) {
      INFO(f);
      p.add_field(f);
      part_fsum one;
      one.add_field(f);
      merged.merge(one);
      apps::add_float_sum_field(e, f);
    }
    check_same(p, e);
    check_same(merged, e);
  }
  {
    part_fsum p;
    p.add_field("0:1");
    CHECK(p.compact());
    p.add_field("1052:4503599627370496");
    p.add_field("-948:1");
    CHECK_FALSE(p.compact());
  }
  // A refused field changes nothing, in the integer or on the heap.
  for (bool heap : {false, true}) {
    part_fsum p;
    p.add_field("0:4503599627370496");
    if (heap)
      p.add_field("NaN:1");
    auto before = p.exact();
    for (auto bad : {"0:12a", "x:1", "0:1;y", "0:1;-1200:1",
                     "0:1;2000:4503599627370496"}) {
      INFO(bad);
      CHECK_THROWS_AS(p.add_field(bad), std::runtime_error);
      CHECK(p.exact() == before);
      CHECK(p.compact() == !heap);
    }
  }
  // Loading refuses an integer beyond exact_fsum's range (a corrupt state
  // from a checkpoint or a node).
  {
    part_fsum p;
    p.add_field("0:3");
    auto b = bytes(p);
    // The layout: 4 words of m, then e (int32).
    REQUIRE(b.size() >= 36);
    std::int32_t e = 2000;
    std::memcpy(b.data() + 32, &e, sizeof(e));
    part_fsum q;
    CHECK(load(b, q));
  }
}

TEST_CASE("aggregate push-down: the compact integer and decimal sums and "
          "decimal extremes merge as the decimal_sum they replace, and refuse "
          "what it refuses",
          "[pg][aggregate][pushdown]") {
  auto dec = [](const char* text) { return parse_decimal(text).value(); };
  auto round_trip = [](auto& x) {
    std::vector<char> buf;
    caf::binary_serializer sink{nullptr, buf};
    REQUIRE(!sink(x));
    std::decay_t<decltype(x)> y;
    caf::binary_deserializer source{nullptr, buf};
    REQUIRE(!source(y));
    return y;
  };
  // Partial sums of bigints, in any grouping: the decimal_sum's sum.
  std::vector<const char*> parts{"9223372036854775807", "-5", "123456789012345678901234",
                                 "0", "-99999999999999999999999999"};
  apps::int_sum whole;
  apps::int_sum halves[2];
  decimal_sum reference;
  for (std::size_t i = 0; i < parts.size(); ++i) {
    whole.add(dec(parts[i]));
    halves[i % 2].add(dec(parts[i]));
    reference.add(dec(parts[i]));
  }
  CHECK(halves[1].merge(halves[0]));
  for (auto* s : {&whole, &halves[1]}) {
    REQUIRE(s->sum());
    CHECK(to_string(*s->sum()) == to_string(*reference.sum()));
    CHECK(s->ok());
  }
  CHECK(whole == halves[1]);
  CHECK(round_trip(whole) == whole);
  // Beyond 38 digits: not ok, no sum, and a merge says so.
  apps::int_sum big;
  big.add(dec("99999999999999999999999999999999999999"));
  CHECK(big.ok());
  apps::int_sum one;
  one.add(dec("1"));
  CHECK(big.merge(one)); // exact, but beyond 38 digits:
  CHECK_FALSE(big.ok());
  CHECK_FALSE(big.sum());
  // A total beyond 38 digits that a later partial sum brings back is fine,
  // in any order of the merges (the engine judges the final total).
  apps::int_sum back;
  back.add(dec("99999999999999999999999999999999999999"));
  apps::int_sum minus;
  minus.add(dec("-99999999999999999999999999999999999999"));
  CHECK(back.merge(one));
  CHECK(back.merge(minus));
  REQUIRE(back.sum());
  CHECK(to_string(*back.sum()) == "1");
  // A partial sum with a fraction is not an integer sum.
  apps::int_sum frac;
  frac.add(dec("1.5"));
  CHECK_FALSE(frac.ok());
  // Extremes: equal values keep the larger scale, in any order, as a
  // decimal_sum's min and max do.
  std::vector<const char*> xs{"1.0", "-2.50", "1.00", "-2.5", "7", "7.000", "-2.500"};
  for (int order = 0; order < 2; ++order) {
    apps::decimal_extreme<false> lo;
    apps::decimal_extreme<true> hi;
    apps::decimal_extreme<false> lo2[2];
    apps::decimal_extreme<true> hi2[2];
    decimal_sum ref;
    for (std::size_t k = 0; k < xs.size(); ++k) {
      auto i = order == 0 ? k : xs.size() - 1 - k;
      lo.add(dec(xs[i]));
      hi.add(dec(xs[i]));
      lo2[k % 2].add(dec(xs[i]));
      hi2[k % 2].add(dec(xs[i]));
      ref.add(dec(xs[i]));
    }
    lo2[1].merge(lo2[0]);
    hi2[0].merge(hi2[1]);
    CHECK(to_string(lo.v) == "-2.500");
    CHECK(to_string(hi.v) == "7.000");
    CHECK(to_string(lo.v) == to_string(*ref.min()));
    CHECK(to_string(hi.v) == to_string(*ref.max()));
    CHECK(lo2[1] == lo);
    CHECK(hi2[0] == hi);
    CHECK(lo.n == xs.size());
    CHECK(round_trip(lo) == lo);
    CHECK(round_trip(hi) == hi);
  }
  // Partial sums of a numeric column at mixed scales (unconstrained
  // numeric), in any grouping: the decimal_sum's sum, at the largest scale.
  std::vector<const char*> dparts{"12.5", "-0.125", "99999999999999999999.1",
                                  "0.000", "-3", "1e-7", "4.20"};
  for (int order = 0; order < 2; ++order) {
    apps::dec_sum dwhole;
    apps::dec_sum dhalves[3];
    decimal_sum dref;
    for (std::size_t k = 0; k < dparts.size(); ++k) {
      auto i = order == 0 ? k : dparts.size() - 1 - k;
      dwhole.add(dec(dparts[i]));
      dhalves[k % 3].add(dec(dparts[i]));
      dref.add(dec(dparts[i]));
    }
    CHECK(dhalves[2].merge(dhalves[0]));
    CHECK(dhalves[2].merge(dhalves[1]));
    for (auto* s : {&dwhole, &dhalves[2]}) {
      REQUIRE(s->sum());
      CHECK(to_string(*s->sum()) == to_string(*dref.sum()));
      CHECK(to_string(*s->sum()) == "100000000000000000012.6750001");
    }
    CHECK(dwhole == dhalves[2]);
    CHECK(round_trip(dwhole) == dwhole);
  }
  // Beyond 38 digits at the common scale: not ok, no sum, and a merge says
  // so, as a decimal_sum.
  apps::dec_sum dbig;
  dbig.add(dec("999999999999999999999999999999999999.99"));
  CHECK(dbig.ok());
  apps::dec_sum dtiny;
  dtiny.add(dec("0.001"));
  // (at scale 3 the total needs more than 128 bits: refused, not rounded)
  CHECK_FALSE(dbig.merge(dtiny));
  CHECK_FALSE(dbig.ok());
  CHECK_FALSE(dbig.sum());
  // Totals past 128 bits on the way, in every order: exact, and equal to
  // the decimal_sum's.
  std::vector<const char*> wide{"99000000000000000000000000000000000000",
                                "99000000000000000000000000000000000000",
                                "-99000000000000000000000000000000000000",
                                "-98000000000000000000000000000000000000"};
  std::vector<std::size_t> order{0, 1, 2, 3};
  do {
    apps::dec_sum merged;
    decimal_sum wref;
    for (auto i : order) {
      apps::dec_sum one_part;
      one_part.add(dec(wide[i]));
      CHECK(merged.merge(one_part));
      wref.add(dec(wide[i]));
    }
    REQUIRE(merged.sum());
    CHECK(to_string(*merged.sum()) == "1000000000000000000000000000000000000");
    CHECK(to_string(*merged.sum()) == to_string(*wref.sum()));
  } while (std::next_permutation(order.begin(), order.end()));
  // A total past 2^128 that wraps to a 38-digit number is still no sum.
  apps::dec_sum wrapped;
  for (int i = 0; i < 4; ++i) {
    apps::dec_sum one_part;
    one_part.add(dec(wide[0]));
    CHECK(wrapped.merge(one_part));
  }
  CHECK_FALSE(wrapped.ok());
  CHECK_FALSE(wrapped.sum());
  decimal_sum dbig_ref;
  dbig_ref.add(dec("999999999999999999999999999999999999.99"));
  dbig_ref.add(dec("0.001"));
  CHECK_FALSE(dbig_ref.ok());
  // A scale read back that no decimal has is not a sum.
  apps::dec_sum bad;
  bad.scale = 40;
  CHECK_FALSE(round_trip(bad).ok());
  // Extremes do not sum: values whose sum has more than 38 digits are fine.
  apps::decimal_extreme<true> huge;
  huge.add(dec("99999999999999999999999999999999999999"));
  huge.add(dec("99999999999999999999999999999999999999"));
  CHECK(to_string(huge.v) == "99999999999999999999999999999999999999");
}

TEST_CASE("aggregate push-down: float sums in limbs are exact over their "
          "window, and values the limbs cannot hold keep the buckets",
          "[pg][aggregate][pushdown]") {
  using apps::float_limbs_window;
  using apps::float_range;
  // Only NULLs and zeros: one limb.
  auto none = float_limbs_window(float_range{});
  REQUIRE(none);
  CHECK(none->limbs == 1);
  // NaN, infinities, garbage, an impossible range: the buckets.
  for (auto [mx, mn] : std::vector<std::pair<const char*, const char*>>{
         {"NaN", "1"},
         {"Infinity", "1"},
         {"1", "NaN"},
         {"abc", "1"},
         {"1", ""},
         {"1", "2"},
         {"-1", "1"},
         {"1e20", "1e-30"},   // 5 limbs: 221 bits
         {"1e300", "1e-300"}, // far too wide
         // Tiny values: the scales would leave the doubles.
         {"1e-290", "1e-300"},
         {"5e-324", "5e-324"}}) {
    INFO(mx << " " << mn);
    CHECK_FALSE(float_limbs_window(float_range{mx, mn}));
  }
  auto w4 = float_limbs_window(float_range{"1e16", "1e-20"});
  REQUIRE(w4);
  CHECK(w4->limbs == 4);
  // The server's arithmetic, in C++: every limb an integer below 2^53 in
  // magnitude, and the limbs' sum the values' exact sum, for values
  // anywhere in the window (the ends, random exponents and mantissas,
  // both signs, subnormals where the window reaches them, zeros).
  // SplitMix64 (mix64 adds the increment to its argument).
  std::uint64_t z = 42;
  auto next = [&] {
    auto x = detail::mix64(z);
    z += 0x9E3779B97F4A7C15ULL;
    return x;
  };
  for (auto [mx, mn] : std::vector<std::pair<double, double>>{
         {100.0, 3.1e-6},
         {1e16, 0.1},
         {1e16, 1e-20},
         {1.7976931348623157e308, 1e270},
         {1e-200, 1e-230},
         {1.0, 1.0},
         {0.5, 0.5}}) {
    auto text = [](double x) {
      char buf[64];
      auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), x);
      (void) ec;
      return std::string{buf, end};
    };
    auto w = float_limbs_window(float_range{text(mx), text(mn)});
    INFO(mx << " " << mn);
    REQUIRE(w);
    CHECK(w->limbs <= apps::max_limbs);
    exact_fsum direct;
    exact_fsum limbs;
    int emin = std::ilogb(mn);
    int emax = std::ilogb(mx);
    for (int i = 0; i < 4000; ++i) {
      double x;
      if (i == 0)
        x = mx;
      else if (i == 1)
        x = mn;
      else if (i == 2)
        x = 0.0;
      else {
        auto r = next();
        auto e = emin + static_cast<int>(r % static_cast<std::uint64_t>(
                                           emax - emin + 1));
        auto m = 1.0 + static_cast<double>(next() >> 12) * 0x1p-52;
        x = std::clamp(std::ldexp(m, e), mn, mx);
        if (r & (1ULL << 63))
          x = -x;
      }
      direct.add(x);
      add_limbs(x, *w, limbs, 0x1p53);
    }
    CHECK(limbs.value() == direct.value());
    CHECK(std::signbit(limbs.value()) == std::signbit(direct.value()));
  }
  // The SQL: one part per limb, B = E - 53k + 52, no bucket; the first
  // limb is the scaled value cast (rounded), the last the scaled value
  // less the rounded one before it.
  auto sql = apps::float_limbs_sql("\"x\"", apps::limb_window{7, 2});
  CHECK(sql == "'6:' || sum((\"x\" * '70368744177664'::float8)::bigint)::text"
               " || ';-47:' || sum((\"x\" * '6.338253001141147e+29'::float8"
               " - round(\"x\" * '70368744177664'::float8) * "
               "'9007199254740992'::float8)::bigint)::text");
  auto three = apps::float_limbs_sql("\"x\"", apps::limb_window{7, 3});
  CHECK(three.find(" || ';-47:' || sum((round(\"x\" * ") != std::string::npos);
  CHECK(three.find(" || ';-100:' || sum((\"x\" * ") != std::string::npos);
  CHECK(sql.find("ln(") == std::string::npos);
  // The checked form: the same limbs behind a bool_and over the last
  // scale, 2^(53K - E), of the values below 2^(52 - 53K + E) only.
  auto checked = apps::float_limbs_checked_sql("\"x\"",
                                               apps::limb_window{7, 2});
  CHECK(checked == "CASE WHEN bool_and(\"x\" * '6.338253001141147e+29'::float8 = "
                   "floor(\"x\" * '6.338253001141147e+29'::float8)) FILTER "
                   "(WHERE abs(\"x\") < '7.105427357601002e-15'::float8) IS NOT "
                   "FALSE THEN " + sql + " ELSE 'outside' END");
}

TEST_CASE("aggregate push-down: a window guessed from a sample has its "
          "margins, and what it cannot hold is caught, not summed wrongly",
          "[pg][aggregate][pushdown]") {
  using apps::float_guess_window;
  using apps::float_range;
  // No non-zero finite value in the sample: no guess (the exact range).
  for (auto [mx, mn] : std::vector<std::pair<const char*, const char*>>{
         {"", ""},
         {"0", ""},
         {"NaN", "1"},
         {"Infinity", "1"},
         {"1", ""},
         {"1e30", "1e-20"}}) { // with the margins, 5 limbs
    INFO(mx << " " << mn);
    CHECK_FALSE(float_guess_window(float_range{mx, mn}));
  }
  // |x| up to 4 (below 2^3) and down to 1 (lowest bit 2^-52): E = 3 + 1 +
  // 8, the lowest bit 2^(0 - 52 - 17) = 2^-69, so 81 bits in 2 limbs, which
  // reach down to 2^(12 - 106) = 2^-94.
  auto w = float_guess_window(float_range{"4", "1"});
  REQUIRE(w);
  CHECK(w->top == 3 + 1 + apps::guess_top_margin);
  CHECK(w->limbs == 2);
  // The server's arithmetic, in C++, for values the sample did not see:
  // up to 2^9 times above the top (the first limb then passes 2^53 but fits
  // a bigint) the limbs still add exactly and the check holds; a bit below
  // 2^(E - 53K) fails the check.
  auto scale = std::ldexp(1.0, 53 * w->limbs - w->top);
  exact_fsum direct;
  exact_fsum limbs;
  for (double x : {4.0, 1.0, -3.999999999999999, 0x1p12, -0x1p12 * 1.5,
                   0x1p21 * 1.9999999999999998, std::ldexp(1.0, -94),
                   std::ldexp(3.0, -94), 0.1, -1e-9}) {
    INFO(x);
    CHECK(x * scale == std::floor(x * scale));
    direct.add(x);
    add_limbs(x, *w, limbs, 0x1p63);
  }
  CHECK(limbs.value() == direct.value());
  // The check's FILTER: values of 2^(52 - 53K + E) or more in magnitude
  // are integers once scaled, so only smaller ones are checked, and every
  // value that fails the check is one of them.
  auto filter = std::ldexp(1.0, 52 - 53 * w->limbs + w->top);
  for (double x : {std::ldexp(1.0, -95), std::ldexp(3.0, -95), 1e-30,
                   -1e-20}) {
    INFO(x);
    CHECK(x * scale != std::floor(x * scale));
    CHECK(std::fabs(x) < filter);
  }
  std::uint64_t z = 7;
  for (int i = 0; i < 100000; ++i) {
    z = z * 6364136223846793005ULL + 1442695040888963407ULL;
    auto m = 1.0 + static_cast<double>(z >> 12) * 0x1p-52;
    auto x = std::ldexp(m, std::ilogb(filter) + static_cast<int>(z % 40));
    if (x * scale != std::floor(x * scale))
      FAIL(x << " is not an integer once scaled");
  }
  CHECK(filter * scale == 0x1p52);
  CHECK(std::nextafter(filter, 0.0) * scale < 0x1p52);
}

TEST_CASE("aggregate values: ISO dates and timestamps decode and print back",
          "[pg][aggregate]") {
  CHECK(apps::parse_iso_date("1970-01-01") == 0);
  CHECK(apps::parse_iso_date("2024-02-29") == 19782);
  CHECK(!apps::parse_iso_date("2023-02-29"));
  CHECK(!apps::parse_iso_date("infinity"));
  for (std::int64_t d : {-800000, -1, 0, 1, 19782, 2932896})
    CHECK(apps::parse_iso_date(apps::format_date(d)) == d);
  CHECK(apps::format_date(apps::parse_iso_date("0044-03-15 BC").value())
        == "0044-03-15 BC");
  CHECK(apps::parse_iso_timestamp("1970-01-01 00:00:01.5+00") == 1500000);
  CHECK(apps::parse_iso_timestamp("1970-01-01 02:00:00+02") == 0);
  CHECK(apps::parse_iso_timestamp("1970-01-01 05:30:00+05:30") == 0);
  for (std::int64_t t : {std::int64_t{-1}, std::int64_t{0},
                         std::int64_t{1700000000123456},
                         std::int64_t{-62135596800000000}})
    CHECK(apps::parse_iso_timestamp(apps::format_timestamp(t, true)) == t);
  CHECK(apps::sql_double(0.1) == "0.1");
  CHECK(apps::sql_double(-1.0 / 0.0) == "-Infinity");
}

TEST_CASE("aggregate rows: cells kept inside the row and on the heap survive "
          "copies, moves and assignments",
          "[pg][aggregate]") {
  // 3 cells live inside the row, one more than inline_cells on the heap;
  // the strings are longer than a short-string buffer, so a double free or
  // a lost move shows (ASan).
  for (std::size_t n : {std::size_t{0}, std::size_t{3},
                        apps::cell_list::inline_cells,
                        apps::cell_list::inline_cells + 1}) {
    INFO(n << " cells");
    apps::cell_list xs;
    xs.resize(n);
    REQUIRE(xs.size() == n);
    for (std::size_t i = 0; i < n; ++i) {
      CHECK(xs[i].null);
      xs[i].null = false;
      xs[i].i = static_cast<std::int64_t>(i);
      xs[i].s = std::string(40, static_cast<char>('a' + i));
    }
    auto check = [n](const apps::cell_list& ys) {
      REQUIRE(ys.size() == n);
      for (std::size_t i = 0; i < n; ++i) {
        CHECK(!ys[i].null);
        CHECK(ys[i].i == static_cast<std::int64_t>(i));
        CHECK(ys[i].s == std::string(40, static_cast<char>('a' + i)));
      }
    };
    apps::cell_list copy{xs};
    check(copy);
    check(xs);
    apps::cell_list moved{std::move(copy)};
    check(moved);
    CHECK(copy.size() == 0); // NOLINT: a moved-from list is empty
    apps::cell_list other;
    other.resize(apps::cell_list::inline_cells + 2);
    other = moved;
    check(other);
    apps::cell_list last;
    last.resize(2);
    last = std::move(other);
    check(last);
    std::vector<apps::agg_row> rows(3);
    for (auto& r : rows)
      r.cells = xs;
    rows.resize(40); // moves the rows into a new buffer
    check(rows[2].cells);
  }
}

// -- against the server ---------------------------------------------------------

TEST_CASE("aggregate: every aggregate over awkward columns verifies against "
          "the server's GROUP BY",
          "[pg][aggregate]") {
  auto schema = make_sales("agg_all");
  for (auto parts : {"1", "3"}) {
    INFO("partitions " << parts);
    auto res = run_program(prog, {"aggregate", "--db", conninfo(), "--schema",
                                  schema, "--table", "Sales Data",
                                  "--group-by", "Region, \"is ok\"", "--agg",
                                  all_aggs, "--verify", "--json",
                                  "--partitions", parts});
    INFO("stderr: " << res.err);
    REQUIRE(res.rc == 0);
    auto t = pg::table_name{schema, "Sales Data"}.quoted();
    auto groups = scalar("SELECT count(*) FROM (SELECT 1 FROM " + t
                         + " GROUP BY \"Region\", \"is ok\") g");
    auto lines = lines_of(res.out);
    REQUIRE(std::to_string(lines.size() - 1) == groups);
    auto& summary = lines.back();
    CHECK(json_field(summary, "verified") == "true");
    CHECK(json_field(summary, "balanced") == "true");
    CHECK(json_field(summary, "rows_read") == scalar("SELECT count(*) FROM " + t));
    CHECK(json_field(summary, "partitions") == parts);
    // Independently of --verify: the exact sums of two groups, one with a
    // NULL key part.
    for (auto& line : lines) {
      if (json_field(line, "Region") == "\"Zürich\""
          && json_field(line, "is ok") == "true") {
        CHECK(json_field(line, "sum_cents")
              == scalar("SELECT sum(cents) FROM " + t
                        + " WHERE \"Region\" = 'Zürich' AND \"is ok\""));
        CHECK(json_field(line, "sum_big")
              == scalar("SELECT sum(big) FROM " + t
                        + " WHERE \"Region\" = 'Zürich' AND \"is ok\""));
      }
      if (json_field(line, "Region") == "null"
          && json_field(line, "is ok") == "null")
        CHECK(json_field(line, "count")
              == scalar("SELECT count(*) FROM " + t
                        + " WHERE \"Region\" IS NULL AND \"is ok\" IS NULL"));
    }
  }
}

TEST_CASE("aggregate: floating-point sums are exact where naive summation "
          "is not",
          "[pg][aggregate]") {
  auto schema = fresh_schema("agg_fsum");
  auto t = pg::table_name{schema, "f"}.quoted();
  exec("CREATE TABLE " + t + " (g int, x double precision)");
  exec("INSERT INTO " + t
       + " SELECT i % 3, CASE i % 3 WHEN 0 THEN 1e16 WHEN 1 THEN 1 ELSE "
         "-1e16 END FROM generate_series(0, 29999) i");
  exec("INSERT INTO " + t + " SELECT 9, x FROM (VALUES (1e16), (1.0), "
       "(-1e16), (1.0)) v(x)");
  // Values with 17 significant digits: PostgreSQL 15's float8::numeric keeps
  // 15, so --verify must allow for its reference being off (bench found it).
  // These 300 values sum (exactly, then rounded) to 3473.076923076923;
  // their 15-digit roundings to 3473.0769230769233.
  exec("INSERT INTO " + t
       + " SELECT 8, (i % 1000) / 13.0::float8 FROM generate_series(1, 300) "
         "i");
  auto res = run_program(prog, {"aggregate", "--db", conninfo(), "--schema",
                                schema, "--table", "f", "--group-by", "g",
                                "--agg", "sum(x), avg(x)", "--json",
                                "--verify", "--partitions", "3"});
  INFO("stderr: " << res.err);
  REQUIRE(res.rc == 0);
  int seen = 0;
  for (auto& line : group_lines(res)) {
    if (json_field(line, "g") == "9") {
      ++seen;
      CHECK(json_field(line, "sum_x") == "2");
      CHECK(json_field(line, "avg_x") == "0.5");
    }
    if (json_field(line, "g") == "8") {
      ++seen;
      CHECK(json_field(line, "sum_x") == "3473.076923076923");
    }
  }
  CHECK(seen == 2);
}

TEST_CASE("aggregate: --output equals the server's GROUP BY, replaced "
          "atomically",
          "[pg][aggregate]") {
  auto schema = make_sales("agg_out");
  auto t = pg::table_name{schema, "Sales Data"}.quoted();
  auto out = pg::table_name{schema, "By Region"}.quoted();
  auto res = run_program(
    prog, {"aggregate", "--db", conninfo(), "--schema", schema, "--table",
           "Sales Data", "--group-by", "Region,day", "--agg",
           "sum(cents), count(*), min(price), max(price), sum(price), "
           "count(distinct \"we\"\"ird\"), sum(ratio), min(at), "
           "max(\"Region\") AS last_region",
           "--output", "By Region"});
  INFO("stderr: " << res.err);
  REQUIRE(res.rc == 0);
  auto server = "SELECT \"Region\", day, sum(cents), count(*), min(price), "
                "max(price), sum(price), count(DISTINCT \"we\"\"ird\"), "
                "sum(ratio::numeric)::float8, min(at), max(\"Region\" "
                "COLLATE \"C\") FROM "
                + t + " GROUP BY \"Region\", day";
  CHECK(scalar("SELECT count(*) FROM (SELECT * FROM " + out + " EXCEPT "
               + server + ") d")
        == "0");
  CHECK(scalar("SELECT count(*) FROM (" + server + " EXCEPT SELECT * FROM "
               + out + ") d")
        == "0");
  CHECK(scalar("SELECT count(*) FROM " + out)
        == scalar("SELECT count(*) FROM (" + server + ") s"));
  // The group columns keep their types; aggregates have documented ones.
  CHECK(scalar("SELECT string_agg(format_type(atttypid, atttypmod), ',' "
               "ORDER BY attnum) FROM pg_attribute WHERE attrelid = '"
               + out + "'::regclass AND attnum > 0")
        == "text,date,numeric,bigint,numeric(12,2),numeric(12,2),numeric,"
           "bigint,double precision,timestamp with time zone,text");

  SECTION("a failing run leaves the previous output untouched") {
    auto before = scalar("SELECT md5(string_agg(t::text, '|' ORDER BY "
                         "t::text)) FROM "
                         + out + " t");
    // 40 significant digits: beyond the 38 of the exact sums.
    exec("INSERT INTO " + t + " (\"Region\", big) VALUES ('x', "
         "1234567890123456789012345678901234567890)");
    auto bad = run_program(prog, {"aggregate", "--db", conninfo(), "--schema",
                                  schema, "--table", "Sales Data",
                                  "--group-by", "Region", "--agg",
                                  "sum(big)", "--output", "By Region"});
    check_one_line_error(bad);
    CHECK(bad.err.find("big") != std::string::npos);
    CHECK(bad.err.find("38") != std::string::npos);
    CHECK(scalar("SELECT md5(string_agg(t::text, '|' ORDER BY t::text)) FROM "
                 + out + " t")
          == before);
  }
}

TEST_CASE("aggregate: partitions, a query and --by give identical groups",
          "[pg][aggregate]") {
  auto schema = make_sales("agg_same");
  auto run = [&](std::vector<std::string> extra) {
    std::vector<std::string> args{"aggregate", "--db", conninfo(),
                                  "--schema", schema,  "--group-by",
                                  "day,Region", "--agg",
                                  "sum(cents), sum(ratio), count(*), "
                                  "min(price), stddev(ratio), "
                                  "count(distinct \"Region\")",
                                  "--json"};
    args.insert(args.end(), extra.begin(), extra.end());
    auto res = run_program(prog, args);
    INFO("stderr: " << res.err);
    REQUIRE(res.rc == 0);
    return group_lines(res);
  };
  auto one = run({"--table", "Sales Data", "--partitions", "1"});
  CHECK(one.size() >= 10);
  CHECK(run({"--table", "Sales Data", "--partitions", "3"}) == one);
  CHECK(run({"--table", "Sales Data", "--partitions", "3", "--by",
             "we\"ird"})
        == one);
  CHECK(run({"--table", "Sales Data", "--partitions", "2", "--batch", "7",
             "--reducers", "3"})
        == one);
  // Partials per batch (--combine 1), and many tiny batches folded together.
  CHECK(run({"--table", "Sales Data", "--partitions", "1", "--combine", "1"})
        == one);
  CHECK(run({"--table", "Sales Data", "--partitions", "2", "--batch", "7",
             "--combine", "64", "--credits", "200"})
        == one);
  CHECK(run({"--query", "SELECT * FROM \"" + schema + "\".\"Sales Data\""})
        == one);
}

TEST_CASE("aggregate: --where and --query filter and verify and no group "
          "gives one row even over no rows",
          "[pg][aggregate]") {
  auto schema = make_sales("agg_where", 500);
  auto t = pg::table_name{schema, "Sales Data"}.quoted();
  auto res = run_program(prog, {"aggregate", "--db", conninfo(), "--schema",
                                schema, "--table", "Sales Data", "--where",
                                "cents > 0 AND \"Region\" <> 'Oslo'", "--agg",
                                "count(*), sum(cents)", "--json", "--verify"});
  INFO("stderr: " << res.err);
  REQUIRE(res.rc == 0);
  auto g = group_lines(res);
  REQUIRE(g.size() == 1);
  CHECK(json_field(g[0], "count")
        == scalar("SELECT count(*) FROM " + t
                  + " WHERE cents > 0 AND \"Region\" <> 'Oslo'"));
  auto none = run_program(prog, {"aggregate", "--db", conninfo(), "--schema",
                                 schema, "--table", "Sales Data", "--where",
                                 "false", "--agg", "count(*), sum(cents)",
                                 "--json", "--verify"});
  REQUIRE(none.rc == 0);
  auto ng = group_lines(none);
  REQUIRE(ng.size() == 1);
  CHECK(json_field(ng[0], "count") == "0");
  CHECK(json_field(ng[0], "sum_cents") == "null");
  auto q = run_program(prog, {"aggregate", "--db", conninfo(), "--query",
                              "SELECT \"Region\" AS r, cents * 2 AS c2 FROM "
                                + t,
                              "--group-by", "r", "--agg", "sum(c2), min(c2)",
                              "--verify"});
  INFO("stderr: " << q.err);
  CHECK(q.rc == 0);
  CHECK(q.out.find("verified") != std::string::npos);
  CHECK(q.out.find("query (one stream)") != std::string::npos);
}

TEST_CASE("aggregate: injection attempts in names are refused or harmless",
          "[pg][aggregate]") {
  auto schema = make_sales("agg_inject", 200);
  auto keep = pg::table_name{schema, "keep_me"}.quoted();
  exec("CREATE TABLE " + keep + " (x int)");
  auto base = std::vector<std::string>{"aggregate", "--db", conninfo(),
                                       "--schema", schema};
  auto with = [&](std::vector<std::string> extra) {
    auto args = base;
    args.insert(args.end(), extra.begin(), extra.end());
    return run_program(prog, args);
  };
  check_one_line_error(with({"--table", "Sales Data\"; DROP TABLE keep_me; --",
                             "--agg", "count(*)"}));
  check_one_line_error(with({"--table", "Sales Data", "--group-by",
                             "\"Region\"; DROP TABLE keep_me", "--agg",
                             "count(*)"}));
  check_one_line_error(with({"--table", "Sales Data", "--group-by",
                             "Region) FROM x; DROP TABLE keep_me; --",
                             "--agg", "count(*)"}));
  check_one_line_error(with({"--table", "Sales Data", "--agg",
                             "sum(cents); DROP TABLE keep_me"}));
  check_one_line_error(with({"--table", "Sales Data", "--agg", "count(*)",
                             "--where", "true); DROP TABLE keep_me; --"}));
  // An alias is a name like any other: quoted, never executed.
  auto alias = std::string{"c\"); DROP TABLE keep_me; --"};
  auto res = with({"--table", "Sales Data", "--agg",
                   "count(*) AS \"c\"\"); DROP TABLE keep_me; --\"",
                   "--output", "out", "--verify"});
  INFO("stderr: " << res.err);
  CHECK(res.rc == 0);
  CHECK(scalar("SELECT to_regclass('" + keep + "') IS NOT NULL") == "t");
  CHECK(scalar("SELECT attname FROM pg_attribute WHERE attrelid = '"
               + pg::table_name{schema, "out"}.quoted()
               + "'::regclass AND attnum = 1")
        == alias);
}

TEST_CASE("aggregate: bad input gives one line naming the problem and exit 2",
          "[pg][aggregate]") {
  auto schema = make_sales("agg_bad", 100);
  auto with = [&](std::vector<std::string> extra) {
    std::vector<std::string> args{"aggregate", "--db", conninfo(), "--schema",
                                  schema};
    args.insert(args.end(), extra.begin(), extra.end());
    return run_program(prog, args);
  };
  auto named = [](const run_result& res, const std::string& what) {
    check_one_line_error(res);
    INFO(res.err);
    CHECK(res.err.find(what) != std::string::npos);
  };
  named(with({"--table", "Sales Data", "--group-by", "region", "--agg",
              "count(*)"}),
        "no column \"region\"");
  named(with({"--table", "Sales Data", "--agg", "sum(\"Region\")"}),
        "sum() needs a numeric column");
  named(with({"--table", "Sales Data", "--agg", "min(\"is ok\")"}),
        "min() needs a number, text, date or timestamp");
  named(with({"--table", "Sales Data", "--agg", "avg(nope)"}),
        "no column \"nope\"");
  named(with({"--table", "Sales Data", "--agg", "sum(cents"}), "--agg");
  named(with({"--table", "Sales Data", "--agg", "quantile(cents, 2)"}),
        "q must be");
  named(with({"--table", "Sales Data", "--agg", "sum(cents), sum(cents)"}),
        "two aggregates are named 'sum_cents'");
  named(with({"--table", "Sales Data", "--group-by", "day", "--agg",
              "count(*) AS day"}),
        "also a group column");
  named(with({"--table", "No Such Table", "--agg", "count(*)"}),
        "does not exist");
  named(with({"--table", "Sales Data"}), "--agg is required");
  named(with({"--agg", "count(*)"}), "exactly one of --table and --query");
  named(with({"--table", "Sales Data", "--agg", "count(*)", "--where",
              "nocol > 1"}),
        "nocol");
  named(with({"--query", "SELEKT 1", "--agg", "count(*)"}), "syntax");
  named(with({"--table", "Sales Data", "--agg", "count(*)", "--combine",
              "0"}),
        "--combine");
  named(run_program(prog, {"aggregate", "--db",
                           "host=/nonexistent-flow-dir port=1 dbname=x",
                           "--table", "t", "--agg", "count(*)"}),
        "nonexistent-flow-dir");
  make_role("flow_agg_nobody", "agg-nobody-pw-7");
  named(run_program(prog, {"aggregate", "--db",
                           "host=" + server().dir() + " port="
                             + std::to_string(server().port())
                             + " dbname=postgres user=flow_agg_nobody "
                               "password=agg-nobody-pw-7",
                           "--schema", schema, "--table", "Sales Data",
                           "--agg", "count(*)"}),
        "permission denied");
}

TEST_CASE("aggregate: --pushdown sums doubles exactly on the server, "
          "subnormals, huge values, zeros, NaN and infinities included",
          "[pg][aggregate]") {
  // The server sums each double scaled to an integer per exponent bucket
  // (apps/etl/agg_plan.cpp, float_sum_field); the result must be the rows'
  // exactly rounded sum bit for bit, whatever the partitions.
  auto schema = table_f(
    "agg_push_float", "k int, x double precision, y real",
    "SELECT i % 7, CASE i % 12 WHEN 0 THEN 1e300 * (i % 3 - 1) "
    "WHEN 1 THEN 5e-324 * i WHEN 2 THEN -0.0 WHEN 3 THEN NULL "
    "WHEN 4 THEN 1e16 WHEN 5 THEN -1e16 WHEN 6 THEN 2.2250738585072014e-308 "
    "ELSE (i * 0.1234567891234567) * (CASE WHEN i % 2 = 0 THEN -1 "
    "ELSE 1 END) END, i * 0.1 FROM generate_series(1, 6000) i");
  auto t = pg::table_name{schema, "f"}.quoted();
  // Groups of special values: NaN, each infinity, both, only NULL, only
  // zero, sums beyond the largest double and back.
  exec("INSERT INTO " + t
       + " VALUES (100, 'NaN', 1), (100, 1, 1), (101, 'Infinity', 1), "
         "(101, 2, 1), (102, '-Infinity', 1), (103, 'Infinity', 1), "
         "(103, '-Infinity', 1), (104, NULL, NULL), (105, 0, 0), "
         "(105, -0.0, 0), (106, 1.7976931348623157e308, 1), "
         "(106, 1.7976931348623157e308, 1), (107, 1.7976931348623157e308, 1), "
         "(107, 1.7976931348623157e308, 1), (107, -1.7976931348623157e308, 1), "
         "(108, -1e-310, 1), (108, 3e-320, 1)");
  exec("ANALYZE " + t);
  auto run = [&](std::vector<std::string> extra, const std::string& aggs) {
    return aggregate_f(schema, aggs, extra);
  };
  auto aggs = "sum(x), avg(x), count(x), count(*), min(x), max(x)";
  auto rows = run({}, aggs);
  INFO("stderr: " << rows.err);
  REQUIRE(rows.rc == 0);
  REQUIRE(group_lines(rows).size() == 16);
  // Spot checks of the reference itself: the special groups as IEEE says.
  auto line_of = [&](const std::string& k) {
    for (auto& l : group_lines(rows))
      if (l.rfind("{\"k\":" + k + ",", 0) == 0)
        return l;
    return std::string{};
  };
  CHECK(json_field(line_of("100"), "sum_x") == "\"nan\"");
  CHECK(json_field(line_of("101"), "sum_x") == "\"inf\"");
  CHECK(json_field(line_of("102"), "sum_x") == "\"-inf\"");
  CHECK(json_field(line_of("103"), "sum_x") == "\"nan\"");
  CHECK(json_field(line_of("104"), "sum_x") == "null");
  CHECK(json_field(line_of("105"), "sum_x") == "0");
  CHECK(json_field(line_of("106"), "sum_x") == "\"inf\"");
  CHECK(json_field(line_of("107"), "sum_x") == "1.7976931348623157e+308");
  for (auto parts : {"1", "3"}) {
    auto pushed = run({"--pushdown", "--partitions", parts, "--log-level",
                       "info"},
                      aggs);
    INFO("partitions " << parts << " stderr: " << pushed.err);
    REQUIRE(pushed.rc == 0);
    CHECK(pushed.err.find("reading rows") == std::string::npos);
    // NaN and the infinities (and subnormals next to 1e300): the buckets.
    CHECK(pushed.err.find("the exact sum of \"x\" by exponent bucket")
          != std::string::npos);
    CHECK(json_field(lines_of(pushed.out).back(), "mode") == "\"push-down\"");
    CHECK(group_lines(pushed) == group_lines(rows));
  }
  // A real column's values are read as the decimal text the server prints,
  // which the server's own float4 arithmetic would not match: its sums stay
  // on the rows.
  auto real = run({"--pushdown"}, "sum(y)");
  INFO("stderr: " << real.err);
  CHECK(real.rc == 0);
  CHECK(real.err.find("sum(y) cannot be computed exactly by the server")
        != std::string::npos);
  CHECK(json_field(lines_of(real.out).back(), "mode") == "\"table\"");
}

TEST_CASE("aggregate: --pushdown sums doubles in limbs when their range "
          "allows, exactly, and per exponent bucket when it does not",
          "[pg][aggregate]") {
  // x: 0.1 .. 1e16 (3 limbs); y: 1e-20 .. 1e16 (4 limbs); w: 1e-30 ..
  // 1e20 (5 limbs: the buckets). Signs, zeros, -0.0, NULLs, values built to
  // cancel, groups of only NULLs and only zeros.
  auto schema = table_f(
    "agg_push_limbs",
    "k int, x double precision, y double precision, w double precision",
    "SELECT i % 11, CASE i % 9 WHEN 0 THEN 1e16 * (1 - 2 * (i % 2)) "
    "WHEN 1 THEN 0.1 WHEN 2 THEN -0.0 WHEN 3 THEN NULL "
    "ELSE (i * 0.1234567891234567) * (CASE WHEN i % 2 = 0 THEN -1 "
    "ELSE 1 END) END, "
    "CASE i % 5 WHEN 0 THEN 1e-20 * i WHEN 1 THEN 1e16 WHEN 2 THEN -1e16 "
    "ELSE i * 3.3333333333333335 END, "
    "CASE i % 4 WHEN 0 THEN 1e-30 * i WHEN 1 THEN 1e20 ELSE -1e20 END "
    "FROM generate_series(1, 5000) i");
  auto t = pg::table_name{schema, "f"}.quoted();
  exec("INSERT INTO " + t
       + " VALUES (100, NULL, NULL, NULL), (101, 0, -0.0, 0), (101, -0.0, 0, "
         "0), (102, 1e16, 1e16, 1e20), (102, 1, 1e-20, 1e-30), "
         "(102, -1e16, -1e16, -1e20)");
  exec("ANALYZE " + t);
  auto run = [&](std::vector<std::string> extra) {
    return aggregate_f(
      schema, "sum(x), avg(x), sum(y), avg(y), sum(w), avg(w), count(*)",
      extra);
  };
  auto rows = run({});
  INFO("stderr: " << rows.err);
  REQUIRE(rows.rc == 0);
  REQUIRE(group_lines(rows).size() == 14);
  // Group 102: the limbs keep 1 (and 1e-20) beside +-1e16.
  for (auto& l : group_lines(rows))
    if (l.rfind("{\"k\":102,", 0) == 0) {
      CHECK(json_field(l, "sum_x") == "1");
      CHECK(json_field(l, "sum_y") == "1e-20");
      CHECK(json_field(l, "sum_w") == "1e-30");
    }
  for (auto parts : {"1", "3"}) {
    auto pushed = run({"--pushdown", "--partitions", parts, "--log-level",
                       "info"});
    INFO("partitions " << parts << " stderr: " << pushed.err);
    REQUIRE(pushed.rc == 0);
    CHECK(pushed.err.find("the exact sum of \"x\" in 3 limbs")
          != std::string::npos);
    CHECK(pushed.err.find("the exact sum of \"y\" in 4 limbs")
          != std::string::npos);
    CHECK(pushed.err.find("the exact sum of \"w\" by exponent bucket")
          != std::string::npos);
    auto summary = lines_of(pushed.out).back();
    CHECK(json_field(summary, "mode") == "\"push-down\"");
    CHECK(group_lines(pushed) == group_lines(rows));
  }
  // Without w, no bucket: one partial row per group and partition.
  auto limbs_only = "sum(x), avg(y), count(*)";
  auto plain = aggregate_f(schema, limbs_only);
  REQUIRE(plain.rc == 0);
  auto pushed = aggregate_f(schema, limbs_only,
                            {"--pushdown", "--partitions", "1"});
  INFO("stderr: " << pushed.err);
  REQUIRE(pushed.rc == 0);
  CHECK(group_lines(pushed) == group_lines(plain));
  auto summary = lines_of(pushed.out).back();
  CHECK(json_field(summary, "partial_groups") == json_field(summary, "groups"));
}

TEST_CASE("aggregate: --pushdown takes the float range over every "
          "partition",
          "[pg][aggregate]") {
  // Rows in physical order: the partitions (block ranges) see different
  // ranges of x, the smallest values in the first, the largest in the
  // last; a window from the first partition alone would not hold the last
  // one's values (the server would fail to cast them to bigint). y has one
  // NaN, in the last partition only. No statistics (never analysed, no
  // autovacuum): the windows come from the exact range, not a guess.
  auto schema = table_f(
    "agg_push_range", "k int, x double precision, y double precision",
    "SELECT i % 5, CASE WHEN i <= 10000 THEN i * 1.2345678912345e-20 "
    "WHEN i <= 20000 THEN i * 0.5 ELSE 1e16 + i * 2 END, "
    "CASE WHEN i = 29999 THEN 'NaN' ELSE i * 0.25 END "
    "FROM generate_series(1, 30000) i");
  auto rows = aggregate_f(schema, "sum(x), sum(y)");
  INFO("stderr: " << rows.err);
  REQUIRE(rows.rc == 0);
  auto pushed = aggregate_f(schema, "sum(x), sum(y)",
                            {"--pushdown", "--partitions", "3",
                             "--log-level", "info"});
  INFO("stderr: " << pushed.err);
  REQUIRE(pushed.rc == 0);
  CHECK(json_field(lines_of(pushed.out).back(), "partitions") == "3");
  // 1.2e-20 .. 1e16: four limbs, not the one or two of a single partition.
  CHECK(pushed.err.find("the exact sum of \"x\" in 4 limbs (its values")
        != std::string::npos);
  CHECK(pushed.err.find("guessed") == std::string::npos);
  CHECK(pushed.err.find("the exact sum of \"y\" by exponent bucket")
        != std::string::npos);
  CHECK(group_lines(pushed) == group_lines(rows));
  // The range query fails first on a filter that fails on the server: one
  // line naming it and the server's error, exit 2, the previous output
  // untouched.
  auto out = pg::table_name{schema, "out"}.quoted();
  REQUIRE(aggregate_f(schema, "sum(x)", {"--output", "out"}).rc == 0);
  auto before = scalar("SELECT md5(string_agg(t::text, '|' ORDER BY "
                       "t::text)) FROM " + out + " t");
  auto bad = aggregate_f(schema, "sum(x)",
                         {"--pushdown", "--where", "1 / (k - 3) > 0",
                          "--output", "out"});
  check_one_line_error(bad);
  CHECK(bad.err.find("the range of the float sums") != std::string::npos);
  CHECK(bad.err.find("division_by_zero") != std::string::npos);
  CHECK(scalar("SELECT md5(string_agg(t::text, '|' ORDER BY t::text)) FROM "
               + out + " t")
        == before);
}

TEST_CASE("aggregate: --pushdown guesses float windows from the "
          "statistics, and runs again with the exact range when a value "
          "falls outside",
          "[pg][aggregate]") {
  // Analysed with x in 1 .. 4 (full mantissas), then values the statistics
  // never saw: each run must equal the rows' results bit for bit.
  auto schema = table_f("agg_push_guess", "k int, x double precision",
                        "SELECT i % 7, 1 + (i * 0.0012345678912345) % 3 "
                        "FROM generate_series(1, 6000) i");
  auto t = pg::table_name{schema, "f"}.quoted();
  exec("ANALYZE " + t);
  auto aggs = "sum(x), avg(x), count(*)";
  auto check_run = [&](const std::string& what, bool again,
                       const std::string& then) {
    auto rows = aggregate_f(schema, aggs);
    INFO(what << "\nrows stderr: " << rows.err);
    REQUIRE(rows.rc == 0);
    for (auto parts : {"1", "3"}) {
      auto pushed = aggregate_f(schema, aggs,
                                {"--pushdown", "--partitions", parts,
                                 "--log-level", "info"});
      INFO("partitions " << parts << " stderr: " << pushed.err);
      REQUIRE(pushed.rc == 0);
      CHECK(pushed.err.find("the exact sum of \"x\" in 2 limbs, its window "
                            "guessed from the statistics")
            != std::string::npos);
      CHECK((pushed.err.find("did not hold") != std::string::npos) == again);
      CHECK(pushed.err.find(then) != std::string::npos);
      CHECK(json_field(lines_of(pushed.out).back(), "mode")
            == "\"push-down\"");
      CHECK(group_lines(pushed) == group_lines(rows));
    }
  };
  // The sample's own range: guessed, checked, no second run.
  check_run("analysed", false, "guessed");
  // 1e5: above the guessed window (2^12) but within its first limb's
  // bigint: still exact, no second run.
  exec("INSERT INTO " + t + " VALUES (1, 100000.12345678912), (1, -0.0)");
  check_run("above the window", false, "guessed");
  // A value with bits below the window: the check catches it; the exact
  // range then needs 3 limbs. Its group's other values cancel, so that the
  // bits the window would lose show in the sum.
  exec("INSERT INTO " + t
       + " VALUES (9, 3.5), (9, -3.5), (9, 1.2345678912345e-20)");
  check_run("below the window", true,
            "a value outside the window guessed from the statistics");
  check_run("below the window, then", true, "in 3 limbs (its values");
  // A value far above it: the first limb's cast fails on the server.
  exec("DELETE FROM " + t + " WHERE k = 9");
  exec("INSERT INTO " + t + " VALUES (3, 1e30)");
  check_run("far above the window", true, "22003");
  // NaN: the cast fails too, and the exact range keeps the buckets.
  exec("DELETE FROM " + t + " WHERE x = 1e30");
  exec("INSERT INTO " + t + " VALUES (4, 'NaN')");
  check_run("NaN", true, "the exact sum of \"x\" by exponent bucket");
  // Quotes, spaces and capitals in the table's and the column's names: the
  // statistics are found (the guess is logged) and the sums equal the rows'.
  auto odd = pg::table_name{schema, "Sales \"Data'"}.quoted();
  exec("CREATE TABLE " + odd + " (k int, \"Ra 'ti\"\"o\" double precision)");
  exec("INSERT INTO " + odd
       + " SELECT i % 5, i * 0.123456789 FROM generate_series(1, 5000) i");
  exec("ANALYZE " + odd);
  auto odd_aggs = "sum(\"Ra 'ti\"\"o\")";
  auto odd_rows = aggregate_in(schema, "Sales \"Data'", odd_aggs);
  auto odd_pushed = aggregate_in(schema, "Sales \"Data'", odd_aggs,
                                 {"--pushdown", "--log-level", "info"});
  INFO("stderr: " << odd_pushed.err);
  REQUIRE(odd_rows.rc == 0);
  REQUIRE(odd_pushed.rc == 0);
  CHECK(odd_pushed.err.find("the exact sum of \"Ra 'ti\"\"o\" in 2 limbs, its "
                            "window guessed from the statistics")
        != std::string::npos);
  CHECK(group_lines(odd_pushed) == group_lines(odd_rows));
  CHECK(group_lines(odd_rows).size() == 5);
  // A filter failing on the server fails the guessed run, once: one line
  // naming it, exit 2.
  auto bad = aggregate_f(schema, aggs,
                         {"--pushdown", "--where", "1 / (k - 3) > 0"});
  check_one_line_error(bad);
  CHECK(bad.err.find("division_by_zero") != std::string::npos);
}

TEST_CASE("aggregate: --pushdown gives the rows' results and what the "
          "server cannot compute exactly reads rows",
          "[pg][aggregate]") {
  auto schema = make_sales("agg_push", 2000);
  auto run = [&](std::vector<std::string> extra, const std::string& aggs) {
    std::vector<std::string> args{"aggregate", "--db",       conninfo(),
                                  "--schema",  schema,       "--table",
                                  "Sales Data", "--group-by", "Region,day",
                                  "--agg",     aggs,         "--json",
                                  "--verify"};
    args.insert(args.end(), extra.begin(), extra.end());
    return run_program(prog, args);
  };
  auto exact = "count(*), count(price), sum(cents), avg(cents), sum(price), "
               "avg(price), min(price), max(cents), min(ratio), max(at), "
               "min(\"Region\"), sum(big), max(day), sum(ratio), avg(ratio)";
  auto rows = run({}, exact);
  INFO("stderr: " << rows.err);
  REQUIRE(rows.rc == 0);
  for (auto parts : {"1", "3"}) {
    auto pushed = run({"--pushdown", "--partitions", parts}, exact);
    INFO("partitions " << parts << " stderr: " << pushed.err);
    REQUIRE(pushed.rc == 0);
    CHECK(group_lines(pushed) == group_lines(rows));
    auto summary = lines_of(pushed.out).back();
    CHECK(json_field(summary, "mode") == "\"push-down\"");
    CHECK(json_field(summary, "verified") == "true");
    CHECK(json_field(summary, "rows_read") == "2000");
    CHECK(json_field(summary, "partitions") == parts);
    // Each partition returned one row per group: ratio's float sum (1e16,
    // 1 and 0.1 .. 0.9) in limbs, not per exponent bucket.
    CHECK(std::stoull(json_field(summary, "partial_groups"))
          <= std::stoull(json_field(summary, "groups"))
               * std::stoull(parts));
  }
  auto mixed = run({"--pushdown"}, "sum(cents), stddev(ratio)");
  INFO("stderr: " << mixed.err);
  CHECK(mixed.rc == 0);
  CHECK(mixed.err.find("stddev(ratio) cannot be computed exactly by the "
                       "server")
        != std::string::npos);
  CHECK(json_field(lines_of(mixed.out).back(), "mode") == "\"table\"");
  auto query = run_program(prog, {"aggregate", "--db", conninfo(), "--query",
                                  "SELECT 1 AS x", "--agg", "count(*)",
                                  "--pushdown"});
  check_one_line_error(query);
  CHECK(query.err.find("--pushdown needs --table") != std::string::npos);
}

TEST_CASE("aggregate: --pushdown with many groups reads a block range per "
          "core (one partition with --by), each grouped by sorting, and "
          "gives one partition's results",
          "[pg][aggregate][pushdown]") {
  // 3·10^5 groups (above many_groups), each with one row in each half of
  // the heap: the partitions' partial groups must merge. (Eighths and
  // quarters: --verify compares float sums with the server's 15-digit
  // casts, which are exact for these.)
  auto schema = fresh_schema("agg_pdmany");
  exec("CREATE TABLE \"" + schema + "\".t AS "
       "SELECT g AS k, g * 3 - 7 AS v, g / 8.0::float8 AS r "
       "FROM generate_series(1, 300000) AS g UNION ALL "
       "SELECT g, -g, g / 4.0::float8 FROM generate_series(1, 300000) AS g");
  // The estimate the job sees, fixed (a sampled one varies from run to run):
  // half as many distinct keys as rows.
  exec("ALTER TABLE \"" + schema + "\".t ALTER COLUMN k SET (n_distinct = -0.5)");
  exec("ANALYZE \"" + schema + "\".t");
  auto run = [&](std::vector<std::string> extra) {
    std::vector<std::string> args{"aggregate", "--db",       conninfo(),
                                  "--schema",  schema,       "--table",
                                  "t",         "--group-by", "k",
                                  "--agg",     "sum(v), count(*), min(v), "
                                               "max(r), sum(r)",
                                  "--json",    "--verify",   "--pushdown",
                                  "--log-level", "debug"};
    args.insert(args.end(), extra.begin(), extra.end());
    auto res = run_program(prog, args);
    INFO("stderr: " << res.err.substr(0, 2000));
    REQUIRE(res.rc == 0);
    return res;
  };
  auto many = run({});
  CHECK(many.err.find("about 300000 groups: each partition grouped by "
                      "sorting")
        != std::string::npos);
  auto summary = lines_of(many.out).back();
  CHECK(json_field(summary, "partitions")
        == std::to_string(flow::default_reducers()));
  CHECK(json_field(summary, "groups") == "300000");
  CHECK(json_field(summary, "rows_read") == "600000");
  CHECK(json_field(summary, "verified") == "true");
  auto one = run({"--partitions", "1"});
  CHECK(json_field(lines_of(one.out).back(), "partitions") == "1");
  CHECK(json_field(lines_of(one.out).back(), "verified") == "true");
  CHECK(group_lines(many) == group_lines(one));
  // Ranges of a column are not block ranges: one partition, still sorted.
  auto by = run({"--by", "k"});
  CHECK(json_field(lines_of(by.out).back(), "partitions") == "1");
  CHECK(by.err.find("each partition grouped by sorting, 1 partition")
        != std::string::npos);
  CHECK(group_lines(by) == group_lines(one));
  // A group's two rows, one from each half of the heap, add up.
  CHECK(json_field(lines_of(many.out)[41], "sum_v") == "77");
  CHECK(json_field(lines_of(many.out)[41], "count") == "2");
}

TEST_CASE("aggregate: --pushdown keeps a column's min and max in one range "
          "and gives the rows' results",
          "[pg][aggregate]") {
  // The plan: min and max of a range column (integer, double, text) share
  // one slot, in either order; a numeric column's keep two (no range
  // type); min twice reads the same field.
  apps::agg_job job;
  job.table = pg::table_name{"public", "f"};
  job.group_by = {"k"};
  job.aggs = apps::parse_agg_list(
    "max(i), min(i), min(d), max(d), max(t), min(t), min(n), max(n), "
    "min(i) AS again, count(*), min(w), max(at), min(at), max(e)");
  using apps::col_class;
  apps::source_columns src;
  src.columns = {{"k", "integer", col_class::integer},
                 {"i", "bigint", col_class::integer},
                 {"d", "double precision", col_class::floating},
                 {"t", "text", col_class::text},
                 {"n", "numeric", col_class::numeric},
                 {"w", "integer", col_class::integer},
                 {"at", "date", col_class::date},
                 {"e", "bigint", col_class::integer}};
  std::string why_not;
  auto pp = apps::plan_pushdown(apps::plan_job(job, src), why_not);
  REQUIRE(pp);
  auto slot_of = [&](std::size_t a) { return pp->aggs[a].slot; };
  CHECK(slot_of(0) == slot_of(1));
  CHECK(slot_of(2) == slot_of(3));
  CHECK(slot_of(4) == slot_of(5));
  CHECK(slot_of(6) != slot_of(7));
  CHECK(slot_of(8) == slot_of(0));
  CHECK(pp->slots[slot_of(0)].col2 >= 0);
  CHECK(pp->slots[slot_of(0)].col2 != pp->slots[slot_of(0)].col);
  CHECK(pp->slots[slot_of(6)].col2 == -1);
  // Another column's max does not join a min's range; a date's do share.
  CHECK(slot_of(10) != slot_of(13));
  CHECK(pp->slots[slot_of(10)].col2 == -1);
  CHECK(slot_of(11) == slot_of(12));
  // count(*), four ranges, numeric min and max, min(w), max(e) (two
  // integer columns of the same kind: kept apart by column).
  CHECK(pp->slots.size() == 9);

  // Against the rows: NULLs, a group of NULLs only, NaN and the
  // infinities, text ordered by bytes (COLLATE "C").
  // Padded to many pages, so that three partitions each see every group.
  auto schema = table_f(
    "agg_ranges",
    "k integer, i bigint, d double precision, t text, n numeric, pad text",
    "SELECT g % 5, CASE WHEN g % 5 = 4 THEN NULL ELSE g * 7 - 300 END, "
    "CASE WHEN g % 5 = 4 THEN NULL WHEN g = 13 THEN 'NaN' "
    "WHEN g = 21 THEN '-Infinity' WHEN g = 300 THEN 'Infinity' "
    "ELSE g / 7.0 - 2 END, "
    "CASE WHEN g % 5 = 4 THEN NULL WHEN g % 3 = 0 THEN 'Zebra' "
    "WHEN g % 3 = 1 THEN 'apple ' || g ELSE 'Äpfel' END, "
    "CASE WHEN g % 5 = 4 THEN NULL ELSE g * 1.25 END, repeat('x', 300) "
    "FROM generate_series(1, 400) AS g");
  auto aggs = "max(i), min(i), min(d), max(d), max(t), min(t), min(n), "
              "max(n), min(i) AS again, count(*)";
  auto rows = aggregate_f(schema, aggs, {"--verify"});
  INFO("stderr: " << rows.err);
  REQUIRE(rows.rc == 0);
  REQUIRE(group_lines(rows).size() == 5);
  // The group of NULLs has NULL ranges.
  CHECK(group_lines(rows)[4].find("\"min_t\":null") != std::string::npos);
  for (auto parts : {"1", "3"}) {
    auto pushed = aggregate_f(schema, aggs,
                              {"--pushdown", "--partitions", parts,
                               "--verify"});
    INFO("partitions " << parts << " stderr: " << pushed.err);
    REQUIRE(pushed.rc == 0);
    auto summary = lines_of(pushed.out).back();
    CHECK(json_field(summary, "mode") == "\"push-down\"");
    CHECK(json_field(summary, "partitions") == parts);
    // Every partition's partial min and max of every group were merged.
    CHECK(json_field(summary, "partial_groups")
          == std::to_string(5 * std::stoi(parts)));
    CHECK(group_lines(pushed) == group_lines(rows));
  }
}

TEST_CASE("aggregate: the table prints every kind of cell as the server "
          "writes it as text, NULL included",
          "[pg][aggregate]") {
  auto schema = table_f(
    "agg_cells",
    "k text, d double precision, n bigint, t date, m numeric(12,2), "
    "b boolean, ts timestamp",
    "VALUES ('a', 1.5, 1, date '2024-01-02', 1.25, true, "
    "timestamp '2024-01-02 03:04:05.5'), "
    "('a', NULL, NULL, NULL, NULL, NULL, NULL), "
    "('b', NULL, NULL, NULL, NULL, NULL, NULL), "
    "('c', 'Infinity', 7, date '1999-12-31', -0.5, false, "
    "timestamp '1999-12-31 23:59:59'), "
    "('d', 'NaN', -9223372036854775807 - 1, date '2000-02-29', 0, true, "
    "NULL), "
    "('e', -0.1, 2, date '2024-03-01', 99999.99, false, "
    "timestamp '2024-03-01 00:00:00'), "
    "('e', 1e300, 5, NULL, 0.01, true, NULL), "
    "('f', '-0', 0, NULL, NULL, NULL, NULL)");
  auto res = run_program(prog, {"aggregate", "--db", conninfo(), "--schema",
                                schema, "--table", "f", "--group-by", "k",
                                "--agg",
                                "max(d), min(d), min(n), min(t), count(d), "
                                "sum(m), max(ts)"});
  INFO("stderr: " << res.err);
  REQUIRE(res.rc == 0);
  auto lines = lines_of(res.out);
  REQUIRE(lines.size() >= 7);
  auto tokens = [](const std::string& line) {
    std::istringstream in{line};
    std::vector<std::string> xs;
    for (std::string x; in >> x;)
      xs.push_back(x);
    return xs;
  };
  CHECK(tokens(lines[0])
        == std::vector<std::string>{"k", "max_d", "min_d", "min_n", "min_t",
                                    "count_d", "sum_m", "max_ts"});
  auto f = pg::table_name{schema, "f"}.quoted();
  for (std::size_t g = 0; g < 6; ++g) {
    auto k = std::string(1, static_cast<char>('a' + g));
    // The server's own text of the same aggregates (a timestamp is two
    // tokens on both sides).
    auto server = scalar(
      "SELECT concat_ws(' ', k, coalesce(max(d)::text, 'NULL'), "
      "coalesce(min(d)::text, 'NULL'), coalesce(min(n)::text, 'NULL'), "
      "coalesce(min(t)::text, 'NULL'), count(d)::text, "
      "coalesce(sum(m)::text, 'NULL'), coalesce(max(ts)::text, 'NULL')) "
      "FROM "
      + f + " WHERE k = '" + k + "' GROUP BY k");
    INFO("group " << k << ": " << lines[g + 1]);
    CHECK(tokens(lines[g + 1]) == tokens(server));
    // Aligned: the last column is right-aligned, so every line is as wide
    // as the header.
    CHECK(lines[g + 1].size() == lines[0].size());
  }
  // Booleans print as group keys (t, f, NULL), as the server's output
  // function writes them (concat, not the ::text cast's true and false).
  auto by_b = run_program(prog, {"aggregate", "--db", conninfo(), "--schema",
                                 schema, "--table", "f", "--group-by", "b",
                                 "--agg", "count(*)"});
  INFO("stderr: " << by_b.err);
  REQUIRE(by_b.rc == 0);
  auto b_lines = lines_of(by_b.out);
  REQUIRE(b_lines.size() >= 4);
  std::vector<std::vector<std::string>> mine;
  for (std::size_t i = 1; i <= 3; ++i)
    mine.push_back(tokens(b_lines[i]));
  std::sort(mine.begin(), mine.end());
  std::vector<std::vector<std::string>> server;
  for (auto b : {"true", "false", "NULL"})
    server.push_back(tokens(scalar(
      "SELECT concat_ws(' ', CASE WHEN b IS NULL THEN 'NULL' ELSE concat(b) "
      "END, count(*)::text) FROM "
      + f + " WHERE b IS NOT DISTINCT FROM " + b + " GROUP BY b")));
  std::sort(server.begin(), server.end());
  CHECK(mine == server);
}

TEST_CASE("aggregate: tens of thousands of groups print in key order, as an "
          "aligned table and as JSON",
          "[pg][aggregate]") {
  // More groups than one round of the formatting threads (blocks of 4096
  // per thread): the blocks must come out in order.
  auto schema = fresh_schema("agg_many");
  constexpr int groups = 30011;
  exec("CREATE TABLE \"" + schema + "\".t AS SELECT g AS id, g * 3 - 7 AS v "
       "FROM generate_series(1, " + std::to_string(groups) + ") AS g");
  auto run = [&](bool json) {
    std::vector<std::string> args{"aggregate", "--db",       conninfo(),
                                  "--schema",  schema,       "--table",
                                  "t",         "--group-by", "id",
                                  "--agg",     "sum(v), count(*)"};
    if (json)
      args.push_back("--json");
    auto res = run_program(prog, args);
    INFO("stderr: " << res.err);
    REQUIRE(res.rc == 0);
    return lines_of(res.out);
  };
  auto table = run(false);
  // The header, a line per group, the summary lines.
  REQUIRE(table.size() >= groups + 1);
  CHECK(table[0].rfind("id", 0) == 0);
  auto width = table[1].size();
  for (int g = 1; g <= groups; ++g) {
    auto& line = table[static_cast<std::size_t>(g)];
    std::istringstream in{line};
    long id = 0, sum = 0, count = 0;
    in >> id >> sum >> count;
    REQUIRE(id == g);
    REQUIRE(sum == 3L * g - 7);
    REQUIRE(count == 1);
    // Aligned: the numbers are right-aligned, every line as wide.
    REQUIRE(line.size() == width);
  }
  auto json = run(true);
  REQUIRE(json.size() == groups + 1);
  for (int g = 1; g <= groups; ++g) {
    auto& line = json[static_cast<std::size_t>(g - 1)];
    REQUIRE(json_field(line, "id") == std::to_string(g));
    REQUIRE(json_field(line, "sum_v") == std::to_string(3L * g - 7));
  }
  CHECK(json.back().find("\"summary\"") != std::string::npos);
}

TEST_CASE("aggregate: exact sums and means print every digit, max(scale, 16) "
          "after the point rounded half away from zero, from rows and pushed "
          "down",
          "[pg][aggregate]") {
  // Means chosen for the formatting's edges: thirds (the last digit rounded
  // up or not), negative halves, the largest bigint, a tiny negative mean
  // that rounds to zero (printed without a sign), and a carry through every
  // digit into the integer part.
  auto schema = table_f(
    "agg_digits", "g int, n bigint, m numeric(30,20)",
    "VALUES (1, 1, NULL), (1, 2, NULL), "
    "(2, 1, NULL), (2, 1, NULL), (2, 2, NULL), "
    "(3, -2, NULL), (3, -2, NULL), (3, -1, NULL), "
    "(4, 9223372036854775807, NULL), (4, 9223372036854775807, NULL), "
    "(4, 9223372036854775807, NULL), "
    "(5, NULL, -0.00000000000000000001), (5, NULL, 0), (5, NULL, 0), "
    "(6, NULL, 0.99999999999999999999), (6, NULL, 1), "
    "(7, -7, -0.5), (7, -8, NULL)");
  // g, sum_n, avg_n, sum_m, avg_m as the documented rule gives them.
  std::vector<std::vector<std::string>> want{
    {"1", "3", "1.5000000000000000", "NULL", "NULL"},
    {"2", "4", "1.3333333333333333", "NULL", "NULL"},
    {"3", "-5", "-1.6666666666666667", "NULL", "NULL"},
    {"4", "27670116110564327421", "9223372036854775807.0000000000000000",
     "NULL", "NULL"},
    {"5", "NULL", "NULL", "-0.00000000000000000001",
     "0.00000000000000000000"},
    {"6", "NULL", "NULL", "1.99999999999999999999",
     "1.00000000000000000000"},
    {"7", "-15", "-7.5000000000000000", "-0.50000000000000000000",
     "-0.50000000000000000000"},
  };
  for (bool pushdown : {false, true}) {
    std::vector<std::string> args{"aggregate", "--db",       conninfo(),
                                  "--schema",  schema,       "--table",
                                  "f",         "--group-by", "g",
                                  "--agg", "sum(n), avg(n), sum(m), avg(m)"};
    if (pushdown)
      args.push_back("--pushdown");
    auto res = run_program(prog, args);
    INFO("pushdown " << pushdown << ", stderr: " << res.err);
    REQUIRE(res.rc == 0);
    auto lines = lines_of(res.out);
    REQUIRE(lines.size() >= want.size() + 1);
    for (std::size_t g = 0; g < want.size(); ++g) {
      INFO("line: " << lines[g + 1]);
      std::istringstream in{lines[g + 1]};
      std::vector<std::string> got;
      for (std::string x; in >> x;)
        got.push_back(x);
      CHECK(got == want[g]);
      // Aligned: the numbers right-aligned, every line as wide as the
      // header.
      CHECK(lines[g + 1].size() == lines[0].size());
    }
  }
}

TEST_CASE("aggregate: the server's estimate of the groups is only a hint to "
          "the manager, with statistics or without",
          "[pg][aggregate]") {
  // 3000 groups of text keys (general keys: the manager's flat map).
  auto schema = table_f("agg_groups_hint", "k text, v bigint",
                        "SELECT 'g' || (i % 3000), i FROM "
                        "generate_series(1, 12000) i");
  auto t = pg::table_name{schema, "f"}.quoted();
  auto run = [&](const std::vector<std::string>& extra) {
    std::vector<std::string> all{"--log-level", "debug"};
    all.insert(all.end(), extra.begin(), extra.end());
    return aggregate_f(schema, "count(*), sum(v)", all);
  };
  auto estimate = [](const run_result& r) {
    auto at = r.err.find("the server estimates ");
    REQUIRE(at != std::string::npos);
    return std::stoull(r.err.substr(at + 21));
  };
  // Without statistics the planner guesses (200 groups here); with them it
  // is near 3000. Either way the groups are every one, exactly.
  auto guessed = run({});
  INFO("stderr: " << guessed.err);
  REQUIRE(guessed.rc == 0);
  // (Not 0: that is what a failed estimate gives.)
  CHECK(estimate(guessed) > 0);
  CHECK(estimate(guessed) < 3000);
  auto groups = group_lines(guessed);
  CHECK(groups.size() == 3000);
  exec("ANALYZE " + t);
  for (auto parts : {"1", "3"}) {
    auto analysed = run({"--partitions", parts});
    INFO("stderr: " << analysed.err);
    REQUIRE(analysed.rc == 0);
    CHECK(estimate(analysed) > 1000);
    CHECK(group_lines(analysed) == groups);
    auto pushed = run({"--partitions", parts, "--pushdown"});
    REQUIRE(pushed.rc == 0);
    CHECK(group_lines(pushed) == groups);
  }
  // No group columns: no estimate (the log says so rather than "0
  // groups"), one group.
  auto one = run_program(prog, {"aggregate", "--db", conninfo(), "--schema",
                                schema, "--table", "f", "--agg", "count(*)",
                                "--json", "--log-level", "debug"});
  INFO("stderr: " << one.err);
  REQUIRE(one.rc == 0);
  CHECK(one.err.find("aggregate: no estimate of the groups")
        != std::string::npos);
  CHECK(one.err.find("the server estimates") == std::string::npos);
  CHECK(json_field(lines_of(one.out).front(), "count") == "12000");
}

TEST_CASE("aggregate: wide rows come in smaller batches unless --batch is "
          "given",
          "[pg][aggregate]") {
  using apps::default_batch_rows;
  // Rows whose cells fit inside keep the common default; wider ones get
  // fewer rows a batch (about 10 MB: 16384 * 608 bytes over a row's 608
  // plus 96 a cell), never fewer than 1024.
  CHECK(default_batch_rows(1) == 16384);
  CHECK(default_batch_rows(apps::cell_list::inline_cells) == 16384);
  CHECK(default_batch_rows(7) == 7782);
  CHECK(default_batch_rows(14) == 5103);
  // The benchmark's partial rows (docs/etl.md, docs/benchmarks.md).
  CHECK(default_batch_rows(15) == 4864);
  CHECK(default_batch_rows(100000) == 1024);
  // 12000 groups of k pushed down with 13 aggregates: a partial row carries
  // 14 fields (k, count(*), and sum, count, min and max of each column), so
  // the one partition's 12000 rows come in ceil(12000 / 5103) = 3 batches,
  // or in one when --batch says 16384.
  auto schema = table_f("agg_wide_batches",
                        "k int, c bigint, p numeric(12,2), r float8",
                        "SELECT i % 12000, i, i / 100.0, i / 7.0 FROM "
                        "generate_series(1, 24000) i");
  const std::string aggs
    = "sum(c), count(*), avg(c), min(c), max(c), sum(p), avg(p), min(p), "
      "max(p), sum(r), avg(r), min(r), max(r)";
  auto run = [&](const std::vector<std::string>& extra) {
    std::vector<std::string> all{"--log-level", "debug", "--pushdown",
                                 "--partitions", "1"};
    all.insert(all.end(), extra.begin(), extra.end());
    return aggregate_f(schema, aggs, all);
  };
  auto batches = [](const run_result& r) {
    auto at = r.err.find(" elements in ");
    REQUIRE(at != std::string::npos);
    return std::stoull(r.err.substr(at + 13));
  };
  auto by_default = run({});
  INFO("stderr: " << by_default.err);
  REQUIRE(by_default.rc == 0);
  CHECK(by_default.err.find("aggregate: batches of 5103 rows (14 columns a "
                            "row)")
        != std::string::npos);
  CHECK(by_default.err.find("12000 elements in ") != std::string::npos);
  CHECK(batches(by_default) == 3);
  auto given = run({"--batch", "16384"});
  INFO("stderr (--batch 16384): " << given.err);
  REQUIRE(given.rc == 0);
  CHECK(given.err.find("aggregate: batches of 16384 rows (14 columns a row, "
                       "--batch)")
        != std::string::npos);
  CHECK(batches(given) == 1);
  auto groups = group_lines(by_default);
  CHECK(groups.size() == 12000);
  CHECK(groups == group_lines(given));
  // --help says so, for aggregate and run.
  for (auto cmd : {"aggregate", "run"}) {
    auto help = run_program(prog, {cmd, "--help"});
    INFO(cmd << " --help: " << help.out);
    CHECK(help.rc == 0);
    CHECK(help.out.find("wider rows get fewer") != std::string::npos);
  }
}
