#pragma once

// The manager's state: the batches in flight, the reducer pool, the sources'
// counters and the aggregates. Private to manager.cpp; a header of its own so
// that the state can be read apart from the handlers that change it.

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <memory>
#include <string>
#include <typeinfo>
#include <unordered_map>
#include <vector>

#include <caf/actor.hpp>
#include <caf/expected.hpp>
#include <caf/response_promise.hpp>
#include <caf/stateful_actor.hpp>

#include "engine.hpp"
#include "key_map.hpp"
#include "spill.hpp"
#include "flow/aggregate.hpp"
#include "flow/detail/int_table.hpp"
#include "flow/detail/messages.hpp"
#include "flow/key.hpp"
#include "flow/options.hpp"
#include "flow/result.hpp"

namespace flow::detail {

// -- batch ids and the in-flight table -----------------------------------------

/// Names a batch: the manager applies each id once.
struct batch_id {
  std::uint32_t source;
  std::uint64_t seq;
  bool operator==(const batch_id& other) const noexcept {
    return source == other.source && seq == other.seq;
  }
};

/// Hashes a batch id for the in-flight table.
struct batch_id_hash {
  std::size_t operator()(const batch_id& x) const noexcept {
    return std::hash<std::uint64_t>{}(x.seq * 0x9e3779b97f4a7c15ULL
                                      ^ x.source);
  }
};

/// The slot of no reducer: a batch in the queue, not handed out.
constexpr std::size_t no_reducer = static_cast<std::size_t>(-1);

/// A batch the manager holds until its partial is merged.
struct in_flight_batch {
  batch msg;
  /// The reducer slot it was handed to; no_reducer while queued.
  std::size_t reducer = no_reducer;
  /// How often the reducer function threw on this batch.
  std::size_t failures = 0;
  /// The reducer it failed on last: a retry goes elsewhere when it can.
  std::size_t avoid = no_reducer;
  /// When it was handed to its reducer (the reduce-time histogram).
  std::chrono::steady_clock::time_point sent{};
  /// The slot of a second attempt (speculation, options::speculation);
  /// no_reducer when none runs. The first answer of either is merged.
  std::size_t second = no_reducer;
  /// When the second attempt was dispatched.
  std::chrono::steady_clock::time_point second_sent{};
  /// One of two attempts threw: no more second attempts (the held one
  /// decides; a function that throws on these elements throws there too).
  bool attempt_failed = false;
  /// True while some reducer holds an attempt of it.
  bool held() const noexcept {
    return reducer != no_reducer || second != no_reducer;
  }
};

/// The batches received and not yet merged, by id.
using in_flight_table
  = std::unordered_map<batch_id, in_flight_batch, batch_id_hash>;

// -- sources and reducers -------------------------------------------------------

/// A source, its generator and its counters (docs/guarantees.md: every
/// element emitted is aggregated, rejected or dead-lettered).
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
  // -- statistics (flow/job_stats.hpp) --
  std::optional<std::uint64_t> total; // elements in all, when known
  bool total_is_estimate = false; // total is an estimate
  std::shared_ptr<const task_monitor> task; // a task source's rows, or null
  std::uint64_t held = 0;       // credits in use (received, not returned)
  bool waiting = false;         // held == credits since wait_since
  std::chrono::steady_clock::time_point wait_since{};
  double wait_seconds = 0;      // closed waits
};

/// One slot of the reducer pool.
struct reducer_slot {
  /// Null once a remote reducer is gone (its slot is never reused).
  caf::actor handle;
  std::size_t load = 0;
  /// True for a reducer a worker node lent to this job.
  bool remote = false;
  /// The worker node's name (remote reducers).
  std::string node;
  /// Batches merged from this reducer (remote reducers: per node statistics).
  std::uint64_t merged = 0;
  /// Attempts of this slot that a speculative copy overtook: once it has
  /// been overtaken, it is given one batch at a time.
  std::uint64_t overtaken = 0;
  /// When this slot last answered (a partial, or a dropped late attempt):
  /// a batch queued behind another starts then, not when it was sent.
  std::chrono::steady_clock::time_point last_answer{};
};

/// An attempt whose batch was merged from the other attempt: its reducer
/// is still busy with it (its load counts it) until it answers or is gone.
struct abandoned_attempt {
  batch_id id;
  std::size_t slot;
};

// -- the manager's state ----------------------------------------------------------

