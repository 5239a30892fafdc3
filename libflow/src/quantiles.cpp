#include "flow/quantiles.hpp"

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <utility>

namespace flow {

namespace {

/// Depth from which every capacity is `min_width`: k (2/3)^23 < 8 for every
/// k <= 65535, and 2^23 k and 3^23 fit comfortably in 64 bits.
constexpr std::size_t max_exact_depth = 23;

} // namespace

// -- construction -------------------------------------------------------------

kll::kll() : kll(default_k) {
  // nop
}

kll::kll(std::uint32_t k) : k_(k) {
  if (k < min_k || k > max_k)
    throw std::invalid_argument("kll: k = " + std::to_string(k)
                                + " outside [8, 65535]");
  levels_.emplace_back();
  max_size_ = capacity(0);
}

// -- adding -------------------------------------------------------------------

void kll::add(const double* xs, std::size_t n) {
  // The same steps as n calls of add(x), so a batch never changes the state
  // reached; the loop only skips the per-call size check between
  // compressions.
  while (n > 0) {
    auto take = std::min(n, max_size_ - size_);
    auto& level0 = levels_[0];
    auto before = level0.size();
    for (std::size_t i = 0; i < take; ++i) {
      auto x = xs[i];
      if (std::isnan(x)) {
        ++nan_;
        continue;
      }
      x += 0.0;
      min_ = x < min_ ? x : min_;
      max_ = x > max_ ? x : max_;
      level0.push_back(x);
    }
    auto added = level0.size() - before;
    n_ += added;
    size_ += added;
    xs += take;
    n -= take;
    if (size_ >= max_size_)
      compress();
  }
}

bool kll::merge(const kll& other) {
  if (other.k_ != k_)
    return false;
  if (&other == this) {
    auto copy = other;
    return merge(copy);
  }
  nan_ += other.nan_;
  if (other.n_ == 0)
    return true;
  while (levels_.size() < other.levels_.size())
    grow();
  for (std::size_t h = 0; h < other.levels_.size(); ++h)
    levels_[h].insert(levels_[h].end(), other.levels_[h].begin(),
                      other.levels_[h].end());
  size_ += other.size_;
  n_ += other.n_;
  min_ = std::min(min_, other.min_);
  max_ = std::max(max_, other.max_);
  if (size_ >= max_size_)
    compress();
  return true;
}

// -- compaction ---------------------------------------------------------------

std::uint32_t kll::capacity(std::size_t h) const noexcept {
  auto depth = levels_.size() - 1 - h;
  if (depth >= max_exact_depth)
    return min_width;
  // ceil(k (2/3)^depth) in integers, so every platform computes the same
  // capacities (std::pow need not be correctly rounded).
  std::uint64_t num = k_;
  std::uint64_t den = 1;
  for (std::size_t d = 0; d < depth; ++d) {
    num *= 2;
    den *= 3;
  }
  auto cap = (num + den - 1) / den;
  return static_cast<std::uint32_t>(std::max<std::uint64_t>(cap, min_width));
}

void kll::grow() {
  levels_.emplace_back();
  max_size_ = 0;
  for (std::size_t h = 0; h < levels_.size(); ++h)
    max_size_ += capacity(h);
}

void kll::compress() {
  // Liberty's lazy compression: compact the lowest full level, then the next
  // full one, until the sketch is below its total capacity. Some level is
  // full whenever the total is reached, so every pass makes progress.
  while (size_ >= max_size_) {
    for (std::size_t h = 0; h < levels_.size(); ++h) {
      if (levels_[h].size() >= capacity(h)) {
        compact(h);
        if (size_ < max_size_)
          break;
      }
    }
  }
}

void kll::compact(std::size_t h) {
  if (h + 1 >= levels_.size())
    grow();
  auto& level = levels_[h];
  auto& up = levels_[h + 1];
  std::sort(level.begin(), level.end());
  // An odd level keeps its smallest item, so that exactly pairs move up and
  // the weights still add up to n.
  auto keep = level.size() % 2;
  auto offset = next_bit() ? 1 : 0;
  for (auto i = keep + offset; i < level.size(); i += 2)
    up.push_back(level[i]);
  auto moved = (level.size() - keep) / 2;
  level.resize(keep);
  size_ -= moved;
  // Memory: level 0 refills at once, so it keeps room for the whole sketch
  // (it never holds more); a higher level is compacted rarely and would
  // otherwise keep the largest capacity it ever had, about k items per level.
  if (h == 0)
    level.reserve(max_size_);
  else
    level.shrink_to_fit();
}

bool kll::next_bit() noexcept {
  // splitmix64 (Steele, Lea and Flood 2014); its top bit is the coin.
  rng_ += 0x9E3779B97F4A7C15u;
  auto z = rng_;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9u;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBu;
  z ^= z >> 31;
  return (z >> 63) != 0;
}

// -- results ------------------------------------------------------------------

std::vector<std::pair<double, std::uint64_t>> kll::weighted() const {
  std::vector<std::pair<double, std::uint64_t>> items;
  items.reserve(size_);
  for (std::size_t h = 0; h < levels_.size(); ++h)
    for (auto x : levels_[h])
      items.emplace_back(x, std::uint64_t{1} << h);
  std::sort(items.begin(), items.end());
  return items;
}

double kll::quantile(double q) const {
  return quantiles({q}).front();
}

std::vector<double> kll::quantiles(const std::vector<double>& qs) const {
  for (auto q : qs)
    if (!(q >= 0.0 && q <= 1.0))
      throw std::invalid_argument("kll: quantile outside [0, 1]");
  std::vector<double> out;
  out.reserve(qs.size());
  if (n_ == 0) {
    out.assign(qs.size(), std::numeric_limits<double>::quiet_NaN());
    return out;
  }
  auto items = weighted();
  // Cumulative weights: the estimated number of values <= items[i].first.
  std::vector<std::uint64_t> cum(items.size());
  std::uint64_t running = 0;
  for (std::size_t i = 0; i < items.size(); ++i)
    cum[i] = running += items[i].second;
  for (auto q : qs) {
    if (q == 0.0) {
      out.push_back(min_);
    } else if (q == 1.0) {
      out.push_back(max_);
    } else {
      auto target = q * static_cast<double>(n_);
      auto i = std::partition_point(cum.begin(), cum.end(), [&](auto c) {
        return static_cast<double>(c) < target;
      });
      out.push_back(i == cum.end() ? max_ : items[i - cum.begin()].first);
    }
  }
  return out;
}

double kll::rank(double x) const {
  if (n_ == 0 || std::isnan(x))
    return std::numeric_limits<double>::quiet_NaN();
  if (x < min_)
    return 0.0;
  if (x >= max_)
    return 1.0;
  std::uint64_t below = 0;
  for (std::size_t h = 0; h < levels_.size(); ++h)
    for (auto y : levels_[h])
      if (y <= x)
        below += std::uint64_t{1} << h;
  return static_cast<double>(below) / static_cast<double>(n_);
}

std::size_t kll::heap_bytes() const noexcept {
  auto bytes = levels_.capacity() * sizeof(std::vector<double>);
  for (auto& lv : levels_)
    bytes += lv.capacity() * sizeof(double);
  return bytes;
}

// -- serialisation ------------------------------------------------------------

std::vector<std::vector<double>> kll::sorted_levels() const {
  auto levels = levels_;
  for (auto& lv : levels)
    std::sort(lv.begin(), lv.end());
  return levels;
}

std::vector<std::vector<std::uint64_t>> kll::level_bits() const {
  std::vector<std::vector<std::uint64_t>> out;
  for (auto& lv : sorted_levels()) {
    auto& bits = out.emplace_back();
    bits.reserve(lv.size());
    for (auto x : lv)
      bits.push_back(bits_of(x));
  }
  return out;
}

std::uint64_t kll::bits_of(double x) noexcept {
  std::uint64_t u;
  std::memcpy(&u, &x, sizeof u);
  return u;
}

caf::error kll::load(std::uint32_t k, std::uint64_t n, std::uint64_t nan,
                     std::uint64_t rng, std::uint64_t lo_bits,
                     std::uint64_t hi_bits,
                     const std::vector<std::vector<std::uint64_t>>& level_bits) {
  auto to_double = [](std::uint64_t u) {
    double x;
    std::memcpy(&x, &u, sizeof x);
    return x;
  };
  auto lo = to_double(lo_bits);
  auto hi = to_double(hi_bits);
  std::vector<std::vector<double>> levels;
  for (auto& bits : level_bits) {
    auto& lv = levels.emplace_back();
    lv.reserve(bits.size());
    for (auto u : bits)
      lv.push_back(to_double(u));
  }
  auto fail = [](const char* what) {
    return make_error(errc::protocol_violation, std::string{"kll: "} + what);
  };
  if (k < min_k || k > max_k)
    return fail("k outside [8, 65535]");
  // Weights 2^h must fit in 64 bits with room for the sum.
  if (levels.empty() || levels.size() > 62)
    return fail("level count outside [1, 62]");
  constexpr auto inf = std::numeric_limits<double>::infinity();
  if (n == 0 && !(lo == inf && hi == -inf))
    return fail("extremes of an empty sketch");
  if (n > 0 && !(lo <= hi))
    return fail("minimum above maximum or NaN");
  if ((lo == 0.0 && std::signbit(lo)) || (hi == 0.0 && std::signbit(hi)))
    return fail("negative zero");
  unsigned __int128 weight = 0;
  std::size_t held = 0;
  for (std::size_t h = 0; h < levels.size(); ++h) {
    for (auto x : levels[h])
      if (!(x >= lo && x <= hi) || (x == 0.0 && std::signbit(x)))
        return fail("item NaN, negative zero or outside [min, max]");
    weight += static_cast<unsigned __int128>(levels[h].size()) << h;
    held += levels[h].size();
  }
  if (weight != n)
    return fail("level weights do not add up to the count");
  kll loaded{k};
  loaded.levels_ = std::move(levels);
  loaded.max_size_ = 0;
  for (std::size_t h = 0; h < loaded.levels_.size(); ++h)
    loaded.max_size_ += loaded.capacity(h);
  if (held >= loaded.max_size_)
    return fail("more items than the sketch holds");
  loaded.n_ = n;
  loaded.nan_ = nan;
  loaded.rng_ = rng;
  loaded.min_ = lo;
  loaded.max_ = hi;
  loaded.size_ = held;
  *this = std::move(loaded);
  return caf::error{};
}

} // namespace flow
