#pragma once

// The engine's private interface: what its files share with each other, with
// the job handle (src/job.cpp) and with worker nodes (src/net/). One file per
// actor role -- generator.cpp, reducer.cpp, sink.cpp, manager.cpp -- and the
// entry points in entry.cpp; the protocol between them is docs/protocol.md.
// The actor functions stay private to their files: the others spawn them
// through the functions below.

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include <caf/actor.hpp>
#include <caf/expected.hpp>
#include <caf/fwd.hpp>

#include "flow/detail/job_spec.hpp"
#include "flow/detail/u64_set.hpp"
#include "flow/key.hpp"
#include "flow/result.hpp"
#include "flow/job.hpp"
#include "flow/job_stats.hpp"

namespace flow::detail {

// -- job state ----------------------------------------------------------------

/// Shared state between a job handle and the manager actor that completes it.
struct job_impl {
  caf::actor_system* sys = nullptr;
  caf::actor manager;
  /// The name worker nodes know the job's reducer by (empty: local only).
  std::string reducer_name;

  std::mutex mtx;
  std::condition_variable cv;
  bool done = false;
  caf::expected<job_result> result{caf::error{}};
  /// The statistics the manager published last (null before the first).
  std::shared_ptr<const job_stats> stats;

  /// Called by the manager a few times a second: replaces the statistics.
  void publish(std::shared_ptr<const job_stats> xs) {
    std::lock_guard<std::mutex> guard{mtx};
    stats = std::move(xs);
  }

  /// Called once by the manager when the job ends (and by the guard on the
  /// manager's exit); returns false, changing nothing, after the first call.
  bool complete(caf::expected<job_result> res) {
    {
      std::lock_guard<std::mutex> guard{mtx};
      if (done)
        return false;
      result = std::move(res);
      done = true;
    }
    cv.notify_all();
    return true;
  }
};

// -- spawning the actors of a job ----------------------------------------------

/// Decides whether a reducer dies on batch `seq` of `source` (fault injection,
/// see options::crash_reducer); empty: never.
using crash_hook = std::function<bool(std::uint32_t, std::uint64_t)>;

/// Spawns the generator of source `index` as a child of `parent`: it reads
/// batches of at most `batch_size` elements, labelled `label`, as `manager`
/// grants credit. A blocking source gets a thread of its own.
caf::actor spawn_generator(caf::local_actor* parent, caf::actor manager,
                           std::uint32_t index, std::shared_ptr<any_source> src,
                           flow::key label, std::size_t batch_size);

/// The manager shard of integer key `k` among `n`: from the hash's high
/// bits (the shards' tables index by its low bits). Reducers group their
/// partials' `ints` by it, so both sides must agree.
inline std::size_t int_shard_of(std::int64_t k, std::size_t n) noexcept {
  return static_cast<std::size_t>(
    ((mix64(static_cast<std::uint64_t>(k)) >> 32) * n) >> 32);
}

/// Spawns a reducer of the job's pool as a child of `parent`: it folds batches
/// with `fn` and reports to `manager`, one partial for up to `combine`
/// batches held at most `hold` (options::combine_batches, combine_hold);
/// with `shards` > 1 it groups its partials' integer keys by manager shard
/// (partial_msg::int_ends).
caf::actor spawn_reducer(caf::local_actor* parent, caf::actor manager,
                         std::shared_ptr<const erased_reducer> fn,
                         erased_formatter format, crash_hook hook,
                         std::size_t combine,
                         std::chrono::milliseconds hold,
                         std::size_t shards = 0);

/// Spawns a reducer (on a worker node) that folds batches with `fn` and
/// reports to `manager`, wherever that manager runs.
caf::actor spawn_reducer(caf::actor_system& sys, caf::actor manager,
                         erased_reducer fn, erased_formatter format);

/// Spawns the actor that owns the job's sink as a child of `parent`; a
/// blocking sink gets a thread of its own. It links to `manager`.
caf::actor spawn_sink(caf::local_actor* parent, caf::actor manager,
                      std::shared_ptr<any_sink> snk);

/// Spawns manager shard `index` of the job whose manager is `parent`
/// (options::manager_shards): it merges the keys the manager routes to it.
caf::actor spawn_shard(caf::local_actor* parent, caf::actor manager,
                       std::uint32_t index);

/// Spawns the manager of the job described by `spec`, which spawns the rest
/// and completes `impl` when the job ends.
/// Folds a small job on the calling thread (see options::inline_elements)
/// and returns its finished handle, or, when the job is not small, nullopt
/// with `spec` untouched. A job it cannot finish the way the engine would
/// goes to the engine (in `get_sys()`), its first batches handed out again.
std::optional<job> try_inline(const std::function<caf::actor_system&()>& get_sys,
                              job_spec& spec);

/// A finished job handle holding `err`.
job error_job(caf::error err);

/// `r` for job_stats::result: every figure, and its first
/// job_stats::result_keys keys.
job_result result_for_stats(const job_result& r);

caf::actor spawn_manager(caf::actor_system& sys, std::shared_ptr<job_spec> spec,
                         std::shared_ptr<job_impl> impl);

} // namespace flow::detail
