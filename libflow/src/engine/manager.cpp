// The manager: one per job. It spawns and monitors the job's actors, hands
// batches to the least-loaded reducers under each source's credit, applies
// each batch id once, and ends the job when every element is accounted for
// (docs/protocol.md, docs/guarantees.md).
//
// Each message handler is a named function (`on_...`); the behavior at the
// end of this file maps messages to them. A batch goes on_batch -> dispatch
// -> (reducer.cpp) -> on_partial or on_batch_failed -> (sink.cpp) ->
// on_sink_written -> return_credit, and check_complete ends the job.

#include <algorithm>
#include <chrono>
#include <exception>
#include <functional>
#include <limits>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/exit_reason.hpp>
#include <caf/send.hpp>
#include <caf/system_messages.hpp>

#include <spdlog/spdlog.h>

#include "engine.hpp"
#include "manager_state.hpp"
#include "flow/error.hpp"
#include "flow/logging.hpp"

namespace flow::detail {

namespace {

// -- results and the end of a job -----------------------------------------------

/// The job's result. `consume` (the last call, nothing reads the keys
/// after it) moves the keyed aggregates out of the manager's map instead of
/// copying them (the general map's whole entries vector at once), so the
/// keys are not held twice at the end.
/// How many sources carry each label (key_result::sources).
std::unordered_map<flow::key, std::uint64_t>
label_counts(const manager_state& st) {
  std::unordered_map<flow::key, std::uint64_t> labels;
  for (auto& src : st.sources)
    if (src.labeled)
      ++labels[src.label];
  return labels;
}

/// Hands key `k` of the last result to options::on_result_key. Only the
/// user's function is guarded: what it throws fails the job
/// (check_complete), and no key goes to it after a throw.
void emit_key(manager_state& st, const key_result& k) {
  if (!st.result_key_error.empty())
    return;
  try {
    st.opts.on_result_key(k);
  } catch (const std::exception& e) {
    st.result_key_error = e.what();
  } catch (...) {
    st.result_key_error = "unknown exception";
  }
}

/// The figures of a result that are the manager's alone (not its keys).
void add_figures(const manager_state& st, job_result& res) {
  res.rejections.assign(st.reasons.begin(), st.reasons.end());
  res.peak_in_flight = st.peak_in_flight;
  res.written = st.written;
  res.reducers_replaced = st.reducers_replaced;
  res.speculated = st.speculated;
  res.speculation_won = st.speculation_won;
  res.partials = st.partials;
  res.dead_letters = st.dead_letters;
  res.retried = st.retried;
  res.remote_batches = st.remote_batches;
}

job_result make_result(manager_state& st, bool final, bool consume = false) {
  job_result res;
  res.final = final;
  res.sources = st.sources.size();
  for (auto& src : st.sources) {
    res.emitted += src.emitted;
    res.aggregated += src.aggregated;
    res.rejected += src.rejected;
    res.dead_lettered += src.dead;
    res.batches += src.merged;
  }
  if (!st.shards.empty()) {
    // The keys are the shards': gather_keys adds them (attach_keys).
    add_figures(st, res);
    return res;
  }
  auto labels = label_counts(st);
  auto sources_of = [&](const flow::key& k) -> std::uint64_t {
    if (labels.empty())
      return 0;
    auto i = labels.find(k);
    return i == labels.end() ? 0 : i->second;
  };
  res.key_count = st.ints.size() + st.aggregates.size();
  // The last result may go key by key to on_result_key: then no vector of
  // every key is built beside the keyed state.
  bool streaming = consume && st.opts.on_result_key;
  if (consume) {
    st.keys_at_end = res.key_count;
    st.consumed = true;
  }
  auto emit = [&](const key_result& k) { emit_key(st, k); };
  // An integer key of the last result, in key order: streamed or kept.
  auto put = [&](const int_entry& e) {
    flow::key k{e.key};
    auto n = sources_of(k);
    if (streaming)
      emit(key_result{std::move(k), e.to_aggregate(), n});
    else
      res.keys.push_back({std::move(k), e.to_aggregate(), n});
  };
  if (!st.general && st.runs && st.runs->count() > 0) {
    // Spilled (options::max_memory): the runs and the keys held, merged in
    // key order. The last result sorts the table in place; a snapshot
    // sorts a copy (it holds every key anyway).
    std::size_t distinct = 0;
    auto take = [&](const int_entry& e) {
      ++distinct;
      put(e);
    };
    bool overflow = false;
    std::string err;
    if (consume) {
      st.ints.sort();
      err = st.runs->merge(st.ints.begin(), st.ints.size(), take, overflow);
      st.ints.clear();
      // The last result: the runs' files (their disk space) go now, not
      // when the manager's actors are down.
      st.runs.reset();
    } else {
      std::vector<int_entry> held(st.ints.begin(), st.ints.end());
      std::sort(held.begin(), held.end(),
                [](const int_entry& x, const int_entry& y) {
                  return x.key < y.key;
                });
      err = st.runs->merge(held.data(), held.size(), take, overflow);
    }
    res.key_count = distinct;
    if (consume)
      st.keys_at_end = distinct;
    if (!err.empty() && st.spill_error.empty()) {
      st.spill_error = std::move(err);
      st.spill_overflow = overflow;
    }
  } else if (!st.general) {
    if (consume) {
      // Sorted in place: the table is read once more, then freed.
      st.ints.sort();
      if (!streaming)
        res.keys.reserve(st.ints.size());
      for (auto& e : st.ints)
        put(e);
      st.ints.clear();
    } else {
      res.keys.reserve(st.ints.size());
      for (auto& e : st.ints) {
        flow::key k{e.key};
        auto n = sources_of(k);
        res.keys.push_back({std::move(k), e.to_aggregate(), n});
      }
      std::sort(res.keys.begin(), res.keys.end(),
                [](const key_result& x, const key_result& y) {
                  return x.key.as_int() < y.key.as_int();
                });
    }
  } else {
    // The map's entries are key_results already: the last result takes
    // them as they are, a snapshot copies them.
    // (Not `?:`: with a const operand its result is const, and copied.)
    if (consume)
      res.keys = st.aggregates.take();
    else
      res.keys = st.aggregates.entries();
    if (!labels.empty())
      for (auto& k : res.keys)
        k.sources = sources_of(k.key);
    std::sort(res.keys.begin(), res.keys.end(),
              [](const key_result& x, const key_result& y) {
                return x.key < y.key;
              });
    if (streaming) {
      for (auto& k : res.keys)
        emit(k);
      res.keys = std::vector<key_result>{};
    }
  }
  add_figures(st, res);
  return res;
}

/// Puts the keys gathered from the shards (sorted) into `res`, made by
/// make_result when they were asked for; `consume`: the last result.
void attach_keys(manager_state& st, job_result& res,
                 std::vector<key_result>&& keys, bool consume) {
  auto labels = label_counts(st);
  if (!labels.empty())
    for (auto& k : keys)
      if (auto i = labels.find(k.key); i != labels.end())
        k.sources = i->second;
  res.key_count = keys.size();
  if (consume) {
    st.keys_at_end = res.key_count;
    st.consumed = true;
  }
  res.keys = std::move(keys);
}

// -- statistics ----------------------------------------------------------------

/// Keeps `what` among the last few warnings and errors (job_stats::errors).
void note_error(manager_state& st, std::string what) {
  constexpr std::size_t keep = 8;
  constexpr std::size_t max_length = 300;
  if (what.size() > max_length)
    what = what.substr(0, max_length) + "...";
  st.recent_errors.push_back(std::move(what));
  if (st.recent_errors.size() > keep)
    st.recent_errors.pop_front();
}

/// Seconds between two steady-clock points.
double seconds_between(std::chrono::steady_clock::time_point from,
                       std::chrono::steady_clock::time_point to) {
  return std::chrono::duration<double>(to - from).count();
}

/// Counts one merged batch that took `seconds` from dispatch to merge (the
/// statistics), of which `service` since its reducer could start on it (the
/// speculation threshold's median).
void observe_reduce_time(manager_state& st, double seconds, double service,
                         bool for_median = true) {
  std::size_t i = 0;
  while (i < job_stats::reduce_buckets && seconds > job_stats::reduce_bounds[i])
    ++i;
  ++st.reduce_counts[i];
  st.reduce_seconds += seconds;
  if (for_median)
    st.recent_times[st.recent_count++ % st.recent_times.size()] = service;
}

/// The per worker node statistics, from the reducer slots they lent.
std::vector<node_stats> node_stats_of(const manager_state& st) {
  std::vector<node_stats> result;
  for (auto& r : st.reducers) {
    if (!r.remote)
      continue;
    auto i = std::find_if(result.begin(), result.end(),
                          [&](const node_stats& x) { return x.name == r.node; });
    if (i == result.end()) {
      result.emplace_back();
      result.back().name = r.node;
      i = std::prev(result.end());
    }
    if (r.handle)
      ++i->reducers;
    else
      ++i->lost;
    i->batches_held += r.load;
    i->batches_merged += r.merged;
  }
  return result;
}

/// A copy of the job's statistics as they are now. Costs a pass over the
/// sources and reducers, a few times a second: the hot path only counts.
std::shared_ptr<job_stats> make_stats(const manager_state& st) {
  constexpr std::size_t shown_letters = 5;
  constexpr std::size_t max_text = 200;
  auto now = std::chrono::steady_clock::now();
  auto xs = std::make_shared<job_stats>();
  xs->state = st.stopping ? job_state::draining : job_state::running;
  xs->started = st.started;
  xs->elapsed_seconds = seconds_between(st.started_steady, now);
  xs->sources.reserve(st.sources.size());
  for (auto& src : st.sources) {
    source_stats y;
    y.name = src.name;
    y.total = src.total;
    y.total_is_estimate = src.total_is_estimate;
    y.emitted = src.emitted;
    y.aggregated = src.aggregated;
    y.rejected = src.rejected;
    y.dead_lettered = src.dead;
    y.batches = src.received;
    y.merged = src.merged;
    y.in_flight = src.in_flight;
    y.credit = st.opts.credits;
    y.waiting = src.waiting;
    y.credit_wait_seconds = src.wait_seconds
                            + (src.waiting ? seconds_between(src.wait_since,
                                                             now)
                                           : 0.0);
    y.done = src.done;
    if (src.task)
      y.task = src.task->snapshot();
    xs->sources.push_back(std::move(y));
  }
  xs->batches_dispatched = st.dispatched;
  xs->batches_retried = st.retried;
  xs->batches_redispatched = st.redispatched;
  xs->batches_speculated = st.speculated;
  xs->speculation_won = st.speculation_won;
  for (auto& r : st.reducers) {
    if (!r.handle)
      continue;
    ++xs->reducers;
    if (r.load > 0)
      ++xs->reducers_busy;
  }
  xs->reducers_replaced = st.reducers_replaced;
  xs->nodes = node_stats_of(st);
  xs->manager_shards = st.shards.size();
  xs->keys = st.consumed ? st.keys_at_end
                         : st.ints.size() + st.aggregates.size()
                             + (st.runs ? st.runs->entries() : 0);
  for (auto n : st.shard_key_counts)
    xs->keys += st.consumed ? 0 : n;
  xs->written = st.written;
  xs->sink = st.sink_name;
  xs->outputs = st.outputs;
  xs->rejections.assign(st.reasons.begin(), st.reasons.end());
  xs->reduce_counts.assign(st.reduce_counts.begin(), st.reduce_counts.end());
  xs->reduce_seconds = st.reduce_seconds;
  for (std::size_t i = 0;
       i < st.dead_letters.size() && i < shown_letters; ++i) {
    auto letter = st.dead_letters[i];
    if (letter.value.size() > max_text)
      letter.value = letter.value.substr(0, max_text) + "...";
    if (letter.error.size() > max_text)
      letter.error = letter.error.substr(0, max_text) + "...";
    xs->dead_letters.push_back(std::move(letter));
  }
  xs->errors.assign(st.recent_errors.begin(), st.recent_errors.end());
  return xs;
}

/// Publishes the job's statistics to its handle (job::stats()).
void publish_stats(manager_state& st) {
  if (st.impl)
    st.impl->publish(make_stats(st));
}

/// The periodic publication (options::stats_interval).
void on_stats_tick(manager_actor_t* self) {
  auto& st = self->state;
  if (st.finished)
    return;
  publish_stats(st);
  // The shards' key counts, for the next publication.
  for (std::size_t i = 0; i < st.shards.size(); ++i)
    self->request(st.shards[i], caf::infinite, shard_count_atom::value)
      .then([self, i](std::uint64_t n) {
        self->state.shard_key_counts[i] = n;
      },
            [](caf::error&) {});
  self->delayed_send(self, st.opts.stats_interval, stats_atom::value);
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
  if (!res) {
    logger()->info("job failed: {}", describe(res.error()));
    note_error(st, describe(res.error()));
  }
  if (st.impl) {
    // The last statistics: the end state, and the result.
    auto xs = make_stats(st);
    xs->state = res ? job_state::done : job_state::failed;
    if (res)
      xs->result = result_for_stats(*res);
    st.impl->publish(std::move(xs));
  }
  for (auto& src : st.sources) {
    if (src.generator) {
      self->send(src.generator, quit_atom::value);
      ++st.awaiting;
    }
  }
  for (auto& r : st.reducers) {
    if (!r.handle)
      continue;
    self->send_exit(r.handle, caf::exit_reason::user_shutdown);
    ++st.awaiting;
  }
  // Shards run user code too (aggregator states' merge).
  for (auto& shard : st.shards) {
    self->send_exit(shard, caf::exit_reason::user_shutdown);
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
  for (auto& rp : st.snapshot_waiters) {
    if (st.deferred)
      rp.deliver(*st.deferred);
    else
      rp.deliver(st.deferred.error());
  }
  st.snapshot_waiters.clear();
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

// -- the flow of batches ------------------------------------------------------------

/// True when reducer slot `i` is a local reducer that folds the batches
/// queued at it into one partial (options::combine_batches).
bool combines(const manager_state& st, std::size_t i) {
  return st.combine > 1 && i < st.reducers.size() && !st.reducers[i].remote;
}

/// True once every source has ended.
bool all_sources_done(const manager_state& st) {
  return std::all_of(st.sources.begin(), st.sources.end(),
                     [](const source_info& x) { return x.done; });
}

/// options::combine_batches: asks every local reducer that may hold batches
/// to answer for them now (a source waits for credit, every source ended,
/// or the job stops): otherwise they would wait for their hold's timer.
void flush_combining(manager_actor_t* self) {
  auto& st = self->state;
  if (st.combine <= 1)
    return;
  for (std::size_t i = 0; i < st.reducers.size(); ++i) {
    auto& r = st.reducers[i];
    if (r.handle && !r.remote && r.load > 0)
      self->send(r.handle, flush_atom::value, std::uint64_t{0});
  }
}

/// True when reducer slot `i` may take another batch: a live reducer below
/// its queue length, which is 1 for one that a speculative copy overtook.
bool has_room(const manager_state& st, std::size_t i) {
  auto& r = st.reducers[i];
  if (!r.handle)
    return false;
  if (r.overtaken > 0)
    return r.load < 1;
  // A combining reducer folds the batches queued at it together: it is
  // given enough of them to combine.
  auto queue = st.opts.reducer_queue;
  if (!r.remote && st.combine > 1)
    queue = std::max(queue, st.combine);
  return r.load < queue;
}

/// True when reducer slot `i` may ever take a batch again: a live reducer
/// that is not busy only with attempts it lost (presumably stuck).
bool may_take_again(const manager_state& st, std::size_t i) {
  auto& r = st.reducers[i];
  if (!r.handle)
    return false;
  if (r.overtaken == 0 || r.load == 0)
    return true;
  std::size_t lost = 0;
  for (auto& a : st.abandoned)
    if (a.slot == i)
      ++lost;
  return r.load > lost;
}

/// Hands queued batches to the least-loaded reducers with free capacity.
void dispatch(manager_actor_t* self) {
  auto& st = self->state;
  while (!st.queue.empty()) {
    auto best = no_reducer;
    for (std::size_t i = 0; i < st.reducers.size(); ++i)
      if (has_room(st, i)
          && (best == no_reducer
              || st.reducers[i].load < st.reducers[best].load))
        best = i;
    if (best == no_reducer)
      return;
    auto id = st.queue.front();
    auto& entry = st.pending.at(id);
    auto others = false;
    for (std::size_t i = 0; i < st.reducers.size() && !others; ++i)
      others = i != entry.avoid && may_take_again(st, i);
    if (entry.avoid == best && others) {
      // A retry goes to another reducer than the one it failed on: wait for
      // one of the others to have room (one that may ever have some: not
      // a lost one, nor one stuck in attempts it lost).
      auto other = no_reducer;
      for (std::size_t i = 0; i < st.reducers.size(); ++i)
        if (i != entry.avoid && has_room(st, i)
            && (other == no_reducer
                || st.reducers[i].load < st.reducers[other].load))
          other = i;
      if (other == no_reducer)
        return;
      best = other;
    }
    st.queue.pop_front();
    entry.reducer = best;
    entry.sent = std::chrono::steady_clock::now();
    ++st.reducers[best].load;
    ++st.dispatched;
    // A local send shares the batch (and its storage) instead of copying it.
    self->send(st.reducers[best].handle, entry.msg);
    // A combining reducer holds what it folds: when nothing more may come
    // for it soon (the job stops, every source ended, or this batch's
    // source waits for credit), ask it to answer after this batch instead
    // of at its hold's timer.
    if (combines(st, best)
        && (st.stopping || st.sources[id.source].waiting
            || all_sources_done(st)))
      self->send(st.reducers[best].handle, flush_atom::value,
                 std::uint64_t{0});
  }
}

// -- speculation ------------------------------------------------------------------

/// How long a batch may be held before it is dispatched again: the
/// multiplier times the median reduce time of the last merged batches, and
/// at least the floor.
double speculation_threshold(const manager_state& st) {
  auto floor = std::chrono::duration<double>(st.opts.speculation_floor).count();
  auto n = std::min(st.recent_count, st.recent_times.size());
  if (n == 0)
    return floor;
  std::array<double, 64> xs;
  std::copy_n(st.recent_times.begin(), n, xs.begin());
  std::nth_element(xs.begin(), xs.begin() + n / 2, xs.begin() + n);
  return std::max(floor, st.opts.speculation_multiplier * xs[n / 2]);
}

/// How often the manager looks for batches held too long.
std::chrono::milliseconds speculation_interval(const options& opts) {
  auto quarter = opts.speculation_floor / 4;
  return std::clamp(quarter, std::chrono::milliseconds(10),
                    std::chrono::milliseconds(250));
}

/// Dispatches a second attempt of each batch held longer than the
/// threshold to an idle reducer, oldest first. Only once no batch waits in
/// the queue: a second attempt never delays a first one.
void speculate(manager_actor_t* self) {
  auto& st = self->state;
  if (!st.queue.empty() || st.pending.empty() || st.reducers.size() < 2)
    return;
  auto now = std::chrono::steady_clock::now();
  auto limit = speculation_threshold(st);
  std::vector<std::pair<std::chrono::steady_clock::time_point, batch_id>> late;
  for (auto& [id, entry] : st.pending) {
    if (entry.reducer == no_reducer || entry.second != no_reducer
        || entry.attempt_failed)
      continue;
    // A local reducer that combines batches answers for several at once:
    // a second attempt of one of them could not be told apart from the
    // others (local reducers share this process's cores; speculation is
    // for slow worker nodes).
    if (combines(st, entry.reducer))
      continue;
    // Held since the later of its dispatch and its reducer's last answer,
    // as the median is timed: a healthy reducer's batch waiting behind
    // another is not held longer than the one ahead of it runs, while a
    // slow or stuck reducer's answers stop coming and its hold grows.
    auto since = std::max(entry.sent, st.reducers[entry.reducer].last_answer);
    if (seconds_between(since, now) > limit)
      late.emplace_back(since, id);
  }
  if (late.empty())
    return;
  std::sort(late.begin(), late.end(), [](const auto& x, const auto& y) {
    return x.first < y.first;
  });
  for (auto& [since, id] : late) {
    auto& entry = st.pending.at(id);
    // An idle reducer other than the holder; one never overtaken first.
    auto best = no_reducer;
    for (std::size_t i = 0; i < st.reducers.size(); ++i) {
      auto& r = st.reducers[i];
      if (i == entry.reducer || i == entry.avoid || !r.handle || r.load > 0)
        continue;
      if (best == no_reducer || r.overtaken < st.reducers[best].overtaken)
        best = i;
    }
    if (best == no_reducer)
      continue;
    auto& holder = st.reducers[entry.reducer];
    auto what = describe_batch(st, id.source, id.seq, entry.msg.first,
                               entry.msg.items.size);
    logger()->info("{}: held {:.3f} s by {} (threshold {:.3f} s); "
                   "dispatching it again to {}",
                   what, seconds_between(since, now),
                   holder.remote ? "worker node " + holder.node
                                 : "reducer " + std::to_string(entry.reducer),
                   limit,
                   st.reducers[best].remote
                     ? "worker node " + st.reducers[best].node
                     : "reducer " + std::to_string(best));
    entry.second = best;
    entry.second_sent = now;
    ++st.reducers[best].load;
    ++st.speculated;
    ++st.dispatched;
    // Answered for alone, even by a combining reducer: either attempt's
    // answer must be this batch's only.
    auto copy = entry.msg;
    if (copy.bisect == 0)
      copy.bisect = fold_alone;
    self->send(st.reducers[best].handle, std::move(copy));
  }
}

/// The periodic look for batches held too long.
void on_speculate_tick(manager_actor_t* self) {
  auto& st = self->state;
  // Only the manager's own timer: the handle travels to worker nodes, and
  // a peer's message must not start another timer chain.
  if (st.finished || self->current_sender() != self->ctrl())
    return;
  speculate(self);
  self->delayed_send(self, speculation_interval(st.opts),
                     speculate_atom::value);
}

/// Checks that every element of every source is accounted for; fails the job
/// and returns false when one is not.
bool check_accounting(manager_actor_t* self) {
  auto& st = self->state;
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
      return false;
    }
  }
  return true;
}

/// make_result for a handler: a result that cannot be built (memory, or
/// spilled runs that cannot be read back or overflow while merged) fails
/// the job and gives nullopt, with the error in `why` when given; nothing
/// throws out of the handler. A `snapshot` that runs out of memory fails
/// only itself: building one changes nothing in the manager.
std::optional<job_result> result_or_fail(manager_actor_t* self, bool final,
                                         bool consume = false,
                                         caf::error* why = nullptr,
                                         bool snapshot = false) {
  auto& st = self->state;
  std::optional<job_result> res;
  caf::error err;
  bool memory = false;
  try {
    auto start = std::chrono::steady_clock::now();
    res = make_result(st, final, consume);
    if (final && st.shards.empty())
      // The last result's keys are gathered, sorted and checked on this
      // one thread after the sources are done: at 10^6 keys, seconds.
      // (With shards the keys come later, from gather_keys.)
      logger()->debug("the result's {} keys built in {:.3f} s",
                      res->key_count,
                      seconds_between(start,
                                      std::chrono::steady_clock::now()));
  } catch (const std::exception& e) {
    // Only allocations throw here (the user's on_result_key is guarded):
    // std::bad_alloc, or a container's length limit.
    memory = true;
    err = make_error(errc::out_of_memory,
                     std::string{"the result could not be built: "}
                       + e.what());
  }
  if (!err && !st.spill_error.empty())
    err = make_error(st.spill_overflow ? errc::overflow : errc::spill_failed,
                     st.spill_error);
  if (!err)
    return res;
  if (why != nullptr)
    *why = err;
  if (snapshot && memory) {
    logger()->warn("a snapshot failed: {}", describe(err));
    note_error(st, "a snapshot failed: " + describe(err));
  } else
    finish(self, std::move(err));
  return std::nullopt;
}

// -- manager shards ----------------------------------------------------------

/// A k-way merge of `n` sorted parts: `emit(i, pos)` for each element in
/// order, where `size(i)` is part i's length, `less(i, pos, j, pos2)`
/// compares two elements, and `done(i)` is called once part i is used up
/// (to free it before the others).
template <class Size, class Less, class Emit, class Done>
void merge_parts(std::size_t n, Size size, Less less, Emit emit, Done done) {
  if (n == 2) {
    // Two parts (two shards, the default on two cores): a plain two-way
    // merge. A heap of two compares more, and mispredicts at nearly every
    // element, since the shards' keys interleave at random.
    std::size_t at[2] = {0, 0};
    std::size_t ends[2] = {size(0), size(1)};
    while (at[0] < ends[0] && at[1] < ends[1]) {
      std::size_t i = less(1, at[1], 0, at[0]) ? 1 : 0;
      emit(i, at[i]++);
    }
    // The part used up is freed before the other is drained.
    std::size_t rest = at[0] < ends[0] ? 0 : 1;
    done(1 - rest);
    while (at[rest] < ends[rest])
      emit(rest, at[rest]++);
    done(rest);
    return;
  }
  // A heap of the parts' heads (at most 256 parts).
  using head = std::pair<std::size_t, std::size_t>; // part, position
  std::vector<head> heads;
  auto later = [&](const head& x, const head& y) {
    return less(y.first, y.second, x.first, x.second);
  };
  for (std::size_t i = 0; i < n; ++i)
    if (size(i) > 0)
      heads.emplace_back(i, 0);
  std::make_heap(heads.begin(), heads.end(), later);
  while (!heads.empty()) {
    std::pop_heap(heads.begin(), heads.end(), later);
    auto [i, pos] = heads.back();
    emit(i, pos);
    if (pos + 1 < size(i)) {
      heads.back().second = pos + 1;
      std::push_heap(heads.begin(), heads.end(), later);
    } else {
      heads.pop_back();
      done(i);
    }
  }
}

/// Calls `f` on the keys the shards gave, moved out, in key order.
template <class F>
void for_each_merged(std::vector<shard_keys>& all, F&& f) {
  bool compact = std::all_of(all.begin(), all.end(), [](const shard_keys& x) {
    return x.keys.empty();
  });
  if (compact) {
    // Every shard's keys are integers: merged as such, made key_results
    // one by one, in one object whose fields are assigned afresh for each
    // key (`f` may move from it; a moved-from key_result's fields are
    // valid to assign). At 10^6 keys the manager hands them out on one
    // thread while the shards' cores idle: a key_result built and
    // destroyed per key, and a heap of two parts, took 33 ns a key.
    key_result r;
    auto emit = [&](const int_entry& e) {
      r.key = flow::key{e.key};
      r.agg.sum = e.sum;
      r.agg.count = e.count;
      r.agg.min = e.min;
      r.agg.max = e.max;
      r.sources = 0;
      f(std::move(r));
    };
    auto at = [&](std::size_t i, std::size_t pos) -> const int_entry& {
      return all[i].ints_begin()[pos];
    };
    merge_parts(
      all.size(), [&](std::size_t i) { return all[i].int_count(); },
      [&](std::size_t i, std::size_t p, std::size_t j, std::size_t q) {
        return at(i, p).key < at(j, q).key;
      },
      [&](std::size_t i, std::size_t p) { emit(at(i, p)); },
      [&](std::size_t i) { all[i].ints.reset(); });
    return;
  }
  for (auto& x : all) {
    if (x.int_count() > 0) {
      // A shard still compact beside one that is not (keys of int and
      // other kinds): its keys as key_results.
      x.keys.reserve(x.int_count());
      auto* e = x.ints_begin();
      for (std::size_t i = 0; i < x.int_count(); ++i)
        x.keys.push_back({flow::key{e[i].key}, e[i].to_aggregate(), 0});
      x.ints.reset();
    }
  }
  merge_parts(
    all.size(), [&](std::size_t i) { return all[i].keys.size(); },
    [&](std::size_t i, std::size_t p, std::size_t j, std::size_t q) {
      return all[i].keys[p].key < all[j].keys[q].key;
    },
    [&](std::size_t i, std::size_t p) { f(std::move(all[i].keys[p])); },
    [&](std::size_t i) { all[i].keys = std::vector<key_result>{}; });
}

/// The shards' keys, sorted per shard, or why a shard could not give them.
using shard_parts = caf::expected<std::vector<shard_keys>>;

/// Asks every shard for its keys and calls `then(shard_parts)` once all
/// answered. A shard handles its messages in order, so its answer holds
/// exactly the keys the manager routed to it before this call: those of the
/// batches counted in a result made now (what makes snapshots consistent).
void gather_keys(manager_actor_t* self, bool consume, bool check,
                 std::function<void(shard_parts)> then) {
  auto& st = self->state;
  struct gathered {
    std::vector<shard_keys> parts;
    std::size_t left = 0;
    caf::error err;
    std::function<void(shard_parts)> then;
  };
  auto acc = std::make_shared<gathered>();
  acc->parts.resize(st.shards.size());
  acc->left = st.shards.size();
  acc->then = std::move(then);
  auto one_done = [acc] {
    if (--acc->left > 0)
      return;
    if (acc->err)
      acc->then(std::move(acc->err));
    else
      acc->then(std::move(acc->parts));
  };
  for (std::size_t i = 0; i < st.shards.size(); ++i)
    self->request(st.shards[i], caf::infinite, shard_collect{consume, check})
      .then(
        [acc, i, one_done](shard_keys& k) {
          acc->parts[i] = std::move(k);
          one_done();
        },
        [acc, one_done](caf::error& e) {
          if (!acc->err)
            acc->err = std::move(e);
          one_done();
        });
}

/// Puts the gathered `parts` into `res` (attach_keys); false, with the
/// reason in `why`, when memory ran out.
bool attach_parts(manager_state& st, job_result& res,
                  std::vector<shard_keys>& parts, bool consume,
                  caf::error& why) {
  try {
    std::size_t n = 0;
    for (auto& part : parts)
      n += part.int_count() + part.keys.size();
    if (consume && st.opts.on_result_key) {
      // Streamed straight from the shards' parts, no vector of every key.
      res.key_count = n;
      st.keys_at_end = n;
      st.consumed = true;
      auto labels = label_counts(st);
      for_each_merged(parts, [&](key_result&& k) {
        // No hashing of every key when no source is labelled.
        if (!labels.empty())
          if (auto i = labels.find(k.key); i != labels.end())
            k.sources = i->second;
        emit_key(st, k);
      });
      return true;
    }
    std::vector<key_result> keys;
    keys.reserve(n);
    for_each_merged(parts,
                    [&](key_result&& k) { keys.push_back(std::move(k)); });
    attach_keys(st, res, std::move(keys), consume);
    return true;
  } catch (const std::exception& e) {
    why = make_error(errc::out_of_memory,
                     std::string{"the result could not be built: "}
                       + e.what());
    return false;
  }
}

/// Completes `res`, made by make_result, with the keys and hands it to
/// `then`: at once when the manager holds the keys, once the shards have
/// answered otherwise. For a result that ends the job (a stopped job's, the
/// last): a shard's error, or memory, fails the job instead.
void with_keys(manager_actor_t* self, job_result res, bool consume,
               bool check, std::function<void(job_result)> then) {
  auto& st = self->state;
  if (st.shards.empty()) {
    then(std::move(res));
    return;
  }
  st.gathering = true;
  st.consuming = consume;
  auto shared = std::make_shared<job_result>(std::move(res));
  gather_keys(self, consume, check,
              [self, shared, consume, then](shard_parts parts) {
                auto& st = self->state;
                st.gathering = false;
                st.consuming = false;
                if (st.finished)
                  return;
                if (!parts) {
                  finish(self, std::move(parts.error()));
                  return;
                }
                caf::error why;
                if (!attach_parts(st, *shared, *parts, consume, why)) {
                  finish(self, std::move(why));
                  return;
                }
                then(std::move(*shared));
              });
}

/// The shard of key `k` among `n`; an integer key goes where it would as
/// an `int_entry`.
std::size_t shard_of(const flow::key& k, std::size_t n) noexcept {
  if (k.is_int())
    return int_shard_of(k.as_int(), n);
  return static_cast<std::size_t>(
    ((mix64(static_cast<std::uint64_t>(k.hash())) >> 32) * n) >> 32);
}

/// Below this many entries a partial's `ints` storage is not worth a message
/// back to its reducer (malloc keeps such blocks without faulting).
constexpr std::size_t min_recycled_ints = 1024;

/// Sends the emptied storage of a partial's `ints` back to local reducer
/// `to`, for its next partial (int_storage); drops it when `to` is null or
/// the storage small. Safe from any thread.
void give_back_ints(const caf::actor& to, std::vector<int_entry>&& xs) {
  if (!to || xs.capacity() < min_recycled_ints)
    return;
  // Not cleared: see int_storage.
  caf::anon_send(to, int_storage{std::move(xs)});
}

/// True when partial `p`'s `ints` come grouped for `n` shards by a local
/// reducer (`owner` set): trusted, as the manager's own code, once the
/// bounds are sane; a remote reducer's are grouped again.
bool grouped(const partial_msg& p, std::size_t n, const caf::actor& owner) {
  if (!owner || p.int_ends.size() != n)
    return false;
  std::uint32_t at = 0;
  for (auto e : p.int_ends) {
    if (e < at)
      return false;
    at = e;
  }
  return at == p.ints.size();
}

/// Sends the keys of partial `p`, whose batch was applied once, to the
/// shards they hash to.
void route_keys(manager_actor_t* self, partial_msg& p,
                const std::string& what) {
  auto& st = self->state;
  auto n = st.shards.size();
  std::vector<shard_merge> parts(n);
  // The integer keys grouped by shard in place (an American flag sort),
  // then shared: no copy of the partial's entries.
  auto& xs = p.ints;
  if (grouped(p, n, st.ints_owner)) {
    // A local reducer grouped them (same process, same shard_of).
    for (std::size_t b = 0; b < n; ++b) {
      parts[b].begin = b == 0 ? 0 : p.int_ends[b - 1];
      parts[b].end = p.int_ends[b];
    }
  } else {
    std::vector<std::size_t> next(n + 1, 0);
    for (auto& e : xs)
      ++next[int_shard_of(e.key, n) + 1];
    for (std::size_t i = 0; i < n; ++i)
      next[i + 1] += next[i];
    std::vector<std::size_t> ends(next.begin() + 1, next.end());
    for (std::size_t b = 0; b < n; ++b) {
      parts[b].begin = next[b];
      parts[b].end = ends[b];
    }
    for (std::size_t b = 0; b < n; ++b) {
      while (next[b] < ends[b]) {
        auto t = int_shard_of(xs[next[b]].key, n);
        if (t == b)
          ++next[b];
        else
          std::swap(xs[next[b]], xs[next[t]++]);
      }
    }
  }
  // The last shard done with the block gives its storage back to the
  // reducer (on that shard's thread).
  auto block = std::shared_ptr<const std::vector<int_entry>>(
    new std::vector<int_entry>(std::move(xs)),
    [owner = st.ints_owner](const std::vector<int_entry>* v) {
      auto* w = const_cast<std::vector<int_entry>*>(v);
      give_back_ints(owner, std::move(*w));
      delete w;
    });
  for (auto& x : p.entries)
    parts[shard_of(x.first, n)].entries.push_back(std::move(x));
  for (std::size_t i = 0; i < n; ++i) {
    auto& part = parts[i];
    if (part.int_count() == 0 && part.entries.empty())
      continue;
    if (part.int_count() > 0)
      part.block = block;
    part.what = what;
    self->send(st.shards[i], std::move(part));
    ++st.shard_backlog;
  }
}

void return_credit(manager_actor_t* self, std::uint32_t source);

/// A shard merged one shard_merge: credits held back for the shards go
/// out while the backlog is within its window.
void on_shard_done(manager_actor_t* self) {
  auto& st = self->state;
  if (st.shard_backlog > 0)
    --st.shard_backlog;
  while (!st.owed.empty() && st.shard_backlog <= st.shard_window) {
    auto source = st.owed.front();
    st.owed.pop_front();
    return_credit(self, source);
  }
}

/// Stops the shards, which hold no key yet: the manager keeps the keys.
void disband_shards(manager_actor_t* self) {
  auto& st = self->state;
  for (auto& shard : st.shards) {
    // Not awaited (they never ran user code): their down messages must not
    // count for the actors finish() waits for.
    self->demonitor(shard);
    self->send_exit(shard, caf::exit_reason::user_shutdown);
  }
  st.shards.clear();
  st.shard_key_counts.clear();
  logger()->debug("keys that are not compact: the manager keeps them");
}

/// A shard failed to merge: the job fails.
void on_shard_failed(manager_actor_t* self, shard_failed& f) {
  if (self->state.finished)
    return;
  logger()->debug("manager shard {}: {}", f.shard, describe(f.reason));
  finish(self, std::move(f.reason));
}

/// Delivers the last result: to the sink's commit first, if the job has a
/// sink that has not committed yet.
void deliver_final(manager_actor_t* self, job_result res) {
  auto& st = self->state;
  if (!st.result_key_error.empty()) {
    fail(self, errc::sink_failed,
         "options::on_result_key threw: " + st.result_key_error);
    return;
  }
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

/// Completes the job once every source has ended and every batch is merged,
/// after checking that every element is accounted for.
void check_complete(manager_actor_t* self) {
  auto& st = self->state;
  if (st.finished || !st.pending.empty() || !st.unwritten.empty()
      || st.committing || st.gathering)
    return;
  if (!st.stopping)
    for (auto& src : st.sources)
      if (!src.done)
        return;
  if (!st.spares_freed) {
    // Anonymous, as int_storage is: an actor that joined the pool without
    // these handlers answers an unexpected message with an error, which
    // would end the manager.
    st.spares_freed = true;
    for (auto& r : st.reducers)
      if (r.handle && r.handle.node() == self->node())
        caf::anon_send(r.handle, spares_atom::value);
  }
  if (!check_accounting(self))
    return;
  // Checked once, on the final states: a decimal sum past 38 digits that
  // later values bring back is fine, so the outcome depends on the data
  // only, not on how it was split.
  // Each row's block is asked for a few keys ahead: the loop then walks the
  // map's dense entries without waiting for every block in turn.
  auto ahead = st.aggregates.begin();
  for (int i = 0; i < 4 && ahead != st.aggregates.end(); ++i)
    ++ahead;
  for (auto& [k, agg, unused] : st.aggregates) {
    if (ahead != st.aggregates.end()) {
      ahead->agg.states.prefetch();
      ++ahead;
    }
    bool ok = false;
    try {
      ok = agg.states.ok();
    } catch (...) {
      // User code (a state's ok()); it should not throw, and must not take
      // the manager down with it.
      fail(self, errc::reducer_failed,
           "an aggregator state's ok() threw on the final state of key '"
             + to_string(k) + "'");
      return;
    }
    if (!ok) {
      fail(self, errc::overflow,
           "the aggregate of key '" + to_string(k)
             + "' left the exact range of an aggregator state (for example "
               "a decimal sum beyond 38 digits)");
      return;
    }
  }
  if (st.stopping) {
    // A stopped job has drained: deliver what it has, marked partial.
    auto res = result_or_fail(self, false);
    if (!res)
      return;
    res->partial = true;
    with_keys(self, std::move(*res), false, false, [self](job_result r) {
      logger()->info("job stopped: {} elements accounted for", r.emitted);
      finish(self, std::move(r));
    });
    return;
  }
  // Without a commit to come (or once it is done), this is the last
  // result: the keys move out of the map.
  bool consume = !st.sink || st.committed;
  auto built = result_or_fail(self, true, consume);
  if (!built)
    return;
  with_keys(self, std::move(*built), consume, true,
            [self](job_result r) { deliver_final(self, std::move(r)); });
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
    if (entry.second == i)
      entry.second = no_reducer;
    if (entry.reducer != i)
      continue;
    if (entry.second != no_reducer) {
      // Its other attempt carries on alone.
      entry.reducer = entry.second;
      entry.sent = entry.second_sent;
      entry.second = no_reducer;
      continue;
    }
    entry.reducer = no_reducer;
    lost.push_back(id);
  }
  // Attempts it had lost are gone with it.
  st.abandoned.erase(std::remove_if(st.abandoned.begin(), st.abandoned.end(),
                                    [i](const abandoned_attempt& a) {
                                      return a.slot == i;
                                    }),
                     st.abandoned.end());
  std::sort(lost.begin(), lost.end(),
            [](const batch_id& x, const batch_id& y) {
              return x.source != y.source ? x.source < y.source
                                          : x.seq < y.seq;
            });
  for (auto j = lost.rbegin(); j != lost.rend(); ++j)
    st.queue.push_front(*j);
  st.redispatched += lost.size();
  return lost.size();
}

/// The slot of the attempt of `entry` that the current message comes from:
/// its sender's slot when that slot holds an attempt, no_reducer when it
/// holds none (a late answer). A sender outside the pool (a reducer already
/// replaced) answers for the first attempt, as before speculation existed.
std::size_t attempt_of(manager_actor_t* self, const in_flight_batch& entry) {
  auto& st = self->state;
  auto sender = self->current_sender();
  for (std::size_t i = 0; i < st.reducers.size(); ++i) {
    auto& r = st.reducers[i];
    if (r.handle && r.handle.address() == sender)
      return entry.reducer == i || entry.second == i ? i : no_reducer;
  }
  return entry.reducer != no_reducer ? entry.reducer : entry.second;
}

/// A late answer for batch `id`: if it ends an attempt that lost to the
/// other one, its reducer is free again.
void release_abandoned(manager_actor_t* self, batch_id id) {
  auto& st = self->state;
  if (st.abandoned.empty())
    return;
  auto sender = self->current_sender();
  for (auto a = st.abandoned.begin(); a != st.abandoned.end(); ++a) {
    auto& r = st.reducers[a->slot];
    if (a->id == id && r.handle && r.handle.address() == sender) {
      if (r.load > 0)
        --r.load;
      r.last_answer = std::chrono::steady_clock::now();
      st.abandoned.erase(a);
      dispatch(self);
      return;
    }
  }
}

/// Returns one credit to the generator of `source`.
void return_credit(manager_actor_t* self, std::uint32_t source) {
  auto& st = self->state;
  if (st.shard_backlog > st.shard_window) {
    // The shards lag behind: the credit waits for them (on_shard_done).
    st.owed.push_back(source);
    return;
  }
  auto& src = st.sources[source];
  --src.held;
  if (src.waiting) {
    // The source waited for this credit since its last batch.
    src.waiting = false;
    src.wait_seconds += seconds_between(src.wait_since,
                                        std::chrono::steady_clock::now());
  }
  if (!src.done && src.generator)
    self->send(src.generator, demand{1});
}

/// Counts a batch of `src` as merged: its elements were aggregated, rejected
/// or dead-lettered, and it no longer takes a credit.
void count_merged(source_info& src, std::uint64_t aggregated,
                  std::uint64_t rejected, std::uint64_t dead) {
  ++src.merged;
  src.aggregated += aggregated;
  src.rejected += rejected;
  src.dead += dead;
  --src.in_flight;
}

/// Sends a merged batch's rows and dead letters to the sink; the batch's
/// credit returns when the sink confirms. Rows leave only now, after the
/// batch id was applied once: a duplicate partial never writes its rows twice.
void send_to_sink(manager_actor_t* self, batch_id id, sink_write&& w) {
  auto& st = self->state;
  st.unwritten.emplace(id, true);
  self->send(st.sink, std::move(w));
}

// -- batches --------------------------------------------------------------------

/// Accepts a batch from a generator and queues it for a reducer.
void handle_failure(manager_actor_t* self, in_flight_table::iterator i,
                    const batch_failed& f);

void on_batch(manager_actor_t* self, batch& b) {
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
         "unexpected "
           + describe_batch(st, b.source, b.seq, b.first, b.items.size)
           + " (" + std::to_string(src.in_flight)
           + " batches in flight, credit " + std::to_string(st.opts.credits)
           + ")");
    return;
  }
  ++src.received;
  src.emitted += b.items.size;
  ++src.in_flight;
  bool starved = false;
  if (++src.held >= st.opts.credits && !src.waiting) {
    // Every credit in use: the source waits (backpressure) until one
    // returns. One clock read per such batch, not per element.
    src.waiting = true;
    src.wait_since = std::chrono::steady_clock::now();
    starved = true;
  }
  st.peak_in_flight = std::max(st.peak_in_flight, src.in_flight);
  batch_id id{b.source, b.seq};
  auto [pos, added] = st.pending.emplace(id,
                                         in_flight_batch{std::move(b),
                                                         no_reducer});
  if (id.seq == 0 && !st.inline_failures.empty()) {
    // The calling thread folded this batch first (a small job, see
    // inline.cpp) and the user function threw: that was its first try.
    auto f = st.inline_failures.find(id.source);
    if (f != st.inline_failures.end()) {
      auto& msg = pos->second.msg;
      batch_failed failed{msg.source, msg.seq, msg.first, msg.items.size,
                          std::move(f->second)};
      st.inline_failures.erase(f);
      handle_failure(self, pos, failed);
      return;
    }
  }
  st.queue.push_back(id);
  dispatch(self);
  // Credits held by batches a combining reducer holds come back only when
  // it answers: the source must not wait for a hold's timer.
  if (starved)
    flush_combining(self);
}

