// The sink actor: owns the job's sink (at most one), writes the rows of each
// merged batch, and commits or aborts (docs/guarantees.md).

#include <exception>
#include <memory>
#include <string>

#include <caf/event_based_actor.hpp>
#include <caf/stateful_actor.hpp>

#include "engine.hpp"
#include "flow/detail/messages.hpp"
#include "flow/error.hpp"

namespace flow::detail {

namespace {

struct sink_state {
  bool committed = false;
  bool aborted = false;
  /// A call failed: the job is failing, and nothing more is written.
  bool failed = false;
  static inline const char* name = "flow.sink";
};

/// Owns the job's sink: writes each merged batch's rows, commits when the
/// manager says every batch is written, aborts on failure. If the actor ends
/// for any other reason before committing (the job failed, the manager died),
/// the sink is aborted on the way out, so nothing half-written stays visible.
caf::behavior sink_actor(caf::stateful_actor<sink_state>* self,
                         caf::actor manager, std::shared_ptr<any_sink> snk) {
  self->set_default_handler(caf::drop);
  self->attach_functor([self, snk](const caf::error&) {
    auto& st = self->state;
    if (!st.committed && !st.aborted) {
      st.aborted = true;
      snk->abort();
    }
  });
  // The manager's end is the sink's end: link so that a manager that dies
  // takes the sink (and its abort) with it.
  self->link_to(manager);
  auto fail = [=](const std::string& what) {
    self->state.failed = true;
    self->send(manager, sink_failed{make_error(errc::sink_failed,
                                               snk->name() + ": " + what)});
  };
  // Before any message: the actor's initialisation runs on its own thread
  // (a blocking sink is detached), so connecting overlaps with the sources
  // reading their first batches, and a sink that cannot open writes nothing.
  try {
    snk->open();
  } catch (const std::exception& e) {
    fail(e.what());
  } catch (...) {
    fail("unknown exception");
  }
  // A sink with several outputs reports each one's rows after every write
  // and after the commit (before committed_atom, so the job's final
  // statistics include the rows written at the commit).
  auto report_outputs = [=] {
    // Statistics only: a sink that fails to report them fails nothing.
    std::vector<output_rows> outs;
    try {
      outs = snk->outputs_written();
    } catch (...) {
      return;
    }
    if (outs.empty())
      return;
    sink_outputs msg;
    for (auto& o : outs) {
      msg.names.push_back(std::move(o.name));
      msg.rows.push_back(o.rows);
    }
    self->send(manager, std::move(msg));
  };
  report_outputs();
  return {
    [=](sink_write& w) {
      // Batches already on their way when the sink failed: the manager
      // fails the job and aborts the sink; they go nowhere.
      if (self->state.failed)
        return;
      try {
        if (!w.dead.empty())
          snk->write_dead_letters(w.dead);
        if (w.row_count > 0 || snk->wants_every_batch())
          snk->write_batch(batch_info{w.source, w.seq, w.first, w.size},
                           w.row_count > 0 ? w.rows.get() : nullptr);
      } catch (const std::exception& e) {
        fail(e.what());
        return;
      } catch (...) {
        fail("unknown exception");
        return;
      }
      report_outputs();
      self->send(manager, sink_written{w.source, w.seq, w.row_count});
    },
    [=](commit_atom, const job_result& res) {
      if (self->state.failed)
        return;
      try {
        snk->commit(res);
      } catch (const std::exception& e) {
        fail(std::string{"commit failed: "} + e.what());
        return;
      } catch (...) {
        fail("commit failed: unknown exception");
        return;
      }
      self->state.committed = true;
      report_outputs();
      self->send(manager, committed_atom::value);
    },
    [=](quit_atom) { self->quit(); },
    [=](abort_atom) {
      auto& st = self->state;
      if (!st.committed && !st.aborted) {
        st.aborted = true;
        snk->abort();
      }
      self->quit();
    },
  };
}

} // namespace

caf::actor spawn_sink(caf::local_actor* parent, caf::actor manager,
                      std::shared_ptr<any_sink> snk) {
  if (snk->blocking())
    return parent->spawn<caf::detached>(sink_actor, std::move(manager),
                                        std::move(snk));
  return parent->spawn(sink_actor, std::move(manager), std::move(snk));
}

} // namespace flow::detail
