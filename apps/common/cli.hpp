#pragma once

// Command-line plumbing shared by the programs in apps/: option parsing with
// one-line errors, size lists, JSON lines, timing and progress.

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "flow/aggregate.hpp"

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

/// A small option parser: `--name value`, `--name=value` and `--flag`.
class arg_parser {
public:
  /// A program called `prog` with a one-line summary.
  arg_parser(std::string prog, std::string summary);

  /// Declares an option that takes a value.
  void value(const std::string& name, const std::string& meta,
             const std::string& help, std::string default_value = {});

  /// Declares a flag without value.
  void flag(const std::string& name, const std::string& help);

  /// Declares --`name` as another name of the option --`target` (declared
  /// before): a renamed option keeps working under its former name.
  void alias(const std::string& name, const std::string& target);

  /// Parses argv; throws usage_error on an unknown option, a missing value or
  /// a stray argument. Returns false when --help was given (help printed).
  bool parse(int argc, char** argv);

  /// True when the option was given on the command line.
  bool given(const std::string& name) const;

  /// The option's value (its default when not given).
  const std::string& get(const std::string& name) const;

  /// True when the flag was given.
  bool is_set(const std::string& name) const;

  /// The value as an unsigned integer in [lo, hi]; throws usage_error.
  std::uint64_t get_uint(const std::string& name, std::uint64_t lo = 0,
                         std::uint64_t hi = UINT64_MAX) const;

  /// Prints the help text to stdout.
  void print_help() const;

  /// Reads `name = value` lines (blank lines and lines starting with # are
  /// skipped; a flag's value is true or false) from the file at `path` for
  /// the options in `names` that the command line did not give: the command
  /// line wins. Throws usage_error naming the file and line on a bad line,
  /// an option not in `names`, or an unreadable file.
  void apply_config(const std::string& path,
                    const std::vector<std::string>& names);

private:
  struct option {
    bool takes_value;
    std::string meta;
    std::string help;
    std::string value;
    bool given = false;
    /// The name it was given under (an alias, in errors about its value).
    std::string given_as;
  };
  std::string prog_;
  std::string summary_;
  std::vector<std::string> order_;
  std::map<std::string, option> options_;
  /// Former names and the options they stand for.
  std::map<std::string, std::string> aliases_;
};

/// Parses a comma-separated list of sizes ("5,50,500"); throws usage_error
/// naming the option and the offending token and its position.
std::vector<std::uint64_t> parse_size_list(const std::string& option,
                                           const std::string& text);

/// Builds one JSON object, fields in insertion order.
class json_object {
public:
  json_object& add(const std::string& name, const std::string& value);
  json_object& add(const std::string& name, const char* value);
  json_object& add(const std::string& name, std::int64_t value);
  json_object& add(const std::string& name, std::uint64_t value);
  json_object& add(const std::string& name, int value);
  json_object& add(const std::string& name, int128 value);
  json_object& add(const std::string& name, double value);
  json_object& add(const std::string& name, bool value);
  /// Adds a field whose value is already JSON text.
  json_object& add_raw(const std::string& name, const std::string& json);
  /// The object as one line of JSON.
  std::string str() const;

private:
  std::string body_;
};

/// Escapes a string for JSON (quotes included); invalid UTF-8 bytes become
/// U+FFFD so the output is always valid JSON.
std::string json_string(const std::string& x);

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

/// Runs `main_fn`, turning usage_error into a one-line error and exit code 2
/// and any other exception into exit code 2 with its message.
int guarded_main(const std::string& prog, const std::function<int()>& main_fn);

} // namespace flow::apps
