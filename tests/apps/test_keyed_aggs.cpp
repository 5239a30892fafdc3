// flow-sum and flow-keyed with --values double|decimal and --agg: exact sums
// of doubles with the same bits for every reducer count and batch size,
// exact decimals, sketches within their bounds, and the bad paths.

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "common/json.hpp"
#include "flow/exact_sum.hpp"
#include "flow/random.hpp"
#include "json_fields.hpp"
#include "run_program.hpp"

using namespace flow::test;

namespace {

const std::string keyed = FLOW_KEYED_PATH;
const std::string sum_prog = FLOW_SUM_PATH;

std::string shortest(double x) {
  return flow::apps::shortest(x);
}

/// The JSON text a double result must have: shortest round trip, or the
/// strings "inf", "-inf", "nan".
std::string json_double(double x) {
  auto s = shortest(x);
  return std::isfinite(x) ? s : "\"" + s + "\"";
}

/// Lines of `key value` built to break naive summation, with the exact
/// reference sum of each key (Neal's per-element path, one value at a time).
struct breaking_input {
  std::string text;
  std::map<std::string, flow::exact_fsum> ref;

  void add(const std::string& k, double x) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.17g", x);
    text += k + " " + buf + "\n";
    ref[k].add(x);
  }
};

breaking_input make_breaking(std::size_t tenths) {
  breaking_input in;
  for (int i = 0; i < 1000; ++i) {
    in.add("cancel", 1e308);
    in.add("cancel", 1);
    in.add("cancel", -1e308);
  }
  for (std::size_t i = 0; i < tenths; ++i)
    in.add("tenth", 0.1);
  // From subnormals to 1e300, both signs, in an order that makes a plain
  // loop lose the small ones.
  std::mt19937_64 gen{99};
  for (int i = 0; i < 20000; ++i) {
    auto e = static_cast<int>(gen() % 2070) - 1074;
    auto m = 1.0 + static_cast<double>(gen() % 1000000) / 1e6;
    auto x = std::ldexp(m, std::min(e, 996));
    in.add("wide", gen() % 2 ? x : -x);
  }
  in.add("specials", 1.0);
  in.add("specials", HUGE_VAL);
  in.add("nan", HUGE_VAL);
  in.add("nan", -HUGE_VAL);
  in.add("nan", 2.0);
  in.add("neg_zero", -0.0);
  return in;
}

/// The value of field `name` for each key in JSON lines.
std::map<std::string, std::string> field_by_key(const std::string& out,
                                                const std::string& name) {
  std::map<std::string, std::string> result;
  for (auto& line : lines_of(out)) {
    auto k = json_field(line, "key");
    if (k.size() >= 2 && k.front() == '"')
      k = k.substr(1, k.size() - 2);
    result[k] = json_field(line, name);
  }
  return result;
}

} // namespace

TEST_CASE("flow-keyed --values double: every key's sum is the correctly "
          "rounded exact sum with the same bits for any reducers and batch",
          "[apps][flow-keyed][aggregates]") {
  auto in = make_breaking(100000);
  auto path = temp_file(in.text);
  std::map<std::string, std::string> want;
  for (auto& [k, s] : in.ref)
    want[k] = json_double(s.value());
  // The hand-checked values: 1000 exactly; 10^5 tenths are 10000 exactly
  // (math.fsum agrees; a plain loop gives 10000.000000018848).
  REQUIRE(want["cancel"] == "1000");
  REQUIRE(want["tenth"] == "10000");
  REQUIRE(want["specials"] == "\"inf\"");
  REQUIRE(want["nan"] == "\"nan\"");
  REQUIRE(want["neg_zero"] == "0");
  for (auto reducers : {"1", "2", "7"}) {
    for (auto batch : {"1", "7", "65536"}) {
      INFO("--reducers " << reducers << " --batch " << batch);
      auto r = run_program(keyed, {"--input", path, "--values", "double",
                                   "--agg", "sum,count,mean", "--json",
                                   "--reducers", reducers, "--batch", batch});
      INFO(r.err);
      REQUIRE(r.rc == 0);
      CHECK(field_by_key(r.out, "sum") == want);
      CHECK(field_by_key(r.out, "reference_sum") == want);
      auto oks = field_by_key(r.out, "ok");
      for (auto& [k, ok] : oks)
        CHECK(ok == "true");
      CHECK(field_by_key(r.out, "count")["tenth"] == "100000");
      CHECK(field_by_key(r.out, "mean")["tenth"] == "0.1");
    }
  }
}

