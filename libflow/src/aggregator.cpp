#include "flow/aggregator.hpp"

#include <algorithm>
#include <map>
#include <mutex>

#include "flow/detail/job_spec.hpp"
#include "flow/error.hpp"

namespace flow {

namespace {

// The registry: state types by name. Written at setup (columns are made
// before jobs run) and read by deserialisers on any thread.
struct registry {
  std::mutex mtx;
  std::map<std::string, const state_ops*> by_name;
};

registry& the_registry() {
  static registry r;
  return r;
}

} // namespace

namespace detail {

void register_state(const state_ops& ops) {
  auto& r = the_registry();
  std::lock_guard<std::mutex> guard{r.mtx};
  auto [i, added] = r.by_name.emplace(ops.name, &ops);
  if (!added && *i->second->type != *ops.type)
    throw std::logic_error("flow: two aggregator state types are named '"
                           + ops.name + "'");
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

state_row::state_row(const state_row& other) {
  *this = other;
}

state_row& state_row::operator=(const state_row& other) {
  if (this == &other)
    return *this;
  state_row copy;
  if (other.boxes_) {
    copy.boxes_ = std::make_unique<std::vector<box>>(other.boxes_->size());
    for (std::size_t i = 0; i < other.boxes_->size(); ++i) {
      auto& b = (*other.boxes_)[i];
      if (b.ptr)
        (*copy.boxes_)[i] = box{b.ops, b.ops->clone(b.ptr)};
    }
  }
  *this = std::move(copy);
  return *this;
}

state_row& state_row::operator=(state_row&& other) noexcept {
  if (this != &other) {
    clear();
    boxes_ = std::move(other.boxes_);
  }
  return *this;
}

void state_row::clear() noexcept {
  if (boxes_)
    for (auto& b : *boxes_)
      if (b.ptr)
        b.ops->destroy(b.ptr);
  boxes_.reset();
}

state_row::~state_row() {
  clear();
}

bool state_row::empty() const noexcept {
  if (!boxes_)
    return true;
  for (auto& b : *boxes_)
    if (b.ptr)
      return false;
  return true;
}

std::vector<state_row::box>& state_row::boxes() {
  if (!boxes_)
    boxes_ = std::make_unique<std::vector<box>>();
  return *boxes_;
}

const void* state_row::get(std::size_t i, const state_ops& ops) const {
  if (!boxes_ || i >= boxes_->size())
    return nullptr;
  auto& b = (*boxes_)[i];
  if (!b.ptr)
    return nullptr;
  if (b.ops != &ops && *b.ops->type != *ops.type)
    throw std::logic_error("flow: column " + std::to_string(i) + " holds a '"
                           + b.ops->name + "' state, not '" + ops.name + "'");
  return b.ptr;
}

void* state_row::get_or_create(std::size_t i, const state_ops& ops,
                               const void* prototype) {
  auto& bs = boxes();
  if (i >= bs.size()) {
    // Reducers create a row's columns one after the other: room for a few
    // at once, not one reallocation per column.
    if (i >= bs.capacity())
      bs.reserve(std::max<std::size_t>({i + 1, 2 * bs.capacity(), 8}));
    bs.resize(i + 1);
  }
  auto& b = bs[i];
  if (!b.ptr) {
    b = box{&ops, ops.clone(prototype)};
    return b.ptr;
  }
  if (b.ops != &ops && *b.ops->type != *ops.type)
    throw std::logic_error("flow: column " + std::to_string(i) + " holds a '"
                           + b.ops->name + "' state, not '" + ops.name + "'");
  return b.ptr;
}

bool state_row::merge(const state_row& other) {
  if (!other.boxes_)
    return true;
  auto& theirs = *other.boxes_;
  auto& mine = boxes();
  if (mine.size() < theirs.size()) {
    if (mine.capacity() < theirs.size())
      mine.reserve(theirs.capacity());
    mine.resize(theirs.size());
  }
  for (std::size_t i = 0; i < theirs.size(); ++i) {
    auto& src = theirs[i];
    if (!src.ptr)
      continue;
    auto& dst = mine[i];
    if (!dst.ptr) {
      dst = box{src.ops, src.ops->clone(src.ptr)};
      continue;
    }
    if (dst.ops != src.ops && *dst.ops->type != *src.ops->type)
      return false;
    if (!dst.ops->merge(dst.ptr, src.ptr))
      return false;
  }
  return true;
}

bool state_row::ok() const {
  if (!boxes_)
    return true;
  for (auto& b : *boxes_)
    if (b.ptr && b.ops->ok && !b.ops->ok(b.ptr))
      return false;
  return true;
}

std::vector<std::string> state_row::names() const {
  std::vector<std::string> result;
  if (boxes_)
    for (auto& b : *boxes_)
      result.push_back(b.ptr ? b.ops->name : std::string{});
  return result;
}

bool state_row::equals(const state_row& other) const {
  auto n = std::max(size(), other.size());
  for (std::size_t i = 0; i < n; ++i) {
    const box* x = i < size() ? &(*boxes_)[i] : nullptr;
    const box* y = i < other.size() ? &(*other.boxes_)[i] : nullptr;
    bool has_x = x && x->ptr;
    bool has_y = y && y->ptr;
    if (has_x != has_y)
      return false;
    if (!has_x)
      continue;
    if (*x->ops->type != *y->ops->type || !x->ops->equal(x->ptr, y->ptr))
      return false;
  }
  return true;
}

caf::error state_row::save(caf::serializer& sink) const {
  // Trailing empty columns are not written, so equal rows write equal bytes.
  std::uint32_t n = 0;
  for (std::size_t i = 0; i < size(); ++i)
    if ((*boxes_)[i].ptr)
      n = static_cast<std::uint32_t>(i + 1);
  if (auto err = sink(n))
    return err;
  for (std::uint32_t i = 0; i < n; ++i) {
    auto& b = (*boxes_)[i];
    std::string name = b.ptr ? b.ops->name : std::string{};
    if (auto err = sink(name))
      return err;
    if (!b.ptr)
      continue;
    if (!b.ops->save)
      return make_error(errc::not_serializable,
                        "aggregator state '" + b.ops->name
                          + "' has no inspect function and cannot cross "
                            "processes");
    if (auto err = b.ops->save(sink, b.ptr))
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
  if (n > 0)
    result.boxes().resize(n);
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
    auto ptr = ops->create();
    (*result.boxes_)[i] = box{ops, ptr};
    if (auto err = ops->load(source, ptr))
      return err;
  }
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
