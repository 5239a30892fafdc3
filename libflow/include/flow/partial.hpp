#pragma once

/// @file
/// What a reducer produces from one batch: a partial keyed aggregate.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <iterator>
#include <type_traits>
#include <typeinfo>
#include <unordered_map>
#include <utility>
#include <vector>

#include "flow/aggregate.hpp"
#include "flow/aggregator.hpp"
#include "flow/detail/int_table.hpp"
#include "flow/key.hpp"

namespace flow {

namespace detail {

/// True when O is a block of rows: it says so with a static
/// `valid_block(const O&)` and counts its rows in an unsigned member `rows`
/// (see pg::copy_row and partial::emitted_rows). Opt-in: a row type that
/// merely has a member called `rows` is one row per element.
template <class O, class = void>
struct is_row_block : std::false_type {};

template <class O>
struct is_row_block<
  O, std::void_t<decltype(O::valid_block(std::declval<const O&>())),
                 decltype(std::declval<const O&>().rows)>>
  : std::is_unsigned<decltype(std::declval<const O&>().rows)> {};

} // namespace detail

/// The partial keyed aggregate a reducer builds from one batch. Every element
/// of the batch counts as aggregated unless the reducer rejects it, with a
/// reason, through `reject`.
///
/// While every key is an integer and only the built-in aggregate is used, the
/// keys live in a compact table (48 bytes a key); the first string or
/// composite key, or the first aggregator state, moves them to the general
/// entries, in their order. Either way `entries()` shows every key.
///
/// With many keys per batch the compact table's index is sealed whenever it
/// holds `seal_keys` keys so seldom repeated that they look drawn from at
/// least `seal_min_keys` keys: the entries stay, the index starts again
/// empty, and a key seen again gets a second entry, merged downstream as any
/// partial's are. The
/// table a batch's values are folded into then stays in a core's caches
/// (about 470 KB) instead of growing with the batch's keys (12 MB at
/// 262,144 keys), which a fold that barely combines does not need
/// (docs/architecture.md, "Sealed partial tables"). Keys that come back
/// after a seal (data that cycles through more keys than a window holds)
/// stop the sealing for the rest of the batch. `take_int_entries`
/// hands out every entry (a key may have several); `entries()` merges them
/// first and shows each key once.
class partial {
public:
  /// One key and its aggregate.
  using entry = std::pair<flow::key, aggregate>;

  /// Adds one value under key `k`.
  void add(const flow::key& k, std::int64_t value) {
    if (!general_ && k.is_int()) {
      if (ints_.indexed() >= seal_at_)
        check_seal();
      auto x = k.as_int();
      if (!sealed_once_) {
        ints_.add(x, value);
      } else {
        // A new key that a sealed window had: the data may cycle.
        auto before = ints_.size();
        ints_.add(x, value);
        if (ints_.size() != before
            && sealed_sample_[detail::mix64(static_cast<std::uint64_t>(x))
                              & (sample_slots - 1)]
                 == x)
          ++returned_;
      }
    } else {
      slot(k).add(value);
    }
  }

  /// Merges a pre-folded aggregate under key `k` (the fast path for reducers
  /// that fold a whole batch at once).
  void add(const flow::key& k, const aggregate& a) {
    bool ok = !general_ && k.is_int() && a.states.empty()
                ? ints_[k.as_int()].merge(a.sum, a.count, a.min, a.max)
                : slot(k).merge(a);
    if (!ok)
      overflow_ = true;
  }

  /// Marks `n` elements of this batch as rejected for `reason`.
  void reject(const std::string& reason, std::uint64_t n = 1);

  /// Emits one output row for the pipeline's sink (see `pipeline::sink`).
  /// Every row of one job must have the sink's row type. A block of rows
  /// (see `emitted_rows`) of 0 rows is not kept; one that is not valid (0
  /// rows that hold data) throws std::logic_error, which fails the batch:
  /// rows never vanish uncounted.
  template <class O>
  void emit(O row) {
    if constexpr (detail::is_row_block<O>::value) {
      if (!O::valid_block(row))
        throw std::logic_error("flow::partial::emit: a block of 0 rows "
                               "that holds data");
      if (row.rows == 0)
        return;
    }
    rows<O>().push_back(std::move(row));
  }

