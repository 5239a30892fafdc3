#pragma once

// How every program runs a job and ends it: waiting with a progress line
// while SIGINT/SIGTERM stop the job instead of the process, a failed job's
// one-line error and exit code, the dead-letter summary, the partial result
// of a stopped job and its exit code (128 + the signal), and the job's
// counts as JSON fields.

#include <cstdint>
#include <cstdio>
#include <string>

#include <caf/error.hpp>
#include <caf/expected.hpp>

#include "common/cli.hpp"
#include "common/json.hpp"
#include "flow/job.hpp"
#include "flow/options.hpp"
#include "flow/result.hpp"

namespace flow::apps {

/// Dead letters written to a file as JSON lines ({"source", "index",
/// "count", "value", "error"}), as the manager merges them.
class dead_letter_file {
public:
  /// Opens `path` for writing (throws usage_error when it cannot); an empty
  /// path writes nothing.
  explicit dead_letter_file(const std::string& path);
  /// Closes the file without checking (see close()).
  ~dead_letter_file();
  /// Not copyable: one owner closes the file.
  dead_letter_file(const dead_letter_file&) = delete;
  /// Not copyable.
  dead_letter_file& operator=(const dead_letter_file&) = delete;
  /// Installs the handler that writes every dead letter on `opts`.
  void attach(flow::options& opts);
  /// Flushes; throws usage_error when writing failed (disk full).
  void close();
  /// The file's path.
  const std::string& path() const noexcept {
    return path_;
  }

private:
  std::string path_;
  std::FILE* file_ = nullptr;
};

/// Reports a job's dead letters on stderr (how many, the first few, and
/// where they went: a file or a table, empty when nowhere).
void report_dead_letters(const std::string& prog, const flow::job_result& res,
                         const std::string& where);

/// After a job that was stopped by a signal: says on stderr that the result
/// printed is partial and what it covers.
void report_partial(const std::string& prog, const flow::job_result& res);

/// Adds a job's element counts to `obj`: emitted, aggregated, rejected,
/// dead_lettered, then the speculation counts (speculated,
/// speculation_won), in this order.
void add_counts(json_object& obj, const flow::job_result& res);

/// Runs the jobs of the program `prog` and decides how each one ends.
class job_runner {
public:
  /// A runner for the program named `prog` in messages.
  explicit job_runner(std::string prog);

  /// Waits for a started job (or passes on why it did not start), showing
  /// "what: N of total elements" on a terminal (`total` 0: unknown); while
  /// it runs, a signal stops the job and it drains (see signals.hpp). The
  /// result's keys are taken out of the job (job::take).
  caf::expected<job_result> wait(const caf::expected<job>& started,
                                 std::uint64_t total,
                                 const std::string& what) const;

  /// Reports a failed job ("prog: error: ..." on stderr); returns exit_usage
  /// when the input was bad, exit_mismatch otherwise.
  int job_error(const caf::error& err) const;

  /// Reports the dead letters (see report_dead_letters); returns
  /// exit_dead_letters when there were any, exit_ok otherwise.
  int dead_letters(const job_result& res, const std::string& where) const;

  /// True when a signal stopped the job (or came after it ended): the
  /// program prints what it has, marked partial, and ends.
  static bool stopped(const job_result& res) noexcept;

  /// After a stopped job's partial result is printed: says on stderr that
  /// it is partial (when it is); returns the exit code, 128 + the signal.
  int stopped_exit_code(const job_result& res) const;

  /// stopped_exit_code(), then closes `dead` and ends the process at once:
  /// for programs whose sources may be blocked reading a terminal or pipe.
  [[noreturn]] void exit_stopped(const job_result& res,
                                 dead_letter_file& dead) const;

  /// The program's name.
  const std::string& prog() const noexcept {
    return prog_;
  }

private:
  std::string prog_;
};

} // namespace flow::apps
