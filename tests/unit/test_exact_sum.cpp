// flow::exact_fsum: the sum of doubles rounded once, whatever the split. The
// references are Python's math.fsum (correctly rounded) and, for the moments,
// exact rational arithmetic with an 80-digit square root, computed offline
// on the same generated data (tests/unit/exact_sum_reference.py reproduces
// every constant below).

#include <catch2/catch.hpp>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <map>
#include <numeric>
#include <random>
#include <vector>

#include <caf/binary_deserializer.hpp>
#include <caf/binary_serializer.hpp>

// Both exact sums, the int64 function and the double class, in one unit.
#include "flow/aggregate.hpp"
#include "flow/exact_sum.hpp"

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

/// 1e6 + k 2^-30 with k uniform in [-2^20, 2^20): a variance far below the
/// square of the mean, where the textbook formula cancels catastrophically.
std::vector<double> around_a_million(std::uint64_t seed, std::size_t n) {
  splitmix g{seed};
  std::vector<double> xs;
  for (std::size_t i = 0; i < n; ++i) {
    auto k = static_cast<std::int64_t>(g.next() % (1u << 21)) - (1 << 20);
    xs.push_back(1e6 + static_cast<double>(k) * 0x1p-30);
  }
  return xs;
}

double naive_sum(const std::vector<double>& xs) {
  double s = 0;
  for (auto x : xs)
    s += x;
  return s;
}

exact_fsum element_sum(const std::vector<double>& xs) {
  exact_fsum s;
  for (auto x : xs)
    s.add(x);
  return s;
}

exact_fsum sum_of(std::vector<double> xs) {
  return exact_fsum::of(xs.data(), xs.size());
}

/// Distance in ulps between two finite doubles of the same sign.
std::int64_t ulps(double x, double y) {
  auto a = static_cast<std::int64_t>(bits_of(std::fabs(x)));
  auto b = static_cast<std::int64_t>(bits_of(std::fabs(y)));
  return std::signbit(x) == std::signbit(y) ? std::abs(a - b)
                                            : std::numeric_limits<int>::max();
}

/// Splits `xs` into batches of `size`, sums each (the batch path, or the
/// element path for single values) and merges them in a random order: each
/// batch, taken in shuffled order, into one of 8 partial states picked at
/// random (as reducers would), then the partial states as random neighbours
/// (as nodes would). Batches are summed on the fly: 10^5 states of 576 bytes
/// would cost more in page faults than the sums themselves.
exact_fsum split_and_merge(const std::vector<double>& xs, std::size_t size,
                           std::uint64_t seed) {
  std::vector<std::size_t> starts;
  for (std::size_t pos = 0; pos < xs.size(); pos += size)
    starts.push_back(pos);
  std::mt19937_64 rng{seed};
  std::shuffle(starts.begin(), starts.end(), rng);
  std::vector<exact_fsum> parts(8);
  for (auto pos : starts) {
    auto m = std::min(size, xs.size() - pos);
    exact_fsum s;
    if (m == 1)
      s.add(xs[pos]);
    else
      s.add(xs.data() + pos, m);
    parts[rng() % parts.size()].merge(s);
  }
  while (parts.size() > 1) {
    std::uniform_int_distribution<std::size_t> pick{0, parts.size() - 2};
    auto i = pick(rng);
    parts[i].merge(parts[i + 1]);
    parts.erase(parts.begin() + static_cast<std::ptrdiff_t>(i) + 1);
  }
  return parts.front();
}

const std::vector<double>& wide_data() {
  // Exponent fields 0..2000: subnormals up to 2^977 (about 1e294).
  static const auto xs = generate(1, 100000, 0, 2000);
  return xs;
}

} // namespace