  /// The rows of type O emitted so far (created on first use). Throws
  /// std::logic_error when rows of another type were emitted before.
  template <class O>
  std::vector<O>& rows() {
    if (!output_) {
      output_ = std::make_shared<std::vector<O>>();
      output_type_ = &typeid(O);
      row_count_ = [](const void* p) -> std::size_t {
        auto& xs = *static_cast<const std::vector<O>*>(p);
        if constexpr (detail::is_row_block<O>::value) {
          // Blocks of rows (e.g. pg::copy_row): each counts its rows.
          std::uint64_t n = 0;
          for (auto& x : xs)
            n += x.rows;
          return static_cast<std::size_t>(n);
        } else {
          return xs.size();
        }
      };
      append_ = [](void* dst, void* src) {
        auto& to = *static_cast<std::vector<O>*>(dst);
        auto& from = *static_cast<std::vector<O>*>(src);
        to.insert(to.end(), std::make_move_iterator(from.begin()),
                  std::make_move_iterator(from.end()));
      };
    } else if (*output_type_ != typeid(O)) {
      throw std::logic_error("flow::partial::emit: rows of two types");
    }
    return *static_cast<std::vector<O>*>(output_.get());
  }

  /// Number of rows emitted: one per element, or for a block type (a
  /// `static bool valid_block(const O&)` and an unsigned member `rows`, like
  /// pg::copy_row) the sum of their `rows`.
  std::size_t emitted_rows() const noexcept {
    return output_ ? row_count_(output_.get()) : 0;
  }

  /// The emitted rows, type-erased (a std::vector<O>), or null.
  std::shared_ptr<void> take_rows() noexcept {
    return std::move(output_);
  }

  /// The type of the emitted rows, or null when none were emitted.
  const std::type_info* row_type() const noexcept {
    return output_type_;
  }

  /// The aggregates built so far, in order of first appearance. (Moves the
  /// compact table's keys to the general entries first, so that even this
  /// const call changes the partial's storage: a partial is one reducer's,
  /// never read from two threads at once.)
  const std::vector<entry>& entries() const {
    to_general();
    return entries_;
  }

  /// Number of rejected elements.
  std::uint64_t rejected() const noexcept {
    return rejected_;
  }

  /// Rejected elements counted per reason.
  const std::vector<std::pair<std::string, std::uint64_t>>&
  reasons() const noexcept {
    return reasons_;
  }

  /// True when merging pre-folded aggregates overflowed. (Aggregator states
  /// report overflow through `ok()`, which the manager checks on the final
  /// states.)
  bool overflowed() const noexcept {
    return overflow_;
  }

  /// The whole row of key `k` (created empty when absent): the built-in
  /// int64 aggregate and the states, for reducers that feed several columns
  /// of one key (see `column::at`).
  aggregate& row(const flow::key& k) {
    to_general();
    return slot(k);
  }

  /// As `row(const key&)`, taking the key when it is new (a composite key
  /// built per row is then not copied).
  aggregate& row(flow::key&& k) {
    to_general();
    return slot(std::move(k));
  }

  /// Makes room for `keys` more keys of the general path, so that adding
  /// them neither moves the entries nor rebuilds the index: for reducers
  /// whose rows are mostly distinct keys (a pushed-down GROUP BY's groups).
  void reserve(std::size_t keys);

  /// The state of key `k` in column `c`, created from the column's prototype
  /// when absent: add to it directly, e.g. with a whole batch at once.
  template <class S>
  S& state(const flow::key& k, const column<S>& c) {
    to_general();
    return *static_cast<S*>(slot(k).states.get_or_create(
      c.index(), c.ops(), &c.prototype(), c.shape()));
  }

  /// Adds one element to key `k`'s state in column `c`: calls
  /// `state(k, c).add(xs...)`.
  template <class S, class... Ts>
  void add(const flow::key& k, const column<S>& c, Ts&&... xs) {
    state(k, c).add(std::forward<Ts>(xs)...);
  }

  /// Moves the entries out (used by the reducer actor).
  std::vector<entry> take_entries() {
    to_general();
    index_.clear();
    hashes_.clear();
    last_ = npos;
    return std::move(entries_);
  }

  /// Moves the compact table's entries into `into`, in order of first
  /// appearance (a key may have several after a seal), replacing what it
  /// held and reusing its storage (used by the reducer actor before
  /// `take_entries`, which then holds the other keys).
  void take_int_entries(std::vector<detail::int_entry>& into) {
    // Each entry written once: not constructed, then copied over.
    detail::reserve_for_overwrite(into, ints_.size());
    into.assign(ints_.begin(), ints_.end());
    clear_ints();
  }

  /// The same into a new vector.
  std::vector<detail::int_entry> take_int_entries() {
    std::vector<detail::int_entry> result;
    take_int_entries(result);
    return result;
  }

