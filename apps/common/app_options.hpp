#pragma once

// Options every pipeline program shares (--workers, --batch, --credits,
// --on-failure, --retries, --drain-timeout, --log-level), dead-letter files
// and the actor system they run in.

#include <chrono>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>

#include "cli.hpp"
#include "flow/keyed_value.hpp"
#include "flow/options.hpp"
#include "flow/reducer.hpp"
#include "flow/result.hpp"

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>

namespace flow::apps {

/// Declares --workers, --batch, --credits and --log-level on `args`.
/// `batch` is the default batch size (rows of a database are heavier than
/// integers, so their programs use smaller batches).
void declare_pipeline_options(arg_parser& args,
                              const std::string& batch = "262144");

/// Reads the options declared by declare_pipeline_options (throws
/// usage_error) and applies --log-level.
flow::options read_pipeline_options(const arg_parser& args);

/// Declares --dead-letter FILE (programs whose dead letters go to a file).
void declare_dead_letter_option(arg_parser& args);

/// Dead letters written to a file as JSON lines ({"source", "index",
/// "count", "value", "error"}), as the manager merges them.
class dead_letter_file {
public:
  /// Opens `path` for writing (throws usage_error when it cannot); an empty
  /// path writes nothing.
  explicit dead_letter_file(const std::string& path);
  ~dead_letter_file();
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

/// Reports a job's dead letters on stderr (how many, the first few, and the
/// file they went to).
void report_dead_letters(const std::string& prog, const flow::job_result& res,
                         const std::string& file);

/// After a job that was stopped by a signal: says on stderr that the result
/// printed is partial and what it covers.
void report_partial(const std::string& prog, const flow::job_result& res);

/// Test hook: FLOW_TEST_REDUCER_DELAY_MS=N in the environment makes reducers
/// sleep N ms per batch (0 without it), so tests can make a drain slow.
std::chrono::milliseconds test_reducer_delay();

/// Test hook: with FLOW_TEST_POISON=N in the environment, returns a reducer
/// that throws on every batch holding the value N before calling `fn`, so
/// tests can inject reducer failures into the programs deterministically
/// (and sleeps per batch with FLOW_TEST_REDUCER_DELAY_MS). Without either,
/// returns `fn` unchanged.
flow::reducer<std::int64_t> poisoned(flow::reducer<std::int64_t> fn);

/// The same hook for keyed values (their value is checked).
flow::reducer<flow::keyed_value> poisoned(flow::reducer<flow::keyed_value> fn);

/// The program's actor system, sized to the machine. CAF's actor system keeps
/// a reference to its configuration, so both live here together.
class runtime {
public:
  /// `extra` may adjust the configuration first (for example load the
  /// network modules).
  explicit runtime(
    const std::function<void(caf::actor_system_config&)>& extra = {});
  caf::actor_system& system() {
    return *sys_;
  }

private:
  caf::actor_system_config cfg_;
  std::unique_ptr<caf::actor_system> sys_;
};

} // namespace flow::apps
