// flow::net: the coordinator's entry actor, the worker node actor and the
// reducer registry. The engine's manager does the rest: remote reducers join
// it with (join_atom, reducer, node) and are monitored like local ones.

#include "flow/net/net.hpp"

#include <algorithm>
#include <atomic>
#include <deque>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/blocking_actor.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/io/middleman.hpp>
#include <caf/io/publish.hpp>
#include <caf/io/remote_actor.hpp>
#include <caf/openssl/manager.hpp>
#include <caf/openssl/publish.hpp>
#include <caf/openssl/remote_actor.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/system_messages.hpp>

#include <spdlog/spdlog.h>

#include "../engine/engine.hpp"
#include "flow/detail/messages.hpp"
#include "flow/error.hpp"
#include "flow/logging.hpp"
#include "flow/parse.hpp"
#include "flow/types.hpp"

namespace flow::net {

/// Turns on the logging of refused TLS peers (tls_watch.cpp).
extern std::atomic<bool> watch_tls;

namespace {

using hello_atom = caf::atom_constant<caf::atom("f_hello")>;
using welcome_atom = caf::atom_constant<caf::atom("f_welcome")>;
using job_atom = caf::atom_constant<caf::atom("f_job")>;
using count_atom = caf::atom_constant<caf::atom("f_count")>;
/// requester -> entry: (run_atom, kind, payload, requester); the answer is
/// (answer_atom, job_result) or (answer_atom, error), sent to the requester,
/// which also monitors the entry (CAF 0.17 drops a pending response promise
/// silently when its actor ends, so no promise is kept).
using run_atom = caf::atom_constant<caf::atom("f_run")>;
using answer_atom = caf::atom_constant<caf::atom("f_answer")>;
/// requester -> entry: (withdraw_atom, requester): its task is not wanted
/// any more (the job ended); dropped if still queued.
using withdraw_atom = caf::atom_constant<caf::atom("f_withdra")>;
/// entry -> node: (task_atom, id, kind, payload).
using task_atom = caf::atom_constant<caf::atom("f_task")>;
/// node -> entry: (done_atom, id, job_result).
using done_atom = caf::atom_constant<caf::atom("f_done")>;
/// node -> entry: (failed_atom, id, errc code, context).
using failed_atom = caf::atom_constant<caf::atom("f_failed")>;

// -- the reducer registry ------------------------------------------------------

struct registered {
  detail::element_kind kind;
  detail::erased_reducer fn;
};

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
    using detail::erase_reducer;
    xs["sum_by_label"] = {detail::element_kind::int64,
                          erase_reducer<std::int64_t>(sum_by_label())};
    xs["spin_sum_by_label"] = {detail::element_kind::int64,
                               erase_reducer<std::int64_t>(
                                 spin_sum_by_label())};
    xs["sum_by_key"] = {detail::element_kind::keyed,
                        erase_reducer<keyed_value>(sum_by_key())};
  });
}

/// A copy, so that a later register_reducer replacing this name cannot
/// change it while a node uses it.
std::optional<registered> find_reducer(const std::string& name) {
  register_builtins();
  std::lock_guard<std::mutex> guard{registry_mtx};
  auto i = registry().find(name);
  if (i == registry().end())
    return std::nullopt;
  return i->second;
}

// -- the task registry ------------------------------------------------------------

std::mutex tasks_mtx;

std::map<std::string, task_fn>& task_registry() {
  static std::map<std::string, task_fn> instance;
  return instance;
}

std::optional<task_fn> find_task(const std::string& kind) {
  std::lock_guard<std::mutex> guard{tasks_mtx};
  auto i = task_registry().find(kind);
  if (i == task_registry().end())
    return std::nullopt;
  return i->second;
}

// -- the coordinator's entry actor -------------------------------------------

struct node_entry {
  caf::actor node;
  std::string name;
  /// Tasks it runs at once (its --reducers); more wait in the queue.
  std::size_t capacity = 1;
  /// Set when the node failed a task for a reason of its own (it does not
  /// know the task kind, cannot reach the database): it gets no more tasks.
  bool refuses = false;
};

struct job_entry {
  caf::actor manager;
  std::string reducer;
};

