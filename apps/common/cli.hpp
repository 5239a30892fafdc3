#pragma once

// Command-line plumbing shared by the programs in apps/: options declared
// once and parsed by CLI11 (with --help and --config files), one-line
// usage errors, size lists and timing.

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace CLI {
class App;
class Error;
} // namespace CLI

namespace flow::apps {

/// Bad command-line usage or bad input: reported as one line, exit code 2.
class usage_error : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

/// Exit codes shared by every program.
enum exit_code : int {
  exit_ok = 0,
  /// A result did not verify against its reference.
  exit_mismatch = 1,
  /// Bad usage or bad input: nothing was computed or printed.
  exit_usage = 2,
  /// The job completed, but the reducer failed on some elements: they were
  /// dead-lettered (reported, not merged), so the result covers the rest.
  exit_dead_letters = 3,
};

/// A command line declared once, parsed by CLI11: `--name value`,
/// `--name=value` and `--flag`; --help generated from the declarations;
/// optionally a --config file in CLI11's format (`name = value` lines, `#`
/// comments) for the options that allow it. Every error becomes one
/// usage_error naming the option (exit code 2, nothing on stdout).
class arg_parser {
public:
  /// A program called `prog` with a one-line summary.
  arg_parser(std::string prog, std::string summary);
  /// Frees the CLI11 application.
  ~arg_parser();
  /// Not copyable: CLI11 keeps pointers to the values it parses into.
  arg_parser(const arg_parser&) = delete;
  /// Not copyable.
  arg_parser& operator=(const arg_parser&) = delete;

  /// Declares an option that takes a value (`default_value` when not
  /// given, shown in --help).
  void value(const std::string& name, const std::string& meta,
             const std::string& help, std::string default_value = {});

  /// Declares a flag without value.
  void flag(const std::string& name, const std::string& help);

  /// Declares --`name` as another name of the option --`target` (declared
  /// before): a renamed option keeps working under its former name.
  void alias(const std::string& name, const std::string& target);

  /// Declares --`name` FILE, a config file that may set the options in
  /// `names` (declared before) that the command line does not give: the
  /// command line wins.
  void config(const std::string& name, const std::string& help,
              const std::vector<std::string>& names);

  /// Parses argv (argv[0] is the program); throws usage_error on an unknown
  /// option, a missing value, a stray argument or a bad config file.
  /// Returns false when --help was given (help printed).
  bool parse(int argc, char** argv);

  /// True when the option was given (on the command line or in the config
  /// file).
  bool given(const std::string& name) const;

  /// The option's value (its default when not given).
  const std::string& get(const std::string& name) const;

  /// True when the flag was given (and true).
  bool is_set(const std::string& name) const;

  /// The value as an unsigned integer in [lo, hi]; throws usage_error.
  std::uint64_t get_uint(const std::string& name, std::uint64_t lo = 0,
                         std::uint64_t hi = UINT64_MAX) const;

  /// The value as a finite number in [lo, hi]; throws usage_error.
  double get_double(const std::string& name, double lo, double hi) const;

  /// Prints the help text to stdout.
  void print_help() const;

  /// The program's name, as in messages.
  const std::string& prog() const noexcept {
    return prog_;
  }

private:
  struct option;
  const option& find(const std::string& name) const;
  std::string describe(const CLI::Error& e) const;

  std::string prog_;
  std::unique_ptr<CLI::App> app_;
  std::map<std::string, std::unique_ptr<option>> options_;
};

/// Parses a comma-separated list of sizes ("5,50,500"); throws usage_error
/// naming the option and the offending token and its position.
std::vector<std::uint64_t> parse_size_list(const std::string& option,
                                           const std::string& text);

/// Parses a number of bytes: digits, then optionally K, M, G or T (powers
/// of 1024; "KiB", "MiB", "GiB", "TiB" too); throws usage_error naming the
/// option and the value.
std::uint64_t parse_bytes(const std::string& option, const std::string& text);

/// Seconds elapsed while running `f`.
double time_seconds(const std::function<void()>& f);

/// Wall-clock stopwatch.
class stopwatch {
public:
  stopwatch() : start_(std::chrono::steady_clock::now()) {
  }
  double seconds() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now()
                                         - start_)
      .count();
  }

private:
  std::chrono::steady_clock::time_point start_;
};

/// Prints "prog: error: what" on stderr and returns exit_usage.
int report_usage_error(const std::string& prog, const std::string& what);

/// Sets up logging from --log-level (throws usage_error on a bad level).
void apply_log_level(const std::string& level);

/// Fixes glibc's malloc thresholds for programs that move rows of database
/// reads in batches of megabytes: blocks under 32 MiB come from the heap
/// and the heap is trimmed only beyond 256 MiB free at its top. glibc's
/// default adapts both to the blocks it sees freed, and around the size of
/// a batch it flips between mapping, faulting in and unmapping every batch
/// and reusing it (flow-etl aggregate over 10^7 rows: 3.9 to 4.3 s with
/// the default, 2.5 to 3.0 s with these, in alternate runs; docs/benchmarks.md).
/// Leaves them alone when the user set malloc tunables (GLIBC_TUNABLES with
/// glibc.malloc, MALLOC_MMAP_THRESHOLD_, MALLOC_TRIM_THRESHOLD_).
void pin_malloc_thresholds();

/// Runs `main_fn`, turning usage_error into a one-line error and exit code 2
/// and any other exception into exit code 2 with its message.
int guarded_main(const std::string& prog, const std::function<int()>& main_fn);

} // namespace flow::apps