TEST_CASE("flow-keyed --values double: a million 0.1 sum to exactly 100000",
          "[apps][flow-keyed][aggregates]") {
  std::string text;
  for (int i = 0; i < 1000000; ++i)
    text += "k 0.1\n";
  auto path = temp_file(text);
  for (auto batch : {"7", "65536"}) {
    auto r = run_program(keyed, {"--input", path, "--values", "double",
                                 "--json", "--batch", batch});
    REQUIRE(r.rc == 0);
    // Shortest round trip: std::to_chars picks "1e+05" over "100000".
    CHECK(json_field(r.out, "sum") == "1e+05");
    CHECK(json_field(r.out, "ok") == "true");
  }
}

TEST_CASE("flow-sum --values double sums exactly and prints the plain loop's "
          "sum beside it",
          "[apps][flow-sum][aggregates]") {
  auto path = temp_file("1e308 1 -1e308\n0.1 0.1 0.1\n");
  for (auto batch : {"1", "2", "65536"}) {
    auto r = run_program(sum_prog, {"--input", path, "--values", "double",
                                    "--json", "--batch", batch});
    INFO(r.err);
    REQUIRE(r.rc == 0);
    CHECK(json_field(r.out, "sum") == "1.3");
    CHECK(json_field(r.out, "reference_sum") == "1.3");
    CHECK(json_field(r.out, "naive_sum") == "0.30000000000000004");
    CHECK(json_field(r.out, "ok") == "true");
  }
}

TEST_CASE("flow-keyed --values decimal: exact sums at the largest scale",
          "[apps][flow-keyed][aggregates]") {
  auto path = temp_file("a 1.5\na 2.25\nb -0.001\nb 1e2\n"
                        "a 99999999999999999999999999999999999.5\n");
  for (auto batch : {"1", "65536"}) {
    auto r = run_program(keyed, {"--input", path, "--values", "decimal",
                                 "--agg", "sum,count,min,max,mean", "--json",
                                 "--batch", batch});
    INFO(r.err);
    REQUIRE(r.rc == 0);
    auto sums = field_by_key(r.out, "sum");
    CHECK(sums["a"] == "100000000000000000000000000000000003.25");
    CHECK(sums["b"] == "99.999");
    CHECK(field_by_key(r.out, "min")["b"] == "-0.001");
    CHECK(field_by_key(r.out, "max")["b"] == "100");
    CHECK(field_by_key(r.out, "count")["a"] == "3");
  }
}

TEST_CASE("flow-keyed --values decimal: a sum beyond 38 digits is an error, "
          "never rounded",
          "[apps][flow-keyed][aggregates][errors]") {
  auto path = temp_file("a 99999999999999999999999999999999999999\na 1\n");
  for (auto batch : {"1", "2"}) {
    INFO("batch " << batch);
    auto r = run_program(keyed, {"--input", path, "--values", "decimal",
                                 "--batch", batch});
    CHECK(r.rc == 1);
    CHECK(r.out.empty());
    CHECK(r.err.find("overflow") != std::string::npos);
  }
}