TEST_CASE("exact_fsum: an empty sum is +0 with count 0", "[exact_fsum]") {
  exact_fsum s;
  CHECK(bits_of(s.value()) == bits_of(0.0));
  CHECK(s.count() == 0);
  CHECK(s.finite_sum_is_zero());
  CHECK(s == exact_fsum::of(nullptr, 0));
  // The documented size: 67 chunks and 5 counters of 8 bytes.
  CHECK(sizeof(exact_fsum) == 576);
}

TEST_CASE("exact_fsum: 1e308 then 1 then -1e308 repeated keeps every 1",
          "[exact_fsum]") {
  std::vector<double> xs;
  for (int i = 0; i < 10000; ++i) {
    xs.push_back(1e308);
    xs.push_back(1.0);
    xs.push_back(-1e308);
  }
  CHECK(naive_sum(xs) != 10000.0); // the naive loop loses them (or gives inf)
  CHECK(sum_of(xs).value() == 10000.0);
  CHECK(element_sum(xs).value() == 10000.0);
  CHECK(sum_of(xs).count() == 30000);
}

TEST_CASE("exact_fsum: a million 0.1 is the exact product rounded once",
          "[exact_fsum]") {
  std::vector<double> xs(1000000, 0.1);
  // 0.1 is 3602879701896397 * 2^-55; times 10^6 that is
  // 100000.0000000000055511151231257827..., whose nearest double is 100000
  // (math.fsum gives 0x1.86a0000000000p+16).
  auto expected = 0x1.86a0000000000p+16;
  CHECK(bits_of(sum_of(xs).value()) == bits_of(expected));
  CHECK(bits_of(element_sum(xs).value()) == bits_of(expected));
  CHECK(naive_sum(xs) != expected);
}

TEST_CASE("exact_fsum: matches Python fsum from subnormals to 1e294 with "
          "both signs",
          "[exact_fsum]") {
  const auto& wide = wide_data();
  CHECK(bits_of(sum_of(wide).value()) == bits_of(-0x1.d540b22487135p+979));
  CHECK(bits_of(element_sum(wide).value())
        == bits_of(-0x1.d540b22487135p+979));
  CHECK(naive_sum(wide) != -0x1.d540b22487135p+979);
  // The large values cancel exactly, so the result rests on the small ones.
  auto cancel = wide;
  for (auto x : wide)
    if (std::fabs(x) >= 0x1p477)
      cancel.push_back(-x);
  CHECK(cancel.size() == wide.size() + 24792);
  CHECK(bits_of(sum_of(cancel).value()) == bits_of(0x1.9a7c3ba631b9ap+478));
  CHECK(bits_of(element_sum(cancel).value())
        == bits_of(0x1.9a7c3ba631b9ap+478));
  // Exponents within 2^+-20: the vectorised batch path.
  auto narrow = generate(2, 100000, 1003, 1043);
  CHECK(bits_of(sum_of(narrow).value()) == bits_of(0x1.1bbf4a4c01c16p+26));
  CHECK(bits_of(element_sum(narrow).value())
        == bits_of(0x1.1bbf4a4c01c16p+26));
}

TEST_CASE("exact_fsum: exact cancellation gives +0 even from -0 values",
          "[exact_fsum]") {
  auto xs = generate(2, 50000, 1003, 1043);
  auto n = xs.size();
  for (std::size_t i = 0; i < n; ++i)
    xs.push_back(-xs[i]);
  auto s = sum_of(xs);
  CHECK(s.finite_sum_is_zero());
  CHECK(bits_of(s.value()) == bits_of(0.0));
  CHECK(s == element_sum(xs));
  // IEEE would give -0 for a sum of -0 values only; we document +0.
  std::vector<double> negative_zeros(3000, -0.0);
  CHECK(bits_of(sum_of(negative_zeros).value()) == bits_of(0.0));
  CHECK(bits_of(element_sum(negative_zeros).value()) == bits_of(0.0));
  // A negative result keeps its sign.
  CHECK(sum_of({-1.0, 0.5}).value() == -0.5);
}