/// A task waiting for its node's answer.
struct task_entry {
  std::string kind;
  std::string payload;
  /// Who wants the answer (a task source's blocking actor).
  caf::actor requester;
  caf::actor_addr node;
  std::string node_name;
  /// Its requester withdrew it while it ran: not handed on if its node is
  /// lost.
  bool withdrawn = false;
};

struct entry_state {
  std::vector<node_entry> nodes;
  std::vector<job_entry> jobs;
  std::map<std::uint64_t, task_entry> tasks;
  /// Tasks waiting for a node with room, oldest (or handed back) first.
  std::deque<std::uint64_t> queue;
  std::uint64_t next_task = 1;
  static inline const char* name = "flow.net.entry";
};

/// Tasks running on `node`.
std::size_t load_of(const entry_state& st, const caf::actor_addr& node) {
  std::size_t load = 0;
  for (auto& [tid, t] : st.tasks)
    if (t.node == node)
      ++load;
  return load;
}

/// Answers task `i`'s requester and forgets the task.
template <class T>
void answer(caf::stateful_actor<entry_state>* self,
            std::map<std::uint64_t, task_entry>::iterator i, T&& x) {
  self->send(i->second.requester, answer_atom::value, std::forward<T>(x));
  self->state.tasks.erase(i);
}

/// Hands queued tasks to the nodes with room (the least loaded first); with
/// no node at all, answers their requesters "no worker node" (who then run
/// them themselves). A node that joins, or finishes a task, pulls from the
/// queue here, so work goes where there is room as soon as there is some.
void pump(caf::stateful_actor<entry_state>* self) {
  auto& st = self->state;
  while (!st.queue.empty()) {
    auto id = st.queue.front();
    auto i = st.tasks.find(id);
    if (i == st.tasks.end()) {
      st.queue.pop_front();
      continue;
    }
    auto& t = i->second;
    auto usable = std::any_of(st.nodes.begin(), st.nodes.end(),
                              [](const node_entry& n) { return !n.refuses; });
    if (!usable) {
      st.queue.pop_front();
      answer(self, i, make_error(errc::no_workers, "no worker node"));
      continue;
    }
    const node_entry* best = nullptr;
    double best_fill = 0;
    for (auto& n : st.nodes) {
      if (n.refuses)
        continue;
      auto load = load_of(st, n.node.address());
      if (load >= n.capacity)
        continue;
      auto fill = static_cast<double>(load) / static_cast<double>(n.capacity);
      if (best == nullptr || fill < best_fill) {
        best = &n;
        best_fill = fill;
      }
    }
    if (best == nullptr)
      return; // every node is busy: the queue waits
    st.queue.pop_front();
    t.node = best->node.address();
    t.node_name = best->name;
    logger()->debug("task {} ({}) to node {}", id, t.kind, best->name);
    self->send(best->node, task_atom::value, id, t.kind, t.payload);
  }
}

