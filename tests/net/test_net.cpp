// flow::net end to end on loopback: a manager (flow-keyed --listen) and
// worker processes (flow-node) over mutual TLS, with certificates made by
// scripts/make-certs.sh at test time. Results are compared with the
// in-process run; faults: a worker killed mid-job, the manager killed, a
// worker joining mid-job, rogue peers (another CA, plain TCP, anonymous TLS).

#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <sys/wait.h>
#include <unistd.h>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/io/middleman.hpp>
#include <caf/openssl/manager.hpp>
#include <caf/openssl/remote_actor.hpp>

#include "json_fields.hpp"
#include "net_support.hpp"
#include "rogue_peers.hpp"
#include "run_program.hpp"

using flow::test::json_field;
using flow::test::lines_of;
using flow::test::run_program;
using flow::test::temp_file;

namespace {

const std::string keyed = FLOW_KEYED_PATH;
const std::string node = FLOW_NODE_PATH;

using flow::test::child;
using flow::test::count_of;
using flow::test::slurp;
using flow::test::the_certs;
using flow::test::wait_for_port;
using flow::test::wait_for_text;
using flow::test::with;

/// A worker node's command line: named `name`, with `cert`'s certificate
/// and `reducers` reducers, connecting to the manager at `port`.
std::vector<std::string> worker_args(const std::string& port,
                                     const std::string& name,
                                     const std::string& cert,
                                     const std::string& reducers) {
  return with({node, "worker", "--connect", "127.0.0.1:" + port,
               "--reducers", reducers, "--name", name},
              the_certs().tls(cert));
}

/// Sums per key from flow-keyed's JSON lines.
std::vector<std::string> sums_of(const std::string& out) {
  std::vector<std::string> result;
  for (auto& line : lines_of(out))
    result.push_back(json_field(line, "key") + "=" + json_field(line, "sum")
                     + "/" + json_field(line, "elements"));
  return result;
}

bool all_ok(const std::string& out) {
  auto lines = lines_of(out);
  if (lines.empty())
    return false;
  for (auto& line : lines)
    if (json_field(line, "ok") != "true")
      return false;
  return true;
}

std::uint64_t remote_batches(const std::string& out) {
  auto lines = lines_of(out);
  return lines.empty() ? 0 : std::stoull(json_field(lines[0], "remote_batches"));
}


/// What one wave of misbehaving peers saw.
struct wave_outcome {
  /// Peers whose refusal the manager has logged by the time misbehave()
  /// returns: each of them waited for the manager to hang up.
  std::size_t logged_on_return = 0;
  /// Peers whose refusal the manager must log, sooner or later: the above
  /// and the connections that were dropped (the stalled one is logged when
  /// the socket closes, if the manager is still there).
  std::size_t must_be_logged = 0;
  /// Peers that were NOT refused, or could not even connect.
  std::vector<std::string> surprises;
};

/// Every kind of refused or misbehaving peer at once at the manager's port:
/// worker processes with a certificate from another CA, with a forged one
/// (another CA's certificate, our CA trusted), over plain TCP speaking
/// CAF's protocol; from threads of this process a TLS client without a
/// certificate, random bytes, a hundred connections opened and dropped at
/// once; and a client that stops in the middle of its handshake and holds
/// the socket (kept in `stalled` until the caller drops it). `extra` are
/// processes started in the same instant (legitimate nodes). Processes are
/// all forked before any thread starts (a fork beside running threads may
/// deadlock the child before its exec).
wave_outcome misbehave(const std::string& port_text, std::uint32_t seed,
                       std::vector<std::unique_ptr<flow::test::stalled_handshake>>& stalled,
                       const std::string& tag) {
  auto& c = the_certs();
  auto at = "127.0.0.1:" + port_text;
  auto port = static_cast<std::uint16_t>(std::stoi(port_text));
  wave_outcome res;
  child rogue{with({node, "worker", "--connect", at, "--name", "rogue"},
                   c.tls("rogue", "rogue")),
              tag + "-rogue"};
  child forged{{node, "worker", "--connect", at, "--name", "forged", "--cert",
                c.dir + "/rogue/rogue.pem", "--key", c.dir + "/rogue/rogue.key",
                "--ca", c.dir + "/good/ca.pem"},
               tag + "-forged"};
  child plain{{node, "worker", "--connect", at, "--insecure", "--name",
               "plain"},
              tag + "-plain"};
  std::atomic<bool> no_cert_refused{false};
  std::atomic<bool> random_sent{false};
  std::atomic<std::size_t> dropped{0};
  {
    std::vector<std::thread> threads;
    threads.emplace_back([&] {
      no_cert_refused = flow::test::tls_without_certificate(port);
    });
    threads.emplace_back([&] {
      random_sent = flow::test::random_bytes(port, 4096, seed);
    });
    threads.emplace_back([&] {
      dropped = flow::test::connect_and_drop(port, 100);
    });
    stalled.push_back(std::make_unique<flow::test::stalled_handshake>(port));
    for (auto& t : threads)
      t.join();
  }
  // rogue, forged, plain, no certificate, random bytes; then the dropped.
  res.logged_on_return = 5;
  res.must_be_logged = res.logged_on_return + dropped;
  if (!no_cert_refused)
    res.surprises.push_back("a TLS client without certificate got in");
  if (!random_sent)
    res.surprises.push_back("random bytes: no connection");
  if (dropped != 100)
    res.surprises.push_back(std::to_string(dropped) + " of 100 connected");
  if (!stalled.back()->sent())
    res.surprises.push_back("the stalled handshake did not start");
  for (auto* p : {&rogue, &forged, &plain}) {
    auto rc = p->wait();
    if (rc != 1)
      res.surprises.push_back("a refused worker exited " + std::to_string(rc)
                              + ": " + slurp(p->err));
  }
  return res;
}

} // namespace