TEST_CASE("exact_fsum: ties round to even and anything beyond a tie rounds up",
          "[exact_fsum]") {
  // 1 + 2^-53 is halfway between 1 and its successor: even is 1.
  CHECK(sum_of({1.0, 0x1p-53}).value() == 1.0);
  // (1 + 2^-52) + 2^-53 is halfway again: even is 1 + 2^-51.
  CHECK(sum_of({0x1.0000000000001p+0, 0x1p-53}).value()
        == 0x1.0000000000002p+0);
  // A far smaller term decides a tie.
  CHECK(sum_of({1.0, 0x1p-53, 0x1p-1074}).value() == 0x1.0000000000001p+0);
  CHECK(sum_of({1.0, 0x1p-53, -0x1p-1074}).value() == 1.0);
  CHECK(sum_of({-1.0, -0x1p-53, -0x1p-200}).value() == -0x1.0000000000001p+0);
  CHECK(sum_of({0x1p1000, 0x1p947}).value() == 0x1p1000);
  CHECK(sum_of({0x1p1000, 0x1p947, 0x1p-1074}).value()
        == 0x1.0000000000001p+1000);
  // Subnormals add exactly.
  CHECK(sum_of({0x1p-1074, 0x1p-1074}).value() == 0x1p-1073);
  CHECK(sum_of({0x1p-1022, -0x1p-1074}).value()
        == 0x0.fffffffffffffp-1022);
  // The same through the batch path in blocks with nothing else in them.
  std::vector<double> xs(3000, 0x1p-53);
  xs.push_back(1.0);
  CHECK(sum_of(xs).value() == 1.0 + 3000 * 0x1p-53);
}

TEST_CASE("exact_fsum: sums beyond DBL_MAX round to infinity as IEEE does",
          "[exact_fsum]") {
  constexpr auto inf = std::numeric_limits<double>::infinity();
  CHECK(sum_of({DBL_MAX, DBL_MAX}).value() == inf);
  CHECK(sum_of({-DBL_MAX, -DBL_MAX}).value() == -inf);
  // Only the final result is rounded: the intermediate overflow is harmless.
  CHECK(sum_of({DBL_MAX, DBL_MAX, -DBL_MAX}).value() == DBL_MAX);
  // DBL_MAX + ulp/2 is a tie whose even neighbour is 2^1024: inf.
  CHECK(sum_of({DBL_MAX, 0x1p970}).value() == inf);
  CHECK(sum_of({DBL_MAX, 0x1p970, -0x1p-1074}).value() == DBL_MAX);
  CHECK(sum_of({DBL_MAX, 0x1p969}).value() == DBL_MAX);
  std::vector<double> xs(5000, DBL_MAX);
  auto s = sum_of(xs);
  CHECK(s.value() == inf);
  std::vector<double> back(4999, -DBL_MAX);
  s.merge(sum_of(back));
  CHECK(s.value() == DBL_MAX);
}

TEST_CASE("exact_fsum: inf and NaN follow IEEE", "[exact_fsum]") {
  constexpr auto inf = std::numeric_limits<double>::infinity();
  constexpr auto nan = std::numeric_limits<double>::quiet_NaN();
  CHECK(sum_of({1.0, inf, -1e308}).value() == inf);
  CHECK(sum_of({1.0, -inf}).value() == -inf);
  CHECK(std::isnan(sum_of({inf, -inf}).value()));
  CHECK(std::isnan(sum_of({nan, 1.0}).value()));
  CHECK(std::isnan(sum_of({inf, nan}).value()));
  auto s = sum_of({inf, inf, 2.0, nan, -inf});
  CHECK(s.pos_inf_count() == 2);
  CHECK(s.neg_inf_count() == 1);
  CHECK(s.nan_count() == 1);
  CHECK(s.count() == 5);
  // Specials on other nodes combine the same way.
  auto a = sum_of({inf, 1.0});
  auto b = sum_of({-inf});
  CHECK(a.value() == inf);
  a.merge(b);
  CHECK(std::isnan(a.value()));
  // A special value inside a long batch sends only its block to the
  // element path; the finite part stays exact.
  auto xs = generate(2, 5000, 1003, 1043);
  xs[2500] = inf;
  auto t = sum_of(xs);
  CHECK(t.value() == inf);
  CHECK(t == element_sum(xs));
  xs.erase(xs.begin() + 2500);
  auto u = sum_of(xs);
  u.add(inf);
  CHECK(u == t);
}