caf::behavior entry_actor(caf::stateful_actor<entry_state>* self,
                          std::string listen_at) {
  logger()->debug("entry actor for {}", listen_at);
  self->set_default_handler(caf::drop);
  self->set_down_handler([=](caf::down_msg& dm) {
    auto& st = self->state;
    for (auto i = st.nodes.begin(); i != st.nodes.end(); ++i) {
      if (i->node.address() == dm.source) {
        logger()->warn("worker node {} left ({})", i->name,
                       caf::to_string(dm.reason));
        auto gone = i->node.address();
        st.nodes.erase(i);
        // Its tasks go to another node; their results never arrived, so
        // none is merged twice.
        std::vector<std::uint64_t> orphans;
        for (auto& [id, t] : st.tasks)
          if (t.node == gone)
            orphans.push_back(id);
        // Handed back first, ahead of tasks that never ran.
        for (auto it = orphans.rbegin(); it != orphans.rend(); ++it) {
          auto& t = st.tasks[*it];
          if (t.withdrawn) {
            answer(self, st.tasks.find(*it),
                   make_error(errc::cancelled, "withdrawn"));
            continue;
          }
          logger()->warn("task {} ({}) was running on {}: handing it to "
                         "another node",
                         *it, t.kind, t.node_name);
          t.node = caf::actor_addr{};
          st.queue.push_front(*it);
        }
        pump(self);
        return;
      }
    }
    st.jobs.erase(std::remove_if(st.jobs.begin(), st.jobs.end(),
                                 [&](const job_entry& j) {
                                   return j.manager.address() == dm.source;
                                 }),
                  st.jobs.end());
  });
  return {
    [=](hello_atom, caf::actor node, const std::string& name,
        std::uint64_t capacity) {
      auto& st = self->state;
      self->monitor(node);
      st.nodes.push_back(
        {node, name, static_cast<std::size_t>(std::max<std::uint64_t>(1, capacity))});
      logger()->info("worker node {} joined ({} nodes)", name,
                     st.nodes.size());
      // A node that joins while jobs run gets work at once.
      for (auto& j : st.jobs)
        self->send(node, job_atom::value, j.manager, j.reducer);
      // ... and queued tasks, too.
      pump(self);
      return welcome_atom::value;
    },
    [=](job_atom, caf::actor manager, const std::string& reducer) {
      auto& st = self->state;
      self->monitor(manager);
      st.jobs.push_back({manager, reducer});
      for (auto& n : st.nodes)
        self->send(n.node, job_atom::value, manager, reducer);
    },
    [=](count_atom) -> std::uint64_t { return self->state.nodes.size(); },
    [=](run_atom, const std::string& kind, const std::string& payload,
        caf::actor requester) {
      auto& st = self->state;
      auto id = st.next_task++;
      st.tasks[id] = {kind, payload, std::move(requester), {}, {}};
      st.queue.push_back(id);
      pump(self);
    },
    [=](withdraw_atom, const caf::actor& requester) {
      // Only a task that has not started can go; a running one finishes on
      // its node and its answer finds nobody waiting.
      auto& st = self->state;
      for (auto i = st.tasks.begin(); i != st.tasks.end(); ++i) {
        if (i->second.requester != requester)
          continue;
        if (!i->second.node)
          answer(self, i, make_error(errc::cancelled, "withdrawn"));
        else
          i->second.withdrawn = true;
        return;
      }
    },
    [=](done_atom, std::uint64_t id, job_result& res) {
      auto& st = self->state;
      auto i = st.tasks.find(id);
      // A node's late answer for a task already handed elsewhere (it was
      // thought lost): the other node's answer counts, this one is dropped.
      if (i == st.tasks.end() || i->second.node != self->current_sender())
        return;
      logger()->debug("task {} done by {}", id, i->second.node_name);
      answer(self, i, std::move(res));
      pump(self);
    },
    [=](failed_atom, std::uint64_t id, std::uint8_t code,
        const std::string& context) {
      auto& st = self->state;
      auto i = st.tasks.find(id);
      if (i == st.tasks.end() || i->second.node != self->current_sender())
        return;
      if (static_cast<errc>(code) == errc::invalid_config) {
        // The node, not the data: it lacks the task kind or cannot reach
        // the database. The task goes to another node (or back to the
        // manager) and this node gets no more tasks.
        for (auto& n : st.nodes)
          if (n.node.address() == i->second.node)
            n.refuses = true;
        logger()->warn("worker node {} cannot run task {} ({}): {}; giving "
                       "it to another node, and no more tasks to {}",
                       i->second.node_name, id, i->second.kind, context,
                       i->second.node_name);
        i->second.node = caf::actor_addr{};
        st.queue.push_front(id);
        pump(self);
        return;
      }
      answer(self, i,
             make_error(static_cast<errc>(code),
                        "on node " + i->second.node_name + ": " + context));
      pump(self);
    },
  };
}

// -- the worker node actor ------------------------------------------------------

struct node_state {
  /// Per job (its manager): the reducers this node lent it.
  std::map<caf::actor_addr, std::vector<caf::actor>> lent;
  caf::actor entry;
  caf::error reason;
  static inline const char* name = "flow.net.node";
};

