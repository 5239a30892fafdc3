// The reducer: stateless, any number of them per job (a pool), local or lent
// by a worker node. It folds each batch with the user function and reports
// the partial aggregate; when the function throws on a batch that failed every
// retry, it bisects the batch to find the failing elements.

#include <cstddef>
#include <exception>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/exit_reason.hpp>
#include <caf/stateful_actor.hpp>

#include "engine.hpp"
#include "flow/detail/messages.hpp"

namespace flow::detail {

namespace {

/// Stateless: folds each batch with the user function and reports the partial
/// aggregate to the manager. Exceptions never leave the handler.
struct reducer_state {
  /// Reused buffer for materialising recipe batches.
  std::shared_ptr<std::vector<std::max_align_t>> scratch;
  /// The compact table of the previous batch's partial, kept for the next.
  int_table spare;
  static inline const char* name = "flow.reducer";
};

/// Materialises a recipe batch into the reducer's scratch buffer. A user
/// function that kept the previous slice keeps that buffer alive, so the
/// reducer then starts a new one instead of overwriting it.
erased_slice materialize(reducer_state& st, const erased_slice& items) {
  auto bytes = items.size * items.elem_size;
  auto words = (bytes + sizeof(std::max_align_t) - 1)
               / sizeof(std::max_align_t);
  // use_count() is a relaxed load and orders nothing; taking a copy is an
  // atomic increment that synchronises with the release of the last other
  // owner (a thread the user handed the slice to), so reusing the buffer
  // cannot race with that thread's reads.
  bool reuse = false;
  if (st.scratch) {
    auto probe = st.scratch;
    reuse = probe.use_count() == 2;
  }
  if (!reuse)
    st.scratch = std::make_shared<std::vector<std::max_align_t>>();
  if (st.scratch->size() < words)
    st.scratch->resize(words);
  items.materialize(items.owner.get(), items.first, items.size,
                    st.scratch->data());
  erased_slice result = items;
  result.data = st.scratch->data();
  result.owner = st.scratch;
  result.materialize = nullptr;
  return result;
}

/// The elements [lo, hi) of a materialised slice.
erased_slice sub_slice(const erased_slice& xs, std::size_t lo,
                       std::size_t hi) {
  erased_slice result = xs;
  result.data = static_cast<const char*>(xs.data) + lo * xs.elem_size;
  result.size = hi - lo;
  return result;
}

/// Folds the elements [lo, hi) of `xs` into `out`; when the user function
/// throws, folds the two halves apart, down to single elements, which become
/// dead letters. Every element ends up merged, rejected or dead-lettered.
void bisect(const erased_reducer& fn, const erased_formatter& format,
            const batch& b, const erased_slice& xs, std::size_t lo,
            std::size_t hi, bool whole_failed, partial& out,
            std::vector<dead_letter>& dead) {
  if (hi - lo > 1 && whole_failed) {
    auto mid = lo + (hi - lo) / 2;
    bisect(fn, format, b, xs, lo, mid, false, out, dead);
    bisect(fn, format, b, xs, mid, hi, false, out, dead);
    return;
  }
  std::string what;
  try {
    partial part;
    batch_header hdr{&b.label, b.source, b.seq, b.first + lo};
    fn(hdr, sub_slice(xs, lo, hi), part);
    out.merge(std::move(part));
    return;
  } catch (const std::exception& e) {
    what = e.what();
  } catch (...) {
    what = "unknown exception";
  }
  if (hi - lo > 1) {
    bisect(fn, format, b, xs, lo, hi, true, out, dead);
    return;
  }
  dead_letter letter;
  letter.source = b.source;
  letter.index = b.first + lo;
  letter.error = std::move(what);
  if (format) {
    try {
      letter.value = format(static_cast<const char*>(xs.data)
                            + lo * xs.elem_size);
    } catch (...) {
      letter.value.clear();
    }
  }
  dead.push_back(std::move(letter));
}

caf::behavior reducer_actor(caf::stateful_actor<reducer_state>* self,
                            caf::actor manager,
                            std::shared_ptr<const erased_reducer> fn,
                            erased_formatter format,
                            crash_hook crash) {
  self->set_default_handler(caf::drop);
  return {
    [=](const batch& b) {
      if (crash && crash(b.source, b.seq)) {
        // Injected fault: die without a word, as a crashed reducer would.
        self->quit(caf::exit_reason::kill);
        return;
      }
      partial out;
      out.reuse_int_storage(std::move(self->state.spare));
      std::vector<dead_letter> dead;
      batch_header hdr{&b.label, b.source, b.seq, b.first};
      try {
        if (b.bisect != 0) {
          // The batch failed every retry: find the elements that fail.
          auto xs = b.items.deferred() ? materialize(self->state, b.items)
                                       : b.items;
          bisect(*fn, format, b, xs, 0, xs.size, xs.size > 1, out, dead);
        } else if (b.items.deferred()) {
          (*fn)(hdr, materialize(self->state, b.items), out);
        } else {
          (*fn)(hdr, b.items, out);
        }
      } catch (const std::exception& e) {
        self->send(manager,
                   batch_failed{b.source, b.seq, b.first, b.items.size,
                                e.what()});
        return;
      } catch (...) {
        self->send(manager, batch_failed{b.source, b.seq, b.first,
                                         b.items.size, "unknown exception"});
        return;
      }
      partial_msg msg;
      msg.source = b.source;
      msg.seq = b.seq;
      msg.size = b.items.size;
      msg.rejected = out.rejected();
      msg.overflow = out.overflowed();
      msg.ints = out.take_int_entries();
      self->state.spare = out.release_int_storage();
      msg.entries = out.take_entries();
      msg.reasons = out.take_reasons();
      msg.dead = std::move(dead);
      msg.row_count = out.emitted_rows();
      msg.row_type = out.row_type();
      msg.rows = out.take_rows();
      self->send(manager, std::move(msg));
    },
  };
}

} // namespace

caf::actor spawn_reducer(caf::local_actor* parent, caf::actor manager,
                         std::shared_ptr<const erased_reducer> fn,
                         erased_formatter format, crash_hook hook) {
  return parent->spawn(reducer_actor, std::move(manager), std::move(fn),
                       std::move(format), std::move(hook));
}

caf::actor spawn_reducer(caf::actor_system& sys, caf::actor manager,
                         erased_reducer fn, erased_formatter format) {
  auto shared = std::make_shared<const erased_reducer>(std::move(fn));
  return sys.spawn(reducer_actor, std::move(manager), shared,
                   std::move(format), crash_hook{});
}

} // namespace flow::detail
