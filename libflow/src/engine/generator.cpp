// The generator: one per source. It reads batches from its source only when
// the manager has granted credit (docs/protocol.md, "Credit").

#include <exception>
#include <memory>
#include <new>
#include <string>
#include <utility>

#include <caf/event_based_actor.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/system_messages.hpp>

#include "engine.hpp"
#include "flow/detail/messages.hpp"
#include "flow/error.hpp"

namespace flow::detail {

namespace {

struct generator_state {
  std::uint64_t seq = 0;
  std::uint64_t emitted = 0;
  static inline const char* name = "flow.generator";
};

/// Pulls batches from its source only when the manager has granted credit, so
/// at most `credits` batches of this source exist at any time.
caf::behavior generator_actor(caf::stateful_actor<generator_state>* self,
                              caf::actor manager, std::uint32_t index,
                              std::shared_ptr<any_source> src,
                              flow::key label, std::size_t batch_size) {
  self->set_default_handler(caf::drop);
  // A manager gone before asking this generator to quit (it terminated
  // abnormally) grants no more credit: quit rather than wait for ever, which
  // would also keep the actor system from shutting down.
  self->monitor(manager);
  self->set_down_handler([self](caf::down_msg&) { self->quit(); });
  return {
    // Generators and sinks may run detached; CAF 0.17 can crash at shutdown
    // when a detached actor is ended by an exit message (fixed upstream in
    // 0.18, actor-framework#1196), so they are asked to quit instead.
    [=](quit_atom) { self->quit(); },
    [=](const demand& d) {
      auto& st = self->state;
      for (std::uint32_t i = 0; i < d.n; ++i) {
        erased_slice xs;
        try {
          xs = src->next(batch_size);
        } catch (const input_error& e) {
          self->send(manager,
                     source_failed{index, make_error(e.code(), e.what())});
          self->quit();
          return;
        } catch (const std::bad_alloc& e) {
          // Memory, not the source's data: said as such (it was
          // "source_failed: std::bad_alloc").
          self->send(manager,
                     source_failed{index,
                                   make_error(errc::out_of_memory,
                                              "source " + src->name()
                                                + " could not make its next "
                                                  "batch: "
                                                + e.what())});
          self->quit();
          return;
        } catch (const std::exception& e) {
          self->send(manager, source_failed{index,
                                            make_error(errc::source_failed,
                                                       e.what())});
          self->quit();
          return;
        } catch (...) {
          self->send(manager,
                     source_failed{index, make_error(errc::source_failed,
                                                     "unknown exception")});
          self->quit();
          return;
        }
        if (xs.size > batch_size) {
          self->send(manager,
                     source_failed{index, make_error(errc::protocol_violation,
                                                     "source returned "
                                                       + std::to_string(
                                                         xs.size)
                                                       + " elements for a "
                                                         "batch of at most "
                                                       + std::to_string(
                                                         batch_size))});
          self->quit();
          return;
        }
        auto n = xs.size;
        if (n > 0) {
          self->send(manager,
                     batch{index, st.seq++, st.emitted, label, std::move(xs)});
          st.emitted += n;
        }
        if (n == 0 || src->exhausted()) {
          self->send(manager, source_done{index, st.seq, st.emitted});
          self->quit();
          return;
        }
      }
    },
  };
}

} // namespace

caf::actor spawn_generator(caf::local_actor* parent, caf::actor manager,
                           std::uint32_t index, std::shared_ptr<any_source> src,
                           flow::key label, std::size_t batch_size) {
  // Blocking sources (files, pipes) get a thread of their own so that they
  // never stall the scheduler the reducers run on.
  if (src->blocking())
    return parent->spawn<caf::detached>(generator_actor, std::move(manager),
                                        index, std::move(src),
                                        std::move(label), batch_size);
  return parent->spawn(generator_actor, std::move(manager), index,
                       std::move(src), std::move(label), batch_size);
}

} // namespace flow::detail
