#include "net_options.hpp"

#include <algorithm>
#include <chrono>
#include <iostream>
#include <vector>

#include "flow/error.hpp"

namespace flow::apps {

void declare_net_options(arg_parser& args, bool manager) {
  if (manager) {
    args.value("listen", "HOST:PORT",
               "act as the manager of the job and accept worker nodes "
               "(flow-node) on this address; port 0 picks a free one, which "
               "is printed");
    args.value("min-workers", "N",
               "with --listen: wait for N worker nodes before each job "
               "starts",
               "0");
    args.value("min-workers-timeout", "SECONDS",
               "with --min-workers: fail (exit 2) when fewer than N nodes "
               "are connected after SECONDS",
               "120");
  }
  args.value("cert", "FILE", "this node's TLS certificate (PEM)");
  args.value("key", "FILE", "this node's TLS private key (PEM)");
  args.value("passphrase", "TEXT", "the key's passphrase, if it has one");
  args.value("ca", "FILE",
             "the CA certificate that every node's certificate must chain "
             "to (mutual TLS)");
  args.flag("insecure",
            "plain TCP without authentication or encryption (anyone who can "
            "reach the port may join); for trusted test networks only");
  args.value("peer-timeout", "SECONDS",
             "declare a peer (the manager, a worker node) lost when nothing, "
             "not even a heartbeat, came from it for SECONDS (0.1 to 3600); "
             "its work goes elsewhere",
             "5");
  std::vector<std::string> names{"cert", "key", "passphrase", "ca",
                                 "insecure", "peer-timeout"};
  if (manager) {
    names.push_back("listen");
    names.push_back("min-workers");
    names.push_back("min-workers-timeout");
  }
  args.config("config",
              "read the options above from FILE ('name = value' lines, # "
              "comments); the command line wins",
              names);
}

net_options read_net_options(const arg_parser& args, const std::string& prog,
                             bool manager) {
  net_options result;
  auto& sec = result.sec;
  sec.insecure = args.is_set("insecure");
  if (args.given("cert"))
    sec.cert = args.get("cert");
  if (args.given("key"))
    sec.key = args.get("key");
  if (args.given("passphrase"))
    sec.passphrase = args.get("passphrase");
  if (args.given("ca"))
    sec.ca = args.get("ca");
  sec.peer_timeout = std::chrono::milliseconds(static_cast<std::int64_t>(
    args.get_double("peer-timeout", 0.1, 3600) * 1000));
  if (manager) {
    if (args.given("listen")) {
      auto ep = flow::net::parse_endpoint(args.get("listen"));
      if (!ep)
        throw usage_error("--listen: " + describe(ep.error()));
      result.listen = *ep;
    }
    result.min_workers.count = args.get_uint("min-workers", 0, 1024);
    result.min_workers.timeout = std::chrono::seconds{
      args.get_uint("min-workers-timeout", 1, 86400)};
    if (result.min_workers.count > 0 && !result.listen)
      throw usage_error("--min-workers needs --listen");
    if (args.given("min-workers-timeout") && result.min_workers.count == 0)
      throw usage_error("--min-workers-timeout needs --min-workers");
    if (!result.listen)
      return result; // no networking: the TLS options are not needed
  }
  if (sec.insecure && (!sec.cert.empty() || !sec.key.empty()
                       || !sec.ca.empty()))
    throw usage_error("--insecure excludes --cert, --key and --ca");
  if (auto err = flow::net::check(sec))
    throw usage_error(describe(err));
  if (sec.insecure)
    std::cerr << prog
              << ": warning: --insecure: plain TCP, no authentication, no "
                 "encryption"
              << std::endl;
  return result;
}

void wait_for_workers(const flow::net::coordinator& coord,
                      const node_quorum& q, const std::string& prog) {
  if (q.count == 0)
    return;
  std::cerr << prog << ": waiting for " << q.count << " worker nodes (at most "
            << q.timeout.count() << " s)" << std::endl;
  auto deadline = std::chrono::steady_clock::now() + q.timeout;
  std::size_t shown = 0;
  for (;;) {
    // Short waits, so that a change in the count is shown as it happens.
    if (coord.wait_for_nodes(q.count, std::chrono::milliseconds(250))) {
      std::cerr << prog << ": " << std::max(coord.nodes(), q.count)
                << " worker nodes connected, starting" << std::endl;
      return;
    }
    auto now = coord.nodes();
    if (now != shown) {
      std::cerr << prog << ": " << now << " of " << q.count
                << " worker nodes connected" << std::endl;
      shown = now;
    }
    if (std::chrono::steady_clock::now() >= deadline)
      break;
  }
  auto joined = coord.joined();
  auto now = coord.nodes();
  throw usage_error("only " + std::to_string(now) + " of "
                    + std::to_string(q.count)
                    + " worker nodes connected after "
                    + std::to_string(q.timeout.count()) + " s ("
                    + std::to_string(joined) + " joined, "
                    + std::to_string(joined - std::min(joined, now))
                    + " of them left); see --min-workers-timeout");
}

} // namespace flow::apps
