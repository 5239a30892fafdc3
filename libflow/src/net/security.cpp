// flow::net's connection settings: endpoints, the check of a node's TLS
// files, and the actor system configuration (CAF's middleman, its OpenSSL
// module, libflow's message types, heartbeats).

#include "flow/net/security.hpp"

#include <algorithm>

#include <atomic>
#include <chrono>
#include <fstream>

#include <caf/actor_system_config.hpp>
#include <caf/io/middleman.hpp>
#include <caf/openssl/manager.hpp>

#include <spdlog/spdlog.h>

#include "flow/error.hpp"
#include "flow/logging.hpp"
#include "flow/parse.hpp"
#include "flow/types.hpp"

namespace flow::net {

/// Turns on the logging of refused TLS peers (tls_watch.cpp).
extern std::atomic<bool> watch_tls;

/// True when tls_watch.cpp's OpenSSL error-queue guard is in effect.
bool tls_guard_active();

namespace {

bool readable(const std::string& path) {
  std::ifstream in{path};
  return in.good();
}

} // namespace

caf::expected<endpoint> parse_endpoint(const std::string& text) {
  auto colon = text.rfind(':');
  if (colon == std::string::npos)
    return make_error(errc::invalid_config,
                      quote_token(text) + " is not HOST:PORT");
  endpoint result;
  if (colon > 0)
    result.host = text.substr(0, colon);
  std::string why;
  auto port = parse_int64(text.substr(colon + 1), why);
  if (!port || *port < 0 || *port > 65535)
    return make_error(errc::invalid_config,
                      quote_token(text) + ": the port must be 0..65535");
  result.port = static_cast<std::uint16_t>(*port);
  return result;
}

caf::error check(const security& sec) {
  if (sec.insecure)
    return caf::none;
  if (sec.cert.empty() || sec.key.empty() || sec.ca.empty())
    return make_error(errc::invalid_config,
                      "TLS needs --cert, --key and --ca (mutual "
                      "authentication); plain TCP only with --insecure");
  for (auto* path : {&sec.cert, &sec.key, &sec.ca})
    if (!readable(*path))
      return make_error(errc::invalid_config,
                        "cannot read " + quote_token(*path));
  return caf::none;
}

void configure(caf::actor_system_config& cfg, const security& sec) {
  add_message_types(cfg);
  cfg.load<caf::io::middleman>();
  // A silent peer is noticed within sec.peer_timeout (5 s by default).
  auto timeout = std::max(sec.peer_timeout, std::chrono::milliseconds(100));
  auto beat = std::min<std::chrono::milliseconds>(timeout / 5,
                                                  std::chrono::seconds(1));
  cfg.set("middleman.heartbeat-interval", caf::timespan{beat});
  cfg.set("middleman.connection-timeout", caf::timespan{timeout});
  if (sec.insecure)
    return;
  cfg.load<caf::openssl::manager>();
  watch_tls = true;
  if (!tls_guard_active())
    logger()->warn("libssl is linked ahead of flow::net, so the OpenSSL "
                   "error-queue guard is not in effect: a peer refused at "
                   "the TLS handshake may disconnect other nodes (see "
                   "docs/distribution.md, 'Refused peers')");
  // Setting the certificate, key and CA turns on mutual authentication;
  // without them CAF would fall back to anonymous TLS, which is never used.
  cfg.set("openssl.certificate", sec.cert);
  cfg.set("openssl.key", sec.key);
  cfg.set("openssl.cafile", sec.ca);
  if (!sec.passphrase.empty())
    cfg.set("openssl.passphrase", sec.passphrase);
}

} // namespace flow::net