/// Runs one task on a thread of its own and reports to its node actor,
/// which passes the answer on to the entry actor (that knows the node, not
/// its runners).
void task_runner(caf::blocking_actor* self, caf::actor node, std::uint64_t id,
                 std::string kind, std::string payload) {
  auto res = run_task_here(self->system(), kind, payload);
  if (res) {
    logger()->info("task {} ({}) done: {} elements read, {} aggregated, {} "
                   "rejected",
                   id, kind, res->emitted, res->aggregated, res->rejected);
    self->send(node, done_atom::value, id, std::move(*res));
  } else {
    auto code = code_of(res.error());
    logger()->error("task {} ({}) failed: {}", id, kind,
                    describe(res.error()));
    self->send(node, failed_atom::value, id,
               static_cast<std::uint8_t>(code == errc::none ? errc::source_failed
                                                            : code),
               describe(res.error()));
  }
}

caf::behavior node_actor(caf::stateful_actor<node_state>* self,
                         caf::actor entry, std::size_t reducers,
                         std::string name) {
  self->state.entry = entry;
  self->set_default_handler(caf::drop);
  self->monitor(entry);
  self->set_down_handler([=](caf::down_msg& dm) {
    auto& st = self->state;
    if (dm.source == st.entry.address()) {
      // The manager's process (or the connection to it) is gone.
      for (auto& [m, rs] : st.lent)
        for (auto& r : rs)
          self->send_exit(r, caf::exit_reason::user_shutdown);
      self->quit(make_error(errc::actor_down,
                            "lost the manager (" + caf::to_string(dm.reason)
                              + ")"));
      return;
    }
    auto i = st.lent.find(dm.source);
    if (i != st.lent.end()) {
      // The job ended: take the reducers back.
      for (auto& r : i->second)
        self->send_exit(r, caf::exit_reason::user_shutdown);
      st.lent.erase(i);
    }
  });
  return {
    [=](job_atom, caf::actor manager, const std::string& reducer) {
      auto fn = find_reducer(reducer);
      if (!fn) {
        logger()->error("the manager asked for reducer '{}', which this "
                        "node does not know; not joining that job",
                        reducer);
        return;
      }
      auto& st = self->state;
      self->monitor(manager);
      auto& rs = st.lent[manager.address()];
      for (std::size_t i = 0; i < reducers; ++i) {
        auto r = detail::spawn_reducer(self->system(), manager, fn->fn,
                                       fn->kind == detail::element_kind::int64
                                         ? detail::default_formatter<
                                           std::int64_t>()
                                         : detail::default_formatter<
                                           keyed_value>());
        rs.push_back(r);
        self->send(manager, detail::join_atom::value, r, name);
      }
      logger()->info("lent {} reducers ({}) to a job", reducers, reducer);
    },
    [=](task_atom, std::uint64_t id, const std::string& kind,
        const std::string& payload) {
      logger()->info("task {} ({}) from the manager", id, kind);
      self->spawn<caf::detached>(task_runner, caf::actor{self}, id, kind,
                                 payload);
    },
    [=](done_atom, std::uint64_t id, job_result& res) {
      self->send(self->state.entry, done_atom::value, id, std::move(res));
    },
    [=](failed_atom, std::uint64_t id, std::uint8_t code,
        const std::string& context) {
      self->send(self->state.entry, failed_atom::value, id, code, context);
    },
  };
}

bool readable(const std::string& path) {
  std::ifstream in{path};
  return in.good();
}

} // namespace

// -- public API -------------------------------------------------------------------

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
  register_builtins();
  std::lock_guard<std::mutex> guard{registry_mtx};
  registry()[name] = {kind, std::move(fn)};
}

void register_task(const std::string& kind, task_fn fn) {
  std::lock_guard<std::mutex> guard{tasks_mtx};
  task_registry()[kind] = std::move(fn);
}

caf::expected<job_result> run_task_here(caf::actor_system& sys,
                                        const std::string& kind,
                                        const std::string& payload) {
  auto fn = find_task(kind);
  if (!fn)
    return make_error(errc::invalid_config,
                      "unknown task kind " + quote_token(kind));
  try {
    return (*fn)(sys, payload);
  } catch (const std::exception& e) {
    return make_error(errc::source_failed,
                      "task " + kind + " threw: " + e.what());
  } catch (...) {
    return make_error(errc::source_failed, "task " + kind + " threw");
  }
}

