// flow::double_stats: exact sums, min and max of doubles that do not depend
// on the split. The references are Python's math.fsum and exact fractions,
// computed offline on the same generated data (tests/unit/stats_reference.py
// reproduces every constant below).

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include <caf/binary_deserializer.hpp>
#include <caf/binary_serializer.hpp>

#include "flow/stats.hpp"
#include "merge_orders.hpp"

using namespace flow;

namespace {

std::uint64_t bits_of(double x) {
  std::uint64_t u;
  std::memcpy(&u, &x, sizeof u);
  return u;
}

double double_of(std::uint64_t u) {
  double x;
  std::memcpy(&x, &u, sizeof x);
  return x;
}

/// splitmix64, the generator the reference script reimplements.
struct splitmix {
  std::uint64_t s;
  std::uint64_t next() {
    s += 0x9E3779B97F4A7C15u;
    auto z = s;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9u;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBu;
    return z ^ (z >> 31);
  }
};

/// `n` doubles of random sign and mantissa with a biased exponent uniform in
/// [lo, hi] (0 gives subnormals).
std::vector<double> generate(std::uint64_t seed, std::size_t n, unsigned lo,
                             unsigned hi) {
  splitmix g{seed};
  std::vector<double> xs;
  for (std::size_t i = 0; i < n; ++i) {
    auto r1 = g.next();
    auto r2 = g.next();
    std::uint64_t e = lo + r2 % (hi - lo + 1);
    xs.push_back(double_of((r1 & (std::uint64_t{1} << 63)) | (e << 52)
                           | (r1 & ((std::uint64_t{1} << 52) - 1))));
  }
  return xs;
}

/// 1e308, 1, -1e308 a thousand times, then 50,000 values of both signs from
/// subnormals to about 1.3e300: naive summation loses the ones and rounds
/// the rest many times.
const std::vector<double>& breaking() {
  static const auto xs = [] {
    std::vector<double> r;
    for (int i = 0; i < 1000; ++i) {
      r.push_back(1e308);
      r.push_back(1.0);
      r.push_back(-1e308);
    }
    auto wide = generate(31, 50000, 0, 2020);
    r.insert(r.end(), wide.begin(), wide.end());
    return r;
  }();
  return xs;
}

double_stats sequential(const std::vector<double>& xs) {
  double_stats s;
  for (auto x : xs)
    s.add(x);
  return s;
}

double_stats merged(const std::vector<double>& xs, std::size_t parts,
                    std::size_t batch, std::uint64_t seed) {
  return test::split_and_merge(
    xs, parts, batch, seed, double_stats{},
    [](double_stats& s, double x) { s.add(x); },
    [](double_stats& s, const double* p, std::size_t n) { s.add(p, n); });
}

/// Overwrites the double at `offset` of a CAF 0.17 binary buffer (network
/// byte order).
void put_double(std::vector<char>& buf, std::size_t offset, double x) {
  auto u = bits_of(x);
  for (int i = 0; i < 8; ++i)
    buf[offset + static_cast<std::size_t>(i)] = static_cast<char>(
      u >> (56 - 8 * i));
}

/// Reads the double at `offset` of a CAF 0.17 binary buffer.
double get_double(const std::vector<char>& buf, std::size_t offset) {
  std::uint64_t u = 0;
  for (std::size_t i = 0; i < 8; ++i)
    u = (u << 8) | static_cast<unsigned char>(buf[offset + i]);
  return double_of(u);
}

/// Every result of `x` has the bits of the same result of `y`.
void check_same_bits(const double_stats& x, const double_stats& y) {
  CHECK(x == y);
  CHECK(x.count() == y.count());
  CHECK(bits_of(x.sum()) == bits_of(y.sum()));
  CHECK(bits_of(x.min()) == bits_of(y.min()));
  CHECK(bits_of(x.max()) == bits_of(y.max()));
  CHECK(bits_of(x.mean()) == bits_of(y.mean()));
  CHECK(bits_of(x.variance()) == bits_of(y.variance()));
  CHECK(bits_of(x.stddev()) == bits_of(y.stddev()));
}

} // namespace