TEST_CASE("net: a manager and two worker nodes over mutual TLS give the "
          "in-process result",
          "[net]") {
  auto& c = the_certs();
  // The spin reducer (about 1 us per element) keeps the job running for a
  // while, so the workers' reducers, which join a few milliseconds after
  // the job starts, surely get batches.
  std::vector<std::string> job{keyed,      "--sizes", "300000,100000,300000",
                               "--json",   "--batch", "16384",
                               "--reducer", "spin",   "--workers",
                               "1"};
  auto local = run_program(keyed, {"--sizes", "300000,100000,300000",
                                   "--json", "--batch", "16384"});
  REQUIRE(local.rc == 0);
  child manager{with(with(job, {"--listen", "127.0.0.1:0", "--min-workers",
                                "2"}),
                     c.tls("manager")),
                "manager"};
  auto port = wait_for_port(manager);
  child w1{worker_args(port, "w1", "w1", "1"),
           "w1"};
  child w2{worker_args(port, "w2", "w2", "1"),
           "w2"};
  auto rc = manager.wait();
  auto out = slurp(manager.out);
  INFO("manager: " << slurp(manager.err) << "\nw1: " << slurp(w1.err));
  CHECK(rc == 0);
  CHECK(all_ok(out));
  CHECK(sums_of(out) == sums_of(local.out));
  CHECK(remote_batches(out) > 0);
  // The workers notice that the manager is gone and stop, non-zero.
  CHECK(w1.wait() == 1);
  CHECK(w2.wait() == 1);
  CHECK(slurp(w1.err).find("lost the manager") != std::string::npos);
}

TEST_CASE("net: --values double and decimal with --agg through a worker "
          "node give the in-process result bit for bit",
          "[net][aggregates]") {
  auto& c = the_certs();
  // Data that breaks naive summation, and exact decimals of mixed scales.
  std::string doubles;
  std::string decimals;
  for (int i = 0; i < 3000; ++i) {
    auto k = "k" + std::to_string(i % 3);
    doubles += k + " 1e308\n" + k + " 0.1\n" + k + " -1e308\n" + k + " "
               + std::to_string(i) + "e-300\n";
    decimals += k + " " + std::to_string(i) + ".25\n" + k + " -0.001\n";
  }
  const std::string aggs = "sum,count,mean,stddev,min,max,p95,count_distinct,"
                           "approx_distinct";
  for (auto [values, text] : {std::pair{"double", doubles},
                              std::pair{"decimal", decimals}}) {
    INFO("--values " << values);
    auto path = temp_file(text);
    std::vector<std::string> job{keyed,      "--input", path,   "--values",
                                 values,     "--agg",   aggs,   "--json",
                                 "--batch",  "64",      "--workers", "1"};
    auto local = run_program(keyed, {"--input", path, "--values", values,
                                     "--agg", aggs, "--json"});
    REQUIRE(local.rc == 0);
    // The manager's own reducer sleeps on every batch (the hook is read when
    // the program starts; the worker node's reducers have none), so the
    // node's reducers surely get batches.
    ::setenv("FLOW_TEST_REDUCER_DELAY_MS", "20", 1);
    child manager{with(with(job, {"--listen", "127.0.0.1:0", "--min-workers",
                                  "1"}),
                       c.tls("manager")),
                  std::string{"agg-manager-"} + values};
    ::unsetenv("FLOW_TEST_REDUCER_DELAY_MS");
    auto port = wait_for_port(manager);
    child w1{worker_args(port, "w1", "w1", "2"),
             std::string{"agg-w1-"} + values};
    auto rc = manager.wait();
    auto out = slurp(manager.out);
    INFO("manager: " << slurp(manager.err) << "\nw1: " << slurp(w1.err));
    CHECK(rc == 0);
    CHECK(all_ok(out));
    CHECK(remote_batches(out) > 0);
    for (auto field : {"sum", "mean", "stddev", "min", "max",
                       "count_distinct", "approx_distinct", "count"}) {
      std::vector<std::string> got;
      std::vector<std::string> want;
      for (auto& line : lines_of(out))
        got.push_back(json_field(line, "key") + json_field(line, field));
      for (auto& line : lines_of(local.out))
        want.push_back(json_field(line, "key") + json_field(line, field));
      INFO(field);
      CHECK(got == want);
    }
    w1.wait();
  }
}

