#include "etl/test_hooks.hpp"

#include <chrono>
#include <cstdlib>
#include <exception>
#include <thread>

#include <pqxx/connection>
#include <pqxx/nontransaction>

#include "flow/logging.hpp"
#include "flow/pg/read.hpp"

#include <spdlog/spdlog.h>

namespace flow::apps {

bool test_end_exporter_wanted() {
  auto* env = std::getenv("FLOW_TEST_END_EXPORTER");
  return env != nullptr && std::string{env} == "1";
}

void test_end_exporter(const std::string& conninfo, const std::string& pid) {
  if (!test_end_exporter_wanted())
    return;
  try {
    pqxx::connection conn{conninfo};
    pqxx::nontransaction tx{conn};
    auto gone = "SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = "
                + tx.quote(pid) + "::int";
    tx.exec("SELECT pg_terminate_backend(" + tx.quote(pid) + "::int)");
    for (int i = 0; i < 1000 && !tx.exec(gone)[0][0].as<bool>(); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
  } catch (const std::exception& e) {
    logger()->warn("test hook FLOW_TEST_END_EXPORTER: {}", e.what());
  }
}

void test_end_exporter(const std::string& conninfo,
                       pg::partitioned_read& read) {
  if (!test_end_exporter_wanted())
    return;
  if (auto pid = read.query("SELECT pg_backend_pid()"); pid && (*pid)[0][0])
    test_end_exporter(conninfo, *(*pid)[0][0]);
}

} // namespace flow::apps
