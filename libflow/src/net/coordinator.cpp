// flow::net, the manager's side: the coordinator publishes the entry actor,
// which worker nodes join. The entry tells every node about every job
// attached to it and queues tasks for the nodes with room. The engine's
// manager does the rest: remote reducers join it with (join_atom, reducer,
// node) and are monitored like local ones.

#include "flow/net/coordinator.hpp"

#include <algorithm>
#include <atomic>
#include <deque>
#include <map>
#include <thread>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/io/publish.hpp>
#include <caf/openssl/publish.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/system_messages.hpp>

#include <spdlog/spdlog.h>

#include "flow/error.hpp"
#include "flow/logging.hpp"
#include "flow/net/security.hpp"
#include "internal.hpp"
#include "messages.hpp"

namespace flow::net {

namespace {

// -- the coordinator's entry actor -------------------------------------------

struct node_entry {
  caf::actor node;
  std::string name;
  /// Tasks it runs at once (its --reducers); more wait in the queue.
  std::size_t capacity = 1;
  /// Set when the node failed a task for a reason of its own (it does not
  /// know the task kind, cannot reach the database): it gets no more tasks.
  bool refuses = false;
  /// Set once another node's second attempt answered one of its tasks
  /// first: it runs one task at a time from then on (as an overtaken
  /// reducer gets one batch at a time).
  bool overtaken = false;
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
  /// When it went to `node`.
  std::chrono::steady_clock::time_point sent{};
  /// A second attempt (speculation) on another node; null when none runs.
  caf::actor_addr second;
  std::string second_name;
  std::chrono::steady_clock::time_point second_sent{};
  /// Second attempts made, and whether one answered first.
  std::uint64_t speculated = 0;
  bool won = false;
  /// One of two attempts failed: no more second attempts.
  bool attempt_failed = false;
};

/// An attempt whose task was answered by the other attempt: its node is
/// still busy with it (it counts in its load) until it answers or leaves.
struct abandoned_task {
  std::uint64_t id;
  caf::actor_addr node;
};

/// The coordinator's speculation settings (coordinator::speculation),
/// shared with the entry actor: set by the coordinator's owner, read on each
/// tick (never by a message, which any connected peer could send).
struct speculation_settings {
  std::atomic<bool> on{true};
  std::atomic<double> multiplier{2.0};
  std::atomic<std::int64_t> floor_ms{1000};
  std::chrono::milliseconds floor() const {
    return std::chrono::milliseconds(floor_ms.load());
  }
};

using task_map = std::map<std::uint64_t, task_entry>;

struct entry_state {
  std::vector<node_entry> nodes;
  std::vector<job_entry> jobs;
  task_map tasks;
  /// Tasks waiting for a node with room, oldest (or handed back) first.
  std::deque<std::uint64_t> queue;
  std::uint64_t next_task = 1;
  /// Nodes that ever joined (the ones that left included).
  std::uint64_t joined = 0;
  std::vector<abandoned_task> abandoned;
  std::shared_ptr<const speculation_settings> speculation;
  /// Seconds the last tasks of each kind took (at most 64 per kind, a
  /// ring), whose median scales the speculation threshold.
  std::map<std::string, std::vector<double>> times;
  std::map<std::string, std::size_t> times_next;
  static inline const char* name = "flow.net.entry";
};

using entry_actor_ptr = caf::stateful_actor<entry_state>*;

// -- queue and answers --------------------------------------------------------

/// Tasks running on `node`, abandoned attempts included.
std::size_t load_of(const entry_state& st, const caf::actor_addr& node) {
  std::size_t load = 0;
  for (auto& [tid, t] : st.tasks)
    if (t.node == node || t.second == node)
      ++load;
  for (auto& a : st.abandoned)
    if (a.node == node)
      ++load;
  return load;
}

/// Seconds between two steady-clock points.
double seconds_between(std::chrono::steady_clock::time_point from,
                       std::chrono::steady_clock::time_point to) {
  return std::chrono::duration<double>(to - from).count();
}

/// Remembers that a task of `kind` took `seconds`.
void observe_time(entry_state& st, const std::string& kind, double seconds) {
  constexpr std::size_t keep = 64;
  auto& xs = st.times[kind];
  auto& next = st.times_next[kind];
  if (xs.size() < keep)
    xs.push_back(seconds);
  else
    xs[next % keep] = seconds;
  ++next;
}

/// Answers task `i`'s requester and forgets the task.
template <class T>
void answer(entry_actor_ptr self, task_map::iterator i, T&& x) {
  self->send(i->second.requester, answer_atom::value, std::forward<T>(x));
  self->state.tasks.erase(i);
}

/// The node with room whose share of its capacity in use is the smallest
/// (the first of equals), other than `except`; null when every node that
/// takes tasks is full.
const node_entry* least_busy(const entry_state& st,
                             const caf::actor_addr& except = {}) {
  const node_entry* best = nullptr;
  double best_fill = 0;
  for (auto& n : st.nodes) {
    if (n.refuses || (except && n.node.address() == except))
      continue;
    auto load = load_of(st, n.node.address());
    auto capacity = n.overtaken ? std::size_t{1} : n.capacity;
    if (load >= capacity)
      continue;
    auto fill = static_cast<double>(load) / static_cast<double>(capacity);
    if (best == nullptr || fill < best_fill) {
      best = &n;
      best_fill = fill;
    }
  }
  return best;
}

/// Hands queued tasks to the nodes with room (the least loaded first); with
/// no node at all, answers their requesters "no worker node" (who then run
/// them themselves). A node that joins, or finishes a task, pulls from the
/// queue here, so work goes where there is room as soon as there is some.
void pump(entry_actor_ptr self) {
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
    auto best = least_busy(st);
    if (best == nullptr)
      return; // every node is busy: the queue waits
    st.queue.pop_front();
    t.node = best->node.address();
    t.node_name = best->name;
    t.sent = std::chrono::steady_clock::now();
    logger()->debug("task {} ({}) to node {}", id, t.kind, best->name);
    self->send(best->node, task_atom::value, id, t.kind, t.payload);
    // Who runs it, for the requester's statistics (docs/observability.md).
    self->send(t.requester, started_atom::value, best->name);
  }
}

// -- nodes and jobs -----------------------------------------------------------

/// A node joins: it hears of every job attached so far and may take queued
/// tasks at once.
welcome_atom on_hello(entry_actor_ptr self, caf::actor node,
                      const std::string& name, std::uint64_t capacity) {
  auto& st = self->state;
  self->monitor(node);
  st.nodes.push_back(
    {node, name, static_cast<std::size_t>(std::max<std::uint64_t>(1, capacity))});
  ++st.joined;
  logger()->info("worker node {} joined ({} nodes)", name, st.nodes.size());
  // A node that joins while jobs run gets work at once.
  for (auto& j : st.jobs)
    self->send(node, job_atom::value, j.manager, j.reducer);
  // ... and queued tasks, too.
  pump(self);
  return welcome_atom::value;
}

/// A job is attached (coordinator::attach): every node hears of it, and so
/// will the nodes that join until it ends.
void on_job(entry_actor_ptr self, caf::actor manager,
            const std::string& reducer) {
  auto& st = self->state;
  self->monitor(manager);
  st.jobs.push_back({manager, reducer});
  for (auto& n : st.nodes)
    self->send(n.node, job_atom::value, manager, reducer);
}

/// The tasks that were running on node `gone` go back to the front of the
/// queue, ahead of tasks that never ran; a withdrawn one is answered instead.
void hand_back_tasks(entry_actor_ptr self, const caf::actor_addr& gone) {
  auto& st = self->state;
  // Its tasks go to another node; their results never arrived, so
  // none is merged twice.
  std::vector<std::uint64_t> orphans;
  for (auto& [id, t] : st.tasks) {
    if (t.second == gone)
      t.second = caf::actor_addr{};
    if (t.node != gone)
      continue;
    if (t.second) {
      // Its second attempt carries on alone.
      t.node = t.second;
      t.node_name = t.second_name;
      t.sent = t.second_sent;
      t.second = caf::actor_addr{};
      continue;
    }
    orphans.push_back(id);
  }
  st.abandoned.erase(std::remove_if(st.abandoned.begin(), st.abandoned.end(),
                                    [&](const abandoned_task& a) {
                                      return a.node == gone;
                                    }),
                     st.abandoned.end());
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
}

/// A node or a job's manager went away: a node is counted out and its
/// running tasks handed on; a job is no longer offered to nodes.
void on_down(entry_actor_ptr self, caf::down_msg& dm) {
  auto& st = self->state;
  for (auto i = st.nodes.begin(); i != st.nodes.end(); ++i) {
    if (i->node.address() == dm.source) {
      auto gone = i->node.address();
      auto name = i->name;
      st.nodes.erase(i);
      // Counted out again: --min-workers waits for nodes connected now.
      logger()->warn("worker node {} left ({}); {} nodes connected", name,
                     caf::to_string(dm.reason), st.nodes.size());
      hand_back_tasks(self, gone);
      pump(self);
      return;
    }
  }
  st.jobs.erase(std::remove_if(st.jobs.begin(), st.jobs.end(),
                               [&](const job_entry& j) {
                                 return j.manager.address() == dm.source;
                               }),
                st.jobs.end());
}

// -- tasks --------------------------------------------------------------------

/// A task source asks for a task to run: it waits in the queue for a node.
void on_run(entry_actor_ptr self, const std::string& kind,
            const std::string& payload, caf::actor requester) {
  auto& st = self->state;
  auto id = st.next_task++;
  task_entry t;
  t.kind = kind;
  t.payload = payload;
  t.requester = std::move(requester);
  st.tasks[id] = std::move(t);
  st.queue.push_back(id);
  pump(self);
}

/// A task source no longer wants its answer (its job ended).
void on_withdraw(entry_actor_ptr self, const caf::actor& requester) {
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
}

/// A late answer for task `id` from `node`: if it ends an attempt that lost
/// to the other one, that node has room again.
void release_abandoned(entry_actor_ptr self, std::uint64_t id,
                       const caf::actor_addr& node) {
  auto& st = self->state;
  for (auto a = st.abandoned.begin(); a != st.abandoned.end(); ++a) {
    if (a->id == id && a->node == node) {
      st.abandoned.erase(a);
      pump(self);
      return;
    }
  }
}

/// A node's result for task `id` goes to its requester; the node has room
/// for another.
void on_done(entry_actor_ptr self, std::uint64_t id, job_result& res) {
  auto& st = self->state;
  auto i = st.tasks.find(id);
  auto from = caf::actor_cast<caf::actor_addr>(self->current_sender());
  // A node's late answer for a task already handed elsewhere (it was
  // thought lost), or whose other attempt answered first: the other
  // answer counts, this one is dropped.
  if (i == st.tasks.end()
      || (i->second.node != from && i->second.second != from)) {
    release_abandoned(self, id, from);
    return;
  }
  auto& t = i->second;
  auto now = std::chrono::steady_clock::now();
  if (t.second == from) {
    t.won = true;
    observe_time(st, t.kind, seconds_between(t.second_sent, now));
    logger()->info("task {} ({}): the second attempt, on {}, answered "
                   "first; {}'s answer will be dropped",
                   id, t.kind, t.second_name, t.node_name);
    for (auto& n : st.nodes)
      if (n.node.address() == t.node && !n.overtaken) {
        n.overtaken = true;
        if (n.capacity > 1)
          logger()->info("worker node {} was overtaken: one task at a time "
                         "from now on (instead of {})",
                         n.name, n.capacity);
      }
    st.abandoned.push_back({id, t.node});
  } else {
    observe_time(st, t.kind, seconds_between(t.sent, now));
    if (t.second)
      st.abandoned.push_back({id, t.second});
  }
  logger()->debug("task {} done by {}",
                  id, t.second == from ? t.second_name : t.node_name);
  // While two attempts ran the requester showed both nodes: now the one
  // whose answer counts (before the answer, which ends its wait).
  if (t.speculated > 0)
    self->send(t.requester, started_atom::value,
               t.second == from ? t.second_name : t.node_name);
  // Counted by the requester's process only (never serialised).
  res.speculated = t.speculated;
  res.speculation_won = t.won ? 1 : 0;
  answer(self, i, std::move(res));
  pump(self);
}

/// Node `node` cannot run tasks (it lacks the kind or the database): it
/// gets no more.
void refuse(entry_state& st, const caf::actor_addr& node) {
  for (auto& n : st.nodes)
    if (n.node.address() == node)
      n.refuses = true;
}

/// Task `i`'s node cannot run tasks at all: it gets no more, and the task
/// goes back to the front of the queue.
void refuse_node(entry_actor_ptr self, task_map::iterator i,
                 const std::string& context) {
  auto& st = self->state;
  auto id = i->first;
  refuse(st, i->second.node);
  logger()->warn("worker node {} cannot run task {} ({}): {}; giving "
                 "it to another node, and no more tasks to {}",
                 i->second.node_name, id, i->second.kind, context,
                 i->second.node_name);
  i->second.node = caf::actor_addr{};
  st.queue.push_front(id);
  pump(self);
}

/// A node failed task `id`: the task's own error goes to its requester as
/// is (it would fail again elsewhere), the node's goes to refuse_node.
void on_failed(entry_actor_ptr self, std::uint64_t id, std::uint8_t code,
               const std::string& context) {
  auto& st = self->state;
  auto i = st.tasks.find(id);
  auto from = caf::actor_cast<caf::actor_addr>(self->current_sender());
  if (i == st.tasks.end()
      || (i->second.node != from && i->second.second != from)) {
    release_abandoned(self, id, from);
    return;
  }
  auto& t = i->second;
  if (t.second) {
    // Two attempts ran: this one ends, the other carries on and decides
    // (an error of the data recurs there; one of this node does not).
    t.attempt_failed = true;
    auto& name = t.second == from ? t.second_name : t.node_name;
    auto& other = t.second == from ? t.node_name : t.second_name;
    if (static_cast<errc>(code) == errc::invalid_config) {
      refuse(st, from);
      logger()->warn("worker node {} cannot run task {} ({}): {}; its "
                     "attempt on {} carries on, and no more tasks to {}",
                     name, id, t.kind, context, other, name);
    } else {
      logger()->warn("task {} ({}) failed on {}: {}; its attempt on {} "
                     "carries on",
                     id, t.kind, name, context, other);
    }
    if (t.node == from) {
      t.node = t.second;
      t.node_name = t.second_name;
      t.sent = t.second_sent;
    }
    t.second = caf::actor_addr{};
    pump(self);
    return;
  }
  if (static_cast<errc>(code) == errc::invalid_config) {
    // The node, not the data: it lacks the task kind or cannot reach
    // the database. The task goes to another node (or back to the
    // manager) and this node gets no more tasks.
    refuse_node(self, i, context);
    return;
  }
  answer(self, i,
         make_error(static_cast<errc>(code),
                    "on node " + t.node_name + ": " + context));
  pump(self);
}

// -- speculation ----------------------------------------------------------------

/// How long a task of `kind` may run before a second attempt: the
/// multiplier times the median of the kind's completed tasks, at least the
/// floor.
double task_threshold(const entry_state& st, const std::string& kind) {
  auto floor = std::chrono::duration<double>(st.speculation->floor()).count();
  auto i = st.times.find(kind);
  if (i == st.times.end() || i->second.empty())
    return floor;
  auto xs = i->second;
  std::nth_element(xs.begin(), xs.begin() + xs.size() / 2, xs.end());
  return std::max(floor, st.speculation->multiplier.load() * xs[xs.size() / 2]);
}

/// Runs a second attempt of each repeatable task held longer than its
/// threshold on another node with room, oldest first; only once no task
/// waits in the queue.
void speculate(entry_actor_ptr self) {
  auto& st = self->state;
  if (!st.speculation->on || !st.queue.empty() || st.nodes.size() < 2)
    return;
  auto now = std::chrono::steady_clock::now();
  std::vector<std::pair<std::chrono::steady_clock::time_point, std::uint64_t>>
    late;
  for (auto& [id, t] : st.tasks)
    if (t.node && !t.second && !t.withdrawn && !t.attempt_failed
        && task_repeatable(t.kind)
        && seconds_between(t.sent, now) > task_threshold(st, t.kind))
      late.emplace_back(t.sent, id);
  std::sort(late.begin(), late.end());
  for (auto& [sent, id] : late) {
    auto& t = st.tasks[id];
    auto* best = least_busy(st, t.node);
    if (best == nullptr)
      continue;
    logger()->info("task {} ({}): running for {:.3f} s on {} (threshold "
                   "{:.3f} s); running it again on {}",
                   id, t.kind, seconds_between(sent, now), t.node_name,
                   task_threshold(st, t.kind), best->name);
    t.second = best->node.address();
    t.second_name = best->name;
    t.second_sent = now;
    ++t.speculated;
    self->send(best->node, task_atom::value, id, t.kind, t.payload);
    // Both attempts run: the requester's monitor names both nodes.
    self->send(t.requester, started_atom::value,
               t.node_name + ", " + best->name);
  }
}

/// The periodic look for straggling tasks (only the entry's own timer: a
/// peer's message must not start another chain).
void on_speculate_tick(entry_actor_ptr self) {
  if (self->current_sender() != self->ctrl())
    return;
  speculate(self);
  auto quarter = self->state.speculation->floor() / 4;
  self->delayed_send(self,
                     std::clamp(quarter, std::chrono::milliseconds(10),
                                std::chrono::milliseconds(250)),
                     speculate_atom::value);
}

// -- the behavior -------------------------------------------------------------

caf::behavior entry_actor(entry_actor_ptr self, std::string listen_at,
                          std::shared_ptr<const speculation_settings> sp) {
  logger()->debug("entry actor for {}", listen_at);
  self->state.speculation = std::move(sp);
  self->set_default_handler(caf::drop);
  self->set_down_handler([=](caf::down_msg& dm) { on_down(self, dm); });
  self->send(self, speculate_atom::value);
  // The handlers' signatures are the protocol (messages.hpp): matching is by
  // these types, so they stay exactly as they are.
  return {
    [=](hello_atom, caf::actor node, const std::string& name,
        std::uint64_t capacity) {
      return on_hello(self, std::move(node), name, capacity);
    },
    [=](job_atom, caf::actor manager, const std::string& reducer) {
      on_job(self, std::move(manager), reducer);
    },
    [=](count_atom) -> std::uint64_t { return self->state.nodes.size(); },
    [=](joined_atom) -> std::uint64_t { return self->state.joined; },
    [=](run_atom, const std::string& kind, const std::string& payload,
        caf::actor requester) {
      on_run(self, kind, payload, std::move(requester));
    },
    [=](withdraw_atom, const caf::actor& requester) {
      on_withdraw(self, requester);
    },
    [=](done_atom, std::uint64_t id, job_result& res) {
      on_done(self, id, res);
    },
    [=](failed_atom, std::uint64_t id, std::uint8_t code,
        const std::string& context) { on_failed(self, id, code, context); },
    [=](speculate_atom) { on_speculate_tick(self); },
  };
}

} // namespace

