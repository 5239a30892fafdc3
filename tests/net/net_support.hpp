#pragma once

// What the network tests share: test certificates made by
// scripts/make-certs.sh, child processes with their output in files, and
// waiting for what they print.

#include <string>
#include <vector>

#include <sys/types.h>

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

/// The contents of a file ("" when missing).
std::string slurp(const std::string& path);

/// A child process with its stdout and stderr in files; killed (SIGKILL)
/// by the destructor if still running.
struct child {
  pid_t pid = -1;
  std::string out;
  std::string err;

  /// Starts argv[0] with `argv`; `env`, if given, is one NAME=VALUE added
  /// to the environment.
  child(const std::vector<std::string>& argv, const std::string& tag,
        const std::string& env = {});

  child(const child&) = delete;
  child& operator=(const child&) = delete;

  /// Waits for the exit; returns the exit code (128 + signal if killed).
  int wait();

  /// Sends SIGKILL.
  void kill_now();

  ~child();
};

/// Waits until a manager printed "PROG: listening on 127.0.0.1:PORT" on
/// stderr; returns PORT ("" after 10 s).
std::string wait_for_port(const child& manager);

/// Waits until `path` contains `text` (at most 30 s).
bool wait_for_text(const std::string& path, const std::string& text);

/// `xs` followed by `more`.
std::vector<std::string> with(std::vector<std::string> xs,
                              const std::vector<std::string>& more);

} // namespace flow::test
