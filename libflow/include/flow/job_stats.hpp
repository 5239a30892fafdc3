#pragma once

/// @file
/// Live statistics of a job: what the manager counted so far, published a
/// few times a second (and at the end) for applications, progress lines and
/// the status server (flow/status_server.hpp). Plain data: reading them
/// never asks the manager anything.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "flow/result.hpp"
#include "flow/task_stats.hpp"

namespace flow {

/// Where a job is in its life.
enum class job_state {
  /// Sources are being read.
  running,
  /// Stopped (job::stop): the batches already accepted drain.
  draining,
  /// Ended with a result (complete, or partial after a stop).
  done,
  /// Ended with an error.
  failed,
};

/// The name of a state: "running", "draining", "done" or "failed".
const char* to_string(job_state x) noexcept;

/// The counters of one source.
struct source_stats {
  /// The source's name (as in logs).
  std::string name;
  /// Elements the source will emit, when it knows (list sizes); empty
  /// otherwise.
  std::optional<std::uint64_t> total;
  /// True when `total` is an estimate (the PostgreSQL planner's row
  /// estimate of a partition): the source may emit fewer or more.
  bool total_is_estimate = false;
  /// Elements emitted (received by the manager).
  std::uint64_t emitted = 0;
  /// Elements merged into the aggregates.
  std::uint64_t aggregated = 0;
  /// Elements the reducer rejected.
  std::uint64_t rejected = 0;
  /// Elements dead-lettered.
  std::uint64_t dead_lettered = 0;
  /// Batches received from the source's generator.
  std::uint64_t batches = 0;
  /// Batches merged.
  std::uint64_t merged = 0;
  /// Batches received and not yet merged.
  std::uint64_t in_flight = 0;
  /// The credit bound: at most this many batches unconfirmed at once.
  std::uint64_t credit = 0;
  /// Seconds the source had its whole credit in use (backpressure).
  double credit_wait_seconds = 0;
  /// True while the source has its whole credit in use.
  bool waiting = false;
  /// True once the source reached its end.
  bool done = false;
  /// For a source whose work is a task (a partition a worker node reads):
  /// the task's rows and node; empty for other sources.
  std::optional<task_stats> task;
};

/// A worker node that lent the job reducers.
struct node_stats {
  /// The node's name.
  std::string name;
  /// Its reducers still connected.
  std::uint64_t reducers = 0;
  /// Its reducers lost (the node or its connection died).
  std::uint64_t lost = 0;
  /// Batches it holds now.
  std::uint64_t batches_held = 0;
  /// Batches merged from its reducers.
  std::uint64_t batches_merged = 0;
};

/// A snapshot of a job's statistics (job::stats()).
struct job_stats {
  /// The bounds (seconds) of the batch reduce-time histogram's buckets.
  static constexpr double reduce_bounds[] = {0.001, 0.005, 0.01, 0.05, 0.1,
                                             0.5,   1,     5,    10};
  /// The number of bounded buckets (a last one counts the rest).
  static constexpr std::size_t reduce_buckets = 9;

  /// Where the job is.
  job_state state = job_state::running;
  /// When the job started (wall clock).
  std::chrono::system_clock::time_point started;
  /// Seconds since the start (until the end, once ended).
  double elapsed_seconds = 0;
  /// The sources, in the order they were added.
  std::vector<source_stats> sources;
  /// Batches handed to reducers (a retried batch counts again).
  std::uint64_t batches_dispatched = 0;
  /// Batches whose reducer call threw and that were dispatched again.
  std::uint64_t batches_retried = 0;
  /// Batches a lost reducer held that went to another one.
  std::uint64_t batches_redispatched = 0;
  /// Batches dispatched a second time because their reducer held them too
  /// long (options::speculation).
  std::uint64_t batches_speculated = 0;
  /// Of those, the second attempts that answered first.
  std::uint64_t speculation_won = 0;
  /// Reducers in the pool (local and lent by worker nodes, connected).
  std::uint64_t reducers = 0;
  /// Reducers holding at least one batch now.
  std::uint64_t reducers_busy = 0;
  /// Local reducers that died and were replaced.
  std::uint64_t reducers_replaced = 0;
  /// Worker nodes that lent reducers (gone ones too, with 0 reducers).
  std::vector<node_stats> nodes;
  /// Manager shards holding the keys (options::manager_shards); 0 when the
  /// manager holds them itself.
  std::uint64_t manager_shards = 0;
  /// Keys the manager holds running aggregates for. With spilled runs
  /// (options::max_memory) a key counts once per run that holds it and once
  /// more if held in memory: an upper bound until the final merge.
  std::uint64_t keys = 0;
  /// Rows the sink confirmed.
  std::uint64_t written = 0;
  /// The sink's name (its output table, as in logs); empty without a sink.
  std::string sink;
  /// Per output of a sink with several (for example `pg::copy_sink`'s
  /// tables): its name and the rows written to it so far, rows written at
  /// the commit included. Empty for a sink with one output (`written`).
  std::vector<std::pair<std::string, std::uint64_t>> outputs;
  /// Rejected elements per reason, ordered by reason.
  std::vector<std::pair<std::string, std::uint64_t>> rejections;
  /// Batch reduce time (dispatch to merge): counts per bucket, not
  /// cumulative; the last entry counts those above the last bound.
  std::vector<std::uint64_t> reduce_counts
    = std::vector<std::uint64_t>(reduce_buckets + 1);
  /// Sum of the batch reduce times, seconds.
  double reduce_seconds = 0;
  /// The first few dead letters (values and errors truncated).
  std::vector<dead_letter> dead_letters;
  /// The last few warnings and errors (retries, lost reducers, the error
  /// that ended the job), oldest first.
  std::vector<std::string> errors;
  /// The result, once the job is done (state done): its figures and its
  /// first `result_keys` keys in key order (`key_count` counts them all;
  /// job::wait() and job::take() give every key, until take() moved them
  /// out). Statistics are copied whole by stats(), so they do not hold a
  /// copy of millions of keys.
  std::optional<job_result> result;
  /// Keys `result` holds at most.
  static constexpr std::size_t result_keys = 100;

  /// Sums over the sources.
  std::uint64_t emitted() const noexcept;
  std::uint64_t aggregated() const noexcept;
  std::uint64_t rejected() const noexcept;
  std::uint64_t dead_lettered() const noexcept;
  std::uint64_t batches_merged() const noexcept;
  /// Elements received and not yet merged, rejected or dead-lettered.
  std::uint64_t elements_in_flight() const noexcept;
  /// The total of every source, when each one knows its own.
  std::optional<std::uint64_t> total() const noexcept;
};

} // namespace flow
