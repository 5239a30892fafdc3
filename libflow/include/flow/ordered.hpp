#pragma once

/// @file
/// Aggregator states that keep values by their order: `first_by` and
/// `last_by` (the row with the smallest or largest ordering value, e.g. the
/// latest row per key), `top_k` (the k largest values with their payloads)
/// and `histogram` (counts over fixed buckets). Each result depends only on
/// the multiset of inputs: ties are broken by the payload, never by arrival.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <caf/error.hpp>
#include <caf/meta/load_callback.hpp>
#include <caf/meta/type_name.hpp>

#include "flow/detail/double_bits.hpp"
#include "flow/error.hpp"
#include "flow/payload_name.hpp"

namespace flow {

namespace detail {

/// The shared state of `first_by` and `last_by`: `Last` picks the largest
/// order (ties: largest payload), otherwise the smallest (ties: smallest
/// payload).
template <class P, bool Last>
class order_pick {
public:
  /// True when `order`/`payload` should replace the current pick.
  bool beats(std::int64_t order, const P& payload) const {
    if (!has_)
      return true;
    if (order != order_)
      return Last ? order > order_ : order < order_;
    return Last ? payload_ < payload : payload < payload_;
  }

  /// Adds one element.
  void add(std::int64_t order, P payload) {
    if (beats(order, payload)) {
      has_ = true;
      order_ = order;
      payload_ = std::move(payload);
    }
  }

  /// Keeps the better of the two picks; always succeeds.
  bool merge(const order_pick& other) {
    if (other.has_ && beats(other.order_, other.payload_)) {
      has_ = true;
      order_ = other.order_;
      payload_ = other.payload_;
    }
    return true;
  }

  /// True once an element was added.
  bool has_value() const noexcept {
    return has_;
  }

  /// The ordering value of the pick (0 while empty).
  std::int64_t order() const noexcept {
    return order_;
  }

  /// The payload of the pick (P{} while empty).
  const P& payload() const noexcept {
    return payload_;
  }

  /// Equal when both are empty, or both picked the same order and payload.
  friend bool operator==(const order_pick& x, const order_pick& y) {
    return x.has_ == y.has_
           && (!x.has_ || (x.order_ == y.order_ && !(x.payload_ < y.payload_)
                           && !(y.payload_ < x.payload_)));
  }

  /// Negation of `==`.
  friend bool operator!=(const order_pick& x, const order_pick& y) {
    return !(x == y);
  }

  /// Inspects the three fields; an empty pick must have order 0 so that equal
  /// states serialise to equal bytes.
  /// A double payload travels as its bits (see detail/double_bits.hpp).
  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f,
                                                 order_pick& x) {
    typename wire<P>::type payload = wire<P>::out(x.payload_);
    auto load = caf::meta::load_callback([&]() -> caf::error {
      if (!x.has_ && x.order_ != 0)
        return make_error(errc::protocol_violation,
                          "first_by/last_by: empty state with an order");
      x.payload_ = wire<P>::in(std::move(payload));
      return caf::error{};
    });
    return f(caf::meta::type_name(Last ? "flow.last_by" : "flow.first_by"),
             x.has_, x.order_, payload, load);
  }

private:
  /// True once an element was added.
  bool has_ = false;
  /// The ordering value of the pick.
  std::int64_t order_ = 0;
  /// The payload of the pick.
  P payload_{};
};

} // namespace detail

/// Aggregator state: the payload with the SMALLEST ordering value (e.g. the
/// earliest row per key); of equal orders, the smallest payload by its
/// `operator<`. `P` must be default-constructible, copyable, ordered by a
/// strict weak order and inspectable. Memory: sizeof(P) + 16 bytes.
///
/// @code
/// flow::first_by<std::string> f;
/// f.add(20, "b");
/// f.add(10, "a");
/// assert(f.order() == 10 && f.payload() == "a");
/// @endcode
template <class P>
class first_by : public detail::order_pick<P, false> {
public:
  /// Registry name, e.g. "flow.first_by<str>".
  static std::string state_name() {
    return "flow.first_by<" + payload_name<P>::value() + ">";
  }
};

/// Aggregator state: the payload with the LARGEST ordering value (e.g. the
/// latest row per key by timestamp); of equal orders, the largest payload by
/// its `operator<`. Requirements and memory as `first_by`.
template <class P>
class last_by : public detail::order_pick<P, true> {
public:
  /// Registry name, e.g. "flow.last_by<str>".
  static std::string state_name() {
    return "flow.last_by<" + payload_name<P>::value() + ">";
  }
};

/// Aggregator state: the k largest values with their payloads. Items are
/// ordered by value descending, then payload ascending; an item is a value
/// with its payload, and equal items added twice count twice. The result is
/// the first k items of that order over everything added, whatever the merge
/// order. For floating-point `V`, NaN values are ignored and -0.0 is stored
/// as +0.0 (they compare equal, so they would otherwise tie by payload alone
/// and the sign would depend on arrival).
///
/// Memory: at most 2k items (trimmed to the best k whenever 2k are held), so
/// O(k) per key: 2k * (sizeof(V) + sizeof(P)) plus the vector and one cached
/// item; serialised as at most k items. After the first trim, items worse
/// than the worst one kept are rejected with one comparison.
template <class P, class V = std::int64_t>
class top_k {
public:
  /// One value with its payload.
  using item = std::pair<V, P>;