TEST_CASE("net: flow-keyed --keys through a worker node gives the "
          "in-process summary",
          "[net][keys]") {
  auto& c = the_certs();
  const std::vector<std::string> args{"--keys",  "50",        "--elements",
                                      "20000",   "--batch",   "500",
                                      "--summary", "--json"};
  auto local = run_program(keyed, args);
  REQUIRE(local.rc == 0);
  // As above: the manager's own reducer sleeps on every batch, so the
  // node's reducer surely gets some of the 40.
  ::setenv("FLOW_TEST_REDUCER_DELAY_MS", "20", 1);
  child manager{with(with(with({keyed}, args),
                          {"--listen", "127.0.0.1:0", "--min-workers", "1",
                           "--workers", "1"}),
                     c.tls("manager")),
                "keys-manager"};
  ::unsetenv("FLOW_TEST_REDUCER_DELAY_MS");
  auto port = wait_for_port(manager);
  child w1{worker_args(port, "w1", "w1", "1"),
           "keys-w1"};
  auto rc = manager.wait();
  auto out = slurp(manager.out);
  INFO("manager: " << slurp(manager.err) << "\nw1: " << slurp(w1.err));
  CHECK(rc == 0);
  CHECK(all_ok(out));
  CHECK(remote_batches(out) > 0);
  CHECK(json_field(out, "checksum") == json_field(local.out, "checksum"));
  CHECK(json_field(out, "keys") == "50");
  // The wait for --min-workers says when it is over.
  CHECK(slurp(manager.err).find("flow-keyed: 1 worker nodes connected, "
                                "starting")
        != std::string::npos);
  w1.wait();
}

TEST_CASE("net: a worker node killed mid-job, its batches are dispatched "
          "again and the result is exact",
          "[net][faults]") {
  auto& c = the_certs();
  // spin: about 1 us per element, so the job runs for seconds.
  child manager{with({keyed, "--sizes", "3000000,3000000", "--json",
                      "--batch", "16384", "--workers", "1", "--reducer",
                      "spin", "--listen", "127.0.0.1:0", "--min-workers",
                      "1", "--log-level", "info"},
                     c.tls("manager")),
                "kill-manager"};
  auto port = wait_for_port(manager);
  child w1{worker_args(port, "doomed", "w1", "2"),
           "doomed"};
  // Once it has reducers in the job (which needs about 3 s on two cores),
  // let it take batches, then kill it without warning. The manager's log,
  // not the node's: the node says "lent" when it sends the join, which a
  // loaded machine may not have delivered 500 ms later.
  REQUIRE(wait_for_text(manager.err, "worker node doomed lent a reducer"));
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  w1.kill_now();
  CHECK(w1.wait() == 128 + SIGKILL);
  auto rc = manager.wait();
  auto err = slurp(manager.err);
  INFO(err);
  CHECK(rc == 0);
  CHECK(all_ok(slurp(manager.out)));
  CHECK(err.find("lost a reducer of worker node doomed") != std::string::npos);
}

TEST_CASE("net: a worker node that joins while the job runs gets work at "
          "once",
          "[net]") {
  auto& c = the_certs();
  child manager{with({keyed, "--sizes", "3000000", "--json", "--batch",
                      "16384", "--workers", "1", "--reducer", "spin",
                      "--listen", "127.0.0.1:0"},
                     c.tls("manager")),
                "late-manager"};
  auto port = wait_for_port(manager);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  child w1{worker_args(port, "late", "w1", "1"),
           "late"};
  auto rc = manager.wait();
  auto out = slurp(manager.out);
  INFO(slurp(manager.err));
  CHECK(rc == 0);
  CHECK(all_ok(out));
  CHECK(remote_batches(out) > 0);
}

TEST_CASE("net: when the manager is killed, worker nodes stop with a clear "
          "message and a non-zero exit",
          "[net][faults]") {
  auto& c = the_certs();
  child manager{with({keyed, "--sizes", "50000000", "--json", "--workers",
                      "1", "--reducer", "spin", "--listen", "127.0.0.1:0",
                      "--min-workers", "1"},
                     c.tls("manager")),
                "dying-manager"};
  auto port = wait_for_port(manager);
  child w1{worker_args(port, "orphan", "w1", "1"),
           "orphan"};
  REQUIRE(wait_for_text(w1.err, "lent 1 reducers"));
  manager.kill_now();
  manager.wait();
  auto start = std::chrono::steady_clock::now();
  auto rc = w1.wait();
  auto err = slurp(w1.err);
  INFO(err);
  CHECK(rc == 1);
  CHECK(err.find("lost the manager") != std::string::npos);
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(10));
}

