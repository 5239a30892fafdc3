// The connections CAF accepts for a manager get descriptor numbers that were
// not used lately.
//
// Why: CAF 0.17's BASP broker names a connection by its socket's descriptor
// number (conn_hdl_from_socket), and it forgets a closed connection late.
// Its handler for connection_closed_msg does not clean up at once: it sends
// itself a delete_atom(handle) through the queue of its deserializing
// workers, so that messages already read from that connection are delivered
// first (basp_broker.cpp, 0.17.6). Meanwhile the socket is closed, and the
// kernel hands out the lowest free number to the next accept(). When a node
// joins just after a peer was dropped (a refused TLS peer, a port scanner, a
// node that left), the node's new connection can get the dropped one's
// number before the delayed delete_atom arrives; the cleanup then erases the
// node's route and kills its proxies: the manager logs "node left
// (remote_link_unreachable)" a millisecond after "joined", and the node's
// hello times out. Any peer able to reach the port could so disconnect a
// joining node, and on a loaded machine (the workers slow) it happened in
// about one join in sixty while rogue peers connected.
//
// Debian's CAF cannot be patched from here, so libflow interposes accept():
// a socket accepted on a port a coordinator listens on is moved (F_DUPFD) to
// the next number of a window in the upper half of the descriptor limit,
// going round; a number comes back only after the window has been used up,
// long after any delayed cleanup of its previous connection. Other listening
// sockets of the program (the status server's) are left alone, and when no
// number of the window is free the socket keeps its own.
//
// As with tls_watch.cpp, this works because flow::net is linked into the
// program ahead of libc; accept_guard_active() checks it at run time.

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <utility>

#include <dlfcn.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "internal.hpp"

namespace flow::net {

namespace {

/// The ports coordinators of this process listen on (0: a free slot; a
/// seventeenth coordinator at once would go unguarded).
std::array<std::atomic<std::uint16_t>, 16> guarded_ports{};

/// The next number to try, inside the window.
std::atomic<int> next_fd{0};

std::uint16_t local_port(int fd) {
  sockaddr_storage addr{};
  socklen_t len = sizeof(addr);
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0)
    return 0;
  if (addr.ss_family == AF_INET)
    return ntohs(reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
  if (addr.ss_family == AF_INET6)
    return ntohs(reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port);
  return 0;
}

bool guarded(int listener) {
  auto port = local_port(listener);
  if (port == 0)
    return false;
  for (auto& p : guarded_ports)
    if (p.load(std::memory_order_relaxed) == port)
      return true;
  return false;
}

/// The window: the upper half of the soft descriptor limit (at most the
/// numbers below 2^20).
std::pair<int, int> window() {
  rlimit lim{};
  rlim_t top = 1024;
  if (getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur != RLIM_INFINITY)
    top = lim.rlim_cur;
  else if (lim.rlim_cur == RLIM_INFINITY)
    top = rlim_t{1} << 20;
  auto hi = static_cast<int>(std::min<rlim_t>(top, rlim_t{1} << 20));
  return {hi / 2, hi};
}

/// `fd` moved to a number of the window not used lately, or `fd` itself when
/// none is free.
int away_from_recent(int fd) {
  auto [lo, hi] = window();
  if (hi - lo < 16)
    return fd;
  for (int attempt = 0; attempt < 2; ++attempt) {
    auto want = next_fd.load(std::memory_order_relaxed);
    if (want < lo || want >= hi)
      want = lo;
    // F_DUPFD takes the lowest free number from `want` on; the socket's
    // flags (O_NONBLOCK) live in the open file and so come along, and the
    // new number is close-on-exec, as CAF makes an accepted socket anyway.
    auto moved = fcntl(fd, F_DUPFD_CLOEXEC, want);
    if (moved >= 0) {
      next_fd.store(moved + 1, std::memory_order_relaxed);
      ::close(fd);
      return moved;
    }
    // Nothing free from `want` to the limit: go round once.
    next_fd.store(lo, std::memory_order_relaxed);
  }
  return fd;
}

using accept_fn = int (*)(int, sockaddr*, socklen_t*);

} // namespace

void guard_accepts_on(std::uint16_t port) {
  for (auto& p : guarded_ports)
    if (p.load() == port)
      return;
  for (auto& p : guarded_ports) {
    std::uint16_t expected = 0;
    if (p.compare_exchange_strong(expected, port))
      return;
  }
}

void unguard_accepts_on(std::uint16_t port) {
  for (auto& p : guarded_ports) {
    auto expected = port;
    if (p.compare_exchange_strong(expected, std::uint16_t{0}))
      return;
  }
}

bool accept_guard_active() {
  return interposed_here("accept");
}

} // namespace flow::net

extern "C" int accept(int listener, sockaddr* addr, socklen_t* len) {
  static auto real = reinterpret_cast<flow::net::accept_fn>(
    dlsym(RTLD_NEXT, "accept"));
  if (real == nullptr) {
    errno = ENOSYS;
    return -1;
  }
  auto fd = real(listener, addr, len);
  if (fd < 0 || !flow::net::guarded(listener))
    return fd;
  return flow::net::away_from_recent(fd);
}