// -- public API ---------------------------------------------------------------

struct coordinator::impl {
  caf::actor_system* sys = nullptr;
  caf::actor entry;
  std::shared_ptr<speculation_settings> speculation
    = std::make_shared<speculation_settings>();
  std::uint16_t port = 0;
  bool insecure = false;
};

coordinator::coordinator(std::unique_ptr<impl> ptr) : impl_(std::move(ptr)) {
  // nop
}

coordinator::coordinator(coordinator&&) noexcept = default;

coordinator& coordinator::operator=(coordinator&&) noexcept = default;

coordinator::~coordinator() {
  if (impl_ && impl_->port != 0)
    unguard_accepts_on(impl_->port);
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
  d->entry = sys.spawn(entry_actor, at.host + ":" + std::to_string(at.port),
                       std::shared_ptr<const speculation_settings>{
                         d->speculation});
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
  // Before any node can have left: CAF must never see a joining node's
  // connection under the number of one it is still cleaning up after.
  guard_accepts_on(d->port);
  if (!accept_guard_active())
    logger()->warn("libc is linked ahead of flow::net, so the accept guard "
                   "is not in effect: a node joining just after another "
                   "connection closed may be taken for gone (see "
                   "docs/distribution.md, 'Refused peers')");
  if (sec.insecure)
    logger()->warn("listening on {}:{} over PLAIN TCP (--insecure): anyone "
                   "who can reach it may join and read the data",
                   at.host, d->port);
  else
    logger()->info("listening on {}:{} (mutual TLS)", at.host, d->port);
  return coordinator{std::move(d)};
}