TEST_CASE("net: rogue peers are refused and the job is not disturbed",
          "[net][security]") {
  auto& c = the_certs();
  child manager{with({keyed, "--sizes", "1000000", "--json", "--workers",
                      "1", "--listen", "127.0.0.1:0", "--min-workers", "1"},
                     c.tls("manager")),
                "guarded-manager"};
  auto port = wait_for_port(manager);
  auto at = "127.0.0.1:" + port;
  SECTION("peers refused") {
    // A certificate from another CA.
    auto rogue = run_program(node, with({"worker", "--connect", at, "--name",
                                         "rogue"},
                                        c.tls("rogue", "rogue")));
    CHECK(rogue.rc == 1);
    CHECK(rogue.err.find("cannot connect to the manager") != std::string::npos);
    // A certificate from another CA, from a peer that trusts ours: this
    // side's verification refuses it.
    auto forged = run_program(
      node, {"worker", "--connect", at, "--name", "forged", "--cert",
             c.dir + "/rogue/rogue.pem", "--key", c.dir + "/rogue/rogue.key",
             "--ca", c.dir + "/good/ca.pem"});
    CHECK(forged.rc == 1);
    // Plain TCP.
    auto plain = run_program(node, {"worker", "--connect", at, "--insecure",
                                    "--name", "plain"});
    CHECK(plain.rc == 1);
    CHECK(plain.err.find("cannot connect to the manager") != std::string::npos);
    // Anonymous TLS (CAF's fallback without a certificate), from an actor
    // system in this process.
    {
      caf::actor_system_config cfg;
      cfg.load<caf::io::middleman>();
      cfg.load<caf::openssl::manager>();
      caf::actor_system sys{cfg};
      auto h = caf::openssl::remote_actor(sys, "127.0.0.1",
                                          static_cast<std::uint16_t>(
                                            std::stoi(port)));
      CHECK(!h);
    }
    // Then a legitimate node joins and the job completes.
    child good{with({node, "worker", "--connect", at, "--reducers", "1",
                     "--name", "good"},
                    c.tls("w2")),
               "good"};
    auto rc = manager.wait();
    CHECK(rc == 0);
    CHECK(all_ok(slurp(manager.out)));
    // The manager logged each refusal, with OpenSSL's reason.
    auto log = slurp(manager.err);
    INFO(log);
    std::size_t refused = 0;
    for (auto pos = log.find("refused a peer at 127.0.0.1:");
         pos != std::string::npos;
         pos = log.find("refused a peer at 127.0.0.1:", pos + 1))
      ++refused;
    CHECK(refused == 4);
    CHECK(log.find("certificate verify failed") != std::string::npos);
    CHECK(log.find("wrong version number") != std::string::npos);
  }
}

