// flow::net, the worker's side: the node actor joins the coordinator's entry
// actor, lends reducers to the jobs it hears of and runs tasks on threads of
// their own.

#include "flow/net/node.hpp"

#include <chrono>
#include <cstdint>
#include <map>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/blocking_actor.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/io/remote_actor.hpp>
#include <caf/openssl/remote_actor.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/sec.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/system_messages.hpp>

#include <spdlog/spdlog.h>

#include "flow/detail/messages.hpp"
#include "flow/error.hpp"
#include "flow/logging.hpp"
#include "flow/types.hpp"
#include "internal.hpp"
#include "messages.hpp"

namespace flow::net {

namespace {

// -- the worker node actor ----------------------------------------------------

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

using node_actor_ptr = caf::stateful_actor<node_state>*;

/// The entry or a job's manager went away. Losing the entry (the manager's
/// process, or the connection to it) stops the node; a job's end takes its
/// reducers back.
void on_down(node_actor_ptr self, caf::down_msg& dm) {
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
}

/// A job to serve: `reducers` reducers running the one registered as
/// `reducer` join its manager, which monitors them like its own.
void on_job(node_actor_ptr self, const caf::actor& manager,
            const std::string& reducer, std::size_t reducers,
            const std::string& name) {
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
                                   fn->format);
    rs.push_back(r);
    self->send(manager, detail::join_atom::value, r, name);
  }
  logger()->info("lent {} reducers ({}) to a job", reducers, reducer);
}

/// A task from the entry: it may block (a database read), so it runs on a
/// thread of its own.
void on_task(node_actor_ptr self, std::uint64_t id, const std::string& kind,
             const std::string& payload) {
  logger()->info("task {} ({}) from the manager", id, kind);
  self->spawn<caf::detached>(task_runner, caf::actor{self}, id, kind,
                             payload);
}

caf::behavior node_actor(node_actor_ptr self, caf::actor entry,
                         std::size_t reducers, std::string name) {
  self->state.entry = entry;
  self->set_default_handler(caf::drop);
  self->monitor(entry);
  self->set_down_handler([=](caf::down_msg& dm) { on_down(self, dm); });
  // The handlers' signatures are the protocol (messages.hpp): matching is by
  // these types, so they stay exactly as they are.
  return {
    [=](job_atom, caf::actor manager, const std::string& reducer) {
      on_job(self, manager, reducer, reducers, name);
    },
    [=](task_atom, std::uint64_t id, const std::string& kind,
        const std::string& payload) { on_task(self, id, kind, payload); },
    // A task runner's answer goes on to the entry actor, which knows this
    // node and not its runners.
    [=](done_atom, std::uint64_t id, job_result& res) {
      self->send(self->state.entry, done_atom::value, id, std::move(res));
    },
    [=](failed_atom, std::uint64_t id, std::uint8_t code,
        const std::string& context) {
      self->send(self->state.entry, failed_atom::value, id, code, context);
    },
  };
}

/// The entry actor at `to` (TLS unless `sec.insecure`); `where` names it in
/// the log.
caf::expected<caf::actor> connect_to_entry(caf::actor_system& sys,
                                           const endpoint& to,
                                           const security& sec,
                                           const std::string& where) {
  // A manager busy with many connections at once (nodes joining together,
  // or a burst of refused peers: CAF 0.17 builds a TLS context per
  // connection on its one middleman thread, tens of milliseconds each on a
  // loaded machine) may not finish a handshake before CAF's connect gives
  // up with connection_timeout; then the node tries again, for up to 30 s.
  // Other errors (refused, nobody listening) are final at once.
  constexpr auto patience = std::chrono::seconds(30);
  auto deadline = std::chrono::steady_clock::now() + patience;
  caf::expected<caf::actor> entry = caf::error{};
  for (int attempt = 1;; ++attempt) {
    entry = sec.insecure ? caf::io::remote_actor(sys, to.host, to.port)
                         : caf::openssl::remote_actor(sys, to.host, to.port);
    if (entry || entry.error() != caf::sec::connection_timeout
        || std::chrono::steady_clock::now() >= deadline)
      break;
    logger()->warn("the manager at {} did not finish the handshake in time "
                   "(attempt {}); trying again for up to {} s in all",
                   where, attempt, patience.count());
  }
  return entry;
}

} // namespace

// -- public API ---------------------------------------------------------------

caf::error serve(caf::actor_system& sys, const endpoint& to,
                 const security& sec, std::size_t reducers,
                 const std::string& name,
                 const std::function<void()>& joined) {
  if (auto err = check(sec))
    return err;
  if (reducers == 0)
    return make_error(errc::invalid_config, "a node needs at least 1 reducer");
  auto where = to.host + ":" + std::to_string(to.port);
  auto entry = connect_to_entry(sys, to, sec, where);
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
  if (joined)
    joined();
  self->monitor(node);
  self->receive([&](caf::down_msg& dm) {
    result = dm.reason ? dm.reason
                       : make_error(errc::actor_down, "the node stopped");
  });
  return result;
}

} // namespace flow::net