void coordinator::speculation(bool on, double multiplier,
                              std::chrono::milliseconds floor) const {
  auto& sp = *impl_->speculation;
  sp.on = on;
  sp.multiplier = multiplier;
  sp.floor_ms = std::max<std::int64_t>(1, floor.count());
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

namespace {

/// Asks the entry actor for one of its counts (0 if it does not answer).
template <class Atom>
std::size_t ask_count(caf::actor_system& sys, const caf::actor& entry) {
  caf::scoped_actor self{sys};
  std::uint64_t n = 0;
  self->request(entry, std::chrono::seconds(5), Atom::value)
    .receive([&](std::uint64_t x) { n = x; }, [&](caf::error&) { n = 0; });
  return static_cast<std::size_t>(n);
}

} // namespace

std::size_t coordinator::nodes() const {
  return ask_count<count_atom>(*impl_->sys, impl_->entry);
}

std::size_t coordinator::joined() const {
  return ask_count<joined_atom>(*impl_->sys, impl_->entry);
}

caf::expected<job_result>
coordinator::run_task(const std::string& kind, const std::string& payload,
                      const std::function<bool()>& wanted,
                      const std::function<void(const std::string&)>& started)
  const {
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
      [&](started_atom, const std::string& node) {
        if (started)
          started(node);
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

} // namespace flow::net