TEST_CASE("flow-keyed --agg: sketches and exact distinct counts against "
          "references computed here",
          "[apps][flow-keyed][aggregates]") {
  std::vector<std::uint64_t> sizes{20000, 5000, 20000};
  std::map<std::uint64_t, std::vector<std::int64_t>> values;
  for (std::size_t j = 0; j < sizes.size(); ++j) {
    flow::uniform_ints gen{flow::derive_seed(42, j), 0, 10000};
    for (std::uint64_t i = 0; i < sizes[j]; ++i)
      values[sizes[j]].push_back(gen(i));
  }
  for (auto batch : {"7", "4096"}) {
    auto r = run_program(keyed, {"--sizes", "20000,5000,20000", "--agg",
                                 "sum,count,count_distinct,approx_distinct,"
                                 "p50,p99,mean,stddev",
                                 "--json", "--batch", batch, "--reducers",
                                 "3"});
    INFO(r.err);
    REQUIRE(r.rc == 0);
    for (auto& line : lines_of(r.out)) {
      auto k = std::stoull(json_field(line, "key"));
      auto xs = values.at(k);
      std::sort(xs.begin(), xs.end());
      std::set<std::int64_t> distinct(xs.begin(), xs.end());
      INFO("key " << k);
      CHECK(json_field(line, "ok") == "true");
      CHECK(json_field(line, "count") == std::to_string(xs.size()));
      CHECK(json_field(line, "count_distinct")
            == std::to_string(distinct.size()));
      auto approx = std::stod(json_field(line, "approx_distinct"));
      // 4 standard errors of HLL at precision 14 (0.81 %).
      CHECK(std::fabs(approx - distinct.size()) <= 0.033 * distinct.size());
      for (auto [name, q] : {std::pair{"p50", 0.5}, std::pair{"p99", 0.99}}) {
        auto v = std::stod(json_field(line, name));
        auto lo = std::lower_bound(xs.begin(), xs.end(), v) - xs.begin();
        auto hi = std::upper_bound(xs.begin(), xs.end(), v) - xs.begin();
        double n = static_cast<double>(xs.size());
        // Rank error at most 1 % of n.
        CHECK(static_cast<double>(hi) >= q * n - 0.01 * n);
        CHECK(static_cast<double>(lo) <= q * n + 0.01 * n);
      }
    }
  }
}

TEST_CASE("flow-keyed: bad --values, --agg and values are one-line errors with "
          "exit 2",
          "[apps][flow-keyed][aggregates][errors]") {
  struct bad_case {
    std::vector<std::string> args;
    std::string text; // file contents when --input is used
    std::string message;
  };
  std::vector<bad_case> cases{
    {{"--sizes", "10", "--agg", "sum,p42"}, "", "'p42' is not an aggregate"},
    {{"--sizes", "10", "--agg", "sum,,max"}, "", "--agg: empty name"},
    {{"--sizes", "10", "--agg", "p95,p95"}, "", "'p95' is given twice"},
    {{"--sizes", "10", "--values", "double"}, "", "needs --input"},
    {{"--values", "float"}, "a 1\n", "'float' is not int, double or decimal"},
    {{"--values", "double"}, "a 1\nb 1e400\n",
     "line 2: value '1e400' is outside the double range"},
    {{"--values", "double"}, "a 0x10\n", "line 1: value '0x10' is not a number"},
    {{"--values", "double"}, "a nan(1)\n", "value 'nan(1)' is not a number"},
    {{"--values", "decimal"}, "a 1\na 1.2.3\n",
     "line 2: value '1.2.3' is not an exact decimal"},
    {{"--values", "decimal"}, "a 1234567890123456789012345678901234567890\n",
     "more than 38 significant digits"},
  };
  for (auto& c : cases) {
    auto args = c.args;
    if (!c.text.empty()) {
      args.push_back("--input");
      args.push_back(temp_file(c.text));
    }
    INFO(c.message);
    auto r = run_program(keyed, args);
    CHECK(r.rc == 2);
    CHECK(r.out.empty());
    CHECK(lines_of(r.err).size() == 1);
    CHECK(r.err.find(c.message) != std::string::npos);
  }
}

TEST_CASE("flow-sum: --values needs --input and a known type",
          "[apps][flow-sum][aggregates][errors]") {
  auto r = run_program(sum_prog, {"--values", "double"});
  CHECK(r.rc == 2);
  CHECK(r.err.find("needs --input") != std::string::npos);
  auto path = temp_file("1 2 x\n");
  r = run_program(sum_prog, {"--input", path, "--values", "double"});
  CHECK(r.rc == 2);
  CHECK(r.err.find("line 1: token 'x' is not a number") != std::string::npos);
}