TEST_CASE("exact_fsum: every split and merge order gives the same bits",
          "[exact_fsum]") {
  const auto& wide = wide_data();
  const auto narrow = generate(5, 100000, 1003, 1043);
  for (const auto* xs : {&wide, &narrow}) {
    auto reference = element_sum(*xs);
    for (std::size_t size : {std::size_t{1}, std::size_t{7},
                             std::size_t{65536}}) {
      for (std::uint64_t seed : {1u, 2u, 3u}) {
        auto s = split_and_merge(*xs, size, seed);
        CHECK(s == reference);
        CHECK(bits_of(s.value()) == bits_of(reference.value()));
      }
    }
  }
  CHECK(bits_of(element_sum(wide).value())
        == bits_of(-0x1.d540b22487135p+979));
}

TEST_CASE("exact_fsum: the batch path and the element path reach one state",
          "[exact_fsum]") {
  // Blocks the vectorised split takes, blocks it hands back (too wide a
  // range, subnormals only, the largest binades), and their mixtures.
  std::vector<std::vector<double>> sets{
    generate(6, 10000, 1003, 1043),  generate(7, 10000, 0, 2046),
    generate(8, 10000, 0, 40),       generate(9, 10000, 2000, 2046),
    generate(10, 10000, 40, 60),     generate(11, 10000, 1000, 1100),
    generate(12, 10000, 1900, 2042), generate(13, 10000, 49, 149)};
  for (const auto& xs : sets) {
    auto batch = sum_of(xs);
    auto element = element_sum(xs);
    CHECK(batch == element);
    CHECK(bits_of(batch.value()) == bits_of(element.value()));
    CHECK(batch.canonical_chunks() == element.canonical_chunks());
  }
}

TEST_CASE("exact_fsum: merging is commutative and associative", "[exact_fsum]") {
  auto a = sum_of(generate(20, 3000, 0, 2046));
  auto b = sum_of(generate(21, 3000, 900, 1100));
  auto c = sum_of(generate(22, 3000, 1003, 1043));
  auto ab = a;
  ab.merge(b);
  auto ba = b;
  ba.merge(a);
  CHECK(ab == ba);
  auto ab_c = ab;
  ab_c.merge(c);
  auto bc = b;
  bc.merge(c);
  auto a_bc = a;
  a_bc.merge(bc);
  CHECK(ab_c == a_bc);
  CHECK(bits_of(ab_c.value()) == bits_of(a_bc.value()));
}

TEST_CASE("exact_fsum: a CAF binary round trip keeps the exact state",
          "[exact_fsum][serialization]") {
  auto xs = wide_data();
  auto s = sum_of(xs);
  s.add(std::numeric_limits<double>::infinity());
  std::vector<char> buf;
  {
    caf::binary_serializer sink{nullptr, buf};
    REQUIRE(!sink(s));
  }
  // 67 chunks and 4 counters, 8 bytes each.
  CHECK(buf.size() == 71 * 8);
  exact_fsum loaded;
  {
    caf::binary_deserializer source{nullptr, buf};
    REQUIRE(!source(loaded));
  }
  CHECK(loaded == s);
  // A loaded state keeps accumulating as the original would.
  loaded.add(xs.data(), xs.size());
  s.add(xs.data(), xs.size());
  CHECK(loaded == s);
  // Equal sums serialise to equal bytes, however they were reached.
  auto t = element_sum(xs);
  auto u = split_and_merge(xs, 7, 9);
  std::vector<char> tb;
  std::vector<char> ub;
  caf::binary_serializer{nullptr, tb}(t);
  caf::binary_serializer{nullptr, ub}(u);
  CHECK(tb == ub);
  // A chunk that is not a 32-bit digit cannot come from a real sum.
  auto bad = tb;
  // Chunk 7 becomes 0x0101010101010101 whatever the byte order.
  std::fill(bad.begin() + 7 * 8, bad.begin() + 8 * 8, char{1});
  exact_fsum rejected;
  caf::binary_deserializer source{nullptr, bad};
  CHECK(source(rejected));
}