bool no_worker_node(const caf::error& err) {
  return code_of(err) == errc::no_workers;
}

void task_ledger::record(const job_result& r, bool remote) {
  std::lock_guard<std::mutex> guard{mtx_};
  auto& t = totals_;
  t.emitted += r.emitted;
  t.aggregated += r.aggregated;
  t.rejected += r.rejected;
  t.dead_lettered += r.dead_lettered;
  t.batches += r.batches;
  t.written += r.written;
  t.retried += r.retried;
  t.reducers_replaced += r.reducers_replaced;
  t.sources += 1;
  if (remote)
    t.remote_batches += r.batches;
  for (auto& [why, n] : r.rejections) {
    auto i = std::find_if(t.rejections.begin(), t.rejections.end(),
                          [&](const auto& x) { return x.first == why; });
    if (i == t.rejections.end())
      t.rejections.emplace_back(why, n);
    else
      i->second += n;
  }
  for (auto& d : r.dead_letters)
    if (t.dead_letters.size() < 1000)
      t.dead_letters.push_back(d);
  ++(remote ? remote_ : local_);
}

job_result task_ledger::totals() const {
  std::lock_guard<std::mutex> guard{mtx_};
  return totals_;
}

std::uint64_t task_ledger::remote_tasks() const {
  std::lock_guard<std::mutex> guard{mtx_};
  return remote_;
}

std::uint64_t task_ledger::local_tasks() const {
  std::lock_guard<std::mutex> guard{mtx_};
  return local_;
}

void task_ledger::cancel() noexcept {
  cancelled_ = true;
}

bool task_ledger::cancelled() const noexcept {
  return cancelled_;
}

namespace {

class task_source_impl : public source_impl<key_result> {
public:
  task_source_impl(caf::actor_system& sys, const coordinator* coord,
                   std::string kind, std::string payload, std::string name,
                   std::shared_ptr<task_ledger> ledger)
    : sys_(sys),
      coord_(coord),
      kind_(std::move(kind)),
      payload_(std::move(payload)),
      name_(std::move(name)),
      ledger_(std::move(ledger)) {
    // nop
  }

  slice<key_result> next(std::size_t max) override {
    if (!ran_)
      run();
    std::vector<key_result> xs;
    while (pos_ < keys_.size() && xs.size() < max)
      xs.push_back(std::move(keys_[pos_++]));
    return slice<key_result>::owning(std::move(xs));
  }

  bool exhausted() const override {
    return ran_ && pos_ == keys_.size();
  }

  bool blocking() const override {
    return true;
  }

  std::string name() const override {
    return name_;
  }

private:
  void run() {
    ran_ = true;
    caf::expected<job_result> res = caf::error{};
    bool remote = false;
    if (coord_ != nullptr) {
      res = coord_->run_task(kind_, payload_,
                             [l = ledger_] { return !l->cancelled(); });
      remote = static_cast<bool>(res);
      if (!res && no_worker_node(res.error())) {
        logger()->info("{}: no worker node connected, running it here",
                       name_);
        res = run_task_here(sys_, kind_, payload_);
      }
    } else {
      res = run_task_here(sys_, kind_, payload_);
    }
    if (!res)
      throw input_error(name_ + ": " + describe(res.error()),
                        code_of(res.error()) == errc::none
                          ? errc::source_failed
                          : code_of(res.error()));
    if (!res->final || res->partial || !res->balanced())
      throw input_error(name_ + ": the task's result does not account for "
                                "every element it read (emitted "
                          + std::to_string(res->emitted) + ", aggregated "
                          + std::to_string(res->aggregated) + ", rejected "
                          + std::to_string(res->rejected) + ")",
                        errc::accounting_mismatch);
    ledger_->record(*res, remote);
    keys_ = std::move(res->keys);
  }

  caf::actor_system& sys_;
  const coordinator* coord_;
  std::string kind_;
  std::string payload_;
  std::string name_;
  std::shared_ptr<task_ledger> ledger_;
  bool ran_ = false;
  std::vector<key_result> keys_;
  std::size_t pos_ = 0;
};

} // namespace