  /// Default k, used by the default constructor.
  static constexpr std::size_t default_k = 10;

  /// Largest k accepted (it bounds the memory of a loaded state).
  static constexpr std::size_t max_k = std::size_t{1} << 20;

  /// An empty state keeping the best 10.
  top_k() = default;

  /// An empty state keeping the best `k`; throws std::invalid_argument unless
  /// 1 <= k <= max_k.
  explicit top_k(std::size_t k) : k_(k) {
    if (k == 0 || k > max_k)
      throw std::invalid_argument("top_k: k must be in 1..2^20");
  }

  /// Registry name, e.g. "flow.top_k<str,i64>".
  static std::string state_name() {
    return "flow.top_k<" + payload_name<P>::value() + ","
           + payload_name<V>::value() + ">";
  }

  /// True when `a` comes before `b`: larger value, then smaller payload.
  static bool before(const item& a, const item& b) {
    if (a.first != b.first)
      return a.first > b.first;
    return a.second < b.second;
  }

  /// Adds one value with its payload.
  void add(V value, P payload) {
    if constexpr (std::is_floating_point_v<V>) {
      if (std::isnan(value))
        return;
      if (value == 0)
        value = 0;
    }
    // After a trim, an item not better than the worst one kept has k items
    // at least as good: it can never be in the result, so skip it.
    if (trimmed_ && !before_worst(value, payload))
      return;
    items_.emplace_back(std::move(value), std::move(payload));
    if (items_.size() >= 2 * k_)
      trim();
  }

  /// Merges the items of `other`. Returns false, leaving this state
  /// unchanged, when the two keep different k.
  bool merge(const top_k& other) {
    if (other.k_ != k_)
      return false;
    items_.insert(items_.end(), other.items_.begin(), other.items_.end());
    if (items_.size() >= 2 * k_)
      trim();
    return true;
  }

  /// The k of this state.
  std::size_t k() const noexcept {
    return k_;
  }

  /// Number of candidate items held: below 2k between calls.
  std::size_t held() const noexcept {
    return items_.size();
  }

  /// The best min(k, added) items, in order.
  std::vector<item> items() const {
    auto result = items_;
    sort_and_cut(result, k_);
    return result;
  }

  /// Equal when k and the best items are equal.
  friend bool operator==(const top_k& x, const top_k& y) {
    return x.k_ == y.k_ && x.items() == y.items();
  }

  /// Negation of `==`.
  friend bool operator!=(const top_k& x, const top_k& y) {
    return !(x == y);
  }

  /// Inspection: k, then the best items (values and payloads as two lists)
  /// in order, so equal states serialise to equal bytes. Loading rejects a k
  /// out of range, lists of different or too large sizes and items out of
  /// order.
  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f, top_k& x) {
    std::uint64_t k = x.k_;
    std::vector<typename detail::wire<V>::type> values;
    std::vector<typename detail::wire<P>::type> payloads;
    // Saving writes the canonical best k; loading starts from empty lists.
    if constexpr (Inspector::reads_state) {
      for (auto& [v, p] : x.items()) {
        values.push_back(detail::wire<V>::out(v));
        payloads.push_back(detail::wire<P>::out(p));
      }
    }
    auto load = caf::meta::load_callback([&]() -> caf::error {
      auto fail = [] {
        return make_error(errc::protocol_violation, "top_k: invalid state");
      };
      if (k == 0 || k > max_k || values.size() != payloads.size()
          || values.size() > k)
        return fail();
      std::vector<item> loaded;
      for (std::size_t i = 0; i < values.size(); ++i) {
        auto v = detail::wire<V>::in(values[i]);
        if constexpr (std::is_floating_point_v<V>) {
          if (std::isnan(v) || (v == 0 && std::signbit(v)))
            return fail();
        }
        loaded.emplace_back(std::move(v), detail::wire<P>::in(payloads[i]));
        if (i > 0 && before(loaded[i], loaded[i - 1]))
          return fail();
      }
      x.k_ = static_cast<std::size_t>(k);
      x.items_ = std::move(loaded);
      x.trimmed_ = false;
      return caf::error{};
    });
    return f(caf::meta::type_name("flow.top_k"), k, values, payloads, load);
  }

