#pragma once

/// @file
/// Approximate quantiles as a mergeable aggregator state: the KLL sketch.

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include <caf/error.hpp>
#include <caf/meta/load_callback.hpp>
#include <caf/meta/type_name.hpp>

#include "flow/error.hpp"

namespace flow {

/// A quantile sketch over doubles: KLL (Karnin, Lang and Liberty, "Optimal
/// quantile approximation in streams", FOCS 2016), in the form of Liberty's
/// reference implementation and Apache DataSketches: levels of compactors,
/// level h holding items of weight 2^h, level capacities shrinking by 2/3
/// per level below the top (at least 8). A full level is sorted and every
/// other item, from a random offset, moves up with twice the weight.
///
/// Guarantees (see tests/unit/test_quantiles.cpp for the measurements)
/// - `count()`, `min()` and `max()` are exact; `quantile(0)` is the minimum
///   and `quantile(1)` the maximum.
/// - Rank error: for the default k = 400 the value returned by `quantile(q)`
///   has a true rank within 1 % of q * n (Apache DataSketches gives
///   2.446 / k^0.9433 = 0.86 % at 99 % confidence for the worst rank of a
///   sketch; the tests measured at most 0.34 % at the quantiles 0, .01,
///   .05, .1, .25, .5, .75, .9, .95, .99 and 1 of exponential, lognormal,
///   Zipf, ten-valued and sorted data up to 10^6 values, also after merges
///   of 2 and 7 partial sketches in random orders). "True rank within" counts duplicates generously: the value's
///   ranks span [#{x < v}, #{x <= v}], and that interval comes within 1 % of
///   q * n.
/// - Memory: fewer than 3 k + 8 * levels items (about 1300 doubles, 10 KiB
///   serialised, at k = 400 for any n); on the heap about twice that, since
///   level 0 keeps room for the whole sketch and the other levels grow as
///   vectors (bench/sketch_bench.cpp measures it).
/// - Reproducible: compaction draws its random offsets from a splitmix64
///   generator held (and serialised) in the state, seeded with a constant, so
///   the same input order and merge order give the same state.
/// - NaN values are counted apart (`nan_count()`) and ignored otherwise; -0.0
///   is taken as +0.0; infinities are ordinary values.
///
/// @code
/// flow::kll s;
/// for (int i = 1; i <= 1000; ++i)
///   s.add(double(i));
/// // s.quantile(0.5) is within 10 of 500
/// @endcode
class kll {
public:
  // -- constants --------------------------------------------------------------

  /// Default k: rank error below 1 % (see the class comment).
  static constexpr std::uint32_t default_k = 400;

  /// Smallest k accepted.
  static constexpr std::uint32_t min_k = 8;

  /// Largest k accepted.
  static constexpr std::uint32_t max_k = 65535;

  /// Smallest capacity of a level (DataSketches' m).
  static constexpr std::uint32_t min_width = 8;

  /// The seed of the compaction generator.
  static constexpr std::uint64_t seed = 0x6B4C4C5F666C6F77u; // "kLL_flow"

  // -- construction -----------------------------------------------------------

  /// The empty sketch of the default k.
  kll();

  /// The empty sketch of parameter `k`; throws std::invalid_argument unless
  /// `k` is in [min_k, max_k] (a pipeline configured wrongly).
  explicit kll(std::uint32_t k);

  /// The registry name of this state type.
  static std::string state_name() {
    return "flow.kll";
  }

  // -- adding -----------------------------------------------------------------

  /// Adds a value (NaN only counted, -0.0 as +0.0).
  void add(double x) {
    if (std::isnan(x)) {
      ++nan_;
      return;
    }
    x += 0.0; // -0.0 + 0.0 is +0.0
    if (x < min_)
      min_ = x;
    if (x > max_)
      max_ = x;
    ++n_;
    levels_[0].push_back(x);
    if (++size_ >= max_size_)
      compress();
  }

  /// Adds an integer, converted to the nearest double.
  void add(std::int64_t x) {
    add(static_cast<double>(x));
  }

  /// Adds an integer of another integral type, converted to the nearest
  /// double (without this, `add(5)` would be ambiguous).
  template <class T, class = std::enable_if_t<std::is_integral_v<T>
                                              && !std::is_same_v<T, bool>>>
  void add(T x) {
    add(static_cast<double>(x));
  }

  /// Adds `n` values starting at `xs`.
  void add(const double* xs, std::size_t n);

  /// Merges `other` into this sketch. Returns false, leaving this sketch
  /// unchanged, when the two k differ.
  bool merge(const kll& other);

  // -- results ----------------------------------------------------------------

  /// Number of values added, NaN excluded.
  std::uint64_t count() const noexcept {
    return n_;
  }

  /// Number of NaN values added.
  std::uint64_t nan_count() const noexcept {
    return nan_;
  }

  /// True when no value (other than NaN) was added.
  bool empty() const noexcept {
    return n_ == 0;
  }

  /// The smallest value added; NaN when empty.
  double min() const noexcept {
    return n_ == 0 ? std::numeric_limits<double>::quiet_NaN() : min_;
  }

