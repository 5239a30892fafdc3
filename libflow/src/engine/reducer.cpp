// The reducer: stateless, any number of them per job (a pool), local or lent
// by a worker node. It folds each batch with the user function and reports
// the partial aggregate; when the function throws on a batch that failed every
// retry, it bisects the batch to find the failing elements.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/exit_reason.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/system_messages.hpp>

#include "engine.hpp"
#include "flow/detail/messages.hpp"

namespace flow::detail {

namespace {

/// Stateless between answers: folds each batch with the user function and
/// reports the partial aggregate to the manager (with options::combine_batches,
/// one partial for the batches found waiting together). Exceptions never
/// leave the handler.
struct reducer_state {
  /// Reused buffer for materialising recipe batches.
  std::shared_ptr<std::vector<std::max_align_t>> scratch;
  /// The compact table of the previous batch's partial, kept for the next.
  int_table spare;
  /// Storage of partials' `ints` that the manager or a shard sent back
  /// (int_storage), for the next partials; at most `max_spare_ints`.
  std::vector<std::vector<int_entry>> spare_ints;
  /// More would only hold memory: a reducer has few partials in flight.
  static constexpr std::size_t max_spare_ints = 2;
  /// No batch is to come (spares_atom): storage sent back is freed.
  bool input_ended = false;
  /// The job's manager shards: above 1, partials' `ints` go grouped by
  /// shard (partial_msg::int_ends).
  std::size_t shards = 0;
  /// options::combine_batches: the partial of the batches folded since the
  /// last one was sent, ...
  partial held;
  /// ... those batches' ids, sizes and rejections, ...
  std::vector<batch_part> parts;
  /// ... and the batches themselves (views), to fold again one by one
  /// should a later batch throw.
  std::vector<batch> held_batches;
  /// Counts the holds: a hold's timer names its own, so that it cannot
  /// end a later one early.
  std::uint64_t generation = 1;
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

/// Fills `msg`'s keyed part from `out` and sends it.
void send_partial(caf::stateful_actor<reducer_state>* self,
                  const caf::actor& manager, partial& out, partial_msg msg) {
  msg.overflow = out.overflowed();
  auto& spares = self->state.spare_ints;
  if (!spares.empty()) {
    msg.ints = std::move(spares.back());
    spares.pop_back();
  }
  if (auto n = self->state.shards; n > 1)
    out.take_int_entries(
      msg.ints, n, [n](std::int64_t k) { return int_shard_of(k, n); },
      msg.int_ends);
  else
    out.take_int_entries(msg.ints);
  self->state.spare = out.release_int_storage();
  msg.entries = out.take_entries();
  msg.reasons = out.take_reasons();
  msg.row_count = out.emitted_rows();
  msg.row_type = out.row_type();
  msg.rows = out.take_rows();
  self->send(manager, std::move(msg));
}

/// Folds batch `b` alone into a fresh partial and sends the manager its
/// partial, or batch_failed when the user function throws.
void fold_and_send(caf::stateful_actor<reducer_state>* self,
                   const caf::actor& manager, const erased_reducer& fn,
                   const erased_formatter& format, const batch& b) {
  partial out;
  out.reuse_int_storage(std::move(self->state.spare));
  std::vector<dead_letter> dead;
  batch_header hdr{&b.label, b.source, b.seq, b.first};
  try {
    if (b.bisect == 1) {
      // The batch failed every retry: find the elements that fail.
      auto xs = b.items.deferred() ? materialize(self->state, b.items)
                                   : b.items;
      bisect(fn, format, b, xs, 0, xs.size, xs.size > 1, out, dead);
    } else if (b.items.deferred()) {
      fn(hdr, materialize(self->state, b.items), out);
    } else {
      fn(hdr, b.items, out);
    }
  } catch (const std::exception& e) {
    self->send(manager, batch_failed{b.source, b.seq, b.first, b.items.size,
                                     e.what()});
    return;
  } catch (...) {
    self->send(manager, batch_failed{b.source, b.seq, b.first, b.items.size,
                                     "unknown exception"});
    return;
  }
  partial_msg msg;
  msg.source = b.source;
  msg.seq = b.seq;
  msg.size = b.items.size;
  msg.rejected = out.rejected();
  msg.dead = std::move(dead);
  send_partial(self, manager, out, std::move(msg));
}

/// Drops what a combining reducer holds and answers for each held batch
/// alone, folding it again (used when the combined partial cannot be used).
void answer_alone(caf::stateful_actor<reducer_state>* self,
                  const caf::actor& manager, const erased_reducer& fn,
                  const erased_formatter& format) {
  auto& st = self->state;
  auto earlier = std::move(st.held_batches);
  st.held_batches.clear();
  st.parts.clear();
  st.held = partial{};
  ++st.generation;
  for (auto& x : earlier)
    fold_and_send(self, manager, fn, format, x);
}

/// options::combine_batches: sends the partial of the batches folded
/// together so far, as one message, and starts afresh.
void flush_held(caf::stateful_actor<reducer_state>* self,
                const caf::actor& manager, const erased_reducer& fn,
                const erased_formatter& format) {
  auto& st = self->state;
  if (st.parts.empty())
    return;
  partial_msg msg;
  msg.source = st.parts.front().source;
  msg.seq = st.parts.front().seq;
  msg.size = st.parts.front().size;
  msg.rejected = st.parts.front().rejected;
  try {
    msg.more.assign(st.parts.begin() + 1, st.parts.end());
  } catch (...) {
    answer_alone(self, manager, fn, format);
    return;
  }
  st.parts.clear();
  st.held_batches.clear();
  ++st.generation;
  auto out = std::move(st.held);
  st.held = partial{};
  send_partial(self, manager, out, std::move(msg));
}

/// options::combine_batches: folds batch `b` into the partial held for the
/// batches before it, and sends that partial once `combine` batches are in
/// it, when the manager asks (flush_atom with 0: a source waits for credit,
/// every source has ended, or the job stops) or `hold` after the first.
/// When the user function throws, the held partial may hold part of `b`: it
/// is dropped, the batches before `b` are folded again one by one and
/// answered for alone, and `b` fails alone, as it would without combining.
void fold_combined(caf::stateful_actor<reducer_state>* self,
                   const caf::actor& manager, const erased_reducer& fn,
                   const erased_formatter& format, const batch& b,
                   std::size_t combine, std::chrono::milliseconds hold) {
  auto& st = self->state;
  if (st.parts.empty()) {
    try {
      // Reserved here, so that recording the batch below cannot throw.
      st.parts.reserve(combine);
      st.held_batches.reserve(combine);
    } catch (...) {
      fold_and_send(self, manager, fn, format, b);
      return;
    }
    st.held.reuse_int_storage(std::move(st.spare));
  }
  auto before = st.held.rejected();
  // A flag, not the message: an exception's what() may be empty.
  bool threw = false;
  const char* what = "unknown exception";
  std::string why;
  try {
    batch_header hdr{&b.label, b.source, b.seq, b.first};
    if (b.items.deferred())
      fn(hdr, materialize(st, b.items), st.held);
    else
      fn(hdr, b.items, st.held);
  } catch (const std::exception& e) {
    threw = true;
    try {
      why = e.what();
      what = why.c_str();
    } catch (...) {
      // Keep "unknown exception".
    }
  } catch (...) {
    threw = true;
  }
  if (threw || st.held.overflowed()) {
    // An overflow is kept apart too, so that the manager names its batch.
    answer_alone(self, manager, fn, format);
    if (!threw)
      fold_and_send(self, manager, fn, format, b);
    else
      self->send(manager, batch_failed{b.source, b.seq, b.first,
                                       b.items.size, what});
    return;
  }
  st.parts.push_back({b.source, b.seq, b.items.size,
                      st.held.rejected() - before});
  // The batch is kept (a view: its storage is shared) to fold again should
  // a later one throw.
  st.held_batches.push_back(b);
  if (st.parts.size() >= combine || st.held.emitted_rows() > 0)
    flush_held(self, manager, fn, format);
  else if (st.parts.size() == 1)
    self->delayed_send(self, hold, flush_atom::value, st.generation);
}

caf::behavior reducer_actor(caf::stateful_actor<reducer_state>* self,
                            caf::actor manager,
                            std::shared_ptr<const erased_reducer> fn,
                            erased_formatter format, crash_hook crash,
                            std::size_t combine,
                            std::chrono::milliseconds hold,
                            std::size_t shards) {
  self->state.shards = shards;
  self->set_default_handler(caf::drop);
  // Nobody to answer once the manager is gone (it terminated abnormally, or
  // a worker node lost the connection to it): quit instead of lingering.
  self->monitor(manager);
  self->set_down_handler([self](caf::down_msg&) { self->quit(); });
  return {
    [=](const batch& b) {
      if (crash && crash(b.source, b.seq)) {
        // Injected fault: die without a word, as a crashed reducer would.
        self->quit(caf::exit_reason::kill);
        return;
      }
      if (combine > 1 && b.bisect == 0) {
        fold_combined(self, manager, *fn, format, b, combine, hold);
        return;
      }
      fold_and_send(self, manager, *fn, format, b);
    },
    [=](int_storage& s) {
      auto& spares = self->state.spare_ints;
      if (!self->state.input_ended
          && spares.size() < reducer_state::max_spare_ints) {
        // Stale entries kept, to be overwritten (int_storage).
        spares.push_back(std::move(s.entries));
      }
    },
    [=](spares_atom) {
      self->state.input_ended = true;
      self->state.spare_ints = {};
    },
    [=](flush_atom, std::uint64_t generation) {
      // 0: the manager asks; otherwise the timer of a hold, which may have
      // ended since.
      if (generation == 0 || generation == self->state.generation)
        flush_held(self, manager, *fn, format);
    },
  };
}

} // namespace

caf::actor spawn_reducer(caf::local_actor* parent, caf::actor manager,
                         std::shared_ptr<const erased_reducer> fn,
                         erased_formatter format, crash_hook hook,
                         std::size_t combine,
                         std::chrono::milliseconds hold,
                         std::size_t shards) {
  return parent->spawn(reducer_actor, std::move(manager), std::move(fn),
                       std::move(format), std::move(hook), combine, hold,
                       shards);
}

caf::actor spawn_reducer(caf::actor_system& sys, caf::actor manager,
                         erased_reducer fn, erased_formatter format) {
  auto shared = std::make_shared<const erased_reducer>(std::move(fn));
  return sys.spawn(reducer_actor, std::move(manager), shared,
                   std::move(format), crash_hook{}, std::size_t{1},
                   std::chrono::milliseconds{100}, std::size_t{0});
}

} // namespace flow::detail
