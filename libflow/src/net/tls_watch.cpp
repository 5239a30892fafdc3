// OpenSSL calls that libflow interposes in processes that link flow::net.
//
// 1. The error-queue guard (issue 12). OpenSSL keeps errors in a queue per
// thread, and SSL_get_error() reports SSL_ERROR_SSL whenever that queue is
// not empty, whatever the call it is asked about did: "the current thread's
// error queue must be empty before the TLS/SSL I/O operation is attempted,
// or SSL_get_error() will not work reliably" (OpenSSL's SSL_get_error(3)).
// CAF 0.17's OpenSSL module never clears the queue (caf::openssl::session
// calls SSL_read/SSL_write/SSL_accept/SSL_connect, then SSL_get_error), and
// one middleman thread serves every connection. So a peer refused at the
// handshake (another CA, no certificate, plain TCP, random bytes, even a
// client that hangs up early: OpenSSL 3 queues "unexpected eof") left its
// error behind, and the next SSL_read of a legitimate node on that thread
// that merely had to wait for bytes was taken for a fatal error: CAF closed
// the connection and both sides saw remote_link_unreachable. Any peer able
// to reach the port could disconnect every worker node. Debian's CAF cannot
// be patched from here, so libflow interposes the four I/O calls CAF makes
// and clears the calling thread's queue before each, as the documentation
// requires (libpq does the same before its own SSL_read/SSL_write, so its
// connections see no change). The errors of the call itself are untouched:
// SSL_get_error and the refusal log below still see them.
//
// 2. The manager's side of a refused TLS peer. CAF 0.17 closes a connection
// whose handshake fails without telling anyone (its logger is compiled out
// in Debian's build, and it has no hook for it), so the refusal would only
// show on the connecting side. To log it where the job runs, libflow
// interposes OpenSSL's SSL_CTX_new: it calls the real function and installs
// an info callback on the context, which logs an accepting session's failed
// handshake with OpenSSL's reason (a certificate from another CA, none at
// all, anonymous TLS, plain TCP), and, when the session is freed, one that
// ended before its handshake finished without an error to say why (a peer
// that reset the connection or stalled). Each refused peer is logged once.
// Only accepting sessions are watched, and
// only after flow::net::configure turned TLS on; client sessions (libpq's
// connections to PostgreSQL, CAF's own connects) are left alone, and nothing
// but the callback changes.
//
// Interposition works because flow::net is linked into the program ahead of
// libssl (a static library, or a shared one that the program needs before
// CAF's); tls_guard_active() checks it at run time.

#include <atomic>
#include <cstring>
#include <string>

#include <arpa/inet.h>
#include <dlfcn.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <spdlog/spdlog.h>

#include "flow/logging.hpp"
#include "internal.hpp"

namespace flow::net {

/// Set by flow::net::configure when TLS is on.
std::atomic<bool> watch_tls{false};

} // namespace flow::net