TEST_CASE("double_stats: sums data that breaks naive summation exactly",
          "[double_stats]") {
  std::vector<double> ones;
  for (int i = 0; i < 1000; ++i) {
    ones.push_back(1e308);
    ones.push_back(1.0);
    ones.push_back(-1e308);
  }
  double_stats a;
  a.add(ones.data(), ones.size());
  CHECK(a.sum() == 1000.0);
  CHECK(sequential(ones).sum() == 1000.0);
  CHECK(a.min() == -1e308);
  CHECK(a.max() == 1e308);
  // A million 0.1: math.fsum gives 0x1.86a0000000000p+16, a naive loop
  // 100000.00000133288.
  std::vector<double> tenths(1000000, 0.1);
  double_stats b;
  b.add(tenths.data(), tenths.size());
  CHECK(bits_of(b.sum()) == bits_of(0x1.86a0000000000p+16));
  CHECK(b.mean() == 0.1);
  CHECK(b.stddev() == 0.0);
  const auto& xs = breaking();
  double_stats c;
  c.add(xs.data(), xs.size());
  CHECK(bits_of(c.sum()) == bits_of(-0x1.d9590f3636fe5p+999));
  CHECK(bits_of(sequential(xs).sum()) == bits_of(-0x1.d9590f3636fe5p+999));
  CHECK(bits_of(c.min()) == bits_of(-0x1.1ccf385ebc8a0p+1023));
  CHECK(bits_of(c.max()) == bits_of(0x1.1ccf385ebc8a0p+1023));
  double naive = 0;
  for (auto x : xs)
    naive += x;
  CHECK(naive != c.sum());
}

TEST_CASE("double_stats: mean and sample stddev match exact fractions",
          "[double_stats]") {
  auto xs = generate(32, 20000, 1023 - 400, 1023 + 400);
  double_stats s;
  s.add(xs.data(), xs.size());
  CHECK(bits_of(s.sum()) == bits_of(-0x1.022a1c5aa4693p+404));
  // Within 1 ulp of the exact values (exact_moments' bound), and the same
  // bits however the data is split (next test).
  CHECK(std::fabs(s.mean() - -0x1.a6fa0997601c2p+389)
        <= std::fabs(std::nextafter(-0x1.a6fa0997601c2p+389, 0.0)
                     - -0x1.a6fa0997601c2p+389));
  CHECK(std::fabs(s.stddev() - 0x1.e56aa55f95745p+395)
        <= std::fabs(std::nextafter(0x1.e56aa55f95745p+395, 0.0)
                     - 0x1.e56aa55f95745p+395));
  CHECK(std::fabs(s.variance() - 0x1.cc36a184c5236p+791)
        <= std::fabs(std::nextafter(0x1.cc36a184c5236p+791, 0.0)
                     - 0x1.cc36a184c5236p+791));
}

TEST_CASE("double_stats: every split and batch size and merge order gives the "
          "same bits",
          "[double_stats]") {
  const auto spread = generate(32, 20000, 1023 - 400, 1023 + 400);
  for (const auto* xs : {&breaking(), &spread}) {
    auto reference = sequential(*xs);
    for (auto parts : test::part_counts)
      for (auto batch : test::batch_sizes)
        for (std::uint64_t seed : {1u, 2u}) {
          INFO("parts " << parts << " batch " << batch << " seed " << seed);
          check_same_bits(merged(*xs, parts, batch, seed), reference);
        }
  }
}

