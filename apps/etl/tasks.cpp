// The flow-etl task kinds worker nodes run: a partition read in the
// manager's snapshot, reduced by a local job, answered with its result.

#include "etl_tasks.hpp"

#include <algorithm>
#include <thread>
#include <utility>
#include <vector>

#include "common/app_options.hpp"
#include "etl_clean.hpp"
#include "flow/flow.hpp"
#ifdef FLOW_HAS_NET
#include "flow/net/net.hpp"
#endif
#include "flow/pg/error.hpp"
#include "flow/pg/read.hpp"

namespace flow::apps {

std::int64_t list_key(std::int32_t list_size, std::int32_t list_id) {
  return static_cast<std::int64_t>(list_size) * (std::int64_t{1} << 32)
         + static_cast<std::int64_t>(static_cast<std::uint32_t>(list_id));
}

std::int64_t size_of_key(std::int64_t key) {
  return key >> 32; // arithmetic shift: floor division by 2^32
}

element_row decode_element_row(const pg::row_view& r) {
  element_row x;
  auto id = r.int32(0);
  auto size = r.int32(1);
  x.key = list_key(size, id);
  if (auto v = r.opt_int64(2)) {
    x.value = *v;
    x.has_value = true;
  }
  return x;
}

reducer<element_row> sum_per_list() {
  return [](const batch_ref<element_row>& b, partial& out) {
    std::vector<std::pair<std::int64_t, aggregate>> acc;
    std::size_t last = 0;
    std::uint64_t nulls = 0;
    for (auto& x : b.items) {
      if (!x.has_value) {
        ++nulls;
        continue;
      }
      if (last >= acc.size() || acc[last].first != x.key) {
        last = 0;
        while (last < acc.size() && acc[last].first != x.key)
          ++last;
        if (last == acc.size())
          acc.emplace_back(x.key, aggregate{});
      }
      acc[last].second.add(x.value);
    }
    for (auto& [k, a] : acc)
      out.add(flow::key{k}, a);
    if (nulls > 0)
      out.reject("NULL value", nulls);
  };
}

caf::error node_error(caf::error err) {
  // A node that cannot reach the database (unreachable, no credentials of
  // its own) is misconfigured: errc::invalid_config makes the manager give
  // the partition to another node and this one no more.
  if (pg::connect_failed(err))
    return make_error(errc::invalid_config,
                      "this node cannot connect to the database: "
                        + describe(err));
  return err;
}

#ifdef FLOW_HAS_NET

namespace {

/// The test hook FLOW_TEST_REDUCER_DELAY_MS around a partition's reducer
/// (tests kill a worker node while its partition is still being read).
reducer<element_row> with_delay(reducer<element_row> fn) {
  auto delay = test_reducer_delay();
  if (delay.count() == 0)
    return fn;
  return [fn = std::move(fn), delay](const batch_ref<element_row>& b,
                                     partial& out) {
    std::this_thread::sleep_for(delay);
    fn(b, out);
  };
}

caf::expected<job_result> run_sum_partition(caf::actor_system& sys,
                                            const std::string& conninfo,
                                            const std::string& payload) {
  auto ticket = pg::partition_ticket::decode(payload);
  if (!ticket)
    return std::move(ticket.error());
  auto reader = pg::open_partition(*ticket, conninfo);
  if (!reader)
    return node_error(std::move(reader.error()));
  auto decode = [](const pg::row_view& r) { return decode_element_row(r); };
  pipeline<element_row> p;
  p.add(source<element_row>{
    std::make_unique<pg::row_source<element_row, decltype(decode)>>(
      std::move(*reader), decode)});
  options opts;
  opts.batch_size = 16384;
  opts.reducers = flow::default_reducers();
  return p.reduce(with_delay(sum_per_list())).with(opts).run(sys);
}

} // namespace

void register_etl_tasks(const std::string& conninfo) {
  net::register_task(sum_task, [conninfo](caf::actor_system& sys,
                                          const std::string& payload) {
    return run_sum_partition(sys, conninfo, payload);
  });
  net::register_task(clean_partition_task,
                     [conninfo](caf::actor_system& sys,
                                const std::string& payload) {
                       return run_clean_partition(sys, conninfo, payload);
                     });
}

#endif // FLOW_HAS_NET

} // namespace flow::apps
