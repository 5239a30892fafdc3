#pragma once

// What the network tests share besides child processes
// (tests/support/child_process.hpp): test certificates made by
// scripts/make-certs.sh, and the port a manager listens on.

#include <string>
#include <vector>

#include "child_process.hpp"

namespace flow::test {

/// Certificates for the whole test process: a CA with a manager and two
/// workers, and a rogue CA with a node of its own.
struct certs {
  /// The directory holding good/ and rogue/.
  std::string dir;

  certs();
  ~certs();

  /// --cert, --key and --ca for node `who` of CA `ca` ("good" or "rogue").
  std::vector<std::string> tls(const std::string& who,
                               const std::string& ca = "good") const;
};

/// The certificates of this test process (made on first use).
const certs& the_certs();

/// Waits until a manager printed "PROG: listening on 127.0.0.1:PORT" on
/// stderr and returns PORT; after 10 s without it the test case fails
/// (REQUIRE), showing what the manager printed.
std::string wait_for_port(const child& manager);

/// How often `what` occurs in `text`.
std::size_t count_of(const std::string& text, const std::string& what);

} // namespace flow::test
