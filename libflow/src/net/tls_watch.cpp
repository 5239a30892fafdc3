// The manager's side of a refused TLS peer. CAF 0.17 closes a connection
// whose handshake fails without telling anyone (its logger is compiled out
// in Debian's build, and it has no hook for it), so the refusal would only
// show on the connecting side. To log it where the job runs, libflow
// interposes OpenSSL's SSL_CTX_new: it calls the real function and installs
// an info callback on the context, which logs an accepting session's failed
// handshake with OpenSSL's reason (a certificate from another CA, none at
// all, anonymous TLS, plain TCP). Only accepting sessions are watched, and
// only after flow::net::configure turned TLS on; client sessions (libpq's
// connections to PostgreSQL, CAF's own connects) are left alone, and nothing
// but the callback changes.

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

// The peer's address, kept from the start of the handshake: by the time
// it fails the peer may have hung up already.
void free_peer(void*, void* ptr, CRYPTO_EX_DATA*, int, long, void*) {
  delete static_cast<std::string*>(ptr);
}

// SSL_dup copies the session's data: give the copy a string of its own.
int dup_peer(CRYPTO_EX_DATA*, const CRYPTO_EX_DATA*, void** from, int, long,
             void*) {
  if (from != nullptr && *from != nullptr)
    *from = new std::string{*static_cast<std::string*>(*from)};
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
  if ((where & SSL_CB_HANDSHAKE_START) != 0
      && SSL_get_ex_data(s, peer_index()) == nullptr) {
    SSL_set_ex_data(s, peer_index(), new std::string{peer_of(ssl)});
    return;
  }
  // SSL_accept giving up: the handshake failed for good. A non-blocking
  // accept that merely waits for more bytes leaves OpenSSL's error queue
  // empty (the handshake state machine clears it as it starts; CAF 0.17
  // never reads it), so an entry there says why this one failed.
  if (where != SSL_CB_ACCEPT_EXIT || ret > 0)
    return;
  auto code = ERR_peek_last_error();
  if (code == 0)
    return;
  auto* why = ERR_reason_error_string(code);
  auto* peer = static_cast<std::string*>(SSL_get_ex_data(s, peer_index()));
  flow::logger()->warn("refused a peer at {}: TLS handshake failed ({})",
                       peer != nullptr ? *peer : peer_of(ssl),
                       why != nullptr ? why : "unknown reason");
}

using ctx_new_fn = SSL_CTX* (*) (const SSL_METHOD*);

} // namespace

extern "C" SSL_CTX* SSL_CTX_new(const SSL_METHOD* method) {
  static auto real = reinterpret_cast<ctx_new_fn>(
    dlsym(RTLD_NEXT, "SSL_CTX_new"));
  if (real == nullptr)
    return nullptr;
  auto* ctx = real(method);
  if (ctx != nullptr)
    SSL_CTX_set_info_callback(ctx, on_tls_event);
  return ctx;
}
