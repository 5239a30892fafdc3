#pragma once

/// @file
/// Tuning knobs of a pipeline.

#include <cstddef>
#include <cstdint>
#include <functional>

namespace flow {

/// How a job is run. Zero values mean "choose the default".
struct options {
  /// Number of reducer actors; 0 means the number of hardware threads.
  std::size_t workers = 0;
  /// Maximum number of elements per batch (one message).
  std::size_t batch_size = 262144;
  /// Credit: the most batches one generator may have in flight (emitted but
  /// not yet merged). Bounds memory to about sources x credits x batch_size.
  std::size_t credits = 4;
  /// The most batches queued at one reducer (one running, the rest waiting),
  /// so a reducer never idles between two batches.
  std::size_t reducer_queue = 2;
  /// Testing hook (empty in production): called by a reducer before it folds
  /// batch `seq` of source `source`; returning true makes that reducer actor
  /// terminate abnormally without reporting, as a crash would. The manager
  /// then replaces it and dispatches its batches again.
  std::function<bool(std::uint32_t source, std::uint64_t seq)> crash_reducer;
  /// How many reducers the manager replaces in one job before it gives up
  /// with errc::actor_down (a batch that kills every reducer must not loop).
  std::size_t max_replacements = 64;
};

} // namespace flow
