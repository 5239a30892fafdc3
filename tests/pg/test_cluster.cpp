// The throwaway cluster: a server that is really private, not root, and
// always cleaned up, even when its owner is killed.

#include <catch2/catch.hpp>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <string>
#include <thread>

#include <pqxx/connection>
#include <pqxx/transaction>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "flow/pg/temp_cluster.hpp"
#include "flow/error.hpp"
#include "pg_fixture.hpp"

using namespace flow;

namespace fs = std::filesystem;

namespace {

bool wait_gone(const std::string& path, int seconds) {
  for (int i = 0; i < seconds * 10; ++i) {
    if (!fs::exists(path))
      return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return !fs::exists(path);
}

} // namespace

TEST_CASE("temp_cluster: serves SQL on a private socket, never as root, and "
          "goes away",
          "[pg][cluster]") {
  auto c = pg::temp_cluster::start();
  REQUIRE(c);
  auto dir = (*c)->dir();
  auto data = (*c)->data_dir();
  {
    pqxx::connection conn{(*c)->conninfo()};
    pqxx::work tx{conn};
    CHECK(tx.exec("SELECT current_setting('listen_addresses')")[0][0].c_str()
          == std::string{});
    CHECK(tx.exec("SELECT current_setting('data_directory')")[0][0].c_str()
          == data);
    CHECK(tx.exec("SELECT 6 * 7")[0][0].as<int>() == 42);
  }
  struct stat st {};
  REQUIRE(::stat((data + "/postmaster.pid").c_str(), &st) == 0);
  CHECK(st.st_uid != 0);
  CHECK((st.st_uid == ::geteuid() || ::geteuid() == 0));
  c->reset();
  CHECK_FALSE(fs::exists(dir));
}

TEST_CASE("temp_cluster: two clusters at once do not collide",
          "[pg][cluster]") {
  auto a = pg::temp_cluster::start();
  auto b = pg::temp_cluster::start();
  REQUIRE(a);
  REQUIRE(b);
  CHECK((*a)->dir() != (*b)->dir());
  pqxx::connection ca{(*a)->conninfo()};
  pqxx::connection cb{(*b)->conninfo()};
  pqxx::work ta{ca};
  pqxx::work tb{cb};
  CHECK(ta.exec("SELECT current_setting('data_directory')")[0][0].c_str()
        != std::string{
          tb.exec("SELECT current_setting('data_directory')")[0][0].c_str()});
}

TEST_CASE("temp_cluster: the watchdog stops the server when its owner is "
          "killed",
          "[pg][cluster]") {
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::close(fds[0]);
    auto c = pg::temp_cluster::start();
    std::string dir = c ? (*c)->dir() : std::string{};
    dir += '\n';
    if (::write(fds[1], dir.data(), dir.size()) < 0)
      ::_exit(1);
    ::kill(::getpid(), SIGKILL); // no destructors run
    ::_exit(1);
  }
  ::close(fds[1]);
  std::string dir;
  char ch;
  while (::read(fds[0], &ch, 1) == 1 && ch != '\n')
    dir += ch;
  ::close(fds[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  REQUIRE(WIFSIGNALED(status));
  REQUIRE_FALSE(dir.empty());
  CHECK(wait_gone(dir, 20));
}

TEST_CASE("temp_cluster: keep leaves it running, stop removes it",
          "[pg][cluster]") {
  auto c = pg::temp_cluster::start();
  REQUIRE(c);
  auto dir = (*c)->dir();
  (*c)->keep();
  CHECK((*c)->stop_command().find("pg_ctl") != std::string::npos);
  {
    pqxx::connection conn{(*c)->conninfo()};
    CHECK(conn.is_open());
  }
  (*c)->stop();
  CHECK_FALSE(fs::exists(dir));
}

TEST_CASE("temp_cluster: a missing PostgreSQL is a clear error",
          "[pg][cluster][error]") {
  pg::cluster_options opts;
  opts.bin_dir = "/nonexistent/bin";
  auto c = pg::temp_cluster::start(opts);
  REQUIRE_FALSE(c);
  CHECK(describe(c.error()).find("/nonexistent/bin/initdb not found")
        != std::string::npos);
}