TEST_CASE("net: refused and misbehaving peers arriving while nodes join and "
          "while the job runs disconnect nobody, 20 runs",
          "[net][security]") {
  // Issue 12: a peer refused at the handshake left OpenSSL's per-thread
  // error queue non-empty, and the next legitimate read on CAF's middleman
  // thread was taken for a fatal error. Every run: the legitimate nodes
  // start in the same instant as a wave of every kind of bad peer, a second
  // wave comes while the job runs; the result must equal the local run, no
  // legitimate node may lose its connection, every refusal is logged.
  auto& c = the_certs();
  // About 5 s of spin work (2.4 s in a release build), held at its start
  // until the second wave has been refused (FLOW_TEST_PAUSE_FILE below).
  std::vector<std::string> sizes{"--sizes", "2000000,1000000,2000000",
                                 "--json", "--batch", "16384"};
  auto local = run_program(keyed, sizes);
  REQUIRE(local.rc == 0);
  // OpenSSL's reasons, counted over all runs: which side of a handshake
  // gives up first (and so which reason the manager logs) may differ from
  // run to run on a loaded machine; every refusal is counted in each run.
  std::map<std::string, std::size_t> reasons{
    {"certificate verify failed", 0},
    {"peer did not return a certificate", 0},
    {"wrong version number", 0}};
  for (int run = 0; run < 20; ++run) {
    INFO("run " << run);
    auto tag = "attacked-" + std::to_string(run);
    // Every reducer, the manager's and the nodes', waits while this file
    // exists: the job holds its batches in flight until the second wave is
    // over. (Timed by spin work alone, a release build on a loaded machine
    // could end the job before the second wave had connected.)
    auto pause = "/tmp/flow-test-" + std::to_string(::getpid()) + "-" + tag
                 + ".pause";
    std::ofstream{pause} << "paused\n";
    struct unpause {
      std::string path;
      ~unpause() {
        std::remove(path.c_str());
      }
    } unpause_at_end{pause};
    auto pause_env = "FLOW_TEST_PAUSE_FILE=" + pause;
    auto argv = with(with({keyed}, sizes),
                     {"--reducer", "spin", "--workers", "1", "--listen",
                      "127.0.0.1:0", "--min-workers", "2", "--log-level",
                      "info"});
    child manager{with(argv, c.tls("manager")), tag, pause_env};
    auto port = wait_for_port(manager);
    auto at = "127.0.0.1:" + port;
    std::vector<std::unique_ptr<flow::test::stalled_handshake>> stalled;
    child w1{with({node, "worker", "--connect", at, "--reducers", "1",
                   "--name", "w1"},
                  c.tls("w1")),
             tag + "-w1", pause_env};
    child w2{with({node, "worker", "--connect", at, "--reducers", "1",
                   "--name", "w2"},
                  c.tls("w2")),
             tag + "-w2", pause_env};
    auto first = misbehave(port, static_cast<std::uint32_t>(run), stalled,
                           tag + "-a");
    // Every refusal of the first wave is logged, the dropped connections'
    // included (the manager may still be working through them).
    for (int i = 0; i < 600 && count_of(slurp(manager.err), "refused a peer")
                                 < first.must_be_logged;
         ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
    CHECK(count_of(slurp(manager.err), "refused a peer")
          >= first.must_be_logged);
    // The second wave once both nodes work in the job.
    {
      auto w1_in = wait_for_text(w1.err, "lent 1 reducers");
      auto w2_in = wait_for_text(w2.err, "lent 1 reducers");
      INFO("manager: " << slurp(manager.err) << "\nw1: " << slurp(w1.err)
                       << "\nw2: " << slurp(w2.err));
      REQUIRE(w1_in);
      REQUIRE(w2_in);
    }
    auto second = misbehave(port, static_cast<std::uint32_t>(run + 1000),
                            stalled, tag + "-b");
    // The job still ran through the whole second wave: it has printed
    // nothing yet.
    CHECK(manager.running());
    CHECK(slurp(manager.out).empty());
    std::remove(pause.c_str());
    auto rc = manager.wait();
    stalled.clear();
    auto out = slurp(manager.out);
    auto log = slurp(manager.err);
    INFO("manager: " << log << "\nw1: " << slurp(w1.err)
                     << "\nw2: " << slurp(w2.err));
    for (auto* w : {&first, &second})
      for (auto& x : w->surprises)
        UNSCOPED_INFO(x);
    CHECK(first.surprises.empty());
    CHECK(second.surprises.empty());
    CHECK(rc == 0);
    CHECK(all_ok(out));
    CHECK(sums_of(out) == sums_of(local.out));
    CHECK(remote_batches(out) > 0);
    // No legitimate node was disconnected while the job ran.
    CHECK(log.find(" left (") == std::string::npos);
    CHECK(log.find("lost a reducer") == std::string::npos);
    // The manager logged every refusal, with OpenSSL's reasons.
    auto refused = count_of(log, "refused a peer");
    CHECK(refused >= first.must_be_logged + second.logged_on_return);
    for (auto& [why, seen] : reasons)
      seen += count_of(log, why);
    // The nodes stop when their manager is gone, not before.
    CHECK(w1.wait() == 1);
    CHECK(w2.wait() == 1);
  }
  for (auto& [why, seen] : reasons) {
    INFO(why);
    CHECK(seen > 0);
  }
}

TEST_CASE("net: --min-workers-timeout fails the job, naming how many nodes "
          "joined and left",
          "[net]") {
  auto& c = the_certs();
  SECTION("one node of two") {
    child manager{with({keyed, "--sizes", "1000", "--json", "--listen",
                        "127.0.0.1:0", "--min-workers", "2",
                        "--min-workers-timeout", "10"},
                       c.tls("manager")),
                  "quorum-manager"};
    auto port = wait_for_port(manager);
    child w1{worker_args(port, "lonely", "w1", "1"),
             "quorum-w1"};
    auto start = std::chrono::steady_clock::now();
    auto rc = manager.wait();
    auto err = slurp(manager.err);
    INFO(err);
    CHECK(rc == 2);
    CHECK(slurp(manager.out).empty());
    CHECK(err.find("only 1 of 2 worker nodes connected after 10 s (1 joined, "
                   "0 of them left)")
          != std::string::npos);
    CHECK(err.find("starting") == std::string::npos);
    CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(30));
  }
  SECTION("a node lost before the job starts is counted out again") {
    child manager{with({keyed, "--sizes", "1000", "--json", "--listen",
                        "127.0.0.1:0", "--min-workers", "2",
                        "--min-workers-timeout", "10"},
                       c.tls("manager")),
                  "quorum-manager2"};
    auto port = wait_for_port(manager);
    child w1{worker_args(port, "brief", "w1", "1"),
             "quorum-brief"};
    REQUIRE(wait_for_text(w1.err, "joined the manager"));
    w1.kill_now();
    w1.wait();
    auto rc = manager.wait();
    auto err = slurp(manager.err);
    INFO(err);
    CHECK(rc == 2);
    CHECK(err.find("worker node brief left") != std::string::npos);
    CHECK(err.find("0 nodes connected") != std::string::npos);
    CHECK(err.find("only 0 of 2 worker nodes connected after 10 s (1 joined, "
                   "1 of them left)")
          != std::string::npos);
  }
  SECTION("--min-workers-timeout needs --min-workers") {
    auto r = run_program(keyed, with({"--sizes", "10", "--listen",
                                      "127.0.0.1:0", "--min-workers-timeout",
                                      "5"},
                                     c.tls("manager")));
    CHECK(r.rc == 2);
    CHECK(r.err.find("--min-workers-timeout needs --min-workers")
          != std::string::npos);
  }
}

