#include "rogue_peers.hpp"

#include <random>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

namespace flow::test {

namespace {

/// A non-blocking connect to 127.0.0.1:port, given up after 3 s; -1 on
/// failure. The socket is left non-blocking.
int open_nonblocking(std::uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0)
    return fd;
  if (errno != EINPROGRESS) {
    ::close(fd);
    return -1;
  }
  pollfd p{fd, POLLOUT, 0};
  int err = 0;
  socklen_t len = sizeof(err);
  if (::poll(&p, 1, 3000) != 1
      || ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

bool send_all(int fd, const char* data, std::size_t n) {
  while (n > 0) {
    auto k = ::send(fd, data, n, MSG_NOSIGNAL);
    if (k <= 0)
      return false;
    data += k;
    n -= static_cast<std::size_t>(k);
  }
  return true;
}

struct ctx_deleter {
  void operator()(SSL_CTX* ctx) const {
    SSL_CTX_free(ctx);
  }
};

struct ssl_deleter {
  void operator()(SSL* ssl) const {
    SSL_free(ssl);
  }
};

} // namespace

int open_blocking(std::uint16_t port) {
  int fd = open_nonblocking(port);
  if (fd < 0)
    return -1;
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  return fd;
}

bool tls_without_certificate(std::uint16_t port) {
  std::unique_ptr<SSL_CTX, ctx_deleter> ctx{SSL_CTX_new(TLS_client_method())};
  if (!ctx)
    return false;
  // It does not check the manager either: it only wants in.
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_NONE, nullptr);
  int fd = open_blocking(port);
  if (fd < 0)
    return false;
  std::unique_ptr<SSL, ssl_deleter> ssl{SSL_new(ctx.get())};
  SSL_set_fd(ssl.get(), fd);
  auto ret = SSL_connect(ssl.get());
  bool refused = ret <= 0;
  if (!refused) {
    // TLS 1.3 would finish the client's side before the server's verdict;
    // the refusal then arrives as an alert on the first read.
    char c;
    refused = SSL_read(ssl.get(), &c, 1) <= 0;
  }
  ERR_clear_error();
  ::close(fd);
  return refused;
}

bool random_bytes(std::uint16_t port, std::size_t n, std::uint32_t seed) {
  int fd = open_blocking(port);
  if (fd < 0)
    return false;
  std::mt19937 gen{seed};
  std::vector<char> bytes(n);
  for (auto& b : bytes)
    b = static_cast<char>(gen());
  send_all(fd, bytes.data(), bytes.size());
  // Wait for the manager to hang up (or 5 s), then go.
  char buf[256];
  while (::recv(fd, buf, sizeof(buf), 0) > 0) {
    // drain
  }
  ::close(fd);
  return true;
}

stalled_handshake::stalled_handshake(std::uint16_t port) {
  fd_ = open_blocking(port);
  if (fd_ < 0)
    return;
  // The handshake runs against memory buffers: the ClientHello it writes
  // goes to the socket by hand, and nothing after it.
  std::unique_ptr<SSL_CTX, ctx_deleter> ctx{SSL_CTX_new(TLS_client_method())};
  std::unique_ptr<SSL, ssl_deleter> ssl{SSL_new(ctx.get())};
  auto* rbio = BIO_new(BIO_s_mem());
  auto* wbio = BIO_new(BIO_s_mem());
  SSL_set_bio(ssl.get(), rbio, wbio);
  SSL_set_connect_state(ssl.get());
  SSL_do_handshake(ssl.get()); // wants to read the ServerHello
  ERR_clear_error();
  char* data = nullptr;
  auto n = BIO_get_mem_data(wbio, &data);
  sent_ = n > 0 && send_all(fd_, data, static_cast<std::size_t>(n));
}

stalled_handshake::~stalled_handshake() {
  if (fd_ >= 0)
    ::close(fd_);
}

std::size_t connect_and_drop(std::uint16_t port, std::size_t n) {
  std::vector<int> fds;
  for (std::size_t i = 0; i < n; ++i) {
    int fd = open_nonblocking(port);
    if (fd >= 0)
      fds.push_back(fd);
  }
  auto connected = fds.size();
  for (std::size_t i = 0; i < fds.size(); ++i) {
    if (i % 2 == 0) {
      // SO_LINGER with a zero timeout: close() sends a reset.
      linger l{1, 0};
      ::setsockopt(fds[i], SOL_SOCKET, SO_LINGER, &l, sizeof(l));
    }
    ::close(fds[i]);
  }
  return connected;
}

} // namespace flow::test
