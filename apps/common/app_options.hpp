#pragma once

// Options every pipeline program shares (--workers, --batch, --credits,
// --log-level) and the actor system they run in.

#include <memory>

#include "cli.hpp"
#include "flow/options.hpp"

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

/// The program's actor system, sized to the machine. CAF's actor system keeps
/// a reference to its configuration, so both live here together.
class runtime {
public:
  runtime();
  caf::actor_system& system() {
    return *sys_;
  }

private:
  caf::actor_system_config cfg_;
  std::unique_ptr<caf::actor_system> sys_;
};

} // namespace flow::apps
