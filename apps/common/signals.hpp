#pragma once

// SIGINT and SIGTERM in every program: the first stops the running job, which
// drains what it accepted and ends with a result marked partial; the second
// ends the process at once. Without a running job the first signal ends the
// process at once too (nothing has been accepted that could be drained),
// except while the status page lingers after the last job (linger()): then
// it ends the wait and the program keeps its exit code.

#include <chrono>
#include <string>

#include "flow/job.hpp"

namespace flow::apps {

/// Blocks SIGINT and SIGTERM in the calling thread (and so in every thread
/// it starts later) and handles them on a thread of their own. Call first
/// thing in main, before any other thread exists.
void install_signal_handling(const std::string& prog);

/// Sets how long a stopped job may drain its accepted batches.
void set_drain_timeout(std::chrono::milliseconds timeout) noexcept;

/// The first signal received (SIGINT or SIGTERM), or 0.
int interrupted() noexcept;

/// The exit code after an interruption: 128 + the signal (130, 143).
int interrupted_exit_code() noexcept;

/// Flushes stdout and stderr and ends the process with
/// interrupted_exit_code() without waiting for sources that may be blocked
/// reading a terminal or a pipe.
[[noreturn]] void exit_interrupted();

/// Waits `d` (--status-linger) or until a first SIGINT or SIGTERM, which
/// then ends the wait instead of the process: the jobs are over and their
/// results printed, so the program still exits with their code.
void linger(std::chrono::milliseconds d);

/// While alive, a signal stops `j` (with the drain timeout) instead of
/// ending the process.
class watch_job {
public:
  explicit watch_job(const job& j);
  ~watch_job();
  watch_job(const watch_job&) = delete;
  watch_job& operator=(const watch_job&) = delete;
};

} // namespace flow::apps
