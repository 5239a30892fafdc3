#pragma once

/// @file
/// Tuning knobs of a pipeline.

#include <cstddef>
#include <cstdint>

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
};

} // namespace flow