/// Checks that rows a reducer emitted for batch `b` can go to the job's
/// sink; fails the job and returns false when they cannot.
bool check_rows(manager_actor_t* self, const batch& b, const partial_msg& p) {
  auto& st = self->state;
  if (!st.sink) {
    fail(self, errc::invalid_config,
         describe_batch(st, b.source, b.seq, b.first, b.items.size)
           + ": the reducer emitted rows but the pipeline has no sink");
    return false;
  }
  if (!p.row_type || *p.row_type != *st.sink_type) {
    fail(self, errc::invalid_config,
         describe_batch(st, b.source, b.seq, b.first, b.items.size)
           + ": the reducer emitted rows of another type than the sink "
             "takes");
    return false;
  }
  return true;
}

/// Moves the compact table's keys to the general map, once: the first key
/// that is not an integer, or carries an aggregator state, makes every key
/// general.
void to_general(manager_state& st) {
  if (st.general)
    return;
  // (Should an insertion throw, merge_partial fails the job: the keys half
  // moved are never read.)
  st.aggregates.reserve(st.aggregates.size() + st.ints.size());
  // options::expected_keys: the entries' room at once, not by doubling,
  // and a quarter more, since estimates are rarely exact and one key past
  // the room doubles it (touching twice the memory).
  constexpr std::size_t max_hint = std::size_t{1} << 23;
  auto hint = std::min(st.opts.expected_keys, max_hint);
  try {
    st.aggregates.reserve_entries(hint + hint / 4);
  } catch (const std::exception&) {
    // Only a hint: where the room cannot be had (a commit limit, ulimit
    // -v), the map grows as keys come, as without it.
  }
  for (auto& e : st.ints)
    *st.aggregates.try_emplace(flow::key{e.key}).first = e.to_aggregate();
  st.ints.clear();
  st.general = true;
}