TEST_CASE("double_stats: min and max ignore NaN and order signed zeros",
          "[double_stats]") {
  auto nan = std::numeric_limits<double>::quiet_NaN();
  auto inf = std::numeric_limits<double>::infinity();
  double_stats empty;
  CHECK(std::isnan(empty.min()));
  CHECK(std::isnan(empty.max()));
  CHECK(std::isnan(empty.mean()));
  double_stats only_nan;
  only_nan.add(nan);
  std::vector<double> nans{nan, nan};
  only_nan.add(nans.data(), nans.size());
  CHECK(only_nan.count() == 3);
  CHECK(std::isnan(only_nan.min()));
  CHECK(std::isnan(only_nan.max()));
  std::vector<double> xs{nan, 2.0, -0.0, 0.0, nan, 1.0};
  auto reference = sequential(xs);
  CHECK(reference.min() == 0.0);
  CHECK(std::signbit(reference.min()));
  CHECK(reference.max() == 2.0);
  CHECK(std::isnan(reference.sum()));
  std::vector<double> zeros{0.0, -0.0, 0.0};
  for (auto parts : test::part_counts)
    for (auto batch : test::batch_sizes)
      for (std::uint64_t seed : {1u, 2u, 3u}) {
        check_same_bits(merged(xs, parts, batch, seed), reference);
        auto z = merged(zeros, parts, batch, seed);
        CHECK(bits_of(z.min()) == bits_of(-0.0));
        CHECK(bits_of(z.max()) == bits_of(0.0));
      }
  // Long enough for the packed min/max lanes: NaN inside a lane is skipped
  // there too, and both zeros are ordered whatever lane they land in.
  std::vector<double> lanes;
  for (int i = 0; i < 1000; ++i)
    lanes.push_back(i % 3 == 0 ? nan : (i % 3 == 1 ? 0.0 : -0.0));
  lanes[500] = -2.5;
  lanes[777] = 1e-310;
  for (auto batch : test::batch_sizes) {
    auto l = merged(lanes, 2, batch, 4);
    CHECK(l.min() == -2.5);
    CHECK(l.max() == 1e-310);
    lanes[500] = 0.0;
    lanes[777] = 0.0;
    auto z = merged(lanes, 2, batch, 4);
    CHECK(bits_of(z.min()) == bits_of(-0.0));
    CHECK(bits_of(z.max()) == bits_of(0.0));
    lanes[500] = -2.5;
    lanes[777] = 1e-310;
  }
  double_stats with_inf;
  std::vector<double> ys{1.0, inf, -inf};
  with_inf.add(ys.data(), ys.size());
  CHECK(with_inf.min() == -inf);
  CHECK(with_inf.max() == inf);
  CHECK(std::isnan(with_inf.sum()));
}

TEST_CASE("double_stats: a CAF binary round trip keeps the state and a "
          "corrupted one is rejected",
          "[double_stats][serialization]") {
  const auto& xs = breaking();
  double_stats s;
  s.add(xs.data(), xs.size());
  std::vector<char> buf;
  {
    caf::binary_serializer sink{nullptr, buf};
    REQUIRE(!sink(s));
  }
  // Two exact sums of 71 integers, then min and max.
  REQUIRE(buf.size() == 2 * 71 * 8 + 2 * 8);
  double_stats loaded;
  {
    caf::binary_deserializer source{nullptr, buf};
    REQUIRE(!source(loaded));
  }
  check_same_bits(loaded, s);
  CHECK(get_double(buf, 2 * 71 * 8) == s.min());
  loaded.add(1.5);
  s.add(1.5);
  CHECK(loaded == s);
  // Infinities, -0.0 and subnormals survive bit for bit (CAF 0.17's own
  // double encoding would hang on inf and lose the others).
  for (std::vector<double> ys : {std::vector<double>{-0.0, 5e-324},
                                 std::vector<double>{1.0, 0x1p-1070, 2.0},
                                 std::vector<double>{
                                   std::numeric_limits<double>::infinity(),
                                   -std::numeric_limits<double>::infinity()}}) {
    auto special = sequential(ys);
    std::vector<char> sb;
    caf::binary_serializer{nullptr, sb}(special);
    double_stats back;
    caf::binary_deserializer source{nullptr, sb};
    REQUIRE(!source(back));
    check_same_bits(back, special);
  }
  // A min above the max cannot come from any data.
  auto bad = buf;
  auto huge = std::numeric_limits<double>::max(); // above the max 1.1e308
  put_double(bad, 2 * 71 * 8, huge);
  {
    double_stats rejected;
    caf::binary_deserializer source{nullptr, bad};
    CHECK(source(rejected));
  }
  // Nor can a NaN max.
  bad = buf;
  auto nan = std::numeric_limits<double>::quiet_NaN();
  put_double(bad, 2 * 71 * 8 + 8, nan);
  {
    double_stats rejected;
    caf::binary_deserializer source{nullptr, bad};
    CHECK(source(rejected));
  }
  // An empty state with a finite min.
  double_stats empty;
  std::vector<char> eb;
  caf::binary_serializer{nullptr, eb}(empty);
  put_double(eb, 2 * 71 * 8, huge);
  double_stats rejected;
  caf::binary_deserializer source{nullptr, eb};
  CHECK(source(rejected));
}

