#pragma once

/// @file
/// Sinks: where the rows a job's reducers emit are written, exactly once and
/// atomically (visible at commit, discarded on failure).

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "flow/result.hpp"

namespace flow {

/// Which batch a sink write carries: its source, sequence number and element
/// range within the source.
struct batch_info {
  /// Index of the source.
  std::uint32_t source = 0;
  /// The batch's sequence number within its source.
  std::uint64_t seq = 0;
  /// Index of its first element within the source.
  std::uint64_t first = 0;
  /// Number of elements.
  std::uint64_t size = 0;
};

/// Rows written to one output of a sink.
struct output_rows {
  /// The output's name (a table, as in logs).
  std::string name;
  /// Rows written to it so far.
  std::uint64_t rows = 0;
};

/// The interface of a sink of rows of type O. The job's sink actor owns it
/// and calls it from one thread: `write` once per merged batch that emitted
/// rows, then `commit` once after every batch is written, or `abort` when the
/// job fails. A row reaches `write` exactly once, even if its batch was
/// processed twice. Implement it for your own outputs.
template <class O>
class sink_impl {
public:
  virtual ~sink_impl() = default;

  /// Called once when the job starts, on the sink's thread (a blocking sink
  /// has one of its own; otherwise a scheduler thread), before any write,
  /// commit or abort and while the sources read their first batches: the
  /// place to connect, open files or create staging tables, off the job's
  /// critical path. A job that fails early waits for it to return. May
  /// throw; the job then fails, nothing is written and `abort` follows.
  /// Default: nothing.
  virtual void open() {
    // nop
  }

  /// Writes the rows one batch emitted. May throw; the job then fails and
  /// `abort` follows.
  virtual void write(const std::vector<O>& rows) = 0;

  /// Writes one merged batch's rows, knowing which batch they come from.
  /// Default: `write(rows)`. Override it (with `wants_every_batch`) to record
  /// how far each source got, for example to checkpoint a resumable job.
  virtual void write_batch(const batch_info& b, const std::vector<O>& rows) {
    static_cast<void>(b);
    write(rows);
  }

  /// True when `write_batch` must be called for every merged batch, also for
  /// batches that emitted no rows. Default: false (only batches with rows).
  virtual bool wants_every_batch() const {
    return false;
  }

  /// Writes the dead letters of one merged batch (elements the reducer
  /// function failed on), in the same stream as the rows, so they become
  /// visible with them at commit. Default: ignored (they stay in the job's
  /// result). May throw like `write`.
  virtual void write_dead_letters(const std::vector<dead_letter>& letters) {
    static_cast<void>(letters);
  }

  /// Makes everything written visible at once (for example, commits the
  /// transaction that wrote it). `result` is the job's final, balanced result
  /// (its keyed aggregates included), so a sink can store them in the same
  /// transaction. May throw; the job then fails.
  virtual void commit(const job_result& result) = 0;

  /// Discards everything written; called when the job fails. Must not throw.
  virtual void abort() noexcept = 0;

  /// True when `write` or `commit` may block (files, databases): the sink
  /// then runs on a thread of its own. Default: true.
  virtual bool blocking() const {
    return true;
  }

  /// Names the sink for logs and error messages.
  virtual std::string name() const = 0;

  /// For a sink with several outputs (tables, files): each output's name and
  /// the rows written to it so far by this sink, batches' rows, dead
  /// letters and rows written at `commit` alike. Called on the sink's
  /// thread after every write and after the commit; the job's statistics
  /// (and the `flow_rows_written_total` metric) then count per output.
  /// Default: empty (one output, named by `name()`, counted by the rows
  /// the reducers emitted).
  virtual std::vector<output_rows> outputs_written() const {
    return {};
  }
};

/// An owned sink of rows of type O.
template <class O>
using sink = std::unique_ptr<sink_impl<O>>;

} // namespace flow