source<key_result> task_source(caf::actor_system& sys,
                               const coordinator* coord, std::string kind,
                               std::string payload, std::string name,
                               std::shared_ptr<task_ledger> ledger) {
  return std::make_unique<task_source_impl>(sys, coord, std::move(kind),
                                            std::move(payload),
                                            std::move(name),
                                            std::move(ledger));
}

reducer<key_result> merge_key_results() {
  return [](const batch_ref<key_result>& b, partial& out) {
    for (auto& x : b.items)
      out.add(x.key, x.agg);
  };
}

caf::expected<endpoint> parse_endpoint(const std::string& text) {
  auto colon = text.rfind(':');
  if (colon == std::string::npos)
    return make_error(errc::invalid_config,
                      quote_token(text) + " is not HOST:PORT");
  endpoint result;
  if (colon > 0)
    result.host = text.substr(0, colon);
  std::string why;
  auto port = parse_int64(text.substr(colon + 1), why);
  if (!port || *port < 0 || *port > 65535)
    return make_error(errc::invalid_config,
                      quote_token(text) + ": the port must be 0..65535");
  result.port = static_cast<std::uint16_t>(*port);
  return result;
}

caf::error check(const security& sec) {
  if (sec.insecure)
    return caf::none;
  if (sec.cert.empty() || sec.key.empty() || sec.ca.empty())
    return make_error(errc::invalid_config,
                      "TLS needs --cert, --key and --ca (mutual "
                      "authentication); plain TCP only with --insecure");
  for (auto* path : {&sec.cert, &sec.key, &sec.ca})
    if (!readable(*path))
      return make_error(errc::invalid_config,
                        "cannot read " + quote_token(*path));
  return caf::none;
}

void configure(caf::actor_system_config& cfg, const security& sec) {
  add_message_types(cfg);
  cfg.load<caf::io::middleman>();
  // A silent peer is noticed within a few seconds.
  cfg.set("middleman.heartbeat-interval",
          caf::timespan{std::chrono::seconds(1)});
  cfg.set("middleman.connection-timeout",
          caf::timespan{std::chrono::seconds(5)});
  if (sec.insecure)
    return;
  cfg.load<caf::openssl::manager>();
  watch_tls = true;
  // Setting the certificate, key and CA turns on mutual authentication;
  // without them CAF would fall back to anonymous TLS, which is never used.
  cfg.set("openssl.certificate", sec.cert);
  cfg.set("openssl.key", sec.key);
  cfg.set("openssl.cafile", sec.ca);
  if (!sec.passphrase.empty())
    cfg.set("openssl.passphrase", sec.passphrase);
}

struct coordinator::impl {
  caf::actor_system* sys = nullptr;
  caf::actor entry;
  std::uint16_t port = 0;
  bool insecure = false;
};

coordinator::coordinator(std::unique_ptr<impl> ptr) : impl_(std::move(ptr)) {
  // nop
}

coordinator::coordinator(coordinator&&) noexcept = default;

coordinator& coordinator::operator=(coordinator&&) noexcept = default;

coordinator::~coordinator() {
  if (impl_ && impl_->entry)
    caf::anon_send_exit(impl_->entry, caf::exit_reason::user_shutdown);
}

caf::expected<coordinator> coordinator::listen(caf::actor_system& sys,
                                               const endpoint& at,
                                               const security& sec) {
  if (auto err = check(sec))
    return err;
  auto d = std::make_unique<impl>();
  d->sys = &sys;
  d->insecure = sec.insecure;
  // (An argument, not none: CAF 0.17's spawn path without arguments binds
  // a null reference, which UBSan flags.)
  d->entry = sys.spawn(entry_actor, at.host + ":" + std::to_string(at.port));
  auto port = sec.insecure
                ? caf::io::publish(d->entry, at.port, at.host.c_str(), true)
                : caf::openssl::publish(d->entry, at.port, at.host.c_str(),
                                        true);
  if (!port) {
    caf::anon_send_exit(d->entry, caf::exit_reason::user_shutdown);
    return make_error(errc::invalid_config,
                      "cannot listen on " + at.host + ":"
                        + std::to_string(at.port) + ": "
                        + sys.render(port.error()));
  }
  d->port = *port;
  if (sec.insecure)
    logger()->warn("listening on {}:{} over PLAIN TCP (--insecure): anyone "
                   "who can reach it may join and read the data",
                   at.host, d->port);
  else
    logger()->info("listening on {}:{} (mutual TLS)", at.host, d->port);
  return coordinator{std::move(d)};
}