namespace {

/// Distance in ulps between two finite doubles of the same sign.
std::int64_t ulps(double x, double y) {
  auto a = static_cast<std::int64_t>(bits_of(std::fabs(x)));
  auto b = static_cast<std::int64_t>(bits_of(std::fabs(y)));
  return std::signbit(x) == std::signbit(y)
           ? (a > b ? a - b : b - a)
           : std::numeric_limits<std::int64_t>::max();
}

/// The reference script's int64 data: shifted splitmix outputs and the
/// extremes.
std::vector<std::int64_t> wide_ints() {
  splitmix g{41};
  std::vector<std::int64_t> xs;
  for (int i = 0; i < 20000; ++i)
    xs.push_back(static_cast<std::int64_t>(g.next()) >> (i % 64));
  xs.push_back(std::numeric_limits<std::int64_t>::min());
  xs.push_back(std::numeric_limits<std::int64_t>::max());
  return xs;
}

/// 10^15 + k, k in [-1000, 1000]: the textbook formula in doubles cancels.
std::vector<std::int64_t> near_ints() {
  splitmix g{42};
  std::vector<std::int64_t> xs;
  for (int i = 0; i < 20000; ++i)
    xs.push_back(1000000000000000
                 + static_cast<std::int64_t>(g.next() % 2001) - 1000);
  return xs;
}

} // namespace

TEST_CASE("int_moments: within 1 ulp of exact fractions and the same bits for "
          "every split",
          "[int_moments]") {
  struct expected {
    std::vector<std::int64_t> xs;
    double mean;
    double variance;
    double stddev;
    double stddev_population;
  };
  std::vector<expected> sets{
    {wide_ints(), -0x1.1bd768283d04ep+51, 0x1.cd10b49efe297p+118,
     0x1.578f12e7b19a6p+59, 0x1.578ce011430c8p+59},
    {near_ints(), 0x1.c6bf52633ffddp+49, 0x1.47eb77a828f5dp+18,
     0x1.21bca50c1aeaap+9, 0x1.21baca561ffc7p+9}};
  for (const auto& e : sets) {
    int_moments m;
    m.add(e.xs.data(), e.xs.size());
    CHECK(m.count() == e.xs.size());
    CHECK(ulps(m.mean(), e.mean) <= 1);
    CHECK(ulps(m.variance(), e.variance) <= 1);
    CHECK(ulps(m.stddev(), e.stddev) <= 1);
    CHECK(ulps(m.stddev_population(), e.stddev_population) <= 1);
    for (auto parts : test::part_counts)
      for (auto batch : test::batch_sizes) {
        auto s = test::split_and_merge(
          e.xs, parts, batch, 3, int_moments{},
          [](int_moments& st, std::int64_t x) { st.add(x); },
          [](int_moments& st, const std::int64_t* p, std::size_t n) {
            st.add(p, n);
          });
        CHECK(s == m);
        CHECK(bits_of(s.mean()) == bits_of(m.mean()));
        CHECK(bits_of(s.stddev()) == bits_of(m.stddev()));
      }
  }
  int_moments empty;
  CHECK(std::isnan(empty.mean()));
  CHECK(std::isnan(empty.stddev_population()));
  int_moments one;
  one.add(-5);
  CHECK(one.mean() == -5.0);
  CHECK(one.stddev_population() == 0.0);
  CHECK(std::isnan(one.stddev()));
  CHECK(int_moments::state_name() == "flow.int_moments");
}

TEST_CASE("int_moments: serialises and refuses a count past 2^64 - 1",
          "[int_moments][serialization]") {
  int_moments m;
  auto xs = near_ints();
  m.add(xs.data(), xs.size());
  std::vector<char> buf;
  caf::binary_serializer{nullptr, buf}(m);
  // Sum (16), sum of squares (24), count (8).
  REQUIRE(buf.size() == 48);
  int_moments loaded;
  {
    caf::binary_deserializer source{nullptr, buf};
    REQUIRE(!source(loaded));
  }
  CHECK(loaded == m);
  // The largest count: still consistent (n S2 >= S1^2), but one more value
  // cannot be counted.
  auto full = buf;
  std::fill(full.begin() + 40, full.end(), static_cast<char>(0xff));
  int_moments big;
  {
    caf::binary_deserializer source{nullptr, full};
    REQUIRE(!source(big));
  }
  CHECK(big.count() == std::numeric_limits<std::uint64_t>::max());
  auto before = big;
  CHECK(!big.merge(m));
  CHECK(big == before);
  // No values but a sum, or a sum of squares too small for the sum.
  auto bad = buf;
  std::fill(bad.begin() + 40, bad.end(), char{0});
  int_moments rejected;
  {
    caf::binary_deserializer source{nullptr, bad};
    CHECK(source(rejected));
  }
  bad = buf;
  std::fill(bad.begin() + 16, bad.begin() + 40, char{0});
  caf::binary_deserializer source{nullptr, bad};
  CHECK(source(rejected));
}