TEST_CASE("net: a job whose worker nodes are all killed as they join it goes "
          "on with the manager's own reducers",
          "[net][faults]") {
  auto& c = the_certs();
  std::vector<std::string> sizes{"--sizes", "600000,300000", "--json",
                                 "--batch", "16384"};
  auto local = run_program(keyed, sizes);
  REQUIRE(local.rc == 0);
  auto argv = with(with({keyed}, sizes),
                   {"--reducer", "spin", "--workers", "1", "--listen",
                    "127.0.0.1:0", "--min-workers", "2"});
  child manager{with(argv, c.tls("manager")), "abandoned-manager"};
  auto port = wait_for_port(manager);
  child w1{worker_args(port, "k1", "w1", "2"),
           "k1"};
  child w2{worker_args(port, "k2", "w2", "2"),
           "k2"};
  // The moment each lends its reducers to the job: gone.
  REQUIRE(wait_for_text(w1.err, "lent 2 reducers"));
  w1.kill_now();
  REQUIRE(wait_for_text(w2.err, "lent 2 reducers"));
  w2.kill_now();
  CHECK(w1.wait() == 128 + SIGKILL);
  CHECK(w2.wait() == 128 + SIGKILL);
  auto rc = manager.wait();
  auto out = slurp(manager.out);
  auto err = slurp(manager.err);
  INFO(err);
  CHECK(rc == 0);
  CHECK(all_ok(out));
  CHECK(sums_of(out) == sums_of(local.out));
  CHECK(err.find("worker node k1 left") != std::string::npos);
  CHECK(err.find("worker node k2 left") != std::string::npos);
}

TEST_CASE("net: bad network options are usage errors", "[net]") {
  auto& c = the_certs();
  SECTION("TLS files are required unless --insecure") {
    auto r = run_program(keyed, {"--sizes", "10", "--listen", "127.0.0.1:0"});
    CHECK(r.rc == 2);
    CHECK(r.err.find("--cert, --key and --ca") != std::string::npos);
  }
  SECTION("--min-workers needs --listen") {
    auto r = run_program(keyed, {"--sizes", "10", "--min-workers", "1"});
    CHECK(r.rc == 2);
  }
  SECTION("a bad endpoint") {
    auto r = run_program(keyed, {"--sizes", "10", "--listen", "nowhere"});
    CHECK(r.rc == 2);
    CHECK(r.err.find("HOST:PORT") != std::string::npos);
  }
  SECTION("an unreadable certificate") {
    auto r = run_program(node, {"worker", "--connect", "127.0.0.1:1",
                                "--cert", "/nonexistent.pem", "--key",
                                "/nonexistent.key", "--ca",
                                "/nonexistent.pem"});
    CHECK(r.rc == 2);
    CHECK(r.err.find("cannot read") != std::string::npos);
  }
  SECTION("--peer-timeout out of range or not a number") {
    for (auto bad : {"0", "0.05", "3601", "soon"}) {
      auto r = run_program(node, {"worker", "--connect", "127.0.0.1:1",
                                  "--insecure", "--peer-timeout", bad});
      CHECK(r.rc == 2);
      CHECK(r.err.find("--peer-timeout") != std::string::npos);
    }
  }
  SECTION("speculation options out of range") {
    auto r = run_program(keyed, {"--sizes", "10", "--speculation-floor", "0"});
    CHECK(r.rc == 2);
    CHECK(r.err.find("--speculation-floor") != std::string::npos);
    r = run_program(keyed, {"--sizes", "10", "--speculation-multiplier",
                            "0.5"});
    CHECK(r.rc == 2);
    CHECK(r.err.find("--speculation-multiplier") != std::string::npos);
  }
  SECTION("--insecure warns") {
    auto r = run_program(keyed, {"--sizes", "10", "--json", "--listen",
                                 "127.0.0.1:0", "--insecure"});
    CHECK(r.rc == 0);
    CHECK(r.err.find("--insecure") != std::string::npos);
  }
  SECTION("a config value is the whole rest of its line") {
    // '#', spaces and commas belong to the value, as they always did.
    auto cfg = flow::test::temp_file("# flow-node\ncert = " + c.dir
                                     + "/good/w1.pem\nkey = " + c.dir
                                     + "/good/w1.key\nca = /no such/dir#1,2\n");
    auto r = run_program(node, {"worker", "--connect", "127.0.0.1:1",
                                "--config", cfg});
    CHECK(r.rc == 2);
    CHECK(r.out.empty());
    CHECK(r.err.find("'/no such/dir#1,2'") != std::string::npos);
  }
  SECTION("a config line that is not name = value") {
    auto cfg = flow::test::temp_file("# flow-node\ninsecure\n");
    auto r = run_program(node, {"worker", "--connect", "127.0.0.1:1",
                                "--config", cfg});
    CHECK(r.rc == 2);
    CHECK(r.out.empty());
    CHECK(r.err.find("--config: line 2: expected 'name = value'")
          != std::string::npos);
  }
  SECTION("the config file gives the same options") {
    auto cfg = flow::test::temp_file("# flow-node\ncert = " + c.dir
                                     + "/good/w1.pem\nkey = " + c.dir
                                     + "/good/w1.key\nca = /nonexistent\n");
    auto r = run_program(node, {"worker", "--connect", "127.0.0.1:1",
                                "--config", cfg});
    CHECK(r.rc == 2);
    CHECK(r.err.find("/nonexistent") != std::string::npos);
  }
}

