#pragma once

// Options every pipeline program shares (--reducers, --batch, --credits,
// --on-failure, --retries, --drain-timeout, --no-speculation and its two
// thresholds, --log-level, --dead-letter) and
// the actor system they run in.

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "cli.hpp"
#include "flow/options.hpp"

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>

namespace flow::apps {

/// Declares --reducers (alias --workers), --batch, --credits,
/// --on-failure, --retries, --drain-timeout and --log-level on `args`.
/// `batch` is the default batch size (rows of a database are heavier than
/// integers, so their programs use smaller batches); `batch_help`, when not
/// empty, replaces --batch's description.
void declare_pipeline_options(arg_parser& args,
                              const std::string& batch = "262144",
                              const std::string& batch_help = "");

/// Reads the options declared by declare_pipeline_options (throws
/// usage_error) and applies --log-level.
flow::options read_pipeline_options(const arg_parser& args);

/// Declares --combine N: how many batches waiting for a reducer it folds
/// into one partial aggregate (options::combine_batches), for programs
/// whose batches carry many keys each (GROUP BY). `dflt` is the default.
void declare_combine_option(arg_parser& args, const std::string& dflt);

/// Reads --combine into `opts.combine_batches` (throws usage_error).
void read_combine_option(const arg_parser& args, flow::options& opts);

/// The speculation rules for a worker node's partitions (the coordinator's
/// tasks), set by read_pipeline_options and applied by cluster::listen.
struct task_speculation_settings {
  bool on = true;
  double multiplier = 2.0;
  std::chrono::milliseconds floor{1000};
};

/// This process's task speculation settings.
task_speculation_settings& task_speculation();

/// Declares --dead-letter FILE (programs whose dead letters go to a file).
void declare_dead_letter_option(arg_parser& args);

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