/// options::max_memory: writes the integer keys held as one sorted run and
/// empties the table (its storage kept); fails the job and returns false
/// when the run cannot be written.
bool spill(manager_actor_t* self) {
  auto& st = self->state;
  auto keys = st.ints.size();
  bool overflow = false;
  auto err = st.ints.drain_sorted([&](const int_entry* xs, std::size_t n) {
    return st.runs->write(xs, n, overflow);
  });
  if (!err.empty()) {
    fail(self, overflow ? errc::overflow : errc::spill_failed, err);
    return false;
  }
  logger()->info("spilled {} keys as run {} ({} entries in runs)", keys,
                 st.runs->count(), st.runs->entries());
  return true;
}

/// options::max_memory: makes room for `n` more keys in `ints` without
/// going past `max_keys` (spilling when the table is full); returns how
/// many may be merged now (at least 1), or 0 when the job failed.
std::size_t make_room(manager_actor_t* self, std::size_t n) {
  auto& st = self->state;
  if (st.ints.size() >= st.max_keys && !spill(self))
    return 0;
  n = std::min(n, st.max_keys - st.ints.size());
  // Grown by doubling, the table would overshoot the bound: the last step
  // goes to the bound exactly.
  auto need = st.ints.size() + n;
  if (need > st.ints.capacity())
    st.ints.reserve(std::min(st.max_keys,
                             std::max(need, st.ints.capacity() * 2)));
  return n;
}