namespace {

/// Stops and continues process `pid` in cycles of `stopped` and `running`
/// until destroyed: a node slowed to a fraction of its speed whose
/// heartbeats (every second) still arrive.
class throttle {
public:
  throttle(pid_t pid, std::chrono::milliseconds stopped,
           std::chrono::milliseconds running)
    : worker_([this, pid, stopped, running] {
        auto pause = stopped;
        while (!done_) {
          ::kill(pid, SIGSTOP);
          std::this_thread::sleep_for(pause);
          auto resumed = std::chrono::steady_clock::now();
          ::kill(pid, SIGCONT);
          std::this_thread::sleep_for(running);
          // On a loaded machine this thread wakes late, and a 10 ms run
          // can last 40 ms: the node would get a third of its speed, not a
          // tenth, and no longer look slow next to the others (CI saw no
          // speculation at all). So the next pause is stretched to keep
          // the node's share of the wall time at running / (stopped +
          // running), whatever the scheduler's delays; at most 10 times
          // `stopped`, well inside the 5 s after which a silent connection
          // is dropped.
          auto ran = std::chrono::duration_cast<std::chrono::milliseconds>(
            std::chrono::steady_clock::now() - resumed);
          pause = std::clamp(ran * stopped.count() / running.count(), stopped,
                             stopped * 10);
        }
      }) {
  }
  ~throttle() {
    done_ = true;
    worker_.join();
  }

private:
  std::atomic<bool> done_{false};
  std::thread worker_;
};

/// flow-keyed's job over two worker nodes of one reducer each (and one
/// reducer of its own); with `slow`, the second node is throttled to a
/// tenth of its speed once it lent its reducer. Returns the manager's
/// stdout; `err` gets everyone's stderr.
std::string run_with_slow_node(bool slow, const std::string& tag,
                               std::string& err) {
  auto& c = the_certs();
  // Batches of about 65 ms of work: on the throttled node, about a second.
  std::vector<std::string> job{keyed,       "--sizes", "3000000,3000000",
                               "--json",    "--batch", "65536",
                               "--reducer", "spin",    "--workers",
                               "1",         "--speculation-floor", "300",
                               "--log-level", "info"};
  child manager{with(with(job, {"--listen", "127.0.0.1:0", "--min-workers",
                                "2"}),
                     c.tls("manager")),
                tag + "-manager"};
  auto port = wait_for_port(manager);
  child w1{worker_args(port, "w1", "w1", "1"), tag + "-w1"};
  child w2{worker_args(port, "slow", "w2", "1"), tag + "-w2"};
  int rc = -1;
  if (slow) {
    REQUIRE(wait_for_text(w2.err, "lent 1 reducers"));
    throttle t{w2.pid, std::chrono::milliseconds(90),
               std::chrono::milliseconds(10)};
    rc = manager.wait();
  } else {
    rc = manager.wait();
  }
  err = "manager (rc " + std::to_string(rc) + "): " + slurp(manager.err)
        + "\nw1: " + slurp(w1.err) + "\nslow: " + slurp(w2.err);
  w1.wait();
  w2.wait();
  return rc == 0 ? slurp(manager.out) : std::string{};
}

} // namespace

TEST_CASE("net: a worker node throttled to a tenth of its speed mid-job: "
          "its batches are speculated and the job ends exact in at most "
          "1.5x the undisturbed time",
          "[net][faults][speculation]") {
  std::string err;
  auto calm = run_with_slow_node(false, "calm", err);
  INFO(err);
  REQUIRE(all_ok(calm));
  auto calm_s = std::stod(json_field(lines_of(calm)[0], "libflow_s"));
  std::string slow_err;
  auto slow = run_with_slow_node(true, "throttled", slow_err);
  INFO(slow_err);
  REQUIRE(all_ok(slow));
  CHECK(sums_of(slow) == sums_of(calm));
  auto line = lines_of(slow)[0];
  auto slow_s = std::stod(json_field(line, "libflow_s"));
  INFO("undisturbed " << calm_s << " s, throttled " << slow_s << " s");
  CHECK(std::stoull(json_field(line, "speculated")) > 0);
  CHECK(std::stoull(json_field(line, "speculation_won"))
        <= std::stoull(json_field(line, "speculated")));
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
  // Under the sanitizers a second attempt can be as slow as the throttled
  // node's first (CI saw speculated > 0 with none won under ASan).
  CHECK(std::stoull(json_field(line, "speculation_won")) > 0);
#endif
  CHECK(slow_err.find("dispatching it again to") != std::string::npos);
  // The bound, for optimised builds. Under the sanitizers the
  // manager and the nodes' middlemen cost several times more per batch and
  // the two runs are less alike (CI measured 1.61x under ASan), so the bound
  // there only catches a job that waits for the slow node's whole share.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  const double bound = 2.5;
#else
  const double bound = 1.5;
#endif
  CHECK(slow_s <= bound * calm_s);
}