  /// Moves the compact table's entries into `into` as `take_int_entries`
  /// does (whatever `into` held is replaced), grouped by `group(key)` (below
  /// `n`) in ascending order; `ends[g]` becomes the end of group g (used by
  /// the reducer actor, for manager shards).
  template <class F>
  void take_int_entries(std::vector<detail::int_entry>& into, std::size_t n,
                        F&& group, std::vector<std::uint32_t>& ends) {
    ends.assign(n, 0);
    for (auto& e : ints_)
      ++ends[group(e.key)];
    std::uint32_t at = 0;
    for (auto& x : ends) {
      at += x;
      x = at;
    }
    // `into` may hold stale entries (a recycled vector, int_storage): they
    // are overwritten, and only entries past them constructed.
    detail::resize_for_overwrite(into, ints_.size());
    // Filled from each group's end backwards: `ends` ends as the starts,
    // then is shifted back to the ends.
    for (auto& e : ints_)
      into[--ends[group(e.key)]] = e;
    for (std::size_t g = 0; g + 1 < n; ++g)
      ends[g] = ends[g + 1];
    if (n > 0)
      ends[n - 1] = static_cast<std::uint32_t>(ints_.size());
    clear_ints();
  }

  /// Gives this (empty) partial the storage of a previous partial's compact
  /// table, so that a reducer's batches reuse memory instead of faulting in
  /// fresh pages (used by the reducer actor).
  void reuse_int_storage(detail::int_table&& storage) noexcept {
    ints_ = std::move(storage);
    clear_ints();
  }

  /// Takes the compact table's storage (empty after `take_int_entries`) for
  /// `reuse_int_storage`.
  detail::int_table release_int_storage() noexcept {
    clear_ints();
    return std::move(ints_);
  }

  /// Moves everything `other` holds into this partial: aggregates, rejections
  /// and rows (used when a batch is bisected and its halves are folded
  /// apart). Throws std::logic_error when the two hold rows of two types.
  void merge(partial&& other);

  /// Moves the rejection reasons out (used by the reducer actor).
  std::vector<std::pair<std::string, std::uint64_t>> take_reasons() noexcept {
    return std::move(reasons_);
  }

  /// Keys in the compact table's index at which `add` checks whether to
  /// seal it (see the class's description).
  static constexpr std::size_t seal_keys = 8192;

  /// The fewest distinct keys, estimated from the values that repeat a key,
  /// at which `add` seals the compact table's index.
  static constexpr std::size_t seal_min_keys = std::size_t{1} << 19;

  /// Slots of the sample of sealed keys (see `check_seal`).
  static constexpr std::size_t sample_slots = 4096;

private:
  static constexpr std::size_t npos = static_cast<std::size_t>(-1);
  // Below this many keys a linear scan beats hashing.
  static constexpr std::size_t linear_limit = 8;

  aggregate& slot(const flow::key& k);

  aggregate& slot(flow::key&& k);

  template <class Key>
  aggregate& slot_impl(Key&& k);

  /// Rebuilds `index_` for every entry, with room for `room` entries in all
  /// (at least the entries there are) at most half full.
  void reindex(std::size_t room = 0) const;

  /// Moves the compact table's keys to the general entries (once: adds
  /// then take the general path).
  void to_general() const;

  /// Drops the compact table's keys (keeps its storage).
  void clear_ints() noexcept {
    ints_.reset();
    seal_at_ = seal_keys;
    sealed_once_ = false;
    returned_ = 0;
  }

  /// The compact table's index reached `seal_at_` keys: seals it when they
  /// were seldom repeated, else checks again at twice the keys; never again
  /// in this batch when keys of sealed windows came back.
  void check_seal();

  // Mutable: entries() shows the compact keys by moving them, which changes
  // no observable content.
  mutable detail::int_table ints_;
  // The keys in the compact table's index at which check_seal runs next.
  std::size_t seal_at_ = seal_keys;
  // Whether the table was sealed in this batch; then a sample of the sealed
  // keys (the first per slot, by hash; INT64_MIN where none was, which a key
  // of that value may match: the count below only steers sealing) and how
  // many new keys since the last seal were in it.
  bool sealed_once_ = false;
  std::vector<std::int64_t> sealed_sample_;
  std::uint64_t returned_ = 0;
  mutable bool general_ = false;
  mutable std::vector<entry> entries_;
  // The general keys' hashes, one per entry (compared before the keys), and
  // an open-addressing index over them (entry + 1 per slot, 0 for a free
  // slot; a power of two, at most half full; empty until the entries pass
  // linear_limit). Flat, not node-based: a batch of GROUP BY rows looks up
  // its group once per row.
  mutable std::vector<std::size_t> hashes_;
  mutable std::vector<std::uint32_t> index_;
  mutable std::size_t last_ = npos;
  std::uint64_t rejected_ = 0;
  std::vector<std::pair<std::string, std::uint64_t>> reasons_;
  // Mutable: to_general() merges a sealed table's entries, which may
  // overflow.
  mutable bool overflow_ = false;
  std::shared_ptr<void> output_;
  const std::type_info* output_type_ = nullptr;
  std::size_t (*row_count_)(const void*) = nullptr;
  void (*append_)(void*, void*) = nullptr;
};

} // namespace flow
