#pragma once

/// @file
/// The compact keyed table of the built-in aggregate under integer keys: the
/// storage of the common case (GROUP BY an id, summing int64) in reducers'
/// partials and in the manager, 48 bytes per key plus a 4-byte index slot.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <new>
#include <utility>
#include <vector>

#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include <caf/meta/load_callback.hpp>
#include <caf/meta/type_name.hpp>

#include "flow/aggregate.hpp"
#include "flow/detail/u64_set.hpp"

namespace flow::detail {

/// One integer key and its built-in aggregate, packed: 48 bytes, trivially
/// copyable (no state row: keys with aggregator states live in the general
/// map).
struct int_entry {
  /// The key.
  std::int64_t key = 0;
  /// Smallest value; `int64 max` while empty.
  std::int64_t min = std::numeric_limits<std::int64_t>::max();
  /// Largest value; `int64 min` while empty.
  std::int64_t max = std::numeric_limits<std::int64_t>::min();
  /// Number of values.
  std::uint64_t count = 0;
  /// Exact sum of the values.
  int128 sum = 0;

  /// Adds one value (cannot overflow before 2^64 values).
  void add(std::int64_t x) noexcept {
    sum += x;
    ++count;
    if (x < min)
      min = x;
    if (x > max)
      max = x;
  }

  /// Merges the aggregate `sum`, `count`, `min`, `max`; false (and nothing
  /// changed) when the sum or the count would overflow.
  [[nodiscard]] bool merge(int128 s, std::uint64_t n, std::int64_t lo,
                           std::int64_t hi) noexcept {
    int128 total;
    std::uint64_t c;
    if (__builtin_add_overflow(sum, s, &total)
        || __builtin_add_overflow(count, n, &c))
      return false;
    sum = total;
    count = c;
    if (lo < min)
      min = lo;
    if (hi > max)
      max = hi;
    return true;
  }

  /// The entry as a general aggregate.
  aggregate to_aggregate() const {
    aggregate a;
    a.sum = sum;
    a.count = count;
    a.min = min;
    a.max = max;
    return a;
  }

  /// Inspection (the 128-bit sum travels as two 64-bit halves).
  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f, int_entry& x) {
    auto hi = static_cast<std::int64_t>(x.sum >> 64);
    auto lo = static_cast<std::uint64_t>(x.sum);
    auto join = caf::meta::load_callback([&]() -> caf::error {
      x.sum = (static_cast<int128>(hi) * (int128{1} << 64))
              + static_cast<int128>(lo);
      return caf::error{};
    });
    return f(caf::meta::type_name("flow.int_entry"), x.key, hi, lo, x.count,
             x.min, x.max, join);
  }
};

static_assert(sizeof(int_entry) == 48, "int_entry is meant to pack");

/// An open-addressing table of `int_entry`: the entries dense in order of
/// first appearance (blocks of 4 MiB and more mapped by the table and grown
/// with mremap, which moves pages instead of copying them, so growing never
/// holds two copies; advised for transparent huge pages), found through an
/// index of 32-bit positions and 8-bit hash tags with linear probing (in
/// small tables 16 tags compared at once where SSE2 is available), at most
/// 75 % full. Costs 48 bytes per key plus 5 / load bytes of index (6.7 to
/// 13.3), against about 150 for a node-based map of `key` to `aggregate`.
class int_table {
public:
  /// An empty table (allocates nothing).
  int_table() noexcept = default;

  int_table(const int_table&) = delete;
  int_table& operator=(const int_table&) = delete;

  /// Takes `other`'s storage; `other` is left empty.
  int_table(int_table&& other) noexcept {
    swap(other);
  }

  /// Takes `other`'s storage; `other` is left empty.
  int_table& operator=(int_table&& other) noexcept {
    if (this != &other) {
      int_table tmp{std::move(other)};
      swap(tmp);
    }
    return *this;
  }

  /// Frees the storage.
  ~int_table();