/// Leaves the compact table for the general map (a key that is not an
/// integer, or carries aggregator states). Returns false, having failed the
/// job, when integer keys were spilled already: runs hold only those.
bool go_general(manager_actor_t* self) {
  auto& st = self->state;
  if (st.runs) {
    if (st.runs->count() > 0) {
      fail(self, errc::spill_failed,
           "a key that is not an integer, or carries aggregator states, "
           "came after integer keys were spilled (options::max_memory "
           "spills only integer keys of the built-in aggregate)");
      return false;
    }
    logger()->warn("options::max_memory is not kept for keys that are not "
                   "integers or carry aggregator states: they are not "
                   "spilled");
    st.runs.reset();
  }
  to_general(st);
  return true;
}

/// merge_partial's keyed part: the partial's keys into the running
/// aggregates; fails the job and returns false on overflow.
template <class What>
bool merge_keys(manager_actor_t* self, partial_msg& p, const What& what) {
  auto& st = self->state;
  if (st.auto_shards && (!p.ints.empty() || !p.entries.empty())) {
    // The default decides at the first partial with keys: entries are keys
    // that are not integers or carry aggregator states, whose state boxes
    // merged on shard threads measured slower than in the manager (their
    // frees contend for the reducers' malloc arenas; docs/benchmarks.md).
    st.auto_shards = false;
    if (!p.entries.empty())
      disband_shards(self);
  }
  if (!st.shards.empty()) {
    // The shards merge (and go general) for themselves.
    route_keys(self, p, what());
    return true;
  }
  // A key of this partial that must go to the general map moves the job
  // there before anything of the partial is merged: with a bound, before
  // its integer keys could be spilled (after which it could not go).
  if (!st.general)
    for (auto& [k, agg] : p.entries)
      if (!k.is_int() || !agg.states.empty()) {
        if (!go_general(self))
          return false;
        break;
      }
  auto bad = p.ints.size();
  if (!st.general && !st.runs) {
    bad = st.ints.merge_all(p.ints.data(), p.ints.size());
  } else if (!st.general) {
    // Bounded: merged in pieces that fit, spilling between them.
    std::size_t done = 0;
    while (done < p.ints.size()) {
      auto m = make_room(self, p.ints.size() - done);
      if (m == 0)
        return false;
      auto r = st.ints.merge_all(p.ints.data() + done, m);
      done += r;
      if (r != m)
        break;
    }
    bad = done;
  } else {
    for (std::size_t i = 0; i < p.ints.size() && bad == p.ints.size(); ++i)
      if (!st.aggregates[flow::key{p.ints[i].key}].merge(
            p.ints[i].to_aggregate()))
        bad = i;
  }
  if (bad != p.ints.size()) {
    fail(self, errc::overflow,
         "the aggregate of key '" + std::to_string(p.ints[bad].key)
           + "' left the exact 128-bit range while merging " + what());
    return false;
  }
  for (auto& [k, agg] : p.entries) {
    if (!st.general) {
      // An integer key without states: the scan above went general for
      // any other.
      if (st.runs && make_room(self, 1) == 0)
        return false;
      if (!st.ints[k.as_int()].merge(agg.sum, agg.count, agg.min, agg.max)) {
        fail(self, errc::overflow,
             "the aggregate of key '" + to_string(k)
               + "' left the exact 128-bit range while merging " + what());
        return false;
      }
      continue;
    }
    // The key moves in when new (the message is this handler's own); a
    // key found stays in the message, for the error below.
    auto [pos, fresh] = st.aggregates.try_emplace(std::move(k));
    auto& mine = *pos;
    if (fresh) {
      // A key this job has not seen: the reducer's aggregate is the
      // running one (merging it into an empty one would copy every
      // state); the message is this handler's own.
      mine = std::move(agg);
      continue;
    }
    if (!mine.merge(agg)) {
      // Say which part failed: the int64 sum, or an aggregator state.
      auto probe = mine;
      probe.states = state_row{};
      auto theirs = agg;
      theirs.states = state_row{};
      fail(self, errc::overflow,
           "the aggregate of key '" + to_string(k)
             + (probe.merge(theirs)
                  ? "' could not be merged exactly while merging " + what()
                      + " (an aggregator state overflowed or has other "
                        "parameters)"
                  : "' left the exact 128-bit range while merging " + what()));
      return false;
    }
  }
  return true;
}

