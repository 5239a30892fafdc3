#pragma once

// Peers that misbehave at a manager's TLS port, for the tests of issue 12:
// a refused or misbehaving peer must change nothing for anyone else. Each
// one works on loopback only and gives up by itself within a few seconds.

#include <cstdint>
#include <memory>
#include <vector>

namespace flow::test {

/// A blocking TCP connection to 127.0.0.1:port whose reads and writes time
/// out after 5 s; -1 when it cannot be made within 3 s.
int open_blocking(std::uint16_t port);

/// A TLS client without a certificate: the manager, which requires one,
/// must refuse it. Returns true when the handshake failed (as it must).
bool tls_without_certificate(std::uint16_t port);

/// Plain TCP that sends `n` random bytes and hangs up. Returns true when the
/// connection was made.
bool random_bytes(std::uint16_t port, std::size_t n, std::uint32_t seed);

/// A TLS client that sends its ClientHello and then nothing, holding the
/// socket open until it is destroyed.
class stalled_handshake {
public:
  explicit stalled_handshake(std::uint16_t port);
  ~stalled_handshake();
  stalled_handshake(const stalled_handshake&) = delete;
  stalled_handshake& operator=(const stalled_handshake&) = delete;

  /// True when the ClientHello went out.
  bool sent() const noexcept {
    return sent_;
  }

private:
  int fd_ = -1;
  bool sent_ = false;
};

/// Opens `n` TCP connections at once, then drops them all (half with a
/// reset, half with a plain close). Returns how many were connected.
std::size_t connect_and_drop(std::uint16_t port, std::size_t n);

} // namespace flow::test
