#include "flow/distinct.hpp"

#include <array>
#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>

namespace flow {

// -- hashing ------------------------------------------------------------------

namespace {

/// Xored into a double's bits before mixing, so that a double does not hash
/// like the integer with the same bits (mix64 is a bijection).
constexpr std::uint64_t double_tag = 0xD6E8FEB86659FD93u;

/// 64-bit FNV-1a parameters (Fowler, Noll and Vo).
constexpr std::uint64_t fnv_offset = 0xCBF29CE484222325u;
constexpr std::uint64_t fnv_prime = 0x100000001B3u;

/// The canonical quiet NaN's bits.
constexpr std::uint64_t nan_bits = 0x7FF8000000000000u;

double double_of(std::uint64_t u) noexcept {
  double x;
  std::memcpy(&x, &u, sizeof x);
  return x;
}

/// True when `xs` is strictly increasing.
template <class T>
bool strictly_increasing(const std::vector<T>& xs) {
  return std::adjacent_find(xs.begin(), xs.end(),
                            [](const T& a, const T& b) { return !(a < b); })
         == xs.end();
}

} // namespace

std::uint64_t canonical_bits(double x) noexcept {
  if (std::isnan(x))
    return nan_bits;
  if (x == 0.0)
    return 0;
  std::uint64_t u;
  std::memcpy(&u, &x, sizeof u);
  return u;
}

std::uint64_t hash64(std::int64_t x) noexcept {
  return detail::mix64(static_cast<std::uint64_t>(x));
}

std::uint64_t hash64(double x) noexcept {
  return detail::mix64(canonical_bits(x) ^ double_tag);
}

std::uint64_t hash64(std::string_view x) noexcept {
  auto h = fnv_offset;
  for (unsigned char c : x) {
    h ^= c;
    h *= fnv_prime;
  }
  return detail::mix64(h);
}

std::uint64_t hash64(const key& x) noexcept {
  if (x.is_int())
    return hash64(x.as_int());
  if (x.is_string())
    return hash64(std::string_view{x.as_string()});
  // A composite key: its encoding (as_string(), see key.hpp) is canonical
  // and platform-independent; the constant keeps it apart from the string
  // with the same bytes.
  return hash64(std::string_view{x.as_string()}) ^ 0x6a09e667f3bcc909ULL;
}

// -- distinct_count -----------------------------------------------------------

void distinct_count::add(std::string_view x) {
  add(std::string{x});
}

void distinct_count::add(const std::string& x) {
  // insert(const value_type&) looks the value up before building a node, so
  // a repeated string costs no allocation.
  strings_.insert(x);
}

void distinct_count::add(const key& x) {
  if (x.is_int())
    add(x.as_int());
  else if (x.is_string())
    add(x.as_string());
  else
    others_.insert(x);
}

void distinct_count::add(const std::int64_t* xs, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i)
    ints_.insert(static_cast<std::uint64_t>(xs[i]));
}

void distinct_count::add(const double* xs, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i)
    doubles_.insert(canonical_bits(xs[i]));
}

bool distinct_count::merge(const distinct_count& other) {
  if (&other == this)
    return true;
  ints_.reserve(ints_.size() + other.ints_.size());
  other.ints_.for_each([this](std::uint64_t w) { ints_.insert(w); });
  doubles_.reserve(doubles_.size() + other.doubles_.size());
  other.doubles_.for_each([this](std::uint64_t w) { doubles_.insert(w); });
  strings_.insert(other.strings_.begin(), other.strings_.end());
  others_.insert(other.others_.begin(), other.others_.end());
  return true;
}

std::vector<std::int64_t> distinct_count::sorted_ints() const {
  std::vector<std::int64_t> xs;
  xs.reserve(ints_.size());
  ints_.for_each(
    [&xs](std::uint64_t w) { xs.push_back(static_cast<std::int64_t>(w)); });
  std::sort(xs.begin(), xs.end());
  return xs;
}

