#pragma once

// Shared state between a job handle and the manager actor that completes it.

#include <condition_variable>
#include <mutex>
#include <string>

#include <caf/actor.hpp>
#include <caf/expected.hpp>

#include "flow/detail/job_spec.hpp"
#include "flow/result.hpp"

namespace caf {
class actor_system;
} // namespace caf

namespace flow::detail {

struct job_impl {
  caf::actor_system* sys = nullptr;
  caf::actor manager;
  /// The name worker nodes know the job's reducer by (empty: local only).
  std::string reducer_name;

  std::mutex mtx;
  std::condition_variable cv;
  bool done = false;
  caf::expected<job_result> result{caf::error{}};

  /// Called once by the manager when the job ends.
  void complete(caf::expected<job_result> res) {
    {
      std::lock_guard<std::mutex> guard{mtx};
      if (done)
        return;
      result = std::move(res);
      done = true;
    }
    cv.notify_all();
  }
};

/// Spawns a reducer (on a worker node) that folds batches with `fn` and
/// reports to `manager`, wherever that manager runs.
caf::actor spawn_reducer(caf::actor_system& sys, caf::actor manager,
                         erased_reducer fn, erased_formatter format);

} // namespace flow::detail
