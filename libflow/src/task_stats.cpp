#include "flow/task_stats.hpp"

namespace flow {

const char* to_string(task_state x) noexcept {
  switch (x) {
    case task_state::queued:
      return "queued";
    case task_state::running:
      return "running";
    case task_state::done:
      return "done";
    case task_state::failed:
      return "failed";
  }
  return "unknown";
}

task_monitor::task_monitor(std::optional<std::uint64_t> rows_total,
                           bool estimate) {
  stats_.rows_total = rows_total;
  stats_.rows_total_is_estimate = rows_total && estimate;
}

task_stats task_monitor::snapshot() const {
  std::lock_guard<std::mutex> guard{mtx_};
  return stats_;
}

void task_monitor::started_on(const std::string& node) {
  std::lock_guard<std::mutex> guard{mtx_};
  stats_.state = task_state::running;
  stats_.node = node;
  stats_.local = false;
}

void task_monitor::started_here() {
  std::lock_guard<std::mutex> guard{mtx_};
  stats_.state = task_state::running;
  stats_.node.clear();
  stats_.local = true;
}

void task_monitor::finished(std::uint64_t read, std::uint64_t aggregated,
                            std::uint64_t rejected,
                            std::uint64_t dead_lettered) {
  std::lock_guard<std::mutex> guard{mtx_};
  stats_.state = task_state::done;
  stats_.rows_read = read;
  stats_.rows_aggregated = aggregated;
  stats_.rows_rejected = rejected;
  stats_.rows_dead_lettered = dead_lettered;
}

void task_monitor::failed() {
  std::lock_guard<std::mutex> guard{mtx_};
  stats_.state = task_state::failed;
}

} // namespace flow
