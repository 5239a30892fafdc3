#pragma once

// Child processes for the tests that start programs and interfere with them
// while they run (signals, kills, the database cut): the program's stdout
// and stderr go to files, read with `slurp`.

#include <string>
#include <vector>

#include <sys/types.h>

namespace flow::test {

/// The contents of a file ("" when missing).
std::string slurp(const std::string& path);

/// A child process with its stdout and stderr in files; killed (SIGKILL)
/// by the destructor if still running, and its files removed.
struct child {
  pid_t pid = -1;
  std::string out;
  std::string err;

  /// Starts argv[0] with `argv`; `env`, if given, is one NAME=VALUE added
  /// to the environment. `tag` names the output files.
  child(const std::vector<std::string>& argv, const std::string& tag,
        const std::string& env = {});

  child(const child&) = delete;
  child& operator=(const child&) = delete;

  /// Waits for the exit; returns the exit code (128 + signal if killed).
  int wait();

  /// True while the process has not exited.
  bool running();

  /// Sends `sig`.
  void signal(int sig);

  /// Sends SIGKILL.
  void kill_now();

  ~child();
};

/// Waits until `path` contains `text` (at most 30 s).
bool wait_for_text(const std::string& path, const std::string& text);

/// `xs` followed by `more`.
std::vector<std::string> with(std::vector<std::string> xs,
                              const std::vector<std::string>& more);

} // namespace flow::test
