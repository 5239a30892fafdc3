#pragma once

// The job files of `flow-etl run`: a TOML file (read by toml11) holding one
// or more aggregate jobs and the options they share, read and checked
// without a database. Every error is one line naming the file, the line and
// the key ("revenue.toml:12: job \"daily\": key 'aggregates': ..."), and a key
// the format does not know is an error: a typo must never be ignored.
//
//   atomic = true              run-wide: all outputs in one commit
//   [defaults]                 what --partitions, --by, ... set, which win
//   [[job]] name, table|query, schema, where, group_by, aggregates, output
//
// docs/etl.md documents the format; examples/etl/revenue.toml is a whole
// file.

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "etl/aggregate.hpp"

namespace flow::apps {

/// One `[[job]]` of a job file, as written: the schemas stay unresolved until
/// the command line is known (--schema may replace [defaults] schema).
struct file_job {
  /// The job; its table's schema and its output schema are filled in by
  /// `resolve_jobs`.
  agg_job job;
  /// The job's own `schema` key, if given.
  std::optional<std::string> schema;
  /// The job's own `output_schema` key, if given.
  std::optional<std::string> output_schema;
  /// The line of the job's `[[job]]` header, for messages.
  std::size_t line = 0;
  /// The line of each key the job gives, for messages.
  std::map<std::string, std::size_t> lines;
};

/// The `[defaults]` table: run-wide options, each also a command-line option
/// that overrides it. Absent keys stay empty.
struct job_defaults {
  /// As --partitions.
  std::optional<std::uint64_t> partitions;
  /// As --by.
  std::optional<std::string> by;
  /// As --verify.
  std::optional<bool> verify;
  /// As --json.
  std::optional<bool> json;
  /// As --schema: the schema of the jobs' tables and outputs.
  std::optional<std::string> schema;
};

/// A job file, read and checked as far as possible without a database.
struct job_file {
  /// The path as given, for messages.
  std::string path;
  /// The top-level `atomic` key: every output in one transaction after the
  /// last job.
  bool atomic = false;
  /// The `[defaults]` table.
  job_defaults defaults;
  /// The jobs, in the file's order.
  std::vector<file_job> jobs;
};

/// Reads and checks the job file at `path`: TOML syntax, known keys and
/// their types, one of `table` and `query`, identifiers, the aggregates
/// (parsed by parse_agg_list), unique job names. Throws usage_error with one
/// line "PATH:LINE: job \"NAME\": key 'KEY': what is wrong".
job_file read_job_file(const std::string& path);

/// The jobs of `file` with their schemas resolved: a job's own `schema`,
/// else `schema` (the command line's --schema, else [defaults]; empty: the
/// search path). Throws usage_error when two jobs write the same output
/// table, or, with `atomic`, when a job reads a table an earlier job writes
/// (it would read the table as it was before the run).
std::vector<agg_job> resolve_jobs(const job_file& file,
                                  const std::string& schema);

/// The index of the earlier job of `jobs` whose output is job `i`'s source
/// table, or `i` when there is none: such a job cannot be checked before the
/// earlier one has run.
std::size_t reads_output_of(const std::vector<agg_job>& jobs, std::size_t i);

} // namespace flow::apps