std::vector<std::uint64_t> distinct_count::sorted_doubles() const {
  std::vector<std::uint64_t> xs;
  xs.reserve(doubles_.size());
  doubles_.for_each([&xs](std::uint64_t w) { xs.push_back(w); });
  std::sort(xs.begin(), xs.end());
  return xs;
}

std::vector<std::string> distinct_count::sorted_strings() const {
  std::vector<std::string> xs(strings_.begin(), strings_.end());
  std::sort(xs.begin(), xs.end());
  return xs;
}

caf::error distinct_count::load(const std::vector<std::int64_t>& ints,
                                const std::vector<std::uint64_t>& doubles,
                                const std::vector<std::string>& strings,
                                const std::vector<key>& others) {
  auto fail = [](const char* what) {
    return make_error(errc::protocol_violation,
                      std::string{"distinct_count: "} + what);
  };
  if (!strictly_increasing(ints))
    return fail("integers not strictly increasing");
  if (!strictly_increasing(doubles))
    return fail("doubles not strictly increasing");
  for (auto w : doubles)
    if (canonical_bits(double_of(w)) != w)
      return fail("a double that is not in canonical form");
  if (!strictly_increasing(strings))
    return fail("strings not strictly increasing");
  if (!strictly_increasing(others))
    return fail("keys not strictly increasing");
  for (auto& k : others)
    if (k.is_int() || k.is_string())
      return fail("an integer or string key among the other keys");
  distinct_count loaded;
  loaded.ints_.reserve(ints.size());
  for (auto x : ints)
    loaded.ints_.insert(static_cast<std::uint64_t>(x));
  loaded.doubles_.reserve(doubles.size());
  for (auto w : doubles)
    loaded.doubles_.insert(w);
  loaded.strings_.insert(strings.begin(), strings.end());
  loaded.others_.insert(others.begin(), others.end());
  *this = std::move(loaded);
  return caf::error{};
}

// -- hll ----------------------------------------------------------------------

namespace {

/// Ertl's sigma(x) = x + sum_{k>=1} x^(2^k) 2^(k-1) (his Algorithm 6).
double ertl_sigma(double x) noexcept {
  if (x == 1.0)
    return std::numeric_limits<double>::infinity();
  double y = 1.0;
  double z = x;
  for (;;) {
    x *= x;
    auto z_prev = z;
    z += x * y;
    y += y;
    if (z_prev == z)
      return z;
  }
}

/// Ertl's tau(x) = (1 - x - sum_{k>=1} (1 - x^(2^-k))^2 2^-k) / 3.
double ertl_tau(double x) noexcept {
  if (x == 0.0 || x == 1.0)
    return 0.0;
  double y = 1.0;
  double z = 1.0 - x;
  for (;;) {
    x = std::sqrt(x);
    auto z_prev = z;
    y *= 0.5;
    z -= (1.0 - x) * (1.0 - x) * y;
    if (z_prev == z)
      return z / 3.0;
  }
}

} // namespace

hll::hll(int p) : p_(p) {
  if (p < min_precision || p > max_precision)
    throw std::invalid_argument("hll: precision " + std::to_string(p)
                                + " outside [4, 18]");
}

void hll::add(const std::int64_t* xs, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i)
    add_hash(hash64(xs[i]));
}

void hll::add(const double* xs, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i)
    add_hash(hash64(xs[i]));
}

void hll::add_sparse(std::size_t idx, std::uint8_t r) {
  auto e = static_cast<std::uint32_t>(idx << 8);
  auto i = std::lower_bound(sparse_.begin(), sparse_.end(), e);
  if (i != sparse_.end() && (*i >> 8) == idx) {
    if ((*i & 0xFF) < r)
      *i = e | r;
    return;
  }
  sparse_.insert(i, e | r);
  if (sparse_.size() > sparse_limit())
    to_dense();
}

void hll::to_dense() {
  dense_.assign(registers(), 0);
  for (auto e : sparse_)
    dense_[e >> 8] = static_cast<std::uint8_t>(e & 0xFF);
  // Release the sparse entries: the dense form is the whole state now.
  std::vector<std::uint32_t>{}.swap(sparse_);
}

