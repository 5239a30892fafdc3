#pragma once

/// @file
/// Tuning knobs of a pipeline.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

#include "flow/result.hpp"

namespace flow {

/// What a job does when the reducer function throws on a batch.
enum class failure_policy : std::uint8_t {
  /// The first throw ends the job with errc::reducer_failed.
  fail_fast,
  /// Retry the batch (on another reducer) up to `options::retries` times;
  /// if it still fails, bisect it down to the elements that fail, report
  /// those as dead letters and merge the rest.
  dead_letter,
  /// Retry like dead_letter; if it still fails, report the whole batch as one
  /// dead letter without bisecting (cheaper when failures are rare but whole
  /// batches are bad).
  skip,
};

/// How a job is run. Zero values mean "choose the default".
struct options {
  /// Number of reducer actors in this process; 0 means default_reducers().
  /// (Worker *nodes* are other processes: see flow::net.)
  std::size_t reducers = 0;
  /// Maximum number of elements per batch (one message).
  std::size_t batch_size = 262144;
  /// Jobs of at most this many elements in all, whose every source is
  /// non-blocking, knows its exact size and fits in one batch, and that have
  /// no sink and no worker nodes, are folded on the calling thread by
  /// `start`/`run`: no actors, no messages (see docs/architecture.md,
  /// "Small jobs"). The result, the statistics and the handle are those of
  /// the engine; a reducer that throws, rows, or an overflow send the job to
  /// the engine. 0 turns this off (for a costly reducer worth running in
  /// parallel even on a few elements).
  std::size_t inline_elements = 131072;
  /// Credit: the most batches one generator may have in flight (emitted but
  /// not yet merged). Bounds memory to about sources x credits x batch_size.
  std::size_t credits = 4;
  /// The most batches queued at one reducer (one running, the rest waiting),
  /// so a reducer never idles between two batches.
  std::size_t reducer_queue = 2;
  /// A local reducer folds up to this many of the batches handed to it into
  /// one partial aggregate before it answers (0 or 1: one partial per
  /// batch). It answers once it holds this many, when the manager asks (a
  /// source waits for credit, every source has ended, or the job stops), or
  /// `combine_hold` after the first. With many keys per batch, such as GROUP BY
  /// over rows that cycle through thousands of groups, each batch's partial
  /// makes a state per key and the manager merges each of them: folding k
  /// batches together makes and merges up to k times fewer. When nearly
  /// every element of a batch has a key of its own, folding batches
  /// together shrinks nothing and costs cache misses (10^7 keyed values
  /// over 10^6 keys in batches of 65536: 1.32 s, with 4 combined 1.57 s),
  /// so it is off by default. A combining
  /// reducer is given up to this many batches at once (instead of
  /// `reducer_queue`), so `credits` should be at least `reducers` times it.
  /// Accounting, retries and replacements are per batch as before; a batch
  /// whose function throws is answered for alone (the ones folded with it
  /// are folded again, alone). Off for jobs with a sink (rows go out per
  /// batch); worker nodes' reducers and speculative second attempts answer
  /// per batch, and batches held by a combining reducer are not speculated.
  std::size_t combine_batches = 1;
  /// The longest a combining reducer holds a batch before it answers
  /// (`combine_batches`): a bound on how late snapshots and statistics see
  /// it when the source is slow. At least 1 ms.
  std::chrono::milliseconds combine_hold{100};
  /// Testing hook (empty in production): called by a reducer before it folds
  /// batch `seq` of source `source`; returning true makes that reducer actor
  /// terminate abnormally without reporting, as a crash would. The manager
  /// then replaces it and dispatches its batches again.
  std::function<bool(std::uint32_t source, std::uint64_t seq)> crash_reducer;
  /// How many reducers the manager replaces in one job before it gives up
  /// with errc::actor_down (a batch that kills every reducer must not loop).
  std::size_t max_replacements = 64;
  /// What to do when the reducer function throws.
  failure_policy on_failure = failure_policy::dead_letter;
  /// How many times a failed batch is retried before it is bisected or
  /// skipped (ignored under fail_fast).
  std::size_t retries = 2;
  /// The most dead letters kept in the job's result; more are still counted
  /// and passed to `dead_letter_handler`.
  std::size_t max_dead_letters = 10000;
  /// Called by the manager for every dead letter, in merge order (for
  /// example to append it to a file). Must not block for long.
  std::function<void(const dead_letter&)> dead_letter_handler;
  /// When set, the final result's keys are handed to this function one by
  /// one, in key order, instead of being collected in `job_result::keys`,
  /// which stays empty (`job_result::key_count` says how many there were):
  /// for results too large to hold twice, such as 10^7 keys (see
  /// docs/guarantees.md, "Memory"). It runs on the manager's thread, or on
  /// the calling thread for a small job folded there (`inline_elements`).
  /// Snapshots and the partial result of a stopped job hold their keys;
  /// the final result, and `job::snapshot()` after the end, do not. With a
  /// sink the keys go out after the sink's commit (the sink gets them all).
  /// If it throws, no more keys go to it and the job fails with
  /// errc::sink_failed (with a sink, its output is committed by then).
  std::function<void(const key_result&)> on_result_key;
  /// Speculative re-execution (docs/distribution.md, "Speculation"): a
  /// batch that one reducer (local, or a worker node's) holds longer than
  /// `speculation_multiplier` times the median reduce time of the batches
  /// merged last, and at least `speculation_floor`, is dispatched again to
  /// an idle reducer once no batch waits; the first answer is merged, the
  /// later one dropped (each batch id is merged once). A reducer that was
  /// overtaken is given one batch at a time from then on. Both the hold and
  /// the median's times count from the later of a batch's dispatch and its
  /// reducer's previous answer: a reducer holds up to `reducer_queue`
  /// batches, and waiting behind another is not reducing.
  bool speculation = true;
  /// See `speculation`.
  double speculation_multiplier = 4.0;
  /// See `speculation`.
  std::chrono::milliseconds speculation_floor{1000};
  /// How often the manager publishes the job's statistics (job::stats());
  /// they are also published at the start and at the end. 0: only then.
  std::chrono::milliseconds stats_interval{250};
  /// A bound, in bytes, on the manager's keyed state (0: none). When the
  /// integer keys of the built-in aggregate would need more, the manager
  /// sorts them, writes them as one run to a temporary file in `spill_dir`
  /// and starts afresh; the final result merges the runs with what is held
  /// (docs/guarantees.md, "Bounded memory"). Results are identical with and
  /// without it. The files are made without a name (O_TMPFILE; where the
  /// file system lacks it, named and unlinked at once), so they vanish with
  /// the job however it ends, a SIGKILL included. Only the
  /// keyed state is bounded: a result collected in `job_result::keys` holds
  /// every key (use `on_result_key`), as do snapshots, the partial result
  /// of a stopped job and the result a sink commits; a small job folded on
  /// the calling thread (`inline_elements`) is not bounded; jobs whose keys
  /// are strings or composite, or carry aggregator states, are not spilled
  /// (a warning says so). The bound is at least about 64 KiB (1024 keys).
  std::uint64_t max_memory = 0;
  /// A hint: about how many keys the job will have (0, the default: none).
  /// When the manager's keys go general (strings, composites, keys with
  /// aggregator states), its map reserves room for that many entries and a
  /// quarter more (estimates are rarely exact) instead of doubling as keys
  /// come, which moves every entry and touches twice the memory (flow-etl
  /// passes the server's estimate of its GROUP BY). Room reserved and not
  /// used is mostly address space: pages are touched only as entries fill
  /// them (under a strict commit limit it counts against it). Never a
  /// limit, and never a failure: room that cannot be had is not reserved.
  /// Capped at 2^23 keys (about 1.1 GiB with the quarter). The compact
  /// table of integer keys and manager shards do not use it.
  std::size_t expected_keys = 0;
  /// Manager shards (docs/architecture.md, "Manager shards"): with 2 or
  /// more, the keyed state is split by key hash over that many shard
  /// actors, and the manager routes each merged partial's keys to them, so
  /// that merging -- the manager's serial work, which bounds jobs with many
  /// keys -- runs on every core. The manager still applies each batch once,
  /// accounts for every element and answers snapshots (consistent as
  /// before: every batch counted in a snapshot is in its keys, no other).
  /// Results are identical for any number. 0 (the default):
  /// default_manager_shards() shards if the job's first partial with keys
  /// holds only integer keys of the built-in aggregate, else none (keys
  /// that are strings or carry aggregator states measured slower merged on
  /// shards: their state boxes' frees contend across threads). 1: the
  /// manager holds the keys itself; 2 or more: that many, whatever the
  /// keys. With `max_memory` the keys are not sharded (the manager spills
  /// its own table). At most 256.
  std::size_t manager_shards = 0;
  /// The directory of `max_memory`'s runs; empty: `$TMPDIR`, else `/tmp`.
  /// A job whose directory cannot hold a file fails at the start with
  /// errc::invalid_config.
  std::string spill_dir;
};

/// The directory `opts.max_memory` spills to: `opts.spill_dir`, else
/// `$TMPDIR`, else `/tmp`.
std::string spill_directory(const options& opts);

/// Why spill_directory(opts) cannot hold a temporary file (the system's
/// error, e.g. "No such file or directory"), or an empty string when it can;
/// it makes a file there and removes it to find out. A job with
/// `max_memory` checks the same when it starts (errc::invalid_config); a
/// program can check earlier, while it reads its command line.
std::string spill_dir_error(const options& opts);

/// The number of reducer actors a job gets when options::reducers is 0: one
/// per hardware thread (at least 1). Programs use it for their defaults too.
std::size_t default_reducers() noexcept;

/// The number of manager shards a job gets when options::manager_shards is
/// 0: one per hardware thread, at most 16 (1 on one hardware thread, where
/// shards could not merge in parallel).
std::size_t default_manager_shards() noexcept;

} // namespace flow
