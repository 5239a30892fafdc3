#include "app_options.hpp"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <optional>
#include <thread>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>

#include "flow/parse.hpp"
#include "flow/types.hpp"
#include "signals.hpp"
#include "watch.hpp"

namespace flow::apps {

void declare_pipeline_options(arg_parser& args, const std::string& batch,
                              const std::string& batch_help) {
  args.value("reducers", "N", "reducer actors; 0 = one per hardware thread",
             "0");
  // Until options::workers became options::reducers, the option was
  // --workers; command lines and scripts still use it.
  args.alias("workers", "reducers");
  args.value("batch", "N",
             batch_help.empty() ? "elements per batch (one message)"
                                : batch_help,
             batch);
  args.value("credits", "N", "batches in flight per generator", "4");
  args.value("shards", "N",
             "manager shards: the keyed state split by key hash over N "
             "actors that merge in parallel (faster with many keys); 1: the "
             "manager holds it; 0 = one per hardware thread (at most 16) if "
             "the keys are integers summed, else 1",
             "0");
  args.value("on-failure", "POLICY",
             "when the reducer throws on a batch: fail (end the job), "
             "dead-letter (retry, then isolate the failing elements) or skip "
             "(retry, then drop the whole batch as dead letters)",
             "dead-letter");
  args.value("retries", "N", "retries of a failed batch before dead-lettering",
             "2");
  args.value("drain-timeout", "SECONDS",
             "after SIGINT/SIGTERM, how long in-flight batches may drain "
             "before the partial result is printed",
             "5");
  args.flag("no-speculation",
            "never dispatch a batch a second time because its reducer (or "
            "worker node) holds it too long");
  args.value("speculation-multiplier", "X",
             "a batch (or a worker node's database partition) held longer "
             "than X times the median of the completed ones, and at least "
             "--speculation-floor, runs again on an idle reducer (or node); "
             "default 4 for batches, 2 for partitions");
  args.value("speculation-floor", "MS",
             "the shortest hold, in milliseconds, that counts as too long",
             "1000");
  args.value("log-level", "LEVEL",
             "trace, debug, info, warn, error, critical or off", "warn");
  declare_watch_options(args);
}

flow::options read_pipeline_options(const arg_parser& args) {
  apply_log_level(args.get("log-level"));
  read_watch_options(args);
  flow::options opts;
  opts.reducers = args.get_uint("reducers", 0, 4096);
  opts.batch_size = args.get_uint("batch", 1, std::uint64_t{1} << 30);
  opts.credits = args.get_uint("credits", 1, 1 << 16);
  opts.manager_shards = args.get_uint("shards", 0, 256);
  auto& policy = args.get("on-failure");
  if (policy == "fail")
    opts.on_failure = failure_policy::fail_fast;
  else if (policy == "dead-letter")
    opts.on_failure = failure_policy::dead_letter;
  else if (policy == "skip")
    opts.on_failure = failure_policy::skip;
  else
    throw usage_error("--on-failure: " + quote_token(policy)
                      + " is not fail, dead-letter or skip");
  opts.retries = args.get_uint("retries", 0, 1000);
  opts.speculation = !args.is_set("no-speculation");
  if (args.given("speculation-multiplier"))
    opts.speculation_multiplier
      = args.get_double("speculation-multiplier", 1.0, 1e6);
  opts.speculation_floor = std::chrono::milliseconds(
    args.get_uint("speculation-floor", 1, 86'400'000));
  // The coordinator's tasks follow the same switch (cluster::listen).
  auto& tasks = task_speculation();
  tasks.on = opts.speculation;
  if (args.given("speculation-multiplier"))
    tasks.multiplier = opts.speculation_multiplier;
  tasks.floor = opts.speculation_floor;
  set_drain_timeout(std::chrono::milliseconds(
    args.get_uint("drain-timeout", 0, 86400) * 1000));
  return opts;
}

void declare_combine_option(arg_parser& args, const std::string& dflt) {
  args.value("combine", "N",
             "a reducer folds up to N batches into one partial aggregate "
             "before the manager merges it (fewer group states made and "
             "merged when each batch holds many groups); 1: one partial per "
             "batch",
             dflt);
}

void read_combine_option(const arg_parser& args, flow::options& opts) {
  opts.combine_batches = args.get_uint("combine", 1, 4096);
}

task_speculation_settings& task_speculation() {
  static task_speculation_settings instance;
  return instance;
}

void declare_dead_letter_option(arg_parser& args) {
  args.value("dead-letter", "FILE",
             "write the elements the reducer failed on to FILE as JSON lines");
}

runtime::runtime(
  const std::function<void(caf::actor_system_config&)>& extra) {
  configure_scheduler(cfg_);
  if (extra)
    extra(cfg_);
  sys_ = std::make_unique<caf::actor_system>(cfg_);
}

} // namespace flow::apps