/// Checks a partial against its batch `b` and merges its aggregates and
/// rejection reasons; fails the job and returns false when it does not add up.
bool merge_partial(manager_actor_t* self, const batch& b, partial_msg& p,
                   std::uint64_t dead) {
  auto& st = self->state;
  // Described only on failure: the common path builds no string.
  auto what = [&] {
    return describe_batch(st, b.source, b.seq, b.first, b.items.size);
  };
  if (p.size != b.items.size || p.rejected > p.size
      || dead > p.size - p.rejected) {
    fail(self, errc::accounting_mismatch,
         what() + ": the reducer reported " + std::to_string(p.size)
           + " elements (" + std::to_string(p.rejected) + " rejected, "
           + std::to_string(dead) + " dead-lettered)");
    return false;
  }
  if (p.overflow) {
    fail(self, errc::overflow,
         what() + ": a partial aggregate overflowed (a 128-bit sum or an "
                  "aggregator state left its exact range)");
    return false;
  }
  // Growing the keyed state may fail (memory, or more than 2^32 - 2
  // integer keys in one table): the job fails, nothing throws out of the
  // handler.
  try {
    if (!merge_keys(self, p, what))
      return false;
  } catch (const std::exception& e) {
    // Memory, or a table's length limit; anything else came from user code:
    // an aggregator state's merge that threw (it should return false),
    // which is the reduction's failure.
    bool memory = dynamic_cast<const std::bad_alloc*>(&e) != nullptr
                  || dynamic_cast<const std::length_error*>(&e) != nullptr;
    fail(self, memory ? errc::out_of_memory : errc::reducer_failed,
         (memory ? "the keyed state could not grow while merging "
                 : "an aggregator state's merge threw while merging ")
           + what() + ": " + e.what());
    return false;
  } catch (...) {
    fail(self, errc::reducer_failed,
         "an aggregator state's merge threw while merging " + what()
           + ": unknown exception");
    return false;
  }
  for (auto& [reason, n] : p.reasons)
    st.reasons[reason] += n;
  return p.row_count == 0 || check_rows(self, b, p);
}

