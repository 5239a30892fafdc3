#include "flow/exact_sum.hpp"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

// The batch path relies on every addition being rounded once, as written: no
// reassociation and no contraction into fused multiply-adds.
#if defined(__FAST_MATH__)
#  error "exact_sum.cpp must not be compiled with -ffast-math"
#endif
// Nor with excess precision (x87): the split needs each operation rounded to
// double.
#if FLT_EVAL_METHOD != 0
#  error "exact_sum.cpp needs FLT_EVAL_METHOD == 0 (SSE2 or better on x86)"
#endif

static_assert(std::numeric_limits<double>::is_iec559,
              "exact_fsum needs IEEE 754 binary64 doubles");
static_assert(std::numeric_limits<long double>::digits >= 64,
              "exact_moments needs a long double with a 64-bit mantissa");

namespace flow {

namespace {

using chunk_array = exact_fsum::chunk_array;

constexpr std::size_t top = exact_fsum::chunks - 1;
constexpr std::uint64_t low32 = 0xFFFFFFFFu;
constexpr std::uint64_t mantissa_mask = (std::uint64_t{1} << 52) - 1;
constexpr std::uint64_t exponent_mask = std::uint64_t{0x7FF} << 52;

/// Values per block of the batch path: 1024 integer parts below 2^50 each
/// sum to less than 2^60, and 8 KiB stay in L1 between the two passes.
constexpr std::size_t block = 1024;

/// |top chunk| never exceeds 2^50 (2^64 values below 2^1024); a loaded state
/// beyond 2^52 cannot come from a real sum.
constexpr std::int64_t top_limit = std::int64_t{1} << 52;

std::uint64_t bits_of(double x) noexcept {
  std::uint64_t u;
  std::memcpy(&u, &x, sizeof u);
  return u;
}

/// Carry propagation: digits 0..65 end in [0, 2^32), the top chunk signed.
/// Needs every chunk below 2^63 - 2^32 in magnitude, which the carry budget
/// guarantees.
void normalize_chunks(chunk_array& c) noexcept {
  for (std::size_t i = 0; i < top; ++i) {
    auto carry = c[i] >> 32; // arithmetic shift: floor division by 2^32
    c[i] = static_cast<std::int64_t>(static_cast<std::uint64_t>(c[i]) & low32);
    c[i + 1] += carry;
  }
}

/// Bit `pos` of a non-negative canonical number.
unsigned bit_at(const chunk_array& c, int pos) noexcept {
  if (pos < 0)
    return 0;
  auto i = std::min<std::size_t>(static_cast<std::size_t>(pos) >> 5, top);
  auto off = pos - static_cast<int>(32 * i);
  if (off >= 63)
    return 0;
  return static_cast<unsigned>((c[i] >> off) & 1);
}

/// Bits [lo, lo + n) of a non-negative canonical number, n <= 64.
std::uint64_t bits_at(const chunk_array& c, int lo, int n) noexcept {
  std::uint64_t r = 0;
  for (int k = n - 1; k >= 0; --k)
    r = (r << 1) | bit_at(c, lo + k);
  return r;
}

/// True when some bit below `pos` is set.
bool any_below(const chunk_array& c, int pos) noexcept {
  for (int p = 0; p < pos; ++p)
    if (bit_at(c, p) != 0)
      return true;
  return false;
}

/// Position of the highest set bit of a non-negative canonical number, -1
/// for zero.
int highest_bit(const chunk_array& c) noexcept {
  for (auto i = static_cast<int>(top); i >= 0; --i)
    if (c[i] != 0)
      return 32 * i + 63
             - __builtin_clzll(static_cast<std::uint64_t>(c[i]));
  return -1;
}

/// Canonical magnitude of a canonical number; `negative` tells its sign.
chunk_array magnitude(chunk_array c, bool& negative) noexcept {
  negative = c[top] < 0;
  if (negative) {
    for (auto& x : c)
      x = -x;
    normalize_chunks(c);
  }
  return c;
}

/// Top 64 bits of a non-negative canonical number as a long double
/// (truncated: relative error below 2^-63), scaled by 2^`scale`.
long double to_long_double(const chunk_array& c, int scale) noexcept {
  auto h = highest_bit(c);
  if (h < 0)
    return 0.0L;
  auto lo = std::max(0, h - 63);
  auto m = bits_at(c, lo, 64);
  return std::ldexp(static_cast<long double>(m), lo + scale);
}

// -- unsigned big integers (32-bit digits, least significant first) ----------

using big = std::vector<std::uint32_t>;

big to_big(const chunk_array& c) {
  big r;
  for (std::size_t i = 0; i < top; ++i)
    r.push_back(static_cast<std::uint32_t>(c[i]));
  auto t = static_cast<std::uint64_t>(c[top]);
  r.push_back(static_cast<std::uint32_t>(t));
  r.push_back(static_cast<std::uint32_t>(t >> 32));
  return r;
}

big mul(const big& a, const big& b) {
  big r(a.size() + b.size(), 0);
  for (std::size_t i = 0; i < a.size(); ++i) {
    std::uint64_t carry = 0;
    for (std::size_t j = 0; j < b.size(); ++j) {
      auto t = std::uint64_t{a[i]} * b[j] + r[i + j] + carry;
      r[i + j] = static_cast<std::uint32_t>(t);
      carry = t >> 32;
    }
    for (auto k = i + b.size(); carry != 0; ++k) {
      auto t = std::uint64_t{r[k]} + carry;
      r[k] = static_cast<std::uint32_t>(t);
      carry = t >> 32;
    }
  }
  return r;
}

big shift_left(const big& a, int n) {
  auto digits = static_cast<std::size_t>(n / 32);
  auto bits = n % 32;
  big r(a.size() + digits + 1, 0);
  for (std::size_t i = 0; i < a.size(); ++i) {
    auto t = std::uint64_t{a[i]} << bits;
    r[i + digits] |= static_cast<std::uint32_t>(t);
    r[i + digits + 1] |= static_cast<std::uint32_t>(t >> 32);
  }
  return r;
}

std::uint32_t digit(const big& a, std::size_t i) {
  return i < a.size() ? a[i] : 0;
}

/// a - b, or an empty result when a < b.
big subtract(const big& a, const big& b) {
  auto n = std::max(a.size(), b.size());
  big r(n, 0);
  std::int64_t borrow = 0;
  for (std::size_t i = 0; i < n; ++i) {
    auto t = std::int64_t{digit(a, i)} - digit(b, i) - borrow;
    borrow = t < 0 ? 1 : 0;
    r[i] = static_cast<std::uint32_t>(t + (borrow << 32));
  }
  if (borrow != 0)
    return big{};
  return r;
}

/// Top 64 bits of `a` (truncated) as a long double scaled by 2^`scale`.
long double to_long_double(const big& a, int scale) {
  auto i = a.size();
  while (i > 0 && a[i - 1] == 0)
    --i;
  if (i == 0)
    return 0.0L;
  // The top three digits hold at least 65 significant bits.
  std::uint64_t hi = a[i - 1];
  auto mid = digit(a, i - 2 < i ? i - 2 : a.size());
  auto lo = digit(a, i - 3 < i ? i - 3 : a.size());
  auto lz = __builtin_clzll(hi) - 32; // leading zeros in the top digit
  auto m = (hi << (32 + lz)) | (std::uint64_t{mid} << lz)
           | (lz == 0 ? 0 : std::uint64_t{lo} >> (32 - lz));
  auto exp = static_cast<int>(32 * (i - 1)) + (32 - lz) - 64;
  return std::ldexp(static_cast<long double>(m), exp + scale);
}

// -- the batch path -----------------------------------------------------------

/// Splits the `m` values at `p` without error: sum(p) = a1 * 2^(e+2-1074) +
/// a2 * 2^(e-49-1074), where e is the largest biased exponent of the block.
/// Returns false (and the outputs are meaningless) when the block needs the
/// per-element path: inf or NaN, an exponent outside [49, 2042] (where the
/// splitting constants stay normal and finite), or bits below the second
/// part. Compiled for AVX2 where the CPU has it, SSE2 otherwise; clones are
/// chosen by feature, since "arch=" clones dispatch on the CPU model and
/// leave, for example, AMD processors on the SSE2 code.
__attribute__((target_clones("avx2", "default"))) bool
split_block(const double* p, std::size_t m, std::int64_t& a1,
            std::int64_t& a2, int& e) noexcept {
  // Pass 1: the largest exponent, as an integer max that vectorises.
  std::int64_t emax = 0;
  for (std::size_t i = 0; i < m; ++i) {
    // Copying the bits straight from memory (not through a double) is the
    // form GCC vectorises.
    std::uint64_t u;
    std::memcpy(&u, p + i, sizeof u);
    auto ex = static_cast<std::int64_t>(u & exponent_mask);
    emax = ex > emax ? ex : emax;
  }
  e = static_cast<int>(emax >> 52);
  if (e < 49 || e > 2042)
    return false;
  // Every |x| < 2^(e-1022), so with s = 1072 - e, |x| 2^s < 2^50. Adding
  // c1 = 1.5 * 2^(52-s) rounds x to a multiple of 2^-s (t1 stays in c1's
  // binade, whose spacing is 2^-s); r1 = x - (t1 - c1) is exact and at most
  // 2^-(s+1). The same with c2 = 1.5 * 2^(1-s) splits r1 on the grid
  // 2^-(s+51). The integer parts are the bit differences t - c.
  auto s = 1072 - e;
  auto c1 = std::ldexp(1.5, 52 - s);
  auto c2 = std::ldexp(1.5, 1 - s);
  auto c1_bits = static_cast<std::int64_t>(bits_of(c1));
  auto c2_bits = static_cast<std::int64_t>(bits_of(c2));
  std::int64_t acc1 = 0;
  std::int64_t acc2 = 0;
  std::uint64_t rest = 0;
  for (std::size_t i = 0; i < m; ++i) {
    auto x = p[i];
    auto t1 = x + c1;
    auto r1 = x - (t1 - c1);
    auto t2 = r1 + c2;
    auto r2 = r1 - (t2 - c2);
    acc1 += static_cast<std::int64_t>(bits_of(t1)) - c1_bits;
    acc2 += static_cast<std::int64_t>(bits_of(t2)) - c2_bits;
    // A shift drops the sign, so -0.0 counts as zero.
    rest |= bits_of(r2) << 1;
  }
  a1 = acc1;
  a2 = acc2;
  return rest == 0;
}

/// Squares split without error: p[i] + q[i] = xs[i]^2 (see exact_moments).
/// Where the square overflows, q[i] is 0 so that +inf stays +inf. Without
/// the FMA clone std::fma is a library call.
__attribute__((target_clones("fma", "default"))) void
split_squares(const double* xs, std::size_t n, double* p, double* q) noexcept {
  for (std::size_t i = 0; i < n; ++i) {
    auto x = xs[i];
    auto sq = x * x;
    auto err = std::fma(x, x, -sq);
    p[i] = sq;
    q[i] = std::isinf(sq) ? 0.0 : err;
  }
}

} // namespace

// -- exact_fsum ----------------------------------------------------------------

exact_fsum exact_fsum::of(const double* xs, std::size_t n) noexcept {
  exact_fsum result;
  result.add(xs, n);
  return result;
}

void exact_fsum::add(double x) noexcept {
  ++count_;
  add_scalar(&x, 1);
}

void exact_fsum::add_scalar(const double* xs, std::size_t n) noexcept {
  for (std::size_t i = 0; i < n; ++i) {
    auto u = bits_of(xs[i]);
    auto ex = (u >> 52) & 0x7FF;
    auto mant = u & mantissa_mask;
    if (ex == 0x7FF) {
      if (mant != 0)
        ++nan_;
      else if ((u >> 63) != 0)
        ++neg_inf_;
      else
        ++pos_inf_;
      continue;
    }
    if (budget_ == 0)
      normalize();
    --budget_;
    // Subnormals have exponent field 0 but the weight of field 1 and no
    // implicit bit. The mantissa's lowest bit weighs 2^(ex-1) in units of
    // 2^-1074.
    if (ex == 0)
      ex = 1;
    else
      mant |= std::uint64_t{1} << 52;
    auto pos = static_cast<unsigned>(ex - 1);
    auto low = pos & 31;
    auto high = pos >> 5;
    auto lo = static_cast<std::int64_t>((mant << low) & low32);
    auto hi = static_cast<std::int64_t>(mant >> (32 - low));
    // Branch-free negation: neg is 0 or -1.
    auto neg = -static_cast<std::int64_t>(u >> 63);
    chunks_[high] += (lo ^ neg) - neg;
    chunks_[high + 1] += (hi ^ neg) - neg;
  }
}

void exact_fsum::add(const double* xs, std::size_t n) noexcept {
  count_ += n;
  for (std::size_t pos = 0; pos < n; pos += block) {
    auto m = std::min(block, n - pos);
    std::int64_t a1;
    std::int64_t a2;
    int e;
    if (split_block(xs + pos, m, a1, a2, e)) {
      if (budget_ < 2)
        normalize();
      budget_ -= 2;
      add_shifted(a1, e + 2);
      add_shifted(a2, e - 49);
    } else {
      add_scalar(xs + pos, m);
    }
  }
}

void exact_fsum::add_shifted(std::int64_t v, int bit) noexcept {
  auto low = bit & 31;
  auto high = static_cast<std::size_t>(bit >> 5);
  // Multiplying instead of shifting keeps a negative v well defined.
  auto w = static_cast<__int128>(v) * (static_cast<__int128>(1) << low);
  chunks_[high] += static_cast<std::int64_t>(w & low32);
  chunks_[high + 1] += static_cast<std::int64_t>((w >> 32) & low32);
  chunks_[high + 2] += static_cast<std::int64_t>(w >> 64);
}

bool exact_fsum::add_scaled(bool negative, const std::uint32_t* digits,
                            std::size_t n, int exp2,
                            std::uint64_t values) noexcept {
  // Bit positions count from 2^-1074, the weight of chunk 0's lowest bit. A
  // digit below it must have no bits there; a digit's two chunks must lie
  // under the top chunk (66), which stays the signed one.
  constexpr long long top = static_cast<long long>(chunks - 2) * 32 + 31;
  auto bit_of = [&](std::size_t i) {
    return static_cast<long long>(exp2) + 1074 + 32 * static_cast<long long>(i);
  };
  for (std::size_t i = 0; i < n; ++i) {
    if (digits[i] == 0)
      continue;
    auto b = bit_of(i);
    if (b > top)
      return false;
    if (b < 0
        && (b <= -32 || (digits[i] & ((std::uint32_t{1} << -b) - 1)) != 0))
      return false;
  }
  auto neg = negative ? std::int64_t{-1} : std::int64_t{0};
  for (std::size_t i = 0; i < n; ++i) {
    if (digits[i] == 0)
      continue;
    auto b = bit_of(i);
    std::uint64_t d = digits[i];
    if (b < 0) {
      d >>= -b;
      b = 0;
    }
    if (budget_ == 0)
      normalize();
    --budget_;
    auto low = static_cast<unsigned>(b & 31);
    auto high = static_cast<std::size_t>(b >> 5);
    auto w = d << low;
    auto lo = static_cast<std::int64_t>(w & low32);
    auto hi = static_cast<std::int64_t>(w >> 32);
    chunks_[high] += (lo ^ neg) - neg;
    chunks_[high + 1] += (hi ^ neg) - neg;
  }
  count_ += values;
  return true;
}

void exact_fsum::merge(const exact_fsum& other) noexcept {
  auto theirs = other.chunks_;
  normalize_chunks(theirs);
  normalize();
  for (std::size_t i = 0; i < chunks; ++i)
    chunks_[i] += theirs[i];
  normalize();
  count_ += other.count_;
  pos_inf_ += other.pos_inf_;
  neg_inf_ += other.neg_inf_;
  nan_ += other.nan_;
}

void exact_fsum::normalize() noexcept {
  normalize_chunks(chunks_);
  budget_ = carry_budget;
}

bool exact_fsum::is_canonical(const chunk_array& c) noexcept {
  for (std::size_t i = 0; i < top; ++i)
    if (c[i] < 0 || c[i] > static_cast<std::int64_t>(low32))
      return false;
  return c[top] > -top_limit && c[top] < top_limit;
}

exact_fsum::chunk_array exact_fsum::canonical_chunks() const noexcept {
  auto c = chunks_;
  normalize_chunks(c);
  return c;
}

bool exact_fsum::finite_sum_is_zero() const noexcept {
  auto c = canonical_chunks();
  return std::all_of(c.begin(), c.end(), [](auto x) { return x == 0; });
}

double exact_fsum::value() const noexcept {
  constexpr auto inf = std::numeric_limits<double>::infinity();
  if (nan_ > 0 || (pos_inf_ > 0 && neg_inf_ > 0))
    return std::numeric_limits<double>::quiet_NaN();
  if (pos_inf_ > 0)
    return inf;
  if (neg_inf_ > 0)
    return -inf;
  bool negative;
  auto c = magnitude(canonical_chunks(), negative);
  auto h = highest_bit(c);
  if (h < 0)
    return 0.0;
  double result;
  if (h <= 52) {
    // Below 2^53 units of 2^-1074 the sum is a double already (subnormal or
    // in the lowest binade), so the scaling is exact.
    result = std::ldexp(static_cast<double>(bits_at(c, 0, 53)), -1074);
  } else {
    auto mant = bits_at(c, h - 52, 53);
    auto round = bit_at(c, h - 53) != 0;
    if (round && ((mant & 1) != 0 || any_below(c, h - 53)))
      ++mant;
    if (mant == (std::uint64_t{1} << 53)) {
      mant >>= 1;
      ++h;
    }
    // mant < 2^53 is exact in a double; ldexp overflows to inf exactly when
    // the rounded value reaches 2^1024, as IEEE rounding does.
    result = std::ldexp(static_cast<double>(mant), h - 52 - 1074);
  }
  return negative ? -result : result;
}

bool operator==(const exact_fsum& x, const exact_fsum& y) noexcept {
  return x.canonical_chunks() == y.canonical_chunks() && x.count_ == y.count_
         && x.pos_inf_ == y.pos_inf_ && x.neg_inf_ == y.neg_inf_
         && x.nan_ == y.nan_;
}

// -- exact_moments ------------------------------------------------------------

void exact_moments::add(double x) noexcept {
  add(&x, 1);
}

void exact_moments::add(const double* xs, std::size_t n) noexcept {
  sum_.add(xs, n);
  double p[block];
  double q[block];
  for (std::size_t pos = 0; pos < n; pos += block) {
    auto m = std::min(block, n - pos);
    split_squares(xs + pos, m, p, q);
    sumsq_.add(p, m);
    sumsq_.add(q, m);
  }
}

void exact_moments::merge(const exact_moments& other) noexcept {
  sum_.merge(other.sum_);
  sumsq_.merge(other.sumsq_);
}

double exact_moments::mean() const noexcept {
  auto n = sum_.count();
  if (n == 0)
    return std::numeric_limits<double>::quiet_NaN();
  if (sum_.pos_inf_ + sum_.neg_inf_ + sum_.nan_ > 0)
    return sum_.value();
  bool negative;
  auto c = magnitude(sum_.canonical_chunks(), negative);
  auto m = to_long_double(c, -1074) / static_cast<long double>(n);
  auto result = static_cast<double>(m);
  return negative ? -result : result;
}

long double exact_moments::scaled_numerator() const noexcept {
  bool negative;
  auto a = to_big(magnitude(sum_.canonical_chunks(), negative));
  auto b = to_big(magnitude(sumsq_.canonical_chunks(), negative));
  // A sum of squares is never negative: p + e = x^2 with e correctly rounded.
  auto n = sum_.count();
  big nn{static_cast<std::uint32_t>(n), static_cast<std::uint32_t>(n >> 32)};
  // n S2 - S1^2 = (n B 2^1074 - A^2) 2^-2148 with S1 = A 2^-1074 and
  // S2 = B 2^-1074; by Cauchy-Schwarz it is >= 0 for exact sums.
  auto d = subtract(shift_left(mul(b, nn), 1074), mul(a, a));
  return to_long_double(d, 0);
}

double exact_moments::variance_population() const noexcept {
  auto n = static_cast<long double>(sum_.count());
  if (sum_.count() == 0 || sum_.pos_inf_ + sum_.neg_inf_ + sum_.nan_ > 0
      || sumsq_.nan_ > 0)
    return std::numeric_limits<double>::quiet_NaN();
  if (sumsq_.pos_inf_ > 0)
    return std::numeric_limits<double>::infinity();
  return static_cast<double>(std::ldexp(scaled_numerator(), -2148) / (n * n));
}

double exact_moments::variance_sample() const noexcept {
  auto n = static_cast<long double>(sum_.count());
  if (sum_.count() < 2 || sum_.pos_inf_ + sum_.neg_inf_ + sum_.nan_ > 0
      || sumsq_.nan_ > 0)
    return std::numeric_limits<double>::quiet_NaN();
  if (sumsq_.pos_inf_ > 0)
    return std::numeric_limits<double>::infinity();
  return static_cast<double>(std::ldexp(scaled_numerator(), -2148)
                             / (n * (n - 1)));
}

double exact_moments::stddev_population() const noexcept {
  auto n = static_cast<long double>(sum_.count());
  if (sum_.count() == 0 || sum_.pos_inf_ + sum_.neg_inf_ + sum_.nan_ > 0
      || sumsq_.nan_ > 0)
    return std::numeric_limits<double>::quiet_NaN();
  if (sumsq_.pos_inf_ > 0)
    return std::numeric_limits<double>::infinity();
  // sqrt(D 2^-2148) / n = sqrt(D) 2^-1074 / n: no rounding in the scaling.
  return static_cast<double>(
    std::ldexp(std::sqrt(scaled_numerator()), -1074) / n);
}

double exact_moments::stddev_sample() const noexcept {
  auto n = static_cast<long double>(sum_.count());
  if (sum_.count() < 2 || sum_.pos_inf_ + sum_.neg_inf_ + sum_.nan_ > 0
      || sumsq_.nan_ > 0)
    return std::numeric_limits<double>::quiet_NaN();
  if (sumsq_.pos_inf_ > 0)
    return std::numeric_limits<double>::infinity();
  return static_cast<double>(
    std::ldexp(std::sqrt(scaled_numerator() / (n * (n - 1))), -1074));
}

} // namespace flow