bool hll::merge(const hll& other) {
  if (other.p_ != p_)
    return false;
  if (&other == this)
    return true;
  if (!other.dense_.empty()) {
    if (dense_.empty())
      to_dense();
    for (std::size_t i = 0; i < dense_.size(); ++i)
      dense_[i] = std::max(dense_[i], other.dense_[i]);
    return true;
  }
  if (!dense_.empty()) {
    for (auto e : other.sparse_) {
      auto& reg = dense_[e >> 8];
      reg = std::max(reg, static_cast<std::uint8_t>(e & 0xFF));
    }
    return true;
  }
  // Both sparse: merge the two increasing lists in one pass.
  std::vector<std::uint32_t> out;
  out.reserve(sparse_.size() + other.sparse_.size());
  auto i = sparse_.begin();
  auto j = other.sparse_.begin();
  while (i != sparse_.end() || j != other.sparse_.end()) {
    if (j == other.sparse_.end() || (i != sparse_.end() && (*i >> 8) < (*j >> 8)))
      out.push_back(*i++);
    else if (i == sparse_.end() || (*j >> 8) < (*i >> 8))
      out.push_back(*j++);
    else
      out.push_back(std::max(*i++, *j++));
  }
  sparse_.swap(out);
  if (sparse_.size() > sparse_limit())
    to_dense();
  return true;
}

double hll::estimate() const {
  auto q = 64 - p_;
  // Register values are in [0, q + 1] with q + 1 <= 61.
  std::array<double, 64> c{};
  auto m = static_cast<double>(registers());
  if (!dense_.empty()) {
    // Counting in integers first is faster than in doubles.
    std::array<std::uint32_t, 64> ci{};
    for (auto r : dense_)
      ++ci[r];
    for (std::size_t k = 0; k < c.size(); ++k)
      c[k] = ci[k];
  } else {
    c[0] = m - static_cast<double>(sparse_.size());
    for (auto e : sparse_)
      c[e & 0xFF] += 1.0;
  }
  // Ertl's improved estimator (his Algorithm 6).
  auto z = m * ertl_tau(1.0 - c[q + 1] / m);
  for (int k = q; k >= 1; --k)
    z = 0.5 * (z + c[k]);
  z += m * ertl_sigma(c[0] / m);
  constexpr double alpha_inf = 0.72134752044448170368; // 1 / (2 ln 2)
  return alpha_inf * m * m / z;
}

double hll::standard_error() const noexcept {
  return 1.04 / std::sqrt(static_cast<double>(registers()));
}

caf::error hll::validate(std::uint8_t p) {
  auto fail = [this](std::string what) {
    p_ = default_precision;
    sparse_.clear();
    dense_.clear();
    return make_error(errc::protocol_violation, "hll: " + what);
  };
  if (p < min_precision || p > max_precision)
    return fail("precision " + std::to_string(p) + " outside [4, 18]");
  auto m = std::size_t{1} << p;
  auto max_value = 64 - p + 1;
  if (!dense_.empty()) {
    if (!sparse_.empty())
      return fail("both a sparse and a dense form");
    if (dense_.size() != m)
      return fail("dense form of the wrong size");
    std::size_t nonzero = 0;
    for (auto r : dense_) {
      if (r > max_value)
        return fail("register above 64 - p + 1");
      nonzero += r != 0;
    }
    if (nonzero <= m / 8)
      return fail("dense form with too few nonzero registers");
    return caf::error{};
  }
  if (sparse_.size() > m / 8)
    return fail("sparse form with too many registers");
  for (std::size_t i = 0; i < sparse_.size(); ++i) {
    auto e = sparse_[i];
    auto r = e & 0xFF;
    if ((e >> 8) >= m || r == 0 || r > static_cast<std::uint32_t>(max_value))
      return fail("sparse entry out of range");
    if (i > 0 && (sparse_[i - 1] >> 8) >= (e >> 8))
      return fail("sparse entries not strictly increasing");
  }
  return caf::error{};
}

} // namespace flow