TEST_CASE("net: a worker node stuck for ever inside the reducer while it "
          "answers heartbeats: its batch is done elsewhere and the job ends "
          "exact",
          "[net][faults][speculation]") {
  auto& c = the_certs();
  std::vector<std::string> job{keyed,       "--sizes",
                               "200000,200000,200000,200000,200000,200000",
                               "--json",    "--batch", "16384",
                               "--reducer", "spin",    "--workers",
                               "1",         "--speculation-floor", "300",
                               "--log-level", "info"};
  auto local = run_program(keyed, {"--sizes",
                                   "200000,200000,200000,200000,200000,200000",
                                   "--json", "--batch", "16384"});
  REQUIRE(local.rc == 0);
  child manager{with(with(job, {"--listen", "127.0.0.1:0", "--min-workers",
                                "2"}),
                     c.tls("manager")),
                "stuck-manager"};
  auto port = wait_for_port(manager);
  child w1{worker_args(port, "w1", "w1", "1"), "stuck-w1"};
  // Its first call on a batch of seq 4 or more never returns.
  child stuck{worker_args(port, "stuck", "w2", "1"), "stuck-w2",
              "FLOW_TEST_STUCK_SEQ=4"};
  auto rc = manager.wait();
  auto err = slurp(manager.err);
  INFO("manager: " << err << "\nstuck: " << slurp(stuck.err));
  CHECK(rc == 0);
  auto out = slurp(manager.out);
  CHECK(all_ok(out));
  CHECK(sums_of(out) == sums_of(local.out));
  CHECK(slurp(stuck.err).find("test hook: stuck on batch") != std::string::npos);
  auto lines = lines_of(out);
  REQUIRE_FALSE(lines.empty());
  CHECK(std::stoull(json_field(lines[0], "speculated")) >= 1);
  CHECK(std::stoull(json_field(lines[0], "speculation_won")) >= 1);
  CHECK(err.find("by worker node stuck") != std::string::npos);
  CHECK(w1.wait() == 1);
  // The stuck node, too, sees the manager go and exits (its stuck call is
  // abandoned with the process).
  CHECK(stuck.wait() == 1);
  CHECK(slurp(stuck.err).find("lost the manager") != std::string::npos);
}

TEST_CASE("net: a worker node with --rejoin that the manager took for lost "
          "(stopped past the peer timeout) joins again as a new node, and "
          "the result is exact",
          "[net][faults]") {
  auto& c = the_certs();
  // spin, one local reducer: the job runs for many seconds.
  child manager{with({keyed, "--sizes", "8000000,8000000", "--json",
                      "--batch", "16384", "--workers", "1", "--reducer",
                      "spin", "--listen", "127.0.0.1:0", "--min-workers",
                      "1", "--peer-timeout", "2", "--log-level", "info"},
                     c.tls("manager")),
                "rejoin-manager"};
  auto port = wait_for_port(manager);
  child w1{with(worker_args(port, "w1", "w1", "1"),
                {"--rejoin", "5", "--peer-timeout", "2"}),
           "rejoin-w1"};
  // Not w1's own "lent 1 reducers": that line is written when the join is
  // sent, and a node stopped before its middleman wrote the message leaves
  // the manager with no reducer of w1 to lose (CI saw this on a loaded
  // machine).
  REQUIRE(wait_for_text(manager.err, "worker node w1 lent a reducer"));
  // Stopped for longer than the peer timeout: the manager declares it
  // lost, hands its batches to others and drops the connection.
  ::kill(w1.pid, SIGSTOP);
  bool lost = wait_for_text(manager.err, "lost a reducer of worker node w1");
  ::kill(w1.pid, SIGCONT);
  INFO("manager: " << slurp(manager.err) << "\nw1: " << slurp(w1.err));
  REQUIRE(lost);
  auto rc = manager.wait();
  auto out = slurp(manager.out);
  auto err = slurp(manager.err);
  // After the job the manager is gone: w1 tries for 5 s, then stops.
  auto w1_rc = w1.wait();
  auto w1_err = slurp(w1.err);
  INFO("manager: " << err << "\nw1: " << w1_err);
  CHECK(rc == 0);
  CHECK(all_ok(out));
  CHECK(count_of(err, "worker node w1 joined") == 2);
  CHECK(count_of(w1_err, "joined the manager at") == 2);
  CHECK(count_of(w1_err, "lent 1 reducers") >= 2);
  CHECK(w1_err.find("trying to join the manager at") != std::string::npos);
  CHECK(w1_rc == 1);
}

TEST_CASE("net: flow-node --rejoin with a bad value is a usage error",
          "[net]") {
  for (auto bad : {"-1", "x", "86401"}) {
    auto r = run_program(node, with({"worker", "--connect", "127.0.0.1:1",
                                     "--insecure", "--rejoin", bad},
                                    {}));
    INFO(bad << ": " << r.err);
    CHECK(r.rc == 2);
    CHECK(r.err.find("--rejoin") != std::string::npos);
  }
}
