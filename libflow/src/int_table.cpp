#include "flow/detail/int_table.hpp"

#include <algorithm>
#include <cstring>
#include <stdexcept>

namespace flow::detail {

void int_table::sort() {
  std::free(index_);
  index_ = nullptr;
  tags_ = nullptr;
  slots_ = 0;
  sort_entries();
}

void int_table::sort_entries() noexcept {
  last_ = std::numeric_limits<std::size_t>::max();
  std::sort(begin(), end(), [](const int_entry& x, const int_entry& y) {
    return x.key < y.key;
  });
}

void int_table::reserve(std::size_t n) {
  constexpr std::size_t limit = std::numeric_limits<std::uint32_t>::max() - 1;
  if (n > limit)
    throw std::length_error("flow: more than 2^32 - 2 integer keys in one "
                            "table");
  if (n > capacity_) {
    auto* p = std::realloc(static_cast<void*>(data_), n * sizeof(int_entry));
    if (p == nullptr)
      throw std::bad_alloc{};
    data_ = static_cast<int_entry*>(p);
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
  // Two stages: the index slot of the entry `far` places ahead, then the
  // entry that slot points to `near` places ahead (its slot is cached by
  // then). Far enough to hide a memory access, near enough to stay cached.
  constexpr std::size_t far = 16;
  constexpr std::size_t near = 8;
  auto slot_of = [this](std::int64_t k) {
    return mix64(static_cast<std::uint64_t>(k)) & (slots_ - 1);
  };
  for (std::size_t i = 0; i < n; ++i) {
    if (slots_ > 0) {
      if (i + far < n) {
        auto j = slot_of(xs[i + far].key);
        __builtin_prefetch(index_ + j);
        __builtin_prefetch(tags_ + j);
      }
      if (i + near < n)
        if (auto pos = index_[slot_of(xs[i + near].key)]; pos != 0)
          __builtin_prefetch(data_ + pos - 1);
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
  // int_entry is trivially copyable, so realloc may move it (and does so
  // for large blocks by remapping pages, never holding two copies).
  auto* p = std::realloc(static_cast<void*>(data_), n * sizeof(int_entry));
  if (p == nullptr)
    throw std::bad_alloc{};
  data_ = static_cast<int_entry*>(p);
  capacity_ = n;
}

void int_table::grow_index(std::size_t min_slots) {
  auto n = std::max<std::size_t>({16, slots_ * 2, min_slots});
  while ((size_ + 1) * 4 > n * 3)
    n *= 2;
  // calloc: the zeroed pages of a large block come untouched from mmap.
  auto bytes = n * (sizeof(std::uint32_t) + 1) + group;
  auto* p = std::calloc(1, bytes);
  if (p == nullptr)
    throw std::bad_alloc{};
  std::free(index_);
  index_ = static_cast<std::uint32_t*>(p);
  tags_ = reinterpret_cast<std::uint8_t*>(index_ + n);
  slots_ = n;
  auto mask = n - 1;
  for (std::size_t pos = 0; pos < size_; ++pos) {
    auto h = mix64(static_cast<std::uint64_t>(data_[pos].key));
    auto i = h & mask;
    while (tags_[i] != 0)
      i = (i + 1) & mask;
    set_tag(i, tag_of(h));
    index_[i] = static_cast<std::uint32_t>(pos + 1);
  }
}

} // namespace flow::detail