TEST_CASE("exact_moments: within 1 ulp of an exact rational reference",
          "[exact_fsum][exact_moments]") {
  // Mean 1e6, deviation about 5e-4: the textbook formula in doubles would
  // return noise.
  auto xs = around_a_million(3, 100000);
  exact_moments m;
  m.add(xs.data(), xs.size());
  CHECK(m.count() == 100000);
  CHECK(ulps(m.mean(), 0x1.e848000002f8dp+19) <= 1);
  CHECK(ulps(m.variance_population(), 0x1.5737e3c497613p-22) <= 1);
  CHECK(ulps(m.variance_sample(), 0x1.5738c4b3a55b4p-22) <= 1);
  CHECK(ulps(m.stddev_population(), 0x1.286b1eadcee15p-11) <= 1);
  CHECK(ulps(m.stddev_sample(), 0x1.286b7fcf60156p-11) <= 1);
  // Signed values over 600 binary orders of magnitude.
  auto ys = generate(4, 20000, 1023 - 300, 1023 + 300);
  exact_moments w;
  w.add(ys.data(), ys.size());
  CHECK(ulps(w.mean(), 0x1.205ae5b8c2c9bp+287) <= 1);
  CHECK(ulps(w.variance_population(), 0x1.71c159c5f343fp+592) <= 1);
  CHECK(ulps(w.variance_sample(), 0x1.71c61572aa987p+592) <= 1);
  CHECK(ulps(w.stddev_population(), 0x1.33aa12ac41830p+296) <= 1);
  CHECK(ulps(w.stddev_sample(), 0x1.33ac0ac4e0246p+296) <= 1);
}

TEST_CASE("exact_moments: results do not depend on the split",
          "[exact_fsum][exact_moments]") {
  auto xs = around_a_million(3, 20000);
  exact_moments whole;
  whole.add(xs.data(), xs.size());
  for (std::size_t size : {std::size_t{1}, std::size_t{7},
                           std::size_t{4096}}) {
    exact_moments merged;
    for (std::size_t pos = 0; pos < xs.size(); pos += size) {
      exact_moments part;
      auto m = std::min(size, xs.size() - pos);
      if (m == 1)
        part.add(xs[pos]);
      else
        part.add(xs.data() + pos, m);
      merged.merge(part);
    }
    CHECK(merged == whole);
    CHECK(bits_of(merged.mean()) == bits_of(whole.mean()));
    CHECK(bits_of(merged.stddev_sample()) == bits_of(whole.stddev_sample()));
  }
}

TEST_CASE("exact_moments: undefined moments are NaN and constants have 0",
          "[exact_fsum][exact_moments]") {
  exact_moments m;
  CHECK(std::isnan(m.mean()));
  CHECK(std::isnan(m.stddev_population()));
  m.add(3.0);
  CHECK(m.mean() == 3.0);
  CHECK(m.stddev_population() == 0.0);
  CHECK(std::isnan(m.stddev_sample()));
  for (int i = 0; i < 9999; ++i)
    m.add(0.1);
  exact_moments c;
  std::vector<double> same(10000, 0.1);
  c.add(same.data(), same.size());
  CHECK(c.mean() == 0.1);
  CHECK(c.variance_sample() == 0.0);
  CHECK(c.stddev_population() == 0.0);
  m.add(std::numeric_limits<double>::infinity());
  CHECK(m.mean() == std::numeric_limits<double>::infinity());
  CHECK(std::isnan(m.stddev_sample()));
}

