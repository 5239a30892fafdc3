#pragma once

// Runs a built program as a child process and captures what it printed.

#include <string>
#include <vector>

namespace flow::test {

/// What a finished child process left behind.
struct run_result {
  /// Exit code; 128 + signal number when it was killed.
  int rc = -1;
  std::string out;
  std::string err;
  /// Peak resident set size of the child, in KiB.
  long max_rss_kib = 0;
};

/// Runs `program` with `args`; `stdin_path` (if not empty) becomes its
/// standard input.
run_result run_program(const std::string& program,
                       const std::vector<std::string>& args,
                       const std::string& stdin_path = {});

/// Runs a shell pipeline `producer | program args...` through /bin/sh.
run_result run_piped(const std::string& producer, const std::string& program,
                     const std::vector<std::string>& args);

/// Writes `text` to a fresh temporary file and returns its path.
std::string temp_file(const std::string& text);

/// Splits `text` into lines (without the newline characters).
std::vector<std::string> lines_of(const std::string& text);

} // namespace flow::test
