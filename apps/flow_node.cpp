// flow-node: a worker node. It connects to a manager (a program started with
// --listen), lends reducers to each of its jobs and serves until the manager
// goes away or it is stopped. For flow-etl's jobs it also reads database
// partitions itself (in the manager's snapshot) and returns their partial
// aggregates.
//
//   manager (flow-keyed --listen) ◀──TLS──▶ flow-node worker --connect
//     batches ──▶ the node's reducers ──▶ partial aggregates back

#include <algorithm>
#include <chrono>
#include <iostream>
#include <thread>

#include <unistd.h>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>

#include "common/app_options.hpp"
#include "common/cli.hpp"
#include "common/keyed_aggs.hpp"
#include "common/net_options.hpp"
#include "common/test_hooks.hpp"
#include "common/watch.hpp"
#include "flow/error.hpp"
#include "flow/logging.hpp"
#include "flow/net/net.hpp"
#include "flow/net/registry.hpp"
#include "flow/reducer.hpp"
#include "flow/types.hpp"
#ifdef FLOW_HAS_PG
#include "etl/tasks.hpp"
#endif

#include <spdlog/spdlog.h>

namespace {

using namespace flow;
using namespace flow::apps;

constexpr const char* prog = "flow-node";

/// FLOW_TEST_REDUCER_DELAY_MS slows the built-in reducers the node lends, as
/// it slows every program's own (and the node's partition tasks): tests kill
/// a node while it still holds batches. FLOW_TEST_STUCK_SEQ leaves one call
/// stuck for ever; FLOW_TEST_PAUSE_FILE holds every call while a file exists.
void lend_with_test_delay() {
  if (!any_delay_hook())
    return;
  flow::net::register_reducer<std::int64_t>(
    "sum_by_label", with_test_delay(flow::sum_by_label()));
  flow::net::register_reducer<std::int64_t>(
    "spin_sum_by_label", with_test_delay(flow::net::spin_sum_by_label()));
  flow::net::register_reducer<keyed_value>(
    "sum_by_key", with_test_delay(flow::sum_by_key()));
}

int run(int argc, char** argv) {
  if (argc < 2 || std::string{argv[1]} != "worker") {
    if (argc >= 2
        && (std::string{argv[1]} == "--help" || std::string{argv[1]} == "-h")) {
      std::cout << "usage: flow-node worker --connect HOST:PORT [--reducers "
                   "N] [--name NAME] (--cert F --key F --ca F | --insecure)\n"
                   "A worker node: lends reducers to the jobs of a manager "
                   "started with --listen. See flow-node worker --help.\n";
      return exit_ok;
    }
    throw usage_error("expected the command 'worker' (see --help)");
  }
  arg_parser args{"flow-node worker",
                  "Joins the manager at --connect and lends it --reducers "
                  "reducers for each of its jobs, until the manager goes "
                  "away (exit 1, with the reason) or a signal stops it. "
                  "Mutual TLS unless --insecure."};
  args.value("connect", "HOST:PORT", "the manager's --listen address");
  args.value("reducers", "N", "reducers lent to each job (0: one per core)",
             "0");
  args.value("name", "NAME", "this node's name in the manager's log",
             "");
#ifdef FLOW_HAS_PG
  args.value("db", "URI|CONNINFO",
             "this node's connection to the manager's database, for the "
             "partitions of flow-etl jobs (default: the manager's, without "
             "its password, completed by this node's libpq environment: "
             "PGPASSWORD, ~/.pgpass)",
             "");
#endif
  args.value("rejoin", "SECONDS",
             "after losing a manager it had joined (a cut link, a heartbeat "
             "timeout), try to join it again as a new node for up to SECONDS "
             "(every 0.5 s, then up to every 5 s); 0: exit at once",
             "0");
  args.value("log-level", "LEVEL",
             "trace, debug, info, warn, error, critical or off", "info");
  declare_net_options(args, false);
  declare_watch_options(args);
  if (!args.parse(argc - 1, argv + 1))
    return exit_ok;
  apply_log_level(args.get("log-level"));
  read_watch_options(args);
  if (!args.given("connect"))
    throw usage_error("--connect HOST:PORT is required");
  auto to = flow::net::parse_endpoint(args.get("connect"));
  if (!to)
    throw usage_error("--connect: " + describe(to.error()));
  auto net = read_net_options(args, prog, false);
  auto reducers = args.get_uint("reducers", 0, 4096);
  if (reducers == 0)
    reducers = flow::default_reducers();
  auto name = args.get("name");
  if (name.empty()) {
    char host[256] = {};
    gethostname(host, sizeof(host) - 1);
    name = std::string{host} + ":" + std::to_string(getpid());
  }
  set_status_info("role", "worker node");
  set_status_info("node", name);
  set_status_info("manager", args.get("connect"));
  set_status_info("reducers", std::to_string(reducers));
#ifdef FLOW_HAS_PG
  flow::apps::register_etl_tasks(args.get("db"));
  flow::apps::register_keyed_agg_factory();
#endif
  lend_with_test_delay();
  caf::actor_system_config cfg;
  configure_scheduler(cfg);
  flow::net::configure(cfg, net.sec);
  caf::actor_system sys{cfg};
  auto rejoin = std::chrono::seconds(args.get_uint("rejoin", 0, 86400));
  bool joined = false;
  auto serve = [&] {
    joined = false;
    return flow::net::serve(sys, *to, net.sec, reducers, name,
                            [&] { joined = true; });
  };
  auto err = serve();
  // --rejoin: a manager that is still there (its link was cut, or it took
  // this node for lost) takes the node back as a new one; its work went to
  // other nodes meanwhile, so nothing is done twice. One that ended is not
  // there to connect to: the node stops once the time is up. Each time it
  // served again the window starts afresh.
  if (joined && rejoin.count() > 0) {
    auto deadline = std::chrono::steady_clock::now();
    auto pause = std::chrono::milliseconds(500);
    while (code_of(err) != errc::invalid_config) {
      auto now = std::chrono::steady_clock::now();
      if (joined) {
        deadline = now + rejoin;
        pause = std::chrono::milliseconds(500);
        logger()->warn("{}; trying to join the manager at {} again for up "
                       "to {} s",
                       describe(err), args.get("connect"), rejoin.count());
      } else if (now >= deadline) {
        break;
      }
      std::this_thread::sleep_for(pause);
      pause = std::min(pause * 2, std::chrono::milliseconds(5000));
      err = serve();
    }
  }
  std::cerr << prog << ": " << describe(err) << std::endl;
  // --status-linger: _Exit skips guarded_main's finish_watch().
  finish_watch();
  // Whatever ended the service, the manager is not there any more.
  std::cout.flush();
  std::_Exit(code_of(err) == errc::invalid_config ? exit_usage : 1);
}

} // namespace

int main(int argc, char** argv) {
  pin_malloc_thresholds();
  return guarded_main(prog, [&] { return run(argc, argv); });
}
