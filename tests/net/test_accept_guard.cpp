// accept_guard.cpp: a connection CAF accepts on a coordinator's port never
// gets the descriptor number of a connection closed just before (CAF 0.17's
// BASP broker names connections by that number and cleans up after a closed
// one late, so a reused number made a joining node look gone).

#include <catch2/catch.hpp>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>
#include <thread>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>

#include "flow/net/net.hpp"

namespace {

std::uint16_t port_of(int fd, bool peer) {
  sockaddr_in addr{};
  socklen_t len = sizeof(addr);
  auto* sa = reinterpret_cast<sockaddr*>(&addr);
  if ((peer ? getpeername(fd, sa, &len) : getsockname(fd, sa, &len)) != 0
      || addr.sin_family != AF_INET)
    return 0;
  return ntohs(addr.sin_port);
}

int connect_to(std::uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd >= 0
      && ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

/// This process's descriptor of the accepted end of `client`'s connection to
/// `port` (-1 until the acceptor has taken it), found by the addresses.
int accepted_end(int client, std::uint16_t port) {
  auto client_port = port_of(client, false);
  for (int i = 0; i < 1000; ++i) {
    std::error_code ec;
    for (auto& e : std::filesystem::directory_iterator{"/proc/self/fd", ec}) {
      auto fd = std::stoi(e.path().filename().string());
      if (fd != client && port_of(fd, false) == port
          && port_of(fd, true) == client_port)
        return fd;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return -1;
}

/// Waits until `fd` is closed in this process (CAF closes its end of a
/// connection its peer dropped).
bool closed_soon(int fd, std::uint16_t port) {
  for (int i = 0; i < 1000; ++i) {
    if (fcntl(fd, F_GETFD) < 0 || port_of(fd, false) != port)
      return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

} // namespace

TEST_CASE("net: a connection accepted on a manager's port never gets the "
          "descriptor number of one closed just before",
          "[net][security]") {
  flow::net::security sec;
  sec.insecure = true;
  caf::actor_system_config cfg;
  flow::net::configure(cfg, sec);
  caf::actor_system sys{cfg};
  auto coord = flow::net::coordinator::listen(sys, {"127.0.0.1", 0}, sec);
  REQUIRE(coord);
  auto port = coord->port();
  // Each connection is dropped at once (not a CAF peer), and the next one
  // comes only once the manager has closed its end: without the guard the
  // kernel gives the next one the number just freed, every time.
  int previous = -1;
  for (int i = 0; i < 5; ++i) {
    INFO("connection " << i);
    auto client = connect_to(port);
    REQUIRE(client >= 0);
    auto fd = accepted_end(client, port);
    REQUIRE(fd >= 0);
    CHECK(fd != previous);
    ::close(client);
    REQUIRE(closed_soon(fd, port));
    previous = fd;
  }
}

TEST_CASE("net: the accept guard leaves other listening sockets alone",
          "[net]") {
  // A listening socket of the same process that is not a manager's (the
  // status server's, say): accept() returns the kernel's number.
  int listener = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(listener >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof(addr))
          == 0);
  REQUIRE(::listen(listener, 4) == 0);
  auto port = port_of(listener, false);
  int numbers[2] = {-1, -1};
  for (auto& n : numbers) {
    auto client = connect_to(port);
    REQUIRE(client >= 0);
    n = ::accept(listener, nullptr, nullptr);
    REQUIRE(n >= 0);
    CHECK(port_of(n, true) == port_of(client, false));
    ::close(n);
    ::close(client);
  }
  CHECK(numbers[0] == numbers[1]);
  ::close(listener);
}