  /// The entry of key `k`, created empty when absent.
  int_entry& operator[](std::int64_t k) {
    if (last_ < size_ && data_[last_].key == k)
      return data_[last_];
    if ((size_ - sealed_ + 1) * 4 > slots_ * 3)
      grow_index();
    auto h = mix64(static_cast<std::uint64_t>(k));
    auto tag = tag_of(h);
    auto mask = slots_ - 1;
#ifdef __SSE2__
    // While the table is small (in the caches near a core), the probe
    // compares `group` tags at once: the slots up to the first empty one
    // are the same as one at a time, but the loop is taken once for nearly
    // every key instead of a data-dependent number of times. A throwaway
    // fold of 10^7 values into one table took 6 ns a value instead of 10
    // at 10^3 keys, 10-15 instead of 14-18 at 10^4, about the same at
    // 10^5 and 4-5 % longer at 10^6 (where every probe is a cache miss, and
    // a group may straddle two lines), so large tables probe a tag at a
    // time. The tags past the end repeat the first ones (set_tag), so a
    // group never wraps.
    if (slots_ <= group_probe_slots)
      for (auto i = h & mask;; i = (i + group) & mask) {
        auto g = _mm_loadu_si128(reinterpret_cast<const __m128i*>(tags_ + i));
        auto match = static_cast<unsigned>(_mm_movemask_epi8(
          _mm_cmpeq_epi8(g, _mm_set1_epi8(static_cast<char>(tag)))));
        auto empty = static_cast<unsigned>(
          _mm_movemask_epi8(_mm_cmpeq_epi8(g, _mm_setzero_si128())));
        if (empty != 0)
          match &= (1u << __builtin_ctz(empty)) - 1;
        for (; match != 0; match &= match - 1) {
          auto s = (i + static_cast<unsigned>(__builtin_ctz(match))) & mask;
          if (data_[index_[s] - 1].key == k)
            return found_at(s);
        }
        if (empty != 0)
          return insert_at((i + static_cast<unsigned>(__builtin_ctz(empty)))
                             & mask,
                           tag, k);
      }
#endif
    for (auto i = h & mask;; i = (i + 1) & mask) {
      auto t = tags_[i];
      if (t == 0)
        return insert_at(i, tag, k);
      // The tag spares reading the entry (a cache miss) on most mismatches.
      if (t == tag && data_[index_[i] - 1].key == k)
        return found_at(i);
    }
  }

  /// The entry of key `k`, or null.
  const int_entry* find(std::int64_t k) const noexcept {
    if (size_ == 0)
      return nullptr;
    if (index_ == nullptr)
      return find_sorted(k);
    auto h = mix64(static_cast<std::uint64_t>(k));
    auto tag = tag_of(h);
    auto mask = slots_ - 1;
    for (auto i = h & mask;; i = (i + 1) & mask) {
      auto t = tags_[i];
      if (t == 0)
        return nullptr;
      if (t == tag && data_[index_[i] - 1].key == k)
        return data_ + index_[i] - 1;
    }
  }

  /// Adds one value under key `k`.
  void add(std::int64_t k, std::int64_t x) {
    (*this)[k].add(x);
  }

  /// Merges `e` into the entry of its key; false on overflow.
  [[nodiscard]] bool merge(const int_entry& e) {
    return (*this)[e.key].merge(e.sum, e.count, e.min, e.max);
  }

  /// Merges the `n` entries at `xs`, prefetching the index slots of those
  /// a few places ahead (a large table is a cache miss per key otherwise).
  /// Returns the position of the first entry whose merge overflowed (then
  /// the entries before it are merged), or `n`.
  std::size_t merge_all(const int_entry* xs, std::size_t n);

  /// Number of keys (of entries, after `seal`).
  std::size_t size() const noexcept {
    return size_;
  }

  /// Makes the entries so far unreachable through the index: they stay in
  /// [begin(), end()), and a later `operator[]` of one of their keys makes
  /// a second entry of that key. For a reducer's partial only, whose
  /// entries are merged downstream key by key anyway: the index then only
  /// holds the keys since the last seal and stays in a core's caches however
  /// many keys a batch has (see partial). `find`, `sort` and `drain_sorted`
  /// are not meant for a sealed table. `reset` unseals.
  void seal() noexcept {
    if (tags_ != nullptr)
      std::memset(tags_, 0, slots_ + group);
    sealed_ = size_;
    last_ = std::numeric_limits<std::size_t>::max();
  }

  /// Entries reachable through the index: those since the last `seal`.
  std::size_t indexed() const noexcept {
    return size_ - sealed_;
  }

  /// Keys the entries' storage holds without growing.
  std::size_t capacity() const noexcept {
    return capacity_;
  }

  /// True when no key is held.
  bool empty() const noexcept {
    return size_ == 0;
  }

  /// The entries, in order of first appearance (until `sort`).
  int_entry* begin() noexcept {
    return data_;
  }

  /// End of the entries.
  int_entry* end() noexcept {
    return data_ + size_;
  }

  /// The entries, in order of first appearance (until `sort`).
  const int_entry* begin() const noexcept {
    return data_;
  }

  /// End of the entries.
  const int_entry* end() const noexcept {
    return data_ + size_;
  }

  /// Sorts the entries by key in place and frees the index (for the last
  /// result, without a second copy). A later insertion rebuilds the index.
  void sort();

  /// Sorts the entries by key in place, hands them to `f(const int_entry*,
  /// std::size_t)`, then drops every key and keeps the storage (a spilled
  /// run, options::max_memory). Returns what `f` returns.
  template <class F>
  auto drain_sorted(F&& f) {
    sort_entries();
    struct resetter {
      int_table* self;
      ~resetter() {
        self->reset();
      }
    } guard{this};
    return f(static_cast<const int_entry*>(data_), size_);
  }

  /// Makes room for `n` keys at once, so that the table holds up to `n`
  /// keys without growing (the storage is allocated, not touched).
  void reserve(std::size_t n);

  /// The most bytes a table grown to `n` keys holds at once: the entries,
  /// the index, and while the index was last rebuilt, the previous index
  /// (half its size) beside it.
  static std::size_t bytes_for(std::size_t n) noexcept {
    return n * sizeof(int_entry)
           + index_bytes(slots_for(n)) + index_bytes(slots_for(n) / 2);
  }

