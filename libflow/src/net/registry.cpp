// flow::net: the registries a worker node looks names up in. A reducer or a
// task kind crosses the network as its name only, so the manager and every
// node register the same names.

#include "flow/net/registry.hpp"

#include <cstdint>
#include <map>
#include <set>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "flow/partial.hpp"
#include "flow/types.hpp"
#include "internal.hpp"

namespace flow::net {

namespace {

// -- the reducer registry -----------------------------------------------------

std::mutex registry_mtx;

std::map<std::string, registered>& registry() {
  static std::map<std::string, registered> instance;
  return instance;
}

void register_builtins() {
  static std::once_flag once;
  std::call_once(once, [] {
    std::lock_guard<std::mutex> guard{registry_mtx};
    auto& xs = registry();
    xs["sum_by_label"] = make_registered<std::int64_t>(sum_by_label());
    xs["spin_sum_by_label"]
      = make_registered<std::int64_t>(spin_sum_by_label());
    xs["sum_by_key"] = make_registered<keyed_value>(sum_by_key());
  });
}

// -- the task registry --------------------------------------------------------

std::mutex tasks_mtx;

std::map<std::string, task_fn>& task_registry() {
  static std::map<std::string, task_fn> instance;
  return instance;
}

/// The kinds registered as repeatable (speculation may run them twice).
std::set<std::string>& repeatable_kinds() {
  static std::set<std::string> instance;
  return instance;
}

} // namespace

namespace {

// The reducer factories by prefix, in registration order.
std::vector<std::pair<std::string, reducer_factory>>& factories() {
  static std::vector<std::pair<std::string, reducer_factory>> instance;
  return instance;
}

} // namespace

std::optional<registered> find_reducer(const std::string& name) {
  register_builtins();
  std::vector<reducer_factory> candidates;
  {
    std::lock_guard<std::mutex> guard{registry_mtx};
    auto i = registry().find(name);
    if (i != registry().end())
      return i->second;
    for (auto& [prefix, fn] : factories())
      if (name.compare(0, prefix.size(), prefix) == 0)
        candidates.push_back(fn);
  }
  // Outside the lock: a factory may register types or log.
  for (auto& fn : candidates) {
    if (auto r = fn(name)) {
      std::lock_guard<std::mutex> guard{registry_mtx};
      registry()[name] = *r;
      return r;
    }
  }
  return std::nullopt;
}

std::optional<task_fn> find_task(const std::string& kind) {
  std::lock_guard<std::mutex> guard{tasks_mtx};
  auto i = task_registry().find(kind);
  if (i == task_registry().end())
    return std::nullopt;
  return i->second;
}

bool task_repeatable(const std::string& kind) {
  std::lock_guard<std::mutex> guard{tasks_mtx};
  return repeatable_kinds().count(kind) > 0;
}

// -- public API ---------------------------------------------------------------

reducer<std::int64_t> spin_sum_by_label() {
  return [](const batch_ref<std::int64_t>& b, partial& out) {
    // About 1 µs per element: a chain of dependent multiplications the
    // compiler cannot fold away.
    std::uint64_t h = 0x9e3779b97f4a7c15ULL;
    for (auto x : b.items) {
      auto v = static_cast<std::uint64_t>(x) ^ h;
      for (int i = 0; i < 800; ++i)
        v = v * 0x5851f42d4c957f2dULL + 1442695040888963407ULL;
      h ^= v;
    }
    // Fold the work into nothing observable but keep it alive.
    if (h == 42)
      out.reject("spin collision", 0);
    out.add(b.label, aggregate::of(b.items.data(), b.items.size()));
  };
}

void register_erased(const std::string& name, detail::element_kind kind,
                     detail::erased_reducer fn) {
  detail::erased_formatter format;
  if (kind == detail::element_kind::int64)
    format = detail::default_formatter<std::int64_t>();
  else if (kind == detail::element_kind::keyed)
    format = detail::default_formatter<keyed_value>();
  register_erased(name, registered_reducer{kind, std::move(fn),
                                           std::move(format)});
}

void register_erased(const std::string& name, registered_reducer r) {
  register_builtins();
  std::lock_guard<std::mutex> guard{registry_mtx};
  registry()[name] = std::move(r);
}

void register_reducer_factory(const std::string& prefix, reducer_factory fn) {
  std::lock_guard<std::mutex> guard{registry_mtx};
  factories().emplace_back(prefix, std::move(fn));
}

void register_task(const std::string& kind, task_fn fn, bool repeatable) {
  std::lock_guard<std::mutex> guard{tasks_mtx};
  task_registry()[kind] = std::move(fn);
  if (repeatable)
    repeatable_kinds().insert(kind);
  else
    repeatable_kinds().erase(kind);
}

} // namespace flow::net
