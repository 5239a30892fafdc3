#pragma once

/// @file
/// libflow's error codes. At actor boundaries errors travel as `caf::error`
/// values in the category `flow`; library functions return `caf::expected`.

#include <cstdint>
#include <string>

#include <caf/error.hpp>
#include <caf/make_message.hpp>

namespace flow {

/// Everything that can end a libflow job without a result. Every value is
/// documented because users branch on it.
enum class errc : std::uint8_t {
  /// Not an error (CAF reserves 0 for "no error").
  none = 0,
  /// The pipeline was built or configured wrongly (zero workers, no reducer).
  invalid_config,
  /// A source could not read or parse its input: the context names the input,
  /// the line and the token.
  bad_input,
  /// A source (for example a user generator callable) threw or failed.
  source_failed,
  /// A reducer's user function threw on a batch: the context names the batch
  /// (source, batch number and element range) and the exception's message.
  reducer_failed,
  /// An aggregate left its exact range (a 128-bit sum or a 64-bit count).
  overflow,
  /// The manager could not account for every emitted element
  /// (emitted != aggregated + rejected, or a batch reported the wrong size).
  accounting_mismatch,
  /// An actor broke the protocol (more batches than its credit, an unknown
  /// batch id, a batch after its source's end).
  protocol_violation,
  /// An actor of the pipeline terminated without reporting its work.
  actor_down,
  /// The job was cancelled before it completed.
  cancelled,
  /// An element type that cannot be serialised was asked to cross a process
  /// boundary.
  not_serializable,
  /// A sink failed to write or commit; what it wrote was discarded.
  sink_failed,
  /// No worker node can run a task (none is connected, or none left that
  /// takes tasks): the caller may run it itself (see flow::net).
  no_workers,
  /// The keyed state could not be spilled to, or read back from, the
  /// temporary directory of `options::max_memory` (a full disk, a read
  /// error: the context names the directory and the system's error), or a
  /// key that cannot be spilled (not an integer, or with aggregator states)
  /// came after integer keys were.
  spill_failed,
  /// The manager's keyed state, or a result, could not grow: memory ran out
  /// (std::bad_alloc), or one table would pass 2^32 - 2 integer keys.
  /// `options::max_memory` bounds the keyed state. A snapshot that cannot
  /// be built fails only that snapshot; the job goes on.
  out_of_memory,
};

/// Returns the enumerator's name, e.g. "reducer_failed".
const char* to_string(errc x) noexcept;

/// Makes a `caf::error` of category `flow` with a human-readable context.
caf::error make_error(errc code, std::string context);

/// Renders any `caf::error` as one line: "reducer_failed: batch 3 of source 0
/// (elements 6..8): boom". Errors from other categories are rendered by CAF.
std::string describe(const caf::error& err);

/// Returns the `flow::errc` of `err`, or `errc::none` for errors of other
/// categories and for no error.
errc code_of(const caf::error& err) noexcept;

} // namespace flow

CAF_ERROR_CODE_ENUM(flow::errc, "flow")