  /// The most keys a table that never holds more than `bytes` may grow to.
  static std::size_t keys_within(std::size_t bytes) noexcept;

  /// Drops every key and keeps the storage, for the next batch of a reducer
  /// (fresh memory costs a page fault every 4 KiB).
  void reset() noexcept;

  /// Drops every key and frees the storage.
  void clear() noexcept {
    int_table tmp;
    swap(tmp);
  }

  /// Bytes held (entries and index, allocated capacity).
  std::size_t bytes() const noexcept {
    return capacity_ * sizeof(int_entry)
           + (slots_ > 0 ? index_bytes(slots_) : 0);
  }

private:
  void swap(int_table& other) noexcept {
    std::swap(data_, other.data_);
    std::swap(size_, other.size_);
    std::swap(capacity_, other.capacity_);
    std::swap(index_, other.index_);
    std::swap(tags_, other.tags_);
    std::swap(slots_, other.slots_);
    std::swap(last_, other.last_);
    std::swap(sealed_, other.sealed_);
  }

  const int_entry* find_sorted(std::int64_t k) const noexcept;

  /// Tags compared at once by operator[]; the tag array has this many more
  /// bytes, repeating its first ones.
  static constexpr std::size_t group = 16;

  /// The largest table whose operator[] compares `group` tags at once.
  static constexpr std::size_t group_probe_slots = 32768;

  /// Sets slot s's tag, and its copy past the end for the first slots.
  void set_tag(std::size_t s, std::uint8_t tag) noexcept {
    tags_[s] = tag;
    if (s < group)
      tags_[slots_ + s] = tag;
  }

  /// The entry in slot s, remembered as the last key found.
  int_entry& found_at(std::size_t s) noexcept {
    last_ = index_[s] - 1;
    return data_[last_];
  }

  /// Creates key `k`'s entry in the empty slot s.
  int_entry& insert_at(std::size_t s, std::uint8_t tag, std::int64_t k) {
    if (size_ == capacity_)
      grow_data();
    set_tag(s, tag);
    index_[s] = static_cast<std::uint32_t>(size_ + 1);
    last_ = size_;
    auto* e = new (data_ + size_++) int_entry;
    e->key = k;
    return *e;
  }

  /// A slot's tag: 7 bits of the hash other than those that pick the slot,
  /// and the top bit set (0 marks an empty slot).
  static std::uint8_t tag_of(std::uint64_t h) noexcept {
    return static_cast<std::uint8_t>((h >> 57) | 0x80);
  }

  void grow_data();

  void grow_index(std::size_t min_slots = 0);

  /// The bytes of an index of `slots` slots (positions, tags, the tags'
  /// copies past the end).
  static std::size_t index_bytes(std::size_t slots) noexcept {
    return slots * (sizeof(std::uint32_t) + 1) + group;
  }

  /// Frees the index (the table is then unindexed, as after sort()).
  void free_index() noexcept;

  /// Sorts the entries in place; the index is stale until `reset`.
  void sort_entries() noexcept;

  /// The index slots for `n` keys: a power of two, at most 75 % full.
  static std::size_t slots_for(std::size_t n) noexcept {
    std::size_t s = 16;
    while ((n + 1) * 4 > s * 3)
      s *= 2;
    return s;
  }

  int_entry* data_ = nullptr;
  std::size_t size_ = 0;
  std::size_t capacity_ = 0;
  // One block: `slots_` positions (1-based; 0 empty), then `slots_` tags
  // and `group` copies of the first tags.
  std::uint32_t* index_ = nullptr;
  std::uint8_t* tags_ = nullptr;
  std::size_t slots_ = 0;
  // The last key found: reducers mostly see runs of one key.
  std::size_t last_ = std::numeric_limits<std::size_t>::max();
  // Entries before this one are not in the index (seal).
  std::size_t sealed_ = 0;
};

/// Makes room for `n` entries in `v`: its own storage when that is large
/// enough (left as it is), else a new, empty block with an eighth to spare
/// (a reducer's next partial, a few keys larger, then fits), advised for
/// transparent huge pages before its first touch. For the blocks of
/// entries a reducer sends (a batch of 262144 keyed values makes 12 MB of
/// them); `assign` then writes each entry once.
void reserve_for_overwrite(std::vector<int_entry>& v, std::size_t n);

/// Makes `v` hold `n` entries that the caller overwrites in any order:
/// `reserve_for_overwrite`, then only the entries past `v`'s size
/// constructed (stale ones kept).
void resize_for_overwrite(std::vector<int_entry>& v, std::size_t n);

/// Sorts the `n` entries at `xs` by key, in place and without extra memory:
/// a most-significant-digit radix sort on the bits in which the keys differ
/// (American flag sort, up to 11 bits a pass), `std::sort` for parts of 64 entries
/// or fewer. For results of many keys, where `std::sort` compares entries
/// about 20 times each.
void sort_by_key(int_entry* xs, std::size_t n) noexcept;

} // namespace flow::detail