std::uint16_t coordinator::port() const noexcept {
  return impl_->port;
}

void coordinator::attach(const job& j) const {
  auto& st = j.state();
  if (!st || st->reducer_name.empty())
    return;
  caf::anon_send(impl_->entry, job_atom::value, st->manager,
                 st->reducer_name);
}

std::size_t coordinator::nodes() const {
  caf::scoped_actor self{*impl_->sys};
  std::uint64_t n = 0;
  self->request(impl_->entry, std::chrono::seconds(5), count_atom::value)
    .receive([&](std::uint64_t x) { n = x; }, [&](caf::error&) { n = 0; });
  return static_cast<std::size_t>(n);
}

caf::expected<job_result>
coordinator::run_task(const std::string& kind, const std::string& payload,
                      const std::function<bool()>& wanted) const {
  caf::scoped_actor self{*impl_->sys};
  self->monitor(impl_->entry);
  self->send(impl_->entry, run_atom::value, kind, payload,
             caf::actor_cast<caf::actor>(self));
  caf::expected<job_result> result = caf::error{};
  bool done = false;
  bool withdrawn = false;
  while (!done) {
    self->receive(
      [&](answer_atom, job_result& res) {
        result = std::move(res);
        done = true;
      },
      [&](answer_atom, caf::error& err) {
        result = std::move(err);
        done = true;
      },
      [&](caf::down_msg&) {
        result = make_error(errc::actor_down,
                            "the coordinator stopped before the task ended");
        done = true;
      },
      // Every quarter of a second: is the answer still wanted?
      caf::after(std::chrono::milliseconds(250)) >> [&] {
        if (!withdrawn && wanted && !wanted()) {
          withdrawn = true;
          self->send(impl_->entry, withdraw_atom::value,
                     caf::actor_cast<caf::actor>(self));
        }
      });
  }
  return result;
}

bool coordinator::wait_for_nodes(std::size_t n,
                                 std::chrono::milliseconds timeout) const {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (nodes() >= n)
      return true;
    if (std::chrono::steady_clock::now() >= deadline)
      return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

caf::error serve(caf::actor_system& sys, const endpoint& to,
                 const security& sec, std::size_t reducers,
                 const std::string& name) {
  if (auto err = check(sec))
    return err;
  if (reducers == 0)
    return make_error(errc::invalid_config, "a node needs at least 1 reducer");
  auto where = to.host + ":" + std::to_string(to.port);
  auto entry = sec.insecure
                 ? caf::io::remote_actor(sys, to.host, to.port)
                 : caf::openssl::remote_actor(sys, to.host, to.port);
  if (!entry)
    return make_error(errc::actor_down, "cannot connect to the manager at "
                                          + where + ": "
                                          + sys.render(entry.error()));
  if (sec.insecure)
    logger()->warn("connected to {} over PLAIN TCP (--insecure)", where);
  auto node = sys.spawn(node_actor, *entry, reducers, name);
  caf::scoped_actor self{sys};
  caf::error result;
  bool welcomed = false;
  self->request(*entry, std::chrono::seconds(10), hello_atom::value, node,
                name, static_cast<std::uint64_t>(reducers))
    .receive([&](welcome_atom) { welcomed = true; },
             [&](caf::error& err) {
               result = make_error(errc::actor_down,
                                   "the manager at " + where
                                     + " did not answer: "
                                     + sys.render(err));
             });
  if (!welcomed) {
    caf::anon_send_exit(node, caf::exit_reason::user_shutdown);
    return result;
  }
  logger()->info("joined the manager at {} with {} reducers", where,
                 reducers);
  self->monitor(node);
  self->receive([&](caf::down_msg& dm) {
    result = dm.reason ? dm.reason
                       : make_error(errc::actor_down, "the node stopped");
  });
  return result;
}

} // namespace flow::net
