// The actors of a job: generators, reducers and the manager. The protocol is
// described in docs/protocol.md; the comments here explain the choices.

#include <algorithm>
#include <deque>
#include <map>
#include <thread>
#include <unordered_map>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/exit_reason.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/system_messages.hpp>

#include <spdlog/spdlog.h>

#include "flow/detail/messages.hpp"
#include "flow/error.hpp"
#include "flow/logging.hpp"
#include "flow/pipeline.hpp"
#include "flow/types.hpp"
#include "job_impl.hpp"

namespace flow::detail {

namespace {

// -- generator ----------------------------------------------------------------

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

// -- reducer ------------------------------------------------------------------

/// Stateless: folds each batch with the user function and reports the partial
/// aggregate to the manager. Exceptions never leave the handler.
struct reducer_state {
  /// Reused buffer for materialising recipe batches.
  std::shared_ptr<std::vector<std::max_align_t>> scratch;
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
                            std::function<bool(std::uint32_t, std::uint64_t)>
                              crash_hook) {
  self->set_default_handler(caf::drop);
  return {
    [=](const batch& b) {
      if (crash_hook && crash_hook(b.source, b.seq)) {
        // Injected fault: die without a word, as a crashed reducer would.
        self->quit(caf::exit_reason::kill);
        return;
      }
      partial out;
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

// -- sink ---------------------------------------------------------------------

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

// -- manager ------------------------------------------------------------------

struct batch_id {
  std::uint32_t source;
  std::uint64_t seq;
  bool operator==(const batch_id& other) const noexcept {
    return source == other.source && seq == other.seq;
  }
};

struct batch_id_hash {
  std::size_t operator()(const batch_id& x) const noexcept {
    return std::hash<std::uint64_t>{}(x.seq * 0x9e3779b97f4a7c15ULL
                                      ^ x.source);
  }
};

constexpr std::size_t no_worker = static_cast<std::size_t>(-1);

struct in_flight_batch {
  batch msg;
  std::size_t worker = no_worker;
  /// How often the reducer function threw on this batch.
  std::size_t failures = 0;
  /// The reducer it failed on last: a retry goes elsewhere when it can.
  std::size_t avoid = no_worker;
};

struct source_info {
  caf::actor generator;
  std::string name;
  flow::key label;
  bool labeled = false;
  bool done = false;
  std::uint64_t received = 0;   // batches received
  std::uint64_t emitted = 0;    // elements received
  std::uint64_t merged = 0;     // batches merged
  std::uint64_t aggregated = 0; // elements aggregated
  std::uint64_t rejected = 0;   // elements rejected
  std::uint64_t dead = 0;       // elements dead-lettered
  std::uint64_t in_flight = 0;  // batches received, not yet merged
};

struct worker_info {
  /// Null once a remote reducer is gone (its slot is never reused).
  caf::actor handle;
  std::size_t load = 0;
  /// True for a reducer a worker node lent to this job.
  bool remote = false;
  /// The worker node's name (remote reducers).
  std::string node;
};

struct manager_state {
  std::shared_ptr<job_impl> impl;
  options opts;
  std::vector<source_info> sources;
  std::vector<worker_info> workers;
  std::unordered_map<batch_id, in_flight_batch, batch_id_hash> pending;
  std::deque<batch_id> queue;
  std::unordered_map<flow::key, aggregate> aggregates;
  std::map<std::string, std::uint64_t> reasons;
  std::uint64_t peak_in_flight = 0;
  bool finished = false;
  /// The reducer function, shared by every reducer (replacements too).
  std::shared_ptr<const erased_reducer> fn;
  std::uint64_t reducers_replaced = 0;
  /// Renders failing elements for dead letters.
  erased_formatter format;
  /// The dead letters kept for the result (at most opts.max_dead_letters).
  std::vector<dead_letter> dead_letters;
  std::uint64_t retried = 0;
  /// Set by job::stop: generators are gone, in-flight batches drain.
  bool stopping = false;
  /// The name worker nodes know the reducer by; empty: no remote reducers.
  std::string reducer_name;
  /// Batches merged from remote reducers.
  std::uint64_t remote_batches = 0;
  /// After finish: generators and reducers not yet down.
  std::size_t awaiting = 0;
  /// After finish: the sink is not yet down.
  bool awaiting_sink = false;
  /// After finish: the linger time for generators passed.
  bool linger_expired = false;
  // -- sink --
  caf::actor sink;
  std::string sink_name;
  const std::type_info* sink_type = nullptr;
  /// The sink wants every merged batch, rows or not (it checkpoints).
  bool sink_every_batch = false;
  /// Merged batches whose rows the sink has not confirmed yet; their credit
  /// returns only then, so unwritten rows stay bounded too.
  std::unordered_map<batch_id, bool, batch_id_hash> unwritten;
  std::uint64_t written = 0;
  bool committing = false;
  bool committed = false;
  /// What to deliver once the aborting sink is down (an error, or the
  /// partial result of a stopped job).
  caf::expected<job_result> deferred{caf::error{}};
  static inline const char* name = "flow.manager";
};

using manager_actor_t = caf::stateful_actor<manager_state>;

job_result make_result(const manager_state& st, bool final) {
  job_result res;
  res.final = final;
  res.sources = st.sources.size();
  std::unordered_map<flow::key, std::uint64_t> labels;
  for (auto& src : st.sources) {
    res.emitted += src.emitted;
    res.aggregated += src.aggregated;
    res.rejected += src.rejected;
    res.dead_lettered += src.dead;
    res.batches += src.merged;
    if (src.labeled)
      ++labels[src.label];
  }
  res.keys.reserve(st.aggregates.size());
  for (auto& [k, agg] : st.aggregates) {
    auto i = labels.find(k);
    res.keys.push_back({k, agg, i == labels.end() ? 0 : i->second});
  }
  std::sort(res.keys.begin(), res.keys.end(),
            [](const key_result& x, const key_result& y) {
              return x.key < y.key;
            });
  res.rejections.assign(st.reasons.begin(), st.reasons.end());
  res.peak_in_flight = st.peak_in_flight;
  res.written = st.written;
  res.reducers_replaced = st.reducers_replaced;
  res.dead_letters = st.dead_letters;
  res.retried = st.retried;
  res.remote_batches = st.remote_batches;
  return res;
}

/// Hands the outcome to the job handle once every actor of the job is gone
/// (or the linger time passed for generators that do not end), then quits.
void deliver_if_quiet(manager_actor_t* self) {
  auto& st = self->state;
  if (!st.finished || st.awaiting_sink
      || (st.awaiting > 0 && !st.linger_expired))
    return;
  if (st.impl) {
    st.impl->complete(std::move(st.deferred));
    st.impl.reset();
  }
  self->quit();
}

/// Ends the job: stops every actor of the job and delivers `res` once they
/// are gone. Waiting matters: sources, reducers and sinks run user code that
/// may refer to the caller's stack (a callback capturing locals), so none of
/// it may still run when wait() returns. A sink that must abort is always
/// awaited, so a caller that sees an error knows that nothing of this job's
/// output remains; generators blocked in a read are awaited for at most a
/// second.
void finish(manager_actor_t* self, caf::expected<job_result> res) {
  auto& st = self->state;
  if (st.finished)
    return;
  st.finished = true;
  if (!res)
    logger()->info("job failed: {}", describe(res.error()));
  for (auto& src : st.sources) {
    if (src.generator) {
      self->send(src.generator, quit_atom::value);
      ++st.awaiting;
    }
  }
  for (auto& w : st.workers) {
    if (!w.handle)
      continue;
    self->send_exit(w.handle, caf::exit_reason::user_shutdown);
    ++st.awaiting;
  }
  st.pending.clear();
  st.queue.clear();
  if (st.sink) {
    self->unlink_from(st.sink);
    st.awaiting_sink = true;
    if (res && !res->partial) {
      // Committed: the sink just stops.
      self->send(st.sink, quit_atom::value);
    } else {
      // The sink discards what it wrote (a stopped job's output is never
      // committed).
      self->send(st.sink, abort_atom::value);
    }
  }
  st.deferred = std::move(res);
  if (st.awaiting > 0)
    self->delayed_send(self, std::chrono::seconds(1), linger_atom::value);
  deliver_if_quiet(self);
}

void fail(manager_actor_t* self, errc code, std::string what) {
  finish(self, make_error(code, std::move(what)));
}

std::string describe_batch(const manager_state& st, std::uint32_t source,
                           std::uint64_t seq, std::uint64_t first,
                           std::uint64_t size) {
  std::string result = "batch " + std::to_string(seq) + " of source "
                       + std::to_string(source);
  if (source < st.sources.size())
    result += " (" + st.sources[source].name + ")";
  result += ", elements " + std::to_string(first) + ".."
            + std::to_string(first + size - 1);
  return result;
}

/// Hands queued batches to the least-loaded reducers with free capacity.
void dispatch(manager_actor_t* self) {
  auto& st = self->state;
  while (!st.queue.empty()) {
    auto best = no_worker;
    for (std::size_t i = 0; i < st.workers.size(); ++i)
      if (st.workers[i].handle && st.workers[i].load < st.opts.reducer_queue
          && (best == no_worker || st.workers[i].load < st.workers[best].load))
        best = i;
    if (best == no_worker)
      return;
    auto id = st.queue.front();
    auto& entry = st.pending.at(id);
    if (entry.avoid == best && st.workers.size() > 1) {
      // A retry goes to another reducer than the one it failed on: wait for
      // one of the others to have room.
      auto other = no_worker;
      for (std::size_t i = 0; i < st.workers.size(); ++i)
        if (i != entry.avoid && st.workers[i].handle
            && st.workers[i].load < st.opts.reducer_queue
            && (other == no_worker
                || st.workers[i].load < st.workers[other].load))
          other = i;
      if (other == no_worker)
        return;
      best = other;
    }
    st.queue.pop_front();
    entry.worker = best;
    ++st.workers[best].load;
    // A local send shares the batch (and its storage) instead of copying it.
    self->send(st.workers[best].handle, entry.msg);
  }
}

/// Completes the job once every source has ended and every batch is merged,
/// after checking that every element is accounted for.
void check_complete(manager_actor_t* self) {
  auto& st = self->state;
  if (st.finished || !st.pending.empty() || !st.unwritten.empty()
      || st.committing)
    return;
  if (!st.stopping)
    for (auto& src : st.sources)
      if (!src.done)
        return;
  for (std::size_t i = 0; i < st.sources.size(); ++i) {
    auto& src = st.sources[i];
    if (src.emitted != src.aggregated + src.rejected + src.dead
        || src.merged != src.received) {
      fail(self, errc::accounting_mismatch,
           "source " + std::to_string(i) + " (" + src.name + ") emitted "
             + std::to_string(src.emitted) + " elements in "
             + std::to_string(src.received) + " batches, but "
             + std::to_string(src.aggregated) + " were aggregated, "
             + std::to_string(src.rejected) + " rejected and "
             + std::to_string(src.dead) + " dead-lettered in "
             + std::to_string(src.merged) + " merged batches");
      return;
    }
  }
  if (st.stopping) {
    // A stopped job has drained: deliver what it has, marked partial.
    auto res = make_result(st, false);
    res.partial = true;
    logger()->info("job stopped: {} elements accounted for", res.emitted);
    finish(self, std::move(res));
    return;
  }
  auto res = make_result(st, true);
  if (st.sink && !st.committed) {
    // Every row is written: make them visible at once (the sink gets the
    // final aggregates to store alongside), then deliver.
    st.committing = true;
    self->send(st.sink, commit_atom::value, res);
    return;
  }
  logger()->debug("job complete: {} elements in {} batches from {} sources",
                  res.emitted, res.batches, res.sources);
  finish(self, std::move(res));
}

/// Keeps (up to the limit) and hands on the dead letters of a merged batch.
/// Returns false when the user's handler threw and the job failed.
bool record_dead_letters(manager_actor_t* self,
                         const std::vector<dead_letter>& letters) {
  auto& st = self->state;
  for (auto& letter : letters) {
    if (st.dead_letters.size() < st.opts.max_dead_letters)
      st.dead_letters.push_back(letter);
    if (st.opts.dead_letter_handler) {
      try {
        st.opts.dead_letter_handler(letter);
      } catch (const std::exception& e) {
        fail(self, errc::sink_failed,
             std::string{"the dead-letter handler threw: "} + e.what());
        return false;
      } catch (...) {
        fail(self, errc::sink_failed,
             "the dead-letter handler threw an unknown exception");
        return false;
      }
    }
  }
  return true;
}

/// Puts the batches reducer `i` held back at the front of the queue, in
/// order; returns how many.
std::size_t requeue_batches_of(manager_actor_t* self, std::size_t i) {
  auto& st = self->state;
  std::vector<batch_id> lost;
  for (auto& [id, entry] : st.pending) {
    if (entry.worker == i) {
      entry.worker = no_worker;
      lost.push_back(id);
    }
  }
  std::sort(lost.begin(), lost.end(),
            [](const batch_id& x, const batch_id& y) {
              return x.source != y.source ? x.source < y.source
                                          : x.seq < y.seq;
            });
  for (auto j = lost.rbegin(); j != lost.rend(); ++j)
    st.queue.push_front(*j);
  return lost.size();
}

/// Returns one credit to the generator of `source`.
void return_credit(manager_actor_t* self, std::uint32_t source) {
  auto& src = self->state.sources[source];
  if (!src.done && src.generator)
    self->send(src.generator, demand{1});
}

caf::behavior manager_actor(manager_actor_t* self,
                            std::shared_ptr<job_spec> spec,
                            std::shared_ptr<job_impl> impl) {
  auto& st = self->state;
  st.impl = std::move(impl);
  st.opts = spec->opts;
  self->set_default_handler(caf::drop);
  // Spawn the pool and the generators; monitor all of them so that an actor
  // that dies without reporting its work fails the job instead of hanging it.
  st.fn = std::make_shared<const erased_reducer>(std::move(spec->reduce));
  st.format = spec->format;
  st.reducer_name = spec->reducer_name;
  for (std::size_t i = 0; i < st.opts.reducers; ++i) {
    auto w = self->spawn(reducer_actor, caf::actor{self}, st.fn, st.format,
                         st.opts.crash_reducer);
    self->monitor(w);
    st.workers.push_back({w, 0});
  }
  for (std::size_t i = 0; i < spec->sources.size(); ++i) {
    auto& entry = spec->sources[i];
    source_info info;
    info.name = entry.src->name();
    info.label = entry.label;
    info.labeled = entry.labeled;
    auto idx = static_cast<std::uint32_t>(i);
    // Blocking sources (files, pipes) get a thread of their own so that they
    // never stall the scheduler the reducers run on.
    if (entry.src->blocking())
      info.generator = self->spawn<caf::detached>(generator_actor,
                                                  caf::actor{self}, idx,
                                                  entry.src, entry.label,
                                                  st.opts.batch_size);
    else
      info.generator = self->spawn(generator_actor, caf::actor{self}, idx,
                                   entry.src, entry.label, st.opts.batch_size);
    self->monitor(info.generator);
    st.sources.push_back(std::move(info));
  }
  if (spec->sink) {
    st.sink_name = spec->sink->name();
    st.sink_type = &spec->sink->row_type();
    st.sink_every_batch = spec->sink->wants_every_batch();
    if (spec->sink->blocking())
      st.sink = self->spawn<caf::detached>(sink_actor, caf::actor{self},
                                           spec->sink);
    else
      st.sink = self->spawn(sink_actor, caf::actor{self}, spec->sink);
    self->monitor(st.sink);
  }
  spec.reset();
  // The sink links to us; its exit must not take the manager down with it.
  self->set_exit_handler([](caf::exit_msg&) {});
  self->set_down_handler([=](caf::down_msg& dm) {
    auto& st = self->state;
    if (st.finished) {
      if (st.sink && st.sink.address() == dm.source)
        st.awaiting_sink = false;
      else if (st.awaiting > 0)
        --st.awaiting;
      deliver_if_quiet(self);
      return;
    }
    if (st.sink && st.sink.address() == dm.source) {
      // The sink is gone: there is nothing left to abort.
      st.sink = nullptr;
      fail(self, errc::actor_down,
           "the sink (" + st.sink_name
             + ") terminated: " + caf::to_string(dm.reason));
      return;
    }
    for (std::size_t i = 0; i < st.sources.size(); ++i) {
      auto& src = st.sources[i];
      if (src.generator.address() == dm.source) {
        src.generator = nullptr;
        if (!src.done && !st.stopping)
          fail(self, errc::actor_down,
               "the generator of source " + std::to_string(i) + " ("
                 + src.name + ") terminated before its end: "
                 + caf::to_string(dm.reason));
        return;
      }
    }
    for (std::size_t i = 0; i < st.workers.size(); ++i) {
      if (!st.workers[i].handle || st.workers[i].handle.address() != dm.source)
        continue;
      if (st.workers[i].remote) {
        // A worker node's reducer is gone (the node died, or its connection
        // did): its batches go back to the front of the queue for the
        // others; a late partial from it would be a dropped duplicate.
        requeue_batches_of(self, i);
        auto node = st.workers[i].node;
        st.workers[i].handle = nullptr;
        st.workers[i].load = 0;
        logger()->warn("lost a reducer of worker node {} ({})", node,
                       caf::to_string(dm.reason));
        dispatch(self);
        return;
      }
      if (st.reducers_replaced >= st.opts.max_replacements) {
        fail(self, errc::actor_down,
             "reducer " + std::to_string(i) + " terminated ("
               + caf::to_string(dm.reason) + ") after "
               + std::to_string(st.reducers_replaced)
               + " replacements in this job; giving up");
        return;
      }
      // Reducers are stateless: a replacement can take over at once. The
      // batches the dead one held go first in the queue; the manager still
      // holds each of them, and a late partial from the dead reducer is a
      // duplicate that the in-flight table drops.
      ++st.reducers_replaced;
      auto w = self->spawn(reducer_actor, caf::actor{self}, st.fn, st.format,
                           st.opts.crash_reducer);
      self->monitor(w);
      st.workers[i] = {w, 0, false, {}};
      auto lost = requeue_batches_of(self, i);
      logger()->warn("reducer {} terminated ({}); replaced it, {} batches "
                     "dispatched again",
                     i, caf::to_string(dm.reason), lost);
      dispatch(self);
      return;
    }
  });
  // Grant the initial credit right away (one message hop less for small
  // jobs); a job without sources completes on its first message.
  auto credits = static_cast<std::uint32_t>(st.opts.credits);
  for (auto& src : st.sources)
    self->send(src.generator, demand{credits});
  if (st.sources.empty())
    self->send(self, start_atom::value);
  return {
    [=](start_atom) { check_complete(self); },
    [=](batch& b) {
      auto& st = self->state;
      // After a stop, batches still on their way are not accepted: the
      // partial result covers what was accepted before.
      if (st.finished || st.stopping)
        return;
      if (b.source >= st.sources.size()) {
        fail(self, errc::protocol_violation,
             "batch from unknown source " + std::to_string(b.source));
        return;
      }
      auto& src = st.sources[b.source];
      if (src.done || b.seq != src.received || b.first != src.emitted
          || src.in_flight >= st.opts.credits || b.items.size == 0) {
        fail(self, errc::protocol_violation,
             "unexpected " + describe_batch(st, b.source, b.seq, b.first,
                                            b.items.size)
               + " (" + std::to_string(src.in_flight)
               + " batches in flight, credit "
               + std::to_string(st.opts.credits) + ")");
        return;
      }
      ++src.received;
      src.emitted += b.items.size;
      ++src.in_flight;
      st.peak_in_flight = std::max(st.peak_in_flight, src.in_flight);
      batch_id id{b.source, b.seq};
      st.pending.emplace(id, in_flight_batch{std::move(b), no_worker});
      st.queue.push_back(id);
      dispatch(self);
    },
    [=](partial_msg& p) {
      auto& st = self->state;
      if (st.finished)
        return;
      auto i = st.pending.find(batch_id{p.source, p.seq});
      if (i == st.pending.end() || i->second.worker == no_worker) {
        // Each batch id is applied once: a late or repeated partial is a
        // duplicate and must not count twice.
        logger()->debug("dropping duplicate partial for batch {} of source {}",
                        p.seq, p.source);
        return;
      }
      auto& b = i->second.msg;
      auto what = [&] {
        return describe_batch(st, b.source, b.seq, b.first, b.items.size);
      };
      std::uint64_t dead = 0;
      for (auto& letter : p.dead)
        dead += letter.count;
      if (p.size != b.items.size || p.rejected > p.size
          || dead > p.size - p.rejected) {
        fail(self, errc::accounting_mismatch,
             what() + ": the reducer reported " + std::to_string(p.size)
               + " elements (" + std::to_string(p.rejected) + " rejected, "
               + std::to_string(dead) + " dead-lettered)");
        return;
      }
      if (p.overflow) {
        fail(self, errc::overflow, what() + ": a partial aggregate overflowed");
        return;
      }
      for (auto& [k, agg] : p.entries) {
        if (!st.aggregates[k].merge(agg)) {
          fail(self, errc::overflow,
               "the aggregate of key '" + to_string(k)
                 + "' left the exact 128-bit range while merging " + what());
          return;
        }
      }
      for (auto& [reason, n] : p.reasons)
        st.reasons[reason] += n;
      if (p.row_count > 0) {
        if (!st.sink) {
          fail(self, errc::invalid_config,
               what() + ": the reducer emitted rows but the pipeline has no "
                        "sink");
          return;
        }
        if (!p.row_type || *p.row_type != *st.sink_type) {
          fail(self, errc::invalid_config,
               what() + ": the reducer emitted rows of another type than "
                        "the sink takes");
          return;
        }
      }
      auto first = b.first;
      auto& src = st.sources[p.source];
      ++src.merged;
      src.aggregated += p.size - p.rejected - dead;
      src.rejected += p.rejected;
      src.dead += dead;
      --src.in_flight;
      --st.workers[i->second.worker].load;
      if (st.workers[i->second.worker].remote)
        ++st.remote_batches;
      st.pending.erase(i);
      if (!p.dead.empty() && !record_dead_letters(self, p.dead))
        return;
      if (p.row_count > 0
          || (st.sink && (!p.dead.empty() || st.sink_every_batch))) {
        // Rows leave for the sink only now, after the batch id was applied
        // once: a duplicate partial never writes its rows twice.
        st.unwritten.emplace(batch_id{p.source, p.seq}, true);
        self->send(st.sink, sink_write{p.source, p.seq, first, p.size,
                                       std::move(p.dead), std::move(p.rows),
                                       p.row_count});
      } else {
        // Return the credit: the generator may emit one more batch.
        return_credit(self, p.source);
      }
      dispatch(self);
      check_complete(self);
    },
    [=](const sink_written& w) {
      auto& st = self->state;
      if (st.finished)
        return;
      if (st.unwritten.erase(batch_id{w.source, w.seq}) == 0) {
        fail(self, errc::protocol_violation,
             "the sink confirmed batch " + std::to_string(w.seq)
               + " of source " + std::to_string(w.source)
               + ", which it was not sent");
        return;
      }
      st.written += w.row_count;
      return_credit(self, w.source);
      check_complete(self);
    },
    [=](sink_failed& f) {
      if (!self->state.finished)
        finish(self, std::move(f.reason));
    },
    [=](committed_atom) {
      auto& st = self->state;
      if (st.finished)
        return;
      st.committing = false;
      st.committed = true;
      check_complete(self);
    },
    [=](const source_done& d) {
      auto& st = self->state;
      if (st.finished || st.stopping)
        return;
      if (d.source >= st.sources.size()) {
        fail(self, errc::protocol_violation,
             "end of unknown source " + std::to_string(d.source));
        return;
      }
      auto& src = st.sources[d.source];
      if (d.batches != src.received || d.elements != src.emitted) {
        fail(self, errc::accounting_mismatch,
             "source " + std::to_string(d.source) + " (" + src.name
               + ") reported " + std::to_string(d.elements)
               + " elements in " + std::to_string(d.batches)
               + " batches, the manager received "
               + std::to_string(src.emitted) + " in "
               + std::to_string(src.received));
        return;
      }
      src.done = true;
      check_complete(self);
    },
    [=](source_failed& f) {
      auto& st = self->state;
      if (st.finished)
        return;
      if (code_of(f.reason) != errc::none)
        finish(self, std::move(f.reason));
      else
        fail(self, errc::source_failed, describe(f.reason));
    },
    [=](const batch_failed& f) {
      auto& st = self->state;
      if (st.finished)
        return;
      auto i = st.pending.find(batch_id{f.source, f.seq});
      if (i == st.pending.end() || i->second.worker == no_worker) {
        // The batch was merged or re-dispatched meanwhile (its reducer was
        // replaced): this report is stale.
        return;
      }
      auto& entry = i->second;
      auto what = describe_batch(st, f.source, f.seq, f.first, f.size)
                  + ": user function threw: " + f.what;
      if (st.opts.on_failure == failure_policy::fail_fast
          || entry.msg.bisect != 0) {
        // Bisecting never throws for the user function's sake; a throw
        // here is a bug of the reducer's own (for example rows of two
        // types), which retrying cannot fix.
        fail(self, errc::reducer_failed, std::move(what));
        return;
      }
      --st.workers[entry.worker].load;
      entry.avoid = entry.worker;
      entry.worker = no_worker;
      ++entry.failures;
      if (entry.failures <= st.opts.retries) {
        ++st.retried;
        logger()->warn("{}; retry {} of {}", what, entry.failures,
                       st.opts.retries);
        st.queue.push_front(i->first);
        dispatch(self);
        return;
      }
      if (st.opts.on_failure == failure_policy::dead_letter) {
        logger()->warn("{}; failed {} times, bisecting", what,
                       entry.failures);
        entry.msg.bisect = 1;
        st.queue.push_front(i->first);
        dispatch(self);
        return;
      }
      // skip: the whole batch becomes one dead letter.
      logger()->warn("{}; failed {} times, skipping the batch", what,
                     entry.failures);
      auto& src = st.sources[f.source];
      std::vector<dead_letter> dead(1);
      dead[0].source = f.source;
      dead[0].index = entry.msg.first;
      dead[0].count = entry.msg.items.size;
      dead[0].error = f.what;
      ++src.merged;
      src.dead += entry.msg.items.size;
      --src.in_flight;
      auto id = i->first;
      st.pending.erase(i);
      if (!record_dead_letters(self, dead))
        return;
      if (st.sink) {
        st.unwritten.emplace(id, true);
        self->send(st.sink, sink_write{id.source, id.seq, dead[0].index,
                                       dead[0].count, std::move(dead), nullptr,
                                       0});
      } else {
        return_credit(self, id.source);
      }
      dispatch(self);
      check_complete(self);
    },
    [=](snapshot_atom) -> job_result {
      return make_result(self->state, false);
    },
    [=](cancel_atom) {
      fail(self, errc::cancelled, "the job was cancelled");
    },
    [=](stop_atom, std::uint64_t drain_ms) {
      auto& st = self->state;
      if (st.finished || st.stopping)
        return;
      // Stop the generators (what they still send is not accepted), let the
      // accepted batches drain, then deliver a partial result.
      st.stopping = true;
      for (auto& src : st.sources)
        if (src.generator)
          self->send(src.generator, quit_atom::value);
      logger()->info("stopping: draining {} batches in flight",
                     st.pending.size());
      self->delayed_send(self, std::chrono::milliseconds(drain_ms),
                         drain_timeout_atom::value);
      check_complete(self);
    },
    [=](join_atom, caf::actor reducer, std::string node) {
      auto& st = self->state;
      if (!reducer)
        return;
      if (st.finished || st.stopping || st.reducer_name.empty()) {
        // Too late, or a job that cannot use remote reducers: the node may
        // take its reducer back.
        self->send_exit(reducer, caf::exit_reason::user_shutdown);
        return;
      }
      self->monitor(reducer);
      st.workers.push_back({reducer, 0, true, node});
      logger()->info("worker node {} lent a reducer ({} reducers now)", node,
                     st.workers.size());
      dispatch(self);
    },
    [=](linger_atom) {
      self->state.linger_expired = true;
      deliver_if_quiet(self);
    },
    [=](drain_timeout_atom) {
      auto& st = self->state;
      if (st.finished)
        return;
      // The drain took too long: deliver what is merged, and say how much
      // was abandoned.
      auto res = make_result(st, false);
      res.partial = true;
      for (auto& [id, entry] : st.pending)
        res.abandoned += entry.msg.items.size;
      logger()->warn("drain timed out: {} elements in {} batches abandoned",
                     res.abandoned, st.pending.size());
      finish(self, std::move(res));
    },
  };
}

} // namespace

// -- engine entry points ------------------------------------------------------

caf::actor spawn_reducer(caf::actor_system& sys, caf::actor manager,
                         erased_reducer fn, erased_formatter format) {
  auto shared = std::make_shared<const erased_reducer>(std::move(fn));
  return sys.spawn(reducer_actor, std::move(manager), shared,
                   std::move(format),
                   std::function<bool(std::uint32_t, std::uint64_t)>{});
}

caf::error validate(const job_spec& spec) {
  if (!spec.reduce)
    return make_error(errc::invalid_config,
                      "the pipeline has no reducer (call reduce())");
  if (spec.opts.batch_size == 0)
    return make_error(errc::invalid_config, "batch size must be at least 1");
  if (spec.opts.credits == 0)
    return make_error(errc::invalid_config, "credits must be at least 1");
  if (spec.opts.credits > std::numeric_limits<std::uint32_t>::max())
    return make_error(errc::invalid_config, "credits must fit in 32 bits");
  if (spec.opts.reducer_queue == 0)
    return make_error(errc::invalid_config,
                      "the reducer queue must hold at least 1 batch");
  if (spec.sources.size() > std::numeric_limits<std::uint32_t>::max())
    return make_error(errc::invalid_config, "too many sources");
  return caf::none;
}

job start_job(caf::actor_system& sys, job_spec spec) {
  if (spec.opts.reducers == 0)
    spec.opts.reducers = default_reducers();
  auto impl = std::make_shared<job_impl>();
  impl->sys = &sys;
  impl->reducer_name = spec.reducer_name;
  auto ptr = std::make_shared<job_spec>(std::move(spec));
  impl->manager = sys.spawn(manager_actor, std::move(ptr), impl);
  return job{impl};
}

caf::expected<job_result> run_job(job_spec spec) {
  caf::actor_system_config cfg;
  configure_scheduler(cfg);
  caf::actor_system sys{cfg};
  return start_job(sys, std::move(spec)).wait();
}

} // namespace flow::detail