/// Counts the batch at `i`, whose partial (from the attempt in slot `from`)
/// was merged, as done: the reducer's load, speculation's bookkeeping and
/// the reduce time the threshold's median is made of. Removes it from the
/// in-flight table.
void settle(manager_actor_t* self, in_flight_table::iterator i,
            std::size_t from, std::uint64_t aggregated,
            std::uint64_t rejected, std::uint64_t dead) {
  auto& st = self->state;
  auto id = i->first;
  auto& entry = i->second;
  count_merged(st.sources[id.source], aggregated, rejected, dead);
  auto& slot = st.reducers[from];
  --slot.load;
  ++slot.merged;
  if (slot.remote)
    ++st.remote_batches;
  auto sent = entry.sent;
  if (from == entry.second) {
    // The second attempt answered first: the first one's reducer was slow.
    ++st.speculation_won;
    sent = entry.second_sent;
    ++st.reducers[entry.reducer].overtaken;
    st.abandoned.push_back({id, entry.reducer});
    logger()->info("{}: the second attempt answered first; the first one's "
                   "answer will be dropped",
                   describe_batch(st, id.source, id.seq, entry.msg.first,
                                  entry.msg.items.size));
  } else if (entry.second != no_reducer) {
    st.abandoned.push_back({id, entry.second});
  }
  // With up to reducer_queue batches per reducer, one waits behind another
  // before its reducer starts on it: the threshold's median counts from the
  // later of its dispatch and its reducer's previous answer. Counted from
  // dispatch, the median was twice a batch's work on a busy job, and a node
  // at a tenth of its speed on a loaded machine stayed under four times it.
  // A combining reducer's batches wait for the others folded with them
  // (and are never speculated): their times would inflate the median that
  // the other reducers' (worker nodes') batches are judged by.
  auto now = std::chrono::steady_clock::now();
  observe_reduce_time(st, seconds_between(sent, now),
                      seconds_between(std::max(sent, slot.last_answer), now),
                      !combines(st, from));
  st.pending.erase(i);
}

/// The other batches of a combined partial (partial_msg::more): each must
/// be in flight at the sender (`from`, the first batch's attempt) with the
/// size the reducer reports; fails the job and returns false otherwise.
/// Fills `at` with their places in the in-flight table.
bool check_more(manager_actor_t* self, const partial_msg& p,
                std::size_t from,
                std::vector<in_flight_table::iterator>& at) {
  auto& st = self->state;
  if (p.more.empty())
    return true;
  // (Rows without a sink fail the job in merge_partial, as they do
  // without combining.)
  if (!p.dead.empty() || st.sink) {
    fail(self, errc::protocol_violation,
         "a partial of " + std::to_string(p.more.size() + 1)
           + " batches came with dead letters or for a job with a sink");
    return false;
  }
  at.reserve(p.more.size());
  for (auto& part : p.more) {
    auto i = st.pending.find(batch_id{part.source, part.seq});
    if (i == st.pending.end() || attempt_of(self, i->second) != from
        || part.size != i->second.msg.items.size
        || part.rejected > part.size
        || (!at.empty() && std::find(at.begin(), at.end(), i) != at.end())
        || (part.source == p.source && part.seq == p.seq)) {
      fail(self, errc::accounting_mismatch,
           "a partial of " + std::to_string(p.more.size() + 1)
             + " batches names batch " + std::to_string(part.seq)
             + " of source " + std::to_string(part.source) + " ("
             + std::to_string(part.size)
             + " elements), which is not in flight at that reducer with "
               "that size, or twice");
      return false;
    }
    at.push_back(i);
  }
  return true;
}

void on_partial_impl(manager_actor_t* self, partial_msg& p);

/// Applies a reducer's partial aggregate of a batch in flight (or of
/// several, folded together by a combining reducer), once; then sends the
/// storage of its integer entries back to a local reducer.
void on_partial(manager_actor_t* self, partial_msg& p) {
  auto& st = self->state;
  if (auto& from = self->current_sender(); from && from->node() == self->node())
    st.ints_owner = caf::actor_cast<caf::actor>(from);
  on_partial_impl(self, p);
  // Whatever path the partial took, storage still here goes back.
  give_back_ints(st.ints_owner, std::move(p.ints));
  st.ints_owner = nullptr;
}

/// on_partial's work on the partial itself.
void on_partial_impl(manager_actor_t* self, partial_msg& p) {
  auto& st = self->state;
  if (st.finished)
    return;
  batch_id id{p.source, p.seq};
  auto i = st.pending.find(id);
  auto from = i == st.pending.end() ? no_reducer : attempt_of(self, i->second);
  if (from == no_reducer && !p.more.empty()) {
    // Combining reducers' batches have no second attempt, so a combined
    // partial is never a late one: dropping it would lose its other
    // batches' answer.
    fail(self, errc::accounting_mismatch,
         "a partial of " + std::to_string(p.more.size() + 1)
           + " batches names batch " + std::to_string(p.seq) + " of source "
           + std::to_string(p.source)
           + ", which is not in flight at that reducer");
    return;
  }
  if (from == no_reducer) {
    // Each batch id is applied once: a late or repeated partial is a
    // duplicate and must not count twice.
    logger()->debug("dropping duplicate partial for batch {} of source {}",
                    p.seq, p.source);
    release_abandoned(self, id);
    return;
  }
  std::vector<in_flight_table::iterator> more;
  if (!check_more(self, p, from, more))
    return;
  std::uint64_t dead = 0;
  for (auto& letter : p.dead)
    dead += letter.count;
  if (!merge_partial(self, i->second.msg, p, dead))
    return;
  auto first = i->second.msg.first;
  ++st.partials;
  settle(self, i, from, p.size - p.rejected - dead, p.rejected, dead);
  for (std::size_t k = 0; k < more.size(); ++k) {
    auto& part = p.more[k];
    settle(self, more[k], from, part.size - part.rejected, part.rejected, 0);
    return_credit(self, part.source);
  }
  st.reducers[from].last_answer = std::chrono::steady_clock::now();
  if (!p.dead.empty() && !record_dead_letters(self, p.dead))
    return;
  if (p.row_count > 0
      || (st.sink && (!p.dead.empty() || st.sink_every_batch))) {
    send_to_sink(self, batch_id{p.source, p.seq},
                 sink_write{p.source, p.seq, first, p.size, std::move(p.dead),
                            std::move(p.rows), p.row_count});
  } else {
    // Return the credit: the generator may emit one more batch.
    return_credit(self, p.source);
  }
  dispatch(self);
  check_complete(self);
}