/// Everything the manager of one job knows.
struct manager_state {
  std::shared_ptr<job_impl> impl;
  options opts;
  std::vector<source_info> sources;
  /// The reducer pool: local reducers first, then those lent by worker nodes.
  std::vector<reducer_slot> reducers;
  in_flight_table pending;
  /// The ids of pending batches not handed to a reducer, in dispatch order.
  std::deque<batch_id> queue;
  /// The running aggregates of integer keys while every key is one and
  /// carries only the built-in aggregate (48 bytes a key)...
  int_table ints;
  /// ... and of every key once one is not (`general`; `ints` is then empty).
  key_map aggregates;
  bool general = false;
  /// options::max_memory: the runs of integer keys spilled so far (null
  /// without a bound, or once the keys went general), and the most keys
  /// `ints` may hold.
  std::unique_ptr<int_runs> runs;
  std::size_t max_keys = 0;
  /// What went wrong merging the runs for a result (the job fails), and
  /// whether it was an overflow rather than a read error.
  std::string spill_error;
  bool spill_overflow = false;
  /// Sources whose first batch the calling thread tried and the user
  /// function threw on (job_spec::inline_failures), with what it said.
  std::map<std::uint32_t, std::string> inline_failures;
  /// What `options::on_result_key` threw, if it did.
  std::string result_key_error;
  /// The last result moved the aggregates out (make_result's `consume`);
  /// `keys_at_end` is how many there were.
  bool consumed = false;
  std::size_t keys_at_end = 0;
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
  /// Rows per output of a sink with several (its last report).
  std::vector<std::pair<std::string, std::uint64_t>> outputs;
  bool committing = false;
  bool committed = false;
  // -- statistics (flow/job_stats.hpp), published by publish_stats --
  std::chrono::system_clock::time_point started = std::chrono::system_clock::now();
  std::chrono::steady_clock::time_point started_steady
    = std::chrono::steady_clock::now();
  std::uint64_t dispatched = 0;
  std::uint64_t redispatched = 0;
  /// Batches a local reducer folds into one partial at most
  /// (options::combine_batches; 1 with a sink).
  std::size_t combine = 1;

  // -- speculation (options::speculation) --
  /// Losing attempts still running (their answers are dropped).
  std::vector<abandoned_attempt> abandoned;
  /// Second attempts dispatched, and those merged before the first.
  std::uint64_t speculated = 0;
  std::uint64_t speculation_won = 0;
  /// Partial aggregates merged (job_result::partials).
  std::uint64_t partials = 0;
  /// The reduce times of the last merged batches (a ring; each from the
  /// later of its dispatch and its reducer's previous answer), whose median
  /// scales the speculation threshold.
  std::array<double, 64> recent_times{};
  std::size_t recent_count = 0;
  std::array<std::uint64_t, job_stats::reduce_buckets + 1> reduce_counts{};
  double reduce_seconds = 0;
  /// The last few warnings and errors, oldest first.
  std::deque<std::string> recent_errors;
  // -- manager shards (options::manager_shards) --
  /// The shards that hold the keyed state; empty: the manager holds it.
  std::vector<caf::actor> shards;
  /// The local reducer whose partial is being merged, to which its `ints`
  /// storage goes back (int_storage); null while none is, or for a remote one.
  caf::actor ints_owner;
  /// options::manager_shards was 0 (the default): the shards stay only if
  /// the first partial with keys is compact (integer keys of the built-in
  /// aggregate), decided there; else the manager keeps the keys.
  bool auto_shards = false;
  /// How many keys each shard held when it last said (statistics).
  std::vector<std::uint64_t> shard_key_counts;
  /// The keys of a result that ends the job are being gathered from the
  /// shards (a stopped job's, or the last); `consuming`: the last one,
  /// which empties them.
  bool gathering = false;
  /// The local reducers were told to free their spare storage (spares_atom).
  bool spares_freed = false;
  bool consuming = false;
  /// Flow control: shard_merge messages sent and not yet merged, and the
  /// most there may be before merged batches' credits are held back (in
  /// `owed`, by source, paid as the shards catch up), so that keys queued
  /// at slow shards stay bounded like batches in flight.
  std::size_t shard_backlog = 0;
  std::size_t shard_window = 0;
  std::deque<std::uint32_t> owed;
  /// Snapshots asked while the last result's keys were gathered: answered
  /// with the job's outcome, as after its end.
  std::vector<caf::response_promise> snapshot_waiters;
  /// What to deliver once the aborting sink is down (an error, or the
  /// partial result of a stopped job).
  caf::expected<job_result> deferred{caf::error{}};
  static inline const char* name = "flow.manager";
};

/// The manager actor.
using manager_actor_t = caf::stateful_actor<manager_state>;

} // namespace flow::detail
