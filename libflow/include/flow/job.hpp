#pragma once

/// @file
/// A handle to a running job.

#include <chrono>
#include <memory>

#include <caf/expected.hpp>

#include "flow/result.hpp"
#include "flow/job_stats.hpp"

namespace flow {

namespace detail {
struct job_impl;
} // namespace detail

/// A running (or finished) job. Copies refer to the same job.
class job {
public:
  /// An invalid handle.
  job() noexcept = default;

  /// Wraps the engine's state (used by the engine).
  explicit job(std::shared_ptr<detail::job_impl> impl) noexcept;

  /// Blocks until the job ends; returns its result or the error that ended
  /// it. May be called repeatedly.
  caf::expected<job_result> wait() const;

  /// Like wait(), but moves the result's keys out of the job instead of
  /// copying them, so a result of millions of keys is not held twice. The
  /// job keeps the rest: later calls of wait(), take() or snapshot() give
  /// the result without its keys (`key_count` still counts them).
  caf::expected<job_result> take() const;

  /// Waits at most `timeout`; true when the job has ended.
  bool wait_for(std::chrono::milliseconds timeout) const;

  /// True when the job has ended (with a result or an error).
  bool done() const;

  /// Asks the manager for its current running aggregates (`final` is false
  /// while the job runs). After the end, returns the final result.
  caf::expected<job_result> snapshot() const;

  /// The job's statistics as the manager last published them (a few times
  /// a second, see options::stats_interval, and at the end): cheap, never
  /// waits for the manager. An invalid handle gives empty statistics.
  job_stats stats() const;

  /// Cancels the job: it ends with `errc::cancelled` unless it already ended.
  void cancel() const;

  /// Stops the job gracefully: the generators stop, the batches already
  /// accepted drain (for at most `drain`), and the job ends with a result
  /// whose `partial` flag is set and whose accounting covers exactly what
  /// was accepted. A sink is aborted, never committed. No effect on a job
  /// that already ended.
  void stop(std::chrono::milliseconds drain = std::chrono::seconds(5)) const;

  /// The engine's state (for libflow's own layers, such as flow::net).
  const std::shared_ptr<detail::job_impl>& state() const noexcept {
    return impl_;
  }

  /// True for a handle that refers to a job.
  explicit operator bool() const noexcept {
    return impl_ != nullptr;
  }

private:
  std::shared_ptr<detail::job_impl> impl_;
};

} // namespace flow