/// Gives up on a batch that failed every retry (failure_policy::skip): the
/// whole batch becomes one dead letter.
void skip_batch(manager_actor_t* self, const batch_failed& f,
                in_flight_table::iterator i) {
  auto& st = self->state;
  auto& entry = i->second;
  std::vector<dead_letter> dead(1);
  dead[0].source = f.source;
  dead[0].index = entry.msg.first;
  dead[0].count = entry.msg.items.size;
  dead[0].error = f.what;
  count_merged(st.sources[f.source], 0, 0, entry.msg.items.size);
  auto id = i->first;
  st.pending.erase(i);
  if (!record_dead_letters(self, dead))
    return;
  if (st.sink) {
    auto index = dead[0].index;
    auto count = dead[0].count;
    send_to_sink(self, id,
                 sink_write{id.source, id.seq, index, count, std::move(dead),
                            nullptr, 0});
  } else {
    return_credit(self, id.source);
  }
  dispatch(self);
  check_complete(self);
}

/// The user function threw on the batch at `i` (which no reducer holds
/// now): retry it, bisect it, skip it or fail the job, as
/// options::on_failure says.
void handle_failure(manager_actor_t* self, in_flight_table::iterator i,
                    const batch_failed& f) {
  auto& st = self->state;
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
  ++entry.failures;
  if (entry.failures <= st.opts.retries) {
    ++st.retried;
    logger()->warn("{}; retry {} of {}", what, entry.failures,
                   st.opts.retries);
    note_error(st, what);
    st.queue.push_front(i->first);
    dispatch(self);
    return;
  }
  if (st.opts.on_failure == failure_policy::dead_letter) {
    logger()->warn("{}; failed {} times, bisecting", what, entry.failures);
    entry.msg.bisect = 1;
    st.queue.push_front(i->first);
    dispatch(self);
    return;
  }
  logger()->warn("{}; failed {} times, skipping the batch", what,
                 entry.failures);
  skip_batch(self, f, i);
}

/// The user function threw on a batch: retry it on another reducer, bisect
/// it, skip it or fail the job, as options::on_failure says.
void on_batch_failed(manager_actor_t* self, const batch_failed& f) {
  auto& st = self->state;
  if (st.finished)
    return;
  batch_id id{f.source, f.seq};
  auto i = st.pending.find(id);
  auto from = i == st.pending.end() ? no_reducer : attempt_of(self, i->second);
  if (from == no_reducer) {
    // The batch was merged or re-dispatched meanwhile (its reducer was
    // replaced, or another attempt answered): this report is stale.
    release_abandoned(self, id);
    return;
  }
  auto& entry = i->second;
  --st.reducers[from].load;
  entry.avoid = from;
  if (entry.second != no_reducer)
    entry.attempt_failed = true;
  if (from == entry.reducer) {
    entry.reducer = entry.second;
    entry.sent = entry.second_sent;
  }
  entry.second = no_reducer;
  if (entry.reducer != no_reducer) {
    // Its other attempt still runs: its answer decides (a function that
    // throws on these elements throws there too, and is handled then).
    dispatch(self);
    return;
  }
  entry.attempt_failed = false;
  handle_failure(self, i, f);
}

// -- sources ----------------------------------------------------------------------

/// A generator reached the end of its source: check its counts.
void on_source_done(manager_actor_t* self, const source_done& d) {
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
           + ") reported " + std::to_string(d.elements) + " elements in "
           + std::to_string(d.batches) + " batches, the manager received "
           + std::to_string(src.emitted) + " in "
           + std::to_string(src.received));
    return;
  }
  src.done = true;
  if (all_sources_done(st))
    flush_combining(self);
  check_complete(self);
}

/// A source threw: the job fails with its error.
void on_source_failed(manager_actor_t* self, source_failed& f) {
  auto& st = self->state;
  if (st.finished)
    return;
  if (code_of(f.reason) != errc::none)
    finish(self, std::move(f.reason));
  else
    fail(self, errc::source_failed, describe(f.reason));
}

// -- the sink ---------------------------------------------------------------------

/// The sink wrote a merged batch: its credit returns.
void on_sink_written(manager_actor_t* self, const sink_written& w) {
  auto& st = self->state;
  if (st.finished)
    return;
  if (st.unwritten.erase(batch_id{w.source, w.seq}) == 0) {
    fail(self, errc::protocol_violation,
         "the sink confirmed batch " + std::to_string(w.seq) + " of source "
           + std::to_string(w.source) + ", which it was not sent");
    return;
  }
  st.written += w.row_count;
  return_credit(self, w.source);
  check_complete(self);
}

/// The sink's rows per output (cumulative): replaces the last report.
void on_sink_outputs(manager_actor_t* self, sink_outputs& o) {
  auto& st = self->state;
  if (o.names.size() != o.rows.size())
    return;
  st.outputs.clear();
  for (std::size_t i = 0; i < o.names.size(); ++i)
    st.outputs.emplace_back(std::move(o.names[i]), o.rows[i]);
}

/// The sink failed: the job fails with its error.
void on_sink_failed(manager_actor_t* self, sink_failed& f) {
  if (!self->state.finished)
    finish(self, std::move(f.reason));
}

/// The sink committed: the job can complete.
void on_committed(manager_actor_t* self) {
  auto& st = self->state;
  if (st.finished)
    return;
  st.committing = false;
  st.committed = true;
  check_complete(self);
}

// -- actors that end --------------------------------------------------------------

/// The generator of source `i` is gone; before its end, that fails the job.
void on_generator_down(manager_actor_t* self, std::size_t i,
                       const caf::down_msg& dm) {
  auto& st = self->state;
  auto& src = st.sources[i];
  src.generator = nullptr;
  if (!src.done && !st.stopping)
    fail(self, errc::actor_down,
         "the generator of source " + std::to_string(i) + " (" + src.name
           + ") terminated before its end: " + caf::to_string(dm.reason));
}

/// A worker node's reducer is gone (the node died, or its connection did):
/// its batches go back to the front of the queue for the others; a late
/// partial from it would be a dropped duplicate.
void on_remote_reducer_down(manager_actor_t* self, std::size_t i,
                            const caf::down_msg& dm) {
  auto& st = self->state;
  requeue_batches_of(self, i);
  auto node = st.reducers[i].node;
  st.reducers[i].handle = nullptr;
  st.reducers[i].load = 0;
  logger()->warn("lost a reducer of worker node {} ({})", node,
                 caf::to_string(dm.reason));
  note_error(st, "lost a reducer of worker node " + node);
  dispatch(self);
}

/// A local reducer is gone: replace it, up to options::max_replacements.
void on_local_reducer_down(manager_actor_t* self, std::size_t i,
                           const caf::down_msg& dm) {
  auto& st = self->state;
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
  auto r = spawn_reducer(self, caf::actor{self}, st.fn, st.format,
                         st.opts.crash_reducer, st.combine,
                         st.opts.combine_hold, st.shards.size());
  self->monitor(r);
  st.reducers[i] = {r, 0, false, {}, 0};
  auto lost = requeue_batches_of(self, i);
  logger()->warn("reducer {} terminated ({}); replaced it, {} batches "
                 "dispatched again",
                 i, caf::to_string(dm.reason), lost);
  note_error(st, "reducer " + std::to_string(i) + " terminated ("
                   + caf::to_string(dm.reason) + "); replaced");
  dispatch(self);
}

/// An actor of the job is gone. Before the end, only a generator at the end
/// of its source may go; after it, the manager counts them down.
void on_down(manager_actor_t* self, caf::down_msg& dm) {
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
    if (st.sources[i].generator.address() == dm.source) {
      on_generator_down(self, i, dm);
      return;
    }
  }
  for (std::size_t i = 0; i < st.shards.size(); ++i) {
    if (st.shards[i].address() == dm.source) {
      fail(self, errc::actor_down,
           "manager shard " + std::to_string(i)
             + " terminated: " + caf::to_string(dm.reason));
      return;
    }
  }
  for (std::size_t i = 0; i < st.reducers.size(); ++i) {
    auto& r = st.reducers[i];
    if (!r.handle || r.handle.address() != dm.source)
      continue;
    if (r.remote)
      on_remote_reducer_down(self, i, dm);
    else
      on_local_reducer_down(self, i, dm);
    return;
  }
}

// -- the job handle and worker nodes ------------------------------------------------

/// Answers job::snapshot: what is merged so far.
caf::result<job_result> on_snapshot(manager_actor_t* self) {
  // After the last result moved the keys out of the map, the job has ended
  // (its result waits for the actors to be gone): answer with that result,
  // as job::snapshot does once the job is done.
  auto& st = self->state;
  // Also once the job has ended otherwise (stopped, failed) and waits for
  // its actors: its result or error, not a fresh snapshot.
  if (st.consumed || st.finished) {
    if (st.deferred)
      return *st.deferred;
    return st.deferred.error();
  }
  if (st.consuming) {
    // The last result empties the shards: answer with the outcome.
    auto rp = self->make_response_promise();
    st.snapshot_waiters.push_back(rp);
    return rp;
  }
  caf::error why;
  auto res = result_or_fail(self, false, false, &why, true);
  if (!res)
    return why;
  if (st.shards.empty())
    return std::move(*res);
  auto rp = self->make_response_promise<job_result>();
  auto shared = std::make_shared<job_result>(std::move(*res));
  gather_keys(self, false, false, [self, rp, shared](shard_parts parts) mutable {
    auto& st = self->state;
    caf::error err;
    if (!parts)
      err = std::move(parts.error());
    else
      attach_parts(st, *shared, *parts, false, err);
    if (err) {
      // A snapshot that fails changes nothing: it fails alone.
      logger()->warn("a snapshot failed: {}", describe(err));
      note_error(st, "a snapshot failed: " + describe(err));
      rp.deliver(std::move(err));
      return;
    }
    rp.deliver(std::move(*shared));
  });
  return rp;
}