private:
  /// Sorts `xs` and keeps the first `k`: the best k of `xs`.
  static void sort_and_cut(std::vector<item>& xs, std::size_t k) {
    if (xs.size() > k) {
      std::nth_element(xs.begin(), xs.begin() + static_cast<std::ptrdiff_t>(k),
                       xs.end(), before);
      xs.resize(k);
    }
    std::sort(xs.begin(), xs.end(), before);
  }

  /// Keeps the best k items (unsorted): an item with k better ones held
  /// cannot be among the best k of anything that includes them.
  void trim() {
    std::nth_element(items_.begin(),
                     items_.begin() + static_cast<std::ptrdiff_t>(k_),
                     items_.end(), before);
    items_.resize(k_);
    worst_ = *std::max_element(items_.begin(), items_.end(), before);
    trimmed_ = true;
  }

  /// True when (value, payload) comes before `worst_`.
  bool before_worst(const V& value, const P& payload) const {
    if (value != worst_.first)
      return value > worst_.first;
    return payload < worst_.second;
  }

  /// How many items the result keeps.
  std::size_t k_ = default_k;
  /// Candidates, fewer than 2k, in no particular order.
  std::vector<item> items_;
  /// Whether `worst_` holds the worst item kept by the last trim (a cache:
  /// neither compared nor serialised).
  bool trimmed_ = false;
  /// The worst item kept by the last trim; later items must beat it.
  item worst_{};
};

/// Aggregator state: counts over fixed buckets. With bounds b0 < b1 < ... <
/// b(n-1), bucket 0 counts x < b0 (below the first bound), bucket i counts
/// b(i-1) <= x < b(i), bucket n counts x >= b(n-1) (above the last), so
/// -inf falls in the first bucket and +inf in the last; NaN is counted apart.
/// int64 values are compared with the bounds exactly (not through a rounding
/// conversion to double). No bounds: one bucket counting every non-NaN value.
///
/// Memory: 8 bytes per bound and per bucket (16 n + 8 bytes in two vectors,
/// plus 64 bytes of object); serialised in about as many bytes.
class histogram {
public:
  /// No bounds: a single bucket.
  histogram() = default;

  /// Buckets over `bounds`, which must be finite and strictly increasing;
  /// throws std::invalid_argument otherwise.
  explicit histogram(std::vector<double> bounds);

  /// Registry name of the state type.
  static std::string state_name() {
    return "flow.histogram";
  }

  /// True when `bounds` are finite and strictly increasing.
  static bool valid_bounds(const std::vector<double>& bounds) noexcept;

  /// Counts a double (NaN in `nan_count()`).
  void add(double x) noexcept;

  /// Counts an int64, compared exactly with the bounds.
  void add(std::int64_t x) noexcept;

  /// Counts `n` doubles.
  void add(const double* xs, std::size_t n) noexcept;

  /// Adds the counts of `other`. Returns false, leaving this state unchanged,
  /// when the bounds differ or a count would pass 2^64 - 1.
  bool merge(const histogram& other) noexcept;

  /// False once a count could not be represented (after 2^64 - 1 values in
  /// one bucket; sticky).
  bool ok() const noexcept {
    return ok_;
  }

  /// The bucket bounds.
  const std::vector<double>& bounds() const noexcept {
    return bounds_;
  }

  /// Counts per bucket: bounds().size() + 1 entries, below-first first.
  const std::vector<std::uint64_t>& counts() const noexcept {
    return counts_;
  }

  /// Number of NaN values.
  std::uint64_t nan_count() const noexcept {
    return nan_;
  }

  /// Number of values, NaN included.
  std::uint64_t count() const noexcept;

  /// Equal when bounds, counts and NaN count are equal.
  friend bool operator==(const histogram& x, const histogram& y) noexcept {
    return x.bounds_ == y.bounds_ && x.counts_ == y.counts_
           && x.nan_ == y.nan_ && x.ok_ == y.ok_;
  }

  /// Negation of `==`.
  friend bool operator!=(const histogram& x, const histogram& y) noexcept {
    return !(x == y);
  }

  /// Inspection: bounds (as 64-bit patterns, see detail/double_bits.hpp),
  /// counts, NaN count and the ok flag; loading rejects invalid bounds and a
  /// count list of the wrong size.
  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f, histogram& x) {
    std::vector<std::uint64_t> bounds;
    for (auto b : x.bounds_)
      bounds.push_back(detail::to_bits(b));
    auto load = caf::meta::load_callback([&]() -> caf::error {
      x.bounds_.clear();
      for (auto b : bounds)
        x.bounds_.push_back(detail::from_bits(b));
      if (!valid_bounds(x.bounds_) || x.counts_.size() != x.bounds_.size() + 1)
        return make_error(errc::protocol_violation,
                          "histogram: invalid bounds or counts");
      return caf::error{};
    });
    return f(caf::meta::type_name("flow.histogram"), bounds, x.counts_,
             x.nan_, x.ok_, load);
  }

private:
  /// Increments a counter unless it is saturated (then ok_ turns false).
  void bump(std::uint64_t& counter) noexcept;

  /// Strictly increasing finite bounds.
  std::vector<double> bounds_;
  /// bounds_.size() + 1 counts.
  std::vector<std::uint64_t> counts_ = std::vector<std::uint64_t>(1);
  /// NaN values.
  std::uint64_t nan_ = 0;
  /// False once a count could not be represented.
  bool ok_ = true;
};

} // namespace flow