namespace {

std::string peer_of(const SSL* ssl) {
  auto fd = SSL_get_fd(ssl);
  sockaddr_storage addr{};
  socklen_t len = sizeof(addr);
  if (fd < 0 || getpeername(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0)
    return "an unknown address";
  char host[INET6_ADDRSTRLEN] = {};
  unsigned port = 0;
  if (addr.ss_family == AF_INET) {
    auto* in = reinterpret_cast<sockaddr_in*>(&addr);
    inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
    port = ntohs(in->sin_port);
  } else if (addr.ss_family == AF_INET6) {
    auto* in = reinterpret_cast<sockaddr_in6*>(&addr);
    inet_ntop(AF_INET6, &in->sin6_addr, host, sizeof(host));
    port = ntohs(in->sin6_port);
  } else {
    return "a local socket";
  }
  return std::string{host} + ":" + std::to_string(port);
}

/// What the watch keeps of an accepting session.
struct watched_peer {
  /// The peer's address, kept from the start of the handshake: by the time
  /// it fails the peer may have hung up already.
  std::string address;
  /// The handshake finished: a node, not a refused peer.
  bool done = false;
  /// Its refusal was logged already.
  bool logged = false;
};

/// Logs the refusal of `peer` once.
void log_refusal(watched_peer& peer, const char* why) {
  if (peer.logged)
    return;
  peer.logged = true;
  flow::logger()->warn("refused a peer at {}: TLS handshake failed ({})",
                       peer.address, why);
}

// A session freed before its handshake finished, with nothing logged: the
// peer hung up or was reset without a TLS error (a reset leaves OpenSSL's
// queue empty), or stalled until CAF dropped it. Logged here, so every
// refused peer is logged once.
void free_peer(void*, void* ptr, CRYPTO_EX_DATA*, int, long, void*) {
  auto* peer = static_cast<watched_peer*>(ptr);
  if (peer != nullptr && !peer->done)
    log_refusal(*peer, "the connection ended before the handshake finished");
  delete peer;
}

// SSL_dup copies the session's data: give the copy its own record.
int dup_peer(CRYPTO_EX_DATA*, const CRYPTO_EX_DATA*, void** from, int, long,
             void*) {
  if (from != nullptr && *from != nullptr)
    *from = new watched_peer{*static_cast<watched_peer*>(*from)};
  return 1;
}

int peer_index() {
  static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, dup_peer,
                                                free_peer);
  return index;
}

void on_tls_event(const SSL* ssl, int where, int ret) {
  if (!flow::net::watch_tls.load(std::memory_order_relaxed)
      || !SSL_is_server(const_cast<SSL*>(ssl)) || peer_index() < 0)
    return;
  auto* s = const_cast<SSL*>(ssl);
  auto* peer = static_cast<watched_peer*>(SSL_get_ex_data(s, peer_index()));
  if ((where & SSL_CB_HANDSHAKE_START) != 0 && peer == nullptr) {
    SSL_set_ex_data(s, peer_index(), new watched_peer{peer_of(ssl)});
    return;
  }
  if (peer == nullptr)
    return;
  if ((where & SSL_CB_HANDSHAKE_DONE) != 0) {
    peer->done = true;
    return;
  }
  // SSL_accept giving up: the handshake failed for good. A non-blocking
  // accept that merely waits for more bytes leaves OpenSSL's error queue
  // empty (the guard below cleared it before the call), so an entry there
  // says why this one failed.
  if (where != SSL_CB_ACCEPT_EXIT || ret > 0)
    return;
  auto code = ERR_peek_last_error();
  if (code == 0)
    return;
  auto* why = ERR_reason_error_string(code);
  log_refusal(*peer, why != nullptr ? why : "unknown reason");
}

/// The next definition of `name` after this one: libssl's.
template <class Fn>
Fn next_symbol(const char* name) {
  return reinterpret_cast<Fn>(dlsym(RTLD_NEXT, name));
}

using ctx_new_fn = SSL_CTX* (*) (const SSL_METHOD*);
using io_fn = int (*)(SSL*, void*, int);
using write_fn = int (*)(SSL*, const void*, int);
using handshake_fn = int (*)(SSL*);

} // namespace

namespace flow::net {

bool interposed_here(const char* symbol) {
  // Whether the program's lookup of `symbol` lands in the object that holds
  // flow::net (the program, or a shared flow::net) rather than in the
  // library that defines it too. Comparing addresses would not do: in a
  // shared library, &SSL_read here also goes through that same lookup.
  Dl_info found{};
  Dl_info here{};
  auto* f = dlsym(RTLD_DEFAULT, symbol);
  return f != nullptr && dladdr(f, &found) != 0
         && dladdr(reinterpret_cast<void*>(&interposed_here), &here) != 0
         && found.dli_fbase == here.dli_fbase;
}

bool tls_guard_active() {
  return interposed_here("SSL_read");
}

} // namespace flow::net

extern "C" int SSL_read(SSL* ssl, void* buf, int num) {
  static auto real = next_symbol<io_fn>("SSL_read");
  ERR_clear_error();
  return real != nullptr ? real(ssl, buf, num) : -1;
}

extern "C" int SSL_write(SSL* ssl, const void* buf, int num) {
  static auto real = next_symbol<write_fn>("SSL_write");
  ERR_clear_error();
  return real != nullptr ? real(ssl, buf, num) : -1;
}

extern "C" int SSL_accept(SSL* ssl) {
  static auto real = next_symbol<handshake_fn>("SSL_accept");
  ERR_clear_error();
  return real != nullptr ? real(ssl) : -1;
}

extern "C" int SSL_connect(SSL* ssl) {
  static auto real = next_symbol<handshake_fn>("SSL_connect");
  ERR_clear_error();
  return real != nullptr ? real(ssl) : -1;
}

extern "C" SSL_CTX* SSL_CTX_new(const SSL_METHOD* method) {
  static auto real = next_symbol<ctx_new_fn>("SSL_CTX_new");
  if (real == nullptr)
    return nullptr;
  auto* ctx = real(method);
  if (ctx != nullptr)
    SSL_CTX_set_info_callback(ctx, on_tls_event);
  return ctx;
}
