// The engine's entry points: what flow::pipeline calls (declared in
// flow/pipeline.hpp) to check and start a job.

#include <limits>
#include <memory>
#include <utility>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>

#include "engine.hpp"
#include "spill.hpp"
#include "flow/error.hpp"
#include "flow/options.hpp"
#include "flow/pipeline.hpp"
#include "flow/types.hpp"

namespace flow::detail {

caf::error validate(const job_spec& spec) {
  if (!spec.reduce)
    return make_error(errc::invalid_config,
                      "the pipeline has no reducer (call reduce())");
  if (spec.opts.batch_size == 0)
    return make_error(errc::invalid_config, "batch size must be at least 1");
  if (spec.opts.credits == 0)
    return make_error(errc::invalid_config, "credits must be at least 1");
  if (spec.opts.credits > std::numeric_limits<std::uint32_t>::max())
    return make_error(errc::invalid_config, "credits must fit in 32 bits");
  if (spec.opts.reducer_queue == 0)
    return make_error(errc::invalid_config,
                      "the reducer queue must hold at least 1 batch");
  if (spec.opts.combine_batches > 1 && spec.opts.combine_hold.count() <= 0)
    return make_error(errc::invalid_config,
                      "combine_hold must be at least 1 ms");
  if (spec.opts.speculation
      && (spec.opts.speculation_floor.count() <= 0
          || !(spec.opts.speculation_multiplier >= 1.0)))
    return make_error(errc::invalid_config,
                      "speculation needs a floor above 0 and a multiplier of "
                      "at least 1");
  if (spec.opts.manager_shards > 256)
    return make_error(errc::invalid_config,
                      "manager_shards must be at most 256");
  if (spec.opts.max_memory > 0) {
    // Checked before any work: a job that could not spill would fail late.
    if (auto err = spill_dir_error(spec.opts); !err.empty())
      return make_error(errc::invalid_config,
                        "options::spill_dir (of max_memory): cannot make a "
                        "temporary file in '"
                          + spill_directory(spec.opts) + "': " + err);
  }
  if (spec.sources.size() > std::numeric_limits<std::uint32_t>::max())
    return make_error(errc::invalid_config, "too many sources");
  if (!spec.reducer_name.empty())
    for (auto& c : spec.columns)
      if (!c.ops->serializable)
        return make_error(errc::not_serializable,
                          "aggregator column '" + c.name + "' holds '"
                            + c.ops->name
                            + "' states, which have no inspect function and "
                              "cannot cross processes (distribute_as)");
  return caf::none;
}

job start_job(caf::actor_system& sys, job_spec spec) {
  if (auto j = try_inline([&]() -> caf::actor_system& { return sys; }, spec))
    return std::move(*j);
  if (spec.opts.reducers == 0)
    spec.opts.reducers = default_reducers();

  auto impl = std::make_shared<job_impl>();
  impl->sys = &sys;
  impl->reducer_name = spec.reducer_name;
  auto ptr = std::make_shared<job_spec>(std::move(spec));
  impl->manager = spawn_manager(sys, std::move(ptr), impl);
  return job{impl};
}

caf::expected<job_result> run_job(job_spec spec) {
  // A small job folded inline needs no actor system: make one only when
  // the engine runs (starting one costs more than such a job).
  std::unique_ptr<caf::actor_system_config> cfg;
  std::unique_ptr<caf::actor_system> sys;
  auto get_sys = [&]() -> caf::actor_system& {
    if (!sys) {
      cfg = std::make_unique<caf::actor_system_config>();
      configure_scheduler(*cfg);
      sys = std::make_unique<caf::actor_system>(*cfg);
    }
    return *sys;
  };
  // The handles die here: take() moves the keys out instead of copying.
  if (auto j = try_inline(get_sys, spec))
    return j->take();
  return start_job(get_sys(), std::move(spec)).take();
}

} // namespace flow::detail
