#include "pg_fixture.hpp"

#include <atomic>
#include <memory>
#include <stdexcept>

#include <pqxx/connection>
#include <pqxx/result>
#include <pqxx/transaction>
#include <unistd.h>

#include "flow/error.hpp"
#include "flow/pg/connection.hpp"

namespace flow::test {

namespace {

// Destroyed after main returns: stops the server.
std::unique_ptr<pg::temp_cluster> the_server;

} // namespace

pg::temp_cluster& server() {
  if (!the_server) {
    auto c = pg::temp_cluster::start();
    if (!c)
      throw std::runtime_error(describe(c.error()));
    the_server = std::move(*c);
  }
  return *the_server;
}

std::string conninfo() {
  return server().conninfo();
}

std::string fresh_schema(const std::string& hint) {
  static std::atomic<int> counter{0};
  auto name = "t_" + hint + "_" + std::to_string(::getpid()) + "_"
              + std::to_string(counter++);
  exec("CREATE SCHEMA " + pg::quote_ident(name));
  return name;
}

void exec(const std::string& sql) {
  pqxx::connection conn{conninfo()};
  pqxx::work tx{conn};
  tx.exec(sql);
  tx.commit();
}

std::string scalar(const std::string& sql) {
  pqxx::connection conn{conninfo()};
  pqxx::work tx{conn};
  auto res = tx.exec(sql);
  tx.commit();
  if (res.empty() || res[0][0].is_null())
    return {};
  return res[0][0].c_str();
}

void make_role(const std::string& name, const std::string& password) {
  pqxx::connection conn{conninfo()};
  pqxx::work tx{conn};
  auto exists = tx.exec_params("SELECT 1 FROM pg_roles WHERE rolname = $1",
                               name);
  if (exists.empty())
    tx.exec("CREATE ROLE " + pg::quote_ident(name) + " LOGIN PASSWORD "
            + tx.quote(password));
  tx.commit();
}

} // namespace flow::test