/// job::cancel: fail at once.
void on_cancel(manager_actor_t* self) {
  fail(self, errc::cancelled, "the job was cancelled");
}

/// job::stop: stop the generators (what they still send is not accepted),
/// let the accepted batches drain for up to `drain_ms`, then deliver a
/// partial result.
void on_stop(manager_actor_t* self, std::uint64_t drain_ms) {
  auto& st = self->state;
  if (st.finished || st.stopping)
    return;
  st.stopping = true;
  for (auto& src : st.sources)
    if (src.generator)
      self->send(src.generator, quit_atom::value);
  logger()->info("stopping: draining {} batches in flight",
                 st.pending.size());
  flush_combining(self);
  self->delayed_send(self, std::chrono::milliseconds(drain_ms),
                     drain_timeout_atom::value);
  check_complete(self);
}

/// The drain after job::stop took too long: deliver what is merged, and say
/// how much was abandoned.
void on_drain_timeout(manager_actor_t* self) {
  auto& st = self->state;
  if (st.finished || st.gathering)
    return;
  auto res = result_or_fail(self, false);
  if (!res)
    return;
  res->partial = true;
  for (auto& [id, entry] : st.pending)
    res->abandoned += entry.msg.items.size;
  logger()->warn("drain timed out: {} elements in {} batches abandoned",
                 res->abandoned, st.pending.size());
  // Batches merged while the shards answer are in neither the figures nor
  // the keys.
  with_keys(self, std::move(*res), false, false,
            [self](job_result r) { finish(self, std::move(r)); });
}

/// A worker node lends the job a reducer.
void on_join(manager_actor_t* self, caf::actor reducer, std::string node) {
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
  st.reducers.push_back({reducer, 0, true, node, 0});
  logger()->info("worker node {} lent a reducer ({} reducers now)", node,
                 st.reducers.size());
  dispatch(self);
}

/// After the end, the linger time for generators passed.
void on_linger(manager_actor_t* self) {
  self->state.linger_expired = true;
  deliver_if_quiet(self);
}

// -- starting a job -------------------------------------------------------------------

// The manager monitors every actor it spawns, so that an actor that dies
// without reporting its work fails the job instead of hanging it.

/// Spawns the manager shards (options::manager_shards), if any.
void start_shards(manager_actor_t* self) {
  auto& st = self->state;
  auto n = st.opts.manager_shards == 0 ? default_manager_shards()
                                       : st.opts.manager_shards;
  // Spilling (max_memory) works on the manager's own table.
  if (n < 2 || st.runs)
    return;
  st.auto_shards = st.opts.manager_shards == 0;
  for (std::size_t i = 0; i < n; ++i) {
    auto s = spawn_shard(self, caf::actor{self},
                         static_cast<std::uint32_t>(i));
    self->monitor(s);
    st.shards.push_back(std::move(s));
  }
  st.shard_key_counts.assign(st.shards.size(), 0);
  // About two partials per shard may wait at the shards.
  st.shard_window = 2 * st.shards.size();
}

/// Spawns the local reducer pool.
void start_reducers(manager_actor_t* self) {
  auto& st = self->state;
  for (std::size_t i = 0; i < st.opts.reducers; ++i) {
    auto r = spawn_reducer(self, caf::actor{self}, st.fn, st.format,
                           st.opts.crash_reducer, st.combine,
                           st.opts.combine_hold, st.shards.size());
    self->monitor(r);
    st.reducers.push_back({r, 0, false, {}, 0});
  }
}

/// Spawns one generator per source.
void start_generators(manager_actor_t* self, const job_spec& spec) {
  auto& st = self->state;
  for (std::size_t i = 0; i < spec.sources.size(); ++i) {
    auto& entry = spec.sources[i];
    source_info info;
    info.name = entry.src->name();
    info.label = entry.label;
    info.labeled = entry.labeled;
    info.total = entry.src->size_hint();
    info.total_is_estimate = info.total && entry.src->size_is_estimate();
    info.task = entry.src->task();
    info.generator = spawn_generator(self, caf::actor{self},
                                     static_cast<std::uint32_t>(i), entry.src,
                                     entry.label, st.opts.batch_size);
    self->monitor(info.generator);
    st.sources.push_back(std::move(info));
  }
}

/// Spawns the sink actor, if the job has a sink.
void start_sink(manager_actor_t* self, const job_spec& spec) {
  auto& st = self->state;
  if (!spec.sink)
    return;
  st.sink_name = spec.sink->name();
  st.sink_type = &spec.sink->row_type();
  st.sink_every_batch = spec.sink->wants_every_batch();
  st.sink = spawn_sink(self, caf::actor{self}, spec.sink);
  self->monitor(st.sink);
}

caf::behavior manager_actor(manager_actor_t* self,
                            std::shared_ptr<job_spec> spec,
                            std::shared_ptr<job_impl> impl) {
  auto& st = self->state;
  st.impl = std::move(impl);
  st.opts = spec->opts;
  self->set_default_handler(caf::drop);
  st.fn = std::make_shared<const erased_reducer>(std::move(spec->reduce));
  st.format = spec->format;
  st.reducer_name = spec->reducer_name;
  st.inline_failures.insert(spec->inline_failures.begin(),
                            spec->inline_failures.end());
  if (st.opts.max_memory > 0) {
    // At least 1024 keys: a smaller table would spill a run per batch.
    auto bound = static_cast<std::size_t>(std::min<std::uint64_t>(
      st.opts.max_memory, std::numeric_limits<std::size_t>::max()));
    // ... and at most what one table can index (2^32 - 2 keys).
    st.max_keys = std::min<std::size_t>(
      std::max<std::size_t>(1024, int_table::keys_within(bound)),
      std::numeric_limits<std::uint32_t>::max() - 1);
    st.runs = std::make_unique<int_runs>(spill_directory(st.opts));
  }
  // Without a sink: rows and dead letters go out per batch, so batches
  // folded together could not be written apart.
  st.combine = st.sink ? 1 : std::max<std::size_t>(1, st.opts.combine_batches);
  start_shards(self);
  start_reducers(self);
  start_generators(self, *spec);
  start_sink(self, *spec);
  spec.reset();
  // The sink links to us; its exit must not take the manager down with it.
  self->set_exit_handler([](caf::exit_msg&) {});
  self->set_down_handler([=](caf::down_msg& dm) { on_down(self, dm); });
  // Grant the initial credit right away (one message hop less for small
  // jobs); a job without sources completes on its first message.
  auto credits = static_cast<std::uint32_t>(st.opts.credits);
  for (auto& src : st.sources)
    self->send(src.generator, demand{credits});
  if (st.sources.empty())
    self->send(self, start_atom::value);
  publish_stats(st);
  if (st.opts.stats_interval.count() > 0)
    self->delayed_send(self, st.opts.stats_interval, stats_atom::value);
  if (st.opts.speculation)
    self->delayed_send(self, speculation_interval(st.opts),
                       speculate_atom::value);
  return {
    [=](start_atom) { check_complete(self); },
    [=](batch& b) { on_batch(self, b); },
    [=](partial_msg& p) { on_partial(self, p); },
    [=](const sink_written& w) { on_sink_written(self, w); },
    [=](sink_outputs& o) { on_sink_outputs(self, o); },
    [=](sink_failed& f) { on_sink_failed(self, f); },
    [=](committed_atom) { on_committed(self); },
    [=](const source_done& d) { on_source_done(self, d); },
    [=](source_failed& f) { on_source_failed(self, f); },
    [=](const batch_failed& f) { on_batch_failed(self, f); },
    [=](shard_failed& f) { on_shard_failed(self, f); },
    [=](shard_done_atom) { on_shard_done(self); },
    [=](snapshot_atom) -> caf::result<job_result> {
      return on_snapshot(self);
    },
    [=](cancel_atom) { on_cancel(self); },
    [=](stop_atom, std::uint64_t drain_ms) { on_stop(self, drain_ms); },
    [=](join_atom, caf::actor reducer, std::string node) {
      on_join(self, std::move(reducer), std::move(node));
    },
    [=](linger_atom) { on_linger(self); },
    [=](drain_timeout_atom) { on_drain_timeout(self); },
    [=](stats_atom) { on_stats_tick(self); },
    [=](speculate_atom) { on_speculate_tick(self); },
  };
}

} // namespace

caf::actor spawn_manager(caf::actor_system& sys, std::shared_ptr<job_spec> spec,
                         std::shared_ptr<job_impl> impl) {
  std::weak_ptr<job_impl> weak = impl;
  auto mgr = sys.spawn(manager_actor, std::move(spec), std::move(impl));
  // The last line of defence: a manager that terminates without delivering
  // (an exception no handler caught, which CAF turns into the actor's exit)
  // would leave job::wait() blocked for ever. Its exit reason becomes the
  // job's error instead; after a normal delivery this does nothing.
  mgr->attach_functor([weak](const caf::error& reason) {
    auto impl = weak.lock();
    if (!impl)
      return;
    auto why = "the job's manager terminated before the end of the job: "
               + (reason ? describe(reason) : std::string{"no error"});
    bool first = false;
    {
      // The statistics say so too (a status page would show it running):
      // the last ones published, marked failed, with the error.
      std::unique_lock<std::mutex> guard{impl->mtx};
      if (!impl->done) {
        auto xs = impl->stats ? std::make_shared<job_stats>(*impl->stats)
                              : std::make_shared<job_stats>();
        xs->state = job_state::failed;
        xs->errors.push_back(why);
        guard.unlock();
        impl->publish(std::move(xs));
        first = impl->complete(make_error(errc::actor_down, why));
      }
    }
    if (first)
      logger()->error("{}", why);
  });
  return mgr;
}

} // namespace flow::detail
