#include "flow/types.hpp"

#include <algorithm>
#include <thread>

#include <caf/actor_system_config.hpp>

#include "flow/detail/messages.hpp"
#include "flow/options.hpp"
#include "flow/result.hpp"

namespace flow {

void add_message_types(caf::actor_system_config& cfg) {
  using namespace detail;
  cfg.add_message_type<flow::key>("flow.key");
  cfg.add_message_type<aggregate>("flow.aggregate");
  cfg.add_message_type<int_entry>("flow.int_entry");
  cfg.add_message_type<keyed_value>("flow.keyed_value");
  cfg.add_message_type<key_result>("flow.key_result");
  cfg.add_message_type<job_result>("flow.job_result");
  cfg.add_message_type<dead_letter>("flow.dead_letter");
  cfg.add_message_type<demand>("flow.demand");
  cfg.add_message_type<batch>("flow.batch");
  cfg.add_message_type<partial_msg>("flow.partial");
  cfg.add_message_type<int_storage>("flow.int_storage");
  cfg.add_message_type<batch_failed>("flow.batch_failed");
  cfg.add_message_type<source_done>("flow.source_done");
  cfg.add_message_type<source_failed>("flow.source_failed");
  cfg.add_message_type<sink_write>("flow.sink_write");
  cfg.add_message_type<sink_written>("flow.sink_written");
  cfg.add_message_type<sink_outputs>("flow.sink_outputs");
  cfg.add_message_type<sink_failed>("flow.sink_failed");
  cfg.add_message_type<shard_merge>("flow.shard_merge");
  cfg.add_message_type<shard_collect>("flow.shard_collect");
  cfg.add_message_type<shard_keys>("flow.shard_keys");
  cfg.add_message_type<shard_failed>("flow.shard_failed");
  // Containers inside the messages must be known remotely, too.
  cfg.add_message_type<std::vector<std::int64_t>>("flow.int64_vector");
  cfg.add_message_type<std::vector<keyed_value>>("flow.keyed_vector");
  cfg.add_message_type<std::vector<key_result>>("flow.key_results");
  cfg.add_message_type<std::vector<partial::entry>>("flow.entries");
  cfg.add_message_type<std::vector<int_entry>>("flow.int_entries");
  cfg.add_message_type<std::vector<dead_letter>>("flow.dead_letters");
}

std::size_t default_reducers() noexcept {
  return std::max(1u, std::thread::hardware_concurrency());
}

std::size_t default_manager_shards() noexcept {
  return std::min<std::size_t>(default_reducers(), 16);
}

void configure_scheduler(caf::actor_system_config& cfg) {
  auto n = std::thread::hardware_concurrency();
  cfg.set("scheduler.max-threads", static_cast<std::size_t>(n == 0 ? 2 : n));
  cfg.set("scheduler.policy", caf::atom("sharing"));
}

} // namespace flow