  /// The largest value added; NaN when empty.
  double max() const noexcept {
    return n_ == 0 ? std::numeric_limits<double>::quiet_NaN() : max_;
  }

  /// The parameter k.
  std::uint32_t k() const noexcept {
    return k_;
  }

  /// The smallest value v held by the sketch whose estimated number of values
  /// <= v is at least q * n; `quantile(0)` is `min()`, `quantile(1)` is
  /// `max()`. NaN when empty. Throws std::invalid_argument when q is not in
  /// [0, 1] (NaN included).
  double quantile(double q) const;

  /// `quantile(q)` for each q, sorting the sketch once.
  std::vector<double> quantiles(const std::vector<double>& qs) const;

  /// The estimated fraction of values <= x, in [0, 1]; exact (0 or 1) below
  /// `min()` and from `max()` on. NaN when empty or when x is NaN.
  double rank(double x) const;

  /// Number of items the sketch holds (its memory is about 8 bytes each).
  std::size_t retained() const noexcept {
    return size_;
  }

  /// Number of levels.
  std::size_t levels() const noexcept {
    return levels_.size();
  }

  /// Bytes the sketch holds on the heap (capacities).
  std::size_t heap_bytes() const noexcept;

  // -- comparison -------------------------------------------------------------

  /// Equal when the parameters, counts, extremes and generator state are
  /// equal and each level holds the same items (in any order: a level is
  /// sorted before it is compacted, so its order never matters).
  friend bool operator==(const kll& x, const kll& y) {
    return x.k_ == y.k_ && x.n_ == y.n_ && x.nan_ == y.nan_
           && x.rng_ == y.rng_ && x.min_ == y.min_ && x.max_ == y.max_
           && x.sorted_levels() == y.sorted_levels();
  }

  /// Negation of `==`.
  friend bool operator!=(const kll& x, const kll& y) {
    return !(x == y);
  }

  // -- serialisation ----------------------------------------------------------

  /// Inspection: k, the counts, the extremes, the generator state and each
  /// level sorted (so equal sketches serialise to equal bytes). Doubles
  /// travel as their IEEE bit patterns: CAF 0.17's portable double encoding
  /// loops forever on an infinity, which a sketch may hold. Loading rejects a
  /// k out of range, NaN items, items outside [min, max], levels whose
  /// weights do not add up to the count, and more items than the sketch
  /// would hold.
  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f, kll& x) {
    auto k = x.k_;
    auto n = x.n_;
    auto nan = x.nan_;
    auto rng = x.rng_;
    auto lo = bits_of(x.min_);
    auto hi = bits_of(x.max_);
    auto levels = x.level_bits();
    auto load = caf::meta::load_callback([&]() -> caf::error {
      return x.load(k, n, nan, rng, lo, hi, levels);
    });
    return f(caf::meta::type_name("flow.kll"), k, n, nan, rng, lo, hi, levels,
             load);
  }

private:
  // -- helpers ----------------------------------------------------------------

  /// Capacity of level h while the sketch has `levels_.size()` levels.
  std::uint32_t capacity(std::size_t h) const noexcept;

  /// Adds a level on top and recomputes `max_size_`.
  void grow();

  /// Compacts levels until fewer than `max_size_` items are held.
  void compress();

  /// Compacts level h into level h + 1 (adding a level when needed).
  void compact(std::size_t h);

  /// The next random bit of the compaction generator.
  bool next_bit() noexcept;

  /// Each level's items, sorted.
  std::vector<std::vector<double>> sorted_levels() const;

  /// The (value, weight) pairs of every level, sorted by value.
  std::vector<std::pair<double, std::uint64_t>> weighted() const;

  /// Each level's items, sorted, as bit patterns.
  std::vector<std::vector<std::uint64_t>> level_bits() const;

  /// The bit pattern of `x`.
  static std::uint64_t bits_of(double x) noexcept;

  /// Validates loaded fields and replaces the state with them.
  caf::error load(std::uint32_t k, std::uint64_t n, std::uint64_t nan,
                  std::uint64_t rng, std::uint64_t lo_bits,
                  std::uint64_t hi_bits,
                  const std::vector<std::vector<std::uint64_t>>& level_bits);

  // -- state ------------------------------------------------------------------

  /// The accuracy parameter: the capacity of the top level.
  std::uint32_t k_ = default_k;
  /// Values added, NaN excluded.
  std::uint64_t n_ = 0;
  /// NaN values added.
  std::uint64_t nan_ = 0;
  /// State of the splitmix64 generator of compaction offsets.
  std::uint64_t rng_ = seed;
  /// Smallest value added (+inf when empty).
  double min_ = std::numeric_limits<double>::infinity();
  /// Largest value added (-inf when empty).
  double max_ = -std::numeric_limits<double>::infinity();
  /// Level h holds items of weight 2^h; level 0 in insertion order.
  std::vector<std::vector<double>> levels_;
  /// Items held in all levels.
  std::size_t size_ = 0;
  /// Sum of the capacities: reaching it triggers a compression.
  std::size_t max_size_ = 0;
};

} // namespace flow