namespace {

/// The 32-bit digits of `m`, least significant first.
std::vector<std::uint32_t> digits_of(unsigned __int128 m) {
  std::vector<std::uint32_t> ds;
  for (; m != 0; m >>= 32)
    ds.push_back(static_cast<std::uint32_t>(m & 0xFFFFFFFFu));
  return ds;
}

} // namespace

TEST_CASE("exact_fsum: integer partial sums scaled by powers of two add "
          "exactly, as flow-etl's push-down of float sums sends them",
          "[exact_fsum]") {
  // What the server computes per bucket (apps/etl/agg_plan.cpp): each
  // value's bucket B, a multiple of 8 at most its exponent and within 9 of
  // it, then the integer sum of x * 2^(52 - B); here the same in C++, with
  // the exponent taken from the bits instead of the server's ln.
  auto bucket_of = [](double x) {
    int e = 0;
    std::frexp(x, &e); // |x| in [2^(e-1), 2^e)
    e -= 1;
    auto b = static_cast<int>(std::floor((e - 1) / 8.0)) * 8;
    return b;
  };
  for (auto [lo, hi] : {std::pair{0u, 60u}, std::pair{1000u, 1100u},
                        std::pair{1u, 2046u}, std::pair{1960u, 2046u}}) {
    INFO("biased exponents " << lo << ".." << hi);
    auto xs = generate(lo * 7919 + hi, 20000, lo, hi);
    std::map<int, std::pair<__int128, std::uint64_t>> buckets;
    for (auto x : xs) {
      auto b = bucket_of(x);
      auto m = std::ldexp(x, 52 - b);
      REQUIRE(m == std::trunc(m));
      REQUIRE(std::fabs(m) < 0x1p62);
      auto& [sum, n] = buckets[b];
      sum += static_cast<__int128>(m);
      ++n;
    }
    exact_fsum pushed;
    for (auto& [b, p] : buckets) {
      auto neg = p.first < 0;
      auto mag = static_cast<unsigned __int128>(neg ? -p.first : p.first);
      auto ds = digits_of(mag);
      REQUIRE(pushed.add_scaled(neg, ds.data(), ds.size(), b - 52, p.second));
    }
    auto direct = element_sum(xs);
    CHECK(pushed == direct);
    CHECK(bits_of(pushed.value()) == bits_of(direct.value()));
  }
  SECTION("what cannot be added exactly is refused and changes nothing") {
    exact_fsum s;
    s.add(1.5);
    auto before = s;
    std::uint32_t one = 1;
    // 2^-1075 is below the accumulator's resolution.
    CHECK_FALSE(s.add_scaled(false, &one, 1, -1075, 1));
    // A digit whose lowest bit is below it.
    std::uint32_t three = 3;
    CHECK_FALSE(s.add_scaled(false, &three, 1, -1075, 1));
    // Beyond the top of the accumulator.
    CHECK_FALSE(s.add_scaled(true, &one, 1, 1100, 1));
    CHECK(s == before);
    // But an even digit below 2^-1074 is a multiple of it: 2 * 2^-1075.
    std::uint32_t two = 2;
    CHECK(s.add_scaled(false, &two, 1, -1075, 1));
    CHECK(s.count() == 2);
    exact_fsum t;
    t.add(1.5);
    t.add(std::numeric_limits<double>::denorm_min());
    CHECK(s == t);
    // A sum beyond the largest double rounds to inf, as the element path.
    std::uint32_t big[] = {0, 1}; // 2^32, times 2^995: 2^1027
    exact_fsum huge;
    CHECK(huge.add_scaled(false, big, 2, 995, 2));
    CHECK(std::isinf(huge.value()));
  }
}
