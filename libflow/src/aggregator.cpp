#include "flow/aggregator.hpp"

#include <algorithm>
#include <cstring>
#include <atomic>
#include <deque>
#include <functional>
#include <new>
#include <stdexcept>
#include <map>
#include <mutex>

#include "flow/detail/job_spec.hpp"
#include "flow/error.hpp"

namespace flow {

namespace {

// The registry: state types by name, and by index (`state_ops::index`).
// Written at setup (columns are made before jobs run) and read by
// deserialisers and state rows on any thread.
struct registry {
  std::mutex mtx;
  std::map<std::string, const state_ops*> by_name;
  // The registered copies (a deque: their addresses hold).
  std::deque<state_ops> all;
};

registry& the_registry() {
  // Never destroyed: a row destroyed at exit (a static, a thread still
  // running) still finds its states' operations through their index.
  static registry& r = *new registry;
  return r;
}

// Index -> operations, read without the lock: an entry is written before
// its index is handed out (release), and never changes after.
std::atomic<const state_ops*> ops_table[detail::max_state_types];

} // namespace

namespace detail {

const state_ops& register_state(state_ops ops) {
  auto& r = the_registry();
  std::lock_guard<std::mutex> guard{r.mtx};
  auto i = r.by_name.find(ops.name);
  if (i != r.by_name.end()) {
    if (*i->second->type != *ops.type)
      throw std::logic_error("flow: two aggregator state types are named '"
                             + ops.name + "'");
    return *i->second;
  }
  auto index = r.all.size() + 1;
  if (index >= max_state_types)
    throw std::logic_error("flow: more than 65535 aggregator state types");
  ops.index = static_cast<std::uint32_t>(index);
  auto& kept = r.all.emplace_back(std::move(ops));
  try {
    r.by_name.emplace(kept.name, &kept);
  } catch (...) {
    // Not registered at all: the index is handed out again.
    r.all.pop_back();
    throw;
  }
  ops_table[index].store(&kept, std::memory_order_release);
  return kept;
}

const state_ops& state_ops_at(std::uint32_t index) noexcept {
  return *ops_table[index].load(std::memory_order_acquire);
}

} // namespace detail

const state_ops* find_state_ops(const std::string& name) {
  auto& r = the_registry();
  std::lock_guard<std::mutex> guard{r.mtx};
  auto i = r.by_name.find(name);
  return i == r.by_name.end() ? nullptr : i->second;
}

void aggregators::check_name(const std::string& name) const {
  for (auto& c : columns_)
    if (c.name == name)
      throw std::invalid_argument("flow::aggregators::add: duplicate column '"
                                  + name + "'");
}

// -- state_row ------------------------------------------------------------------

namespace {

static_assert(__STDCPP_DEFAULT_NEW_ALIGNMENT__ >= 16,
              "state_row's blocks place 16-byte aligned states");

// A state larger than this is allocated on its own: a row's block stays a
// table of small states, and its 32-bit sizes cannot overflow (at most
// 65536 columns).
constexpr std::size_t max_inline_state = 4096;

// True when a state of `ops` may live in a row's block.
bool inline_able(const state_ops& ops) noexcept {
  return ops.relocate != nullptr && ops.copy_at != nullptr
         && ops.create_at != nullptr && ops.destruct != nullptr
         && ops.size > 0 && ops.size <= max_inline_state && ops.align <= 16;
}

std::size_t align_up(std::size_t n, std::size_t a) noexcept {
  return (n + a - 1) / a * a;
}

// What a state of `ops` takes in a row's storage: the state itself, or a
// pointer to it when it is allocated on its own.
std::size_t place_size(const state_ops& ops) noexcept {
  return inline_able(ops) ? ops.size : sizeof(void*);
}

std::size_t place_align(const state_ops& ops) noexcept {
  return inline_able(ops) ? ops.align : alignof(void*);
}

// Where a state of `ops` goes in storage of which `used` bytes are taken:
// every state starts at a multiple of 8 (and of its own alignment).
std::size_t offset_for(std::size_t used, const state_ops& ops) noexcept {
  return align_up(used, std::max<std::size_t>(place_align(ops), 8));
}

// The most a state of `ops` adds to a block's storage, whatever comes
// before it: its size to a multiple of 8, and the padding a 16-byte
// alignment may need after a state that ends at an odd multiple of 8.
std::size_t footprint(const state_ops& ops) noexcept {
  auto a = place_align(ops);
  return align_up(place_size(ops), 8) + (a > 8 ? a - 8 : 0);
}

const state_ops& ops_at(std::uint32_t index) noexcept {
  return detail::state_ops_at(index);
}

} // namespace

void aggregators::grow_shape(const state_ops& ops) {
  shape_->columns = columns_.size();
  shape_->bytes += footprint(ops);
}

state_row::state_row(const state_row& other) {
  *this = other;
}

state_row& state_row::operator=(const state_row& other) {
  if (this == &other)
    return *this;
  state_row copy;
  if (other.block_) {
    auto n = other.size();
    std::size_t bytes = 0;
    for (std::size_t i = 0; i < n; ++i) {
      auto& b = other.boxes()[i];
      if (b.type != 0) {
        auto& o = ops_at(b.type);
        bytes = offset_for(bytes, o) + place_size(o);
      }
    }
    copy.reserve(n, bytes);
    copy.block_->size = static_cast<std::uint32_t>(n);
    for (std::size_t i = 0; i < n; ++i) {
      auto& b = other.boxes()[i];
      if (b.type != 0)
        copy.make(i, ops_at(b.type), other.ptr(i));
    }
  }
  *this = std::move(copy);
  return *this;
}

state_row& state_row::operator=(state_row&& other) noexcept {
  if (this != &other) {
    clear();
    block_ = other.block_;
    other.block_ = nullptr;
  }
  return *this;
}

void state_row::clear() noexcept {
  if (!block_)
    return;
  auto* b = block_;
  for (std::size_t i = 0; i < b->size; ++i) {
    auto& x = b->boxes()[i];
    if (x.type == 0)
      continue;
    auto& o = ops_at(x.type);
    if ((x.at & heap) != 0)
      o.destroy(ptr(i));
    else
      o.destruct(ptr(i));
  }
  ::operator delete(b);
  block_ = nullptr;
}

state_row::~state_row() {
  clear();
}

bool state_row::empty() const noexcept {
  for (std::size_t i = 0; i < size(); ++i)
    if (boxes()[i].type != 0)
      return false;
  return true;
}

std::size_t state_row::block_bytes() const noexcept {
  if (!block_)
    return 0;
  return sizeof(block) + block::table_bytes(block_->capacity) + block_->bytes;
}

void state_row::reserve(std::size_t columns, std::size_t bytes) {
  if (block_ && columns <= block_->capacity
      && block_->used + bytes <= block_->bytes)
    return;
  rebuild(std::max<std::size_t>(columns, block_ ? block_->capacity : 0),
          bytes);
}

void state_row::rebuild(std::size_t columns, std::size_t bytes) {
  static_assert(sizeof(block) == 16 && sizeof(box) == 8,
                "a block's storage must start 16-byte aligned");
  auto* old = block_;
  if (columns > 65536)
    throw std::length_error("flow: a state row of more than 65536 columns");
  // The states in the block move to the new one in column order, which may
  // pad them differently: their room counted again.
  std::size_t moved = 0;
  for (std::size_t i = 0; i < size(); ++i) {
    auto& x = old->boxes()[i];
    if (x.type != 0) {
      auto& o = ops_at(x.type);
      moved = offset_for(moved, o) + place_size(o);
    }
  }
  columns = std::max<std::size_t>(columns, size());
  auto new_bytes = align_up(moved + bytes, 8);
  void* raw = ::operator new(sizeof(block) + block::table_bytes(columns)
                             + new_bytes);
  auto* nb = new (raw) block{0, static_cast<std::uint32_t>(columns), 0,
                             static_cast<std::uint32_t>(new_bytes)};
  for (std::size_t i = 0; i < columns; ++i)
    new (nb->boxes() + i) box{0, 0};
  if (old) {
    nb->size = old->size;
    for (std::size_t i = 0; i < old->size; ++i) {
      auto& x = old->boxes()[i];
      if (x.type == 0)
        continue;
      auto& o = ops_at(x.type);
      auto off = offset_for(nb->used, o);
      char* to = nb->storage() + off;
      char* from = old->storage() + (x.at & ~heap);
      if ((x.at & heap) != 0)
        std::memcpy(to, from, sizeof(void*));
      else
        o.relocate(to, from);
      nb->used = static_cast<std::uint32_t>(off + place_size(o));
      nb->boxes()[i] = box{x.type, static_cast<std::uint32_t>(off)
                                     | (x.at & heap)};
    }
    ::operator delete(old);
  }
  block_ = nb;
}

void* state_row::make(std::size_t i, const state_ops& ops, const void* src) {
  if (ops.index == 0 || ops.index >= detail::max_state_types
      || &ops_at(ops.index) != &ops)
    throw std::logic_error("flow: aggregator state '" + ops.name
                           + "' is not registered (use state_ops_of)");
  // Callers reserve room; a state that does not fit makes it.
  if (offset_for(block_->used, ops) + place_size(ops) > block_->bytes)
    reserve(std::max<std::size_t>(i + 1, block_->capacity), footprint(ops));
  auto* b = block_;
  auto off = offset_for(b->used, ops);
  char* at = b->storage() + off;
  void* p;
  std::uint32_t flag = 0;
  // The room is taken only once the state is made (its copy may throw).
  if (inline_able(ops)) {
    p = at;
    if (src)
      ops.copy_at(p, src);
    else
      ops.create_at(p);
  } else {
    p = src ? ops.clone(src) : ops.create();
    std::memcpy(at, &p, sizeof(void*));
    flag = heap;
  }
  b->used = static_cast<std::uint32_t>(off + place_size(ops));
  b->boxes()[i] = box{ops.index, static_cast<std::uint32_t>(off) | flag};
  if (i >= b->size)
    b->size = static_cast<std::uint32_t>(i + 1);
  return p;
}

namespace {

// Throws when the state in column `i` is not of `ops`' type.
void check_type(std::size_t i, std::uint32_t held, const state_ops& ops) {
  if (held == ops.index)
    return;
  auto& h = ops_at(held);
  if (*h.type != *ops.type)
    throw std::logic_error("flow: column " + std::to_string(i) + " holds a '"
                           + h.name + "' state, not '" + ops.name + "'");
}

} // namespace

const void* state_row::get(std::size_t i, const state_ops& ops) const {
  if (i >= size())
    return nullptr;
  auto& b = boxes()[i];
  if (b.type == 0)
    return nullptr;
  check_type(i, b.type, ops);
  return ptr(i);
}

void* state_row::get_or_create(std::size_t i, const state_ops& ops,
                               const void* prototype,
                               const row_shape* shape) {
  if (i < size()) {
    auto& b = block_->boxes()[i];
    if (b.type != 0) {
      check_type(i, b.type, ops);
      return ptr(i);
    }
  }
  auto need = footprint(ops);
  if (!block_ && shape) {
    // The row's first state: room for all of them.
    reserve(std::max(i + 1, shape->columns), std::max(need, shape->bytes));
  } else {
    // Without a shape, columns come one after the other: what is short
    // grows by half at least, not once per column.
    std::size_t cap = block_ ? block_->capacity : 0;
    std::size_t room = block_ ? block_->bytes : 0;
    bool fits = block_
                && offset_for(block_->used, ops) + place_size(ops) <= room;
    if (i >= cap || !fits)
      reserve(i < cap ? cap
                      : std::min(std::max({i + 1, cap + cap / 2,
                                           std::size_t{4}}),
                                 std::max<std::size_t>(i + 1, 65536)),
              fits ? 0 : std::max(need, room / 2));
  }
  return make(i, ops, prototype);
}

bool state_row::merge(const state_row& other) {
  if (!other.block_)
    return true;
  if (!block_) {
    *this = other;
    return true;
  }
  auto n = other.size();
  std::size_t bytes = 0;
  for (std::size_t i = 0; i < n; ++i) {
    auto& src = other.boxes()[i];
    if (src.type != 0 && (i >= size() || boxes()[i].type == 0))
      bytes += footprint(ops_at(src.type));
  }
  reserve(n, bytes);
  if (block_->size < n)
    block_->size = static_cast<std::uint32_t>(n);
  for (std::size_t i = 0; i < n; ++i) {
    auto& src = other.boxes()[i];
    if (src.type == 0)
      continue;
    auto& so = ops_at(src.type);
    auto& dst = block_->boxes()[i];
    if (dst.type == 0) {
      make(i, so, other.ptr(i));
      continue;
    }
    auto& dop = ops_at(dst.type);
    if (dst.type != src.type && *dop.type != *so.type)
      return false;
    if (!dop.merge(ptr(i), other.ptr(i)))
      return false;
  }
  return true;
}

bool state_row::ok() const {
  for (std::size_t i = 0; i < size(); ++i) {
    auto& b = boxes()[i];
    if (b.type == 0)
      continue;
    auto& o = ops_at(b.type);
    if (o.ok && !o.ok(ptr(i)))
      return false;
  }
  return true;
}

std::vector<std::string> state_row::names() const {
  std::vector<std::string> result;
  for (std::size_t i = 0; i < size(); ++i) {
    auto& b = boxes()[i];
    result.push_back(b.type != 0 ? ops_at(b.type).name : std::string{});
  }
  return result;
}

bool state_row::equals(const state_row& other) const {
  auto n = std::max(size(), other.size());
  for (std::size_t i = 0; i < n; ++i) {
    std::uint32_t x = i < size() ? boxes()[i].type : 0;
    std::uint32_t y = i < other.size() ? other.boxes()[i].type : 0;
    if ((x != 0) != (y != 0))
      return false;
    if (x == 0)
      continue;
    auto& xo = ops_at(x);
    if (*xo.type != *ops_at(y).type || !xo.equal(ptr(i), other.ptr(i)))
      return false;
  }
  return true;
}

caf::error state_row::save(caf::serializer& sink) const {
  // Trailing empty columns are not written, so equal rows write equal bytes.
  std::uint32_t n = 0;
  for (std::size_t i = 0; i < size(); ++i)
    if (boxes()[i].type != 0)
      n = static_cast<std::uint32_t>(i + 1);
  if (auto err = sink(n))
    return err;
  for (std::uint32_t i = 0; i < n; ++i) {
    auto& b = boxes()[i];
    const state_ops* o = b.type != 0 ? &ops_at(b.type) : nullptr;
    std::string name = o ? o->name : std::string{};
    if (auto err = sink(name))
      return err;
    if (!o)
      continue;
    if (!o->save)
      return make_error(errc::not_serializable,
                        "aggregator state '" + o->name
                          + "' has no inspect function and cannot cross "
                            "processes");
    if (auto err = o->save(sink, ptr(i)))
      return err;
  }
  return caf::error{};
}

caf::error state_row::load(caf::deserializer& source) {
  std::uint32_t n = 0;
  if (auto err = source(n))
    return err;
  // A column count this large cannot come from save(): refuse it before
  // allocating.
  if (n > 65536)
    return make_error(errc::protocol_violation,
                      "state row with " + std::to_string(n) + " columns");
  state_row result;
  if (n > 0) {
    result.reserve(n, 0);
    result.block_->size = n;
  }
  for (std::uint32_t i = 0; i < n; ++i) {
    std::string name;
    if (auto err = source(name))
      return err;
    if (name.empty())
      continue;
    auto ops = find_state_ops(name);
    if (!ops || !ops->load)
      return make_error(errc::not_serializable,
                        "aggregator state '" + name
                          + "' is not registered in this process");
    // Grows by half at least: a row's states arrive one by one.
    auto& b = *result.block_;
    if (offset_for(b.used, *ops) + place_size(*ops) > b.bytes)
      result.reserve(n, std::max(footprint(*ops), std::size_t{b.bytes} / 2));
    auto p = result.make(i, *ops, nullptr);
    if (auto err = ops->load(source, p))
      return err;
  }
  // A row read is kept (checkpoints, worker nodes' partials): no slack
  // (the states moved, not copied).
  if (result.block_ && result.block_->used < result.block_->bytes)
    result.rebuild(n, 0);
  *this = std::move(result);
  return caf::error{};
}

} // namespace flow

namespace flow::detail {

namespace {

struct element_registry {
  std::mutex mtx;
  std::map<std::string, const element_ops*> by_name;
};

element_registry& the_element_registry() {
  static element_registry r;
  return r;
}

} // namespace

void register_element_ops(const element_ops& ops) {
  auto& r = the_element_registry();
  std::lock_guard<std::mutex> guard{r.mtx};
  r.by_name.emplace(ops.name, &ops);
}

const element_ops* find_element_ops(const std::string& name) {
  auto& r = the_element_registry();
  std::lock_guard<std::mutex> guard{r.mtx};
  auto i = r.by_name.find(name);
  return i == r.by_name.end() ? nullptr : i->second;
}

} // namespace flow::detail
