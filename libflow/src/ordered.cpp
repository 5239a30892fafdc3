#include "flow/ordered.hpp"

namespace flow {

namespace {

/// True when the integer `x` is below the double `b`, exactly: for an
/// integer, x < b exactly when x < ceil(b), and ceil(b) is an integer that
/// converts to int64 without rounding when it is in range.
bool int_below(std::int64_t x, double b) noexcept {
  auto c = std::ceil(b);
  if (c >= 0x1p63)
    return true;
  if (c <= -0x1p63)
    return false;
  return x < static_cast<std::int64_t>(c);
}

} // namespace

histogram::histogram(std::vector<double> bounds) : bounds_(std::move(bounds)) {
  if (!valid_bounds(bounds_))
    throw std::invalid_argument(
      "histogram: bounds must be finite and strictly increasing");
  counts_.assign(bounds_.size() + 1, 0);
}

bool histogram::valid_bounds(const std::vector<double>& bounds) noexcept {
  for (std::size_t i = 0; i < bounds.size(); ++i) {
    if (!std::isfinite(bounds[i]))
      return false;
    if (i > 0 && !(bounds[i - 1] < bounds[i]))
      return false;
  }
  return true;
}

void histogram::bump(std::uint64_t& counter) noexcept {
  if (counter == std::numeric_limits<std::uint64_t>::max())
    ok_ = false;
  else
    ++counter;
}

void histogram::add(double x) noexcept {
  if (std::isnan(x)) {
    bump(nan_);
    return;
  }
  // The bucket is the number of bounds <= x.
  auto i = std::upper_bound(bounds_.begin(), bounds_.end(), x)
           - bounds_.begin();
  bump(counts_[static_cast<std::size_t>(i)]);
}

void histogram::add(std::int64_t x) noexcept {
  auto i = std::partition_point(bounds_.begin(), bounds_.end(),
                                [x](double b) { return !int_below(x, b); })
           - bounds_.begin();
  bump(counts_[static_cast<std::size_t>(i)]);
}

void histogram::add(const double* xs, std::size_t n) noexcept {
  for (std::size_t i = 0; i < n; ++i)
    add(xs[i]);
}

bool histogram::merge(const histogram& other) noexcept {
  if (bounds_ != other.bounds_ || !ok_ || !other.ok_)
    return false;
  constexpr auto top = std::numeric_limits<std::uint64_t>::max();
  if (nan_ > top - other.nan_)
    return false;
  for (std::size_t i = 0; i < counts_.size(); ++i)
    if (counts_[i] > top - other.counts_[i])
      return false;
  for (std::size_t i = 0; i < counts_.size(); ++i)
    counts_[i] += other.counts_[i];
  nan_ += other.nan_;
  return true;
}

std::uint64_t histogram::count() const noexcept {
  auto n = nan_;
  for (auto c : counts_)
    n += c;
  return n;
}

} // namespace flow
