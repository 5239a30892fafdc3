#include "app_options.hpp"

#include <thread>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>

#include "flow/types.hpp"

namespace flow::apps {

void declare_pipeline_options(arg_parser& args, const std::string& batch) {
  args.value("workers", "N", "reducer actors; 0 = one per hardware thread",
             "0");
  args.value("batch", "N", "elements per batch (one message)", batch);
  args.value("credits", "N", "batches in flight per generator", "4");
  args.value("log-level", "LEVEL",
             "trace, debug, info, warn, error, critical or off", "warn");
}

flow::options read_pipeline_options(const arg_parser& args) {
  apply_log_level(args.get("log-level"));
  flow::options opts;
  opts.workers = args.get_uint("workers", 0, 4096);
  opts.batch_size = args.get_uint("batch", 1, std::uint64_t{1} << 30);
  opts.credits = args.get_uint("credits", 1, 1 << 16);
  return opts;
}

runtime::runtime() {
  configure_scheduler(cfg_);
  sys_ = std::make_unique<caf::actor_system>(cfg_);
}

} // namespace flow::apps
