#include "flow/detail/int_table.hpp"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <stdexcept>

#include <sys/mman.h>
#include <unistd.h>

namespace flow::detail {

namespace {

// Blocks of at least `mapped_bytes` (a table of about 87,000 keys and more)
// are mapped from the kernel by the table itself, advised for transparent
// huge pages before their first touch, and grown with mremap (which moves
// the pages instead of copying them). Debian's default ("madvise" in
// /sys/kernel/mm/transparent_hugepage/enabled) gives huge pages only to
// memory that asks, and a table of millions of keys is touched page by
// page as it fills: at 10^7 keys 83 % of the process's page faults were
// first touches in merge_all and grow_index, at about 15 us each on the VM
// of docs/benchmarks.md. Advising malloc's blocks instead does not work:
// the advice can cover only part of malloc's mapping, which splits it,
// and glibc's realloc then cannot mremap it and copies the block into
// fresh memory at every doubling (a first try of this change, measured).
// Where the kernel says no (THP off), the advice changes nothing.
//
// Smaller blocks (every reducer's partial of a batch of 65536 keys or
// fewer) stay with malloc, which recycles them without the kernel.
constexpr std::size_t mapped_bytes = std::size_t{4} << 20;

/// Rounds a mapped block's length up to whole pages.
std::size_t page_round(std::size_t bytes) noexcept {
  constexpr std::size_t page = 4096;
  return (bytes + page - 1) / page * page;
}

/// Asks for transparent huge pages for the mapped block [p, p + bytes)
/// (whole pages). The whole mapping, not its 2 MiB-aligned middle: advice
/// on part of a mapping splits it in two or three, and mremap cannot grow
/// a range that spans more than one.
void advise_huge(void* p, std::size_t bytes) noexcept {
#ifdef MADV_HUGEPAGE
  static_cast<void>(::madvise(p, bytes, MADV_HUGEPAGE));
#else
  static_cast<void>(p);
  static_cast<void>(bytes);
#endif
}

/// A fresh zeroed block of `bytes` (mapped when large); throws bad_alloc.
void* block_alloc(std::size_t bytes) {
  if (bytes < mapped_bytes) {
    auto* p = std::calloc(1, bytes);
    if (p == nullptr)
      throw std::bad_alloc{};
    return p;
  }
  auto* p = ::mmap(nullptr, page_round(bytes), PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED)
    throw std::bad_alloc{};
  advise_huge(p, page_round(bytes));
  return p;
}

/// Frees a block of block_alloc or block_grow, of `bytes`.
void block_free(void* p, std::size_t bytes) noexcept {
  if (p == nullptr)
    return;
  if (bytes < mapped_bytes)
    std::free(p);
  else
    ::munmap(p, page_round(bytes));
}

/// Block `p` of `bytes` (null when 0), grown to `new_bytes` keeping its
/// first `used` bytes; throws bad_alloc, leaving `p` as it was.
void* block_grow(void* p, std::size_t bytes, std::size_t used,
                 std::size_t new_bytes) {
  if (bytes < mapped_bytes && new_bytes < mapped_bytes) {
    auto* q = std::realloc(p, new_bytes);
    if (q == nullptr)
      throw std::bad_alloc{};
    return q;
  }
  if (p != nullptr && bytes >= mapped_bytes && new_bytes >= mapped_bytes) {
    auto* q = ::mremap(p, page_round(bytes), page_round(new_bytes),
                       MREMAP_MAYMOVE);
    if (q != MAP_FAILED) {
      // A grown or moved mapping keeps its advice; advised again all the
      // same (it costs a system call per doubling).
      advise_huge(q, page_round(new_bytes));
      return q;
    }
    // Should the kernel refuse (the mapping split after all), a copy.
  }
  // Across the threshold (once in a table's life: tables only grow), or
  // where the kernel refused to remap: a copy.
  auto* q = block_alloc(new_bytes);
  if (used > 0)
    std::memcpy(q, p, used);
  block_free(p, bytes);
  return q;
}

} // namespace

int_table::~int_table() {
  block_free(data_, capacity_ * sizeof(int_entry));
  free_index();
}

void int_table::free_index() noexcept {
  if (index_ != nullptr)
    block_free(index_, index_bytes(slots_));
  index_ = nullptr;
  tags_ = nullptr;
  slots_ = 0;
}

void int_table::sort() {
  free_index();
  sort_entries();
}

void int_table::sort_entries() noexcept {
  last_ = std::numeric_limits<std::size_t>::max();
  sort_by_key(data_, size_);
}

void int_table::reserve(std::size_t n) {
  constexpr std::size_t limit = std::numeric_limits<std::uint32_t>::max() - 1;
  if (n > limit)
    throw std::length_error("flow: more than 2^32 - 2 integer keys in one "
                            "table");
  if (n > capacity_) {
    data_ = static_cast<int_entry*>(
      block_grow(data_, capacity_ * sizeof(int_entry),
                 size_ * sizeof(int_entry), n * sizeof(int_entry)));
    capacity_ = n;
  }
  if (slots_for(n) > slots_)
    grow_index(slots_for(n));
}

std::size_t int_table::keys_within(std::size_t bytes) noexcept {
  // bytes_for grows with n: the largest n that fits, by bisection.
  std::size_t lo = 0;
  std::size_t hi = bytes / sizeof(int_entry) + 1;
  while (lo + 1 < hi) {
    auto mid = lo + (hi - lo) / 2;
    if (bytes_for(mid) <= bytes)
      lo = mid;
    else
      hi = mid;
  }
  return lo;
}

void int_table::reset() noexcept {
  size_ = 0;
  sealed_ = 0;
  last_ = std::numeric_limits<std::size_t>::max();
  if (tags_ != nullptr)
    std::memset(tags_, 0, slots_ + group);
}

const int_entry* int_table::find_sorted(std::int64_t k) const noexcept {
  // Without an index the entries are sorted (see sort).
  auto i = std::lower_bound(begin(), end(), k,
                            [](const int_entry& x, std::int64_t y) {
                              return x.key < y;
                            });
  return i != end() && i->key == k ? i : nullptr;
}

std::size_t int_table::merge_all(const int_entry* xs, std::size_t n) {
  // Two stages: the index slot (position and tag) of the entry `far` places
  // ahead, then the entry that the key's first matching tag points to
  // `near` places ahead (its slot is cached by then). Far enough to hide a
  // memory access, near enough to stay cached. The entry is found by its
  // tag, not taken from the key's first slot: at a load of 40-75 % the key
  // is often a slot or two further on, and the entry actually read was
  // then not the one asked for (38 % of merge_all's samples stalled on
  // that read at 10^6 keys, perf annotate). Both lines an entry may
  // straddle are asked for (a 48-byte entry crosses a 64-byte line at
  // every other position, and the sum lies past it).
  constexpr std::size_t far = 16;
  constexpr std::size_t near = 8;
  // Probes past this many slots are rare enough to wait for.
  constexpr std::size_t scan = 8;
  for (std::size_t i = 0; i < n; ++i) {
    if (slots_ > 0) {
      auto mask = slots_ - 1;
      if (i + far < n) {
        auto j = mix64(static_cast<std::uint64_t>(xs[i + far].key)) & mask;
        __builtin_prefetch(index_ + j);
        __builtin_prefetch(tags_ + j);
      }
      if (i + near < n) {
        auto h = mix64(static_cast<std::uint64_t>(xs[i + near].key));
        auto tag = tag_of(h);
        auto j = h & mask;
        for (std::size_t probe = 0; probe < scan; ++probe, j = (j + 1) & mask) {
          auto t = tags_[j];
          if (t == 0)
            break;
          if (t == tag) {
            auto* e = reinterpret_cast<const char*>(data_ + index_[j] - 1);
            __builtin_prefetch(e);
            __builtin_prefetch(e + sizeof(int_entry) - 1);
            break;
          }
        }
      }
    }
    auto& e = xs[i];
    if (!(*this)[e.key].merge(e.sum, e.count, e.min, e.max))
      return i;
  }
  return n;
}

void int_table::grow_data() {
  // Positions are 32 bits, 0 meaning empty.
  constexpr std::size_t limit = std::numeric_limits<std::uint32_t>::max() - 1;
  if (size_ >= limit)
    throw std::length_error("flow: more than 2^32 - 2 integer keys in one "
                            "table");
  auto n = std::min(limit, std::max<std::size_t>(16, capacity_ * 2));
  // int_entry is trivially copyable, so its block may move (large blocks
  // by remapping pages, never holding two copies).
  data_ = static_cast<int_entry*>(
    block_grow(data_, capacity_ * sizeof(int_entry), size_ * sizeof(int_entry),
               n * sizeof(int_entry)));
  capacity_ = n;
}

void int_table::grow_index(std::size_t min_slots) {
  auto n = std::max<std::size_t>({16, slots_ * 2, min_slots});
  while ((size_ - sealed_ + 1) * 4 > n * 3)
    n *= 2;
  // The zeroed pages of a large block come untouched from the kernel.
  auto* p = block_alloc(index_bytes(n));
  free_index();
  index_ = static_cast<std::uint32_t*>(p);
  tags_ = reinterpret_cast<std::uint8_t*>(index_ + n);
  slots_ = n;
  auto mask = n - 1;
  for (auto pos = sealed_; pos < size_; ++pos) {
    auto h = mix64(static_cast<std::uint64_t>(data_[pos].key));
    auto i = h & mask;
    while (tags_[i] != 0)
      i = (i + 1) & mask;
    set_tag(i, tag_of(h));
    index_[i] = static_cast<std::uint32_t>(pos + 1);
  }
}

void reserve_for_overwrite(std::vector<int_entry>& v, std::size_t n) {
  if (v.capacity() < n) {
    // Not v.resize: it would copy the stale entries into a block twice the
    // size, every page of it a first touch in 4 KiB steps (at 12 MB, about
    // 3000 page faults; on the VM of docs/benchmarks.md about 15-20 us
    // each).
    std::vector<int_entry> fresh;
    fresh.reserve(n + n / 8);
    // Only the block's whole pages inside it: malloc's header sits before
    // it. Advice on part of a mapping splits it, which costs a block that
    // is never grown in place (std::vector) nothing.
    static const auto page
      = static_cast<std::uintptr_t>(::sysconf(_SC_PAGESIZE));
    auto lo = (reinterpret_cast<std::uintptr_t>(fresh.data()) + page - 1)
              & ~(page - 1);
    auto hi = (reinterpret_cast<std::uintptr_t>(fresh.data() + fresh.capacity()))
              & ~(page - 1);
    if (hi >= lo + mapped_bytes)
      advise_huge(reinterpret_cast<void*>(lo), hi - lo);
    v = std::move(fresh);
  }
}

void resize_for_overwrite(std::vector<int_entry>& v, std::size_t n) {
  reserve_for_overwrite(v, n);
  v.resize(n);
}

namespace {

/// A key as an unsigned number in the same order.
std::uint64_t ordered(std::int64_t k) noexcept {
  return static_cast<std::uint64_t>(k) ^ (std::uint64_t{1} << 63);
}

/// Parts this small are sorted by comparison: a radix pass would cost more
/// in counting than it saves.
constexpr std::size_t radix_min = 64;

/// Bits of one radix pass: 2048 buckets, whose counts stay in the L1 cache.
constexpr unsigned radix_bits = 11;

} // namespace

void sort_by_key(int_entry* xs, std::size_t n) noexcept {
  if (n <= radix_min) {
    std::sort(xs, xs + n, [](const int_entry& x, const int_entry& y) {
      return x.key < y.key;
    });
    return;
  }
  // Only the bits below the highest one in which the smallest and the
  // largest key differ order the keys: 20 bits for a million dense ids,
  // where the keys' full 64 would take six passes of 11.
  auto lo = ordered(xs[0].key);
  auto hi = lo;
  for (std::size_t i = 1; i < n; ++i) {
    auto u = ordered(xs[i].key);
    lo = std::min(lo, u);
    hi = std::max(hi, u);
  }
  if (lo == hi)
    return;
  auto width = 64u - static_cast<unsigned>(__builtin_clzll(lo ^ hi));
  // No more buckets than half the entries: counting 2048 buckets for a
  // part of a few hundred entries costs more than it sorts.
  auto log_n = 63u - static_cast<unsigned>(__builtin_clzll(n));
  auto bits = std::min(radix_bits, log_n - 1);
  auto shift = width > bits ? width - bits : 0u;
  auto buckets = std::size_t{1} << (width - shift);
  auto mask = buckets - 1;
  auto digit = [&](const int_entry& e) {
    return static_cast<std::size_t>((ordered(e.key) >> shift) & mask);
  };
  // 32 KiB of stack a level; a level takes 5 bits or more, so 13 levels at
  // most (keys spread over all 64 bits), 2 or 3 for dense ids.
  std::size_t next[std::size_t{1} << radix_bits];
  std::size_t ends[std::size_t{1} << radix_bits];
  std::fill(next, next + buckets, std::size_t{0});
  for (std::size_t i = 0; i < n; ++i)
    ++next[digit(xs[i])];
  std::size_t sum = 0;
  for (std::size_t b = 0; b < buckets; ++b) {
    auto c = next[b];
    next[b] = sum;
    sum += c;
    ends[b] = sum;
  }
  // Each entry is swapped straight into its bucket's next free place.
  // Which place comes next depends on the entry just read, a chain of cache
  // misses once the entries outgrow the caches; but each bucket fills its
  // places in order, so prefetching a few places ahead of the one just
  // filled makes the bucket's next visit a hit (1.5-2x std::sort at 5 x
  // 10^5 to 5 x 10^6 entries, where it was 1.3-1.5x without).
  constexpr std::size_t ahead = 4;
  for (std::size_t b = 0; b < buckets; ++b)
    while (next[b] < ends[b]) {
      auto t = digit(xs[next[b]]);
      if (t == b) {
        ++next[b];
      } else {
        std::swap(xs[next[b]], xs[next[t]++]);
        if (next[t] + ahead < n)
          __builtin_prefetch(xs + next[t] + ahead, 1);
      }
    }
  if (shift == 0)
    return; // the digit was the last of the differing bits
  for (std::size_t b = 0, begin = 0; b < buckets; begin = ends[b], ++b)
    sort_by_key(xs + begin, ends[b] - begin);
}

} // namespace flow::detail
