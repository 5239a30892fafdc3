#pragma once

// Spilled runs of the manager's integer keys (options::max_memory): each run
// is the compact table's entries sorted by key, written raw to a temporary
// file that is unlinked as soon as it is made, so no file outlives the
// process however it ends. The final result merges the runs with the keys
// still held. Private to the engine.

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "flow/detail/int_table.hpp"

namespace flow::detail {

/// Sorted runs of `int_entry` in unlinked temporary files.
class int_runs {
public:
  /// No runs yet; they will go to `dir` (flow::spill_directory).
  explicit int_runs(std::string dir);

  int_runs(const int_runs&) = delete;
  int_runs& operator=(const int_runs&) = delete;

  /// Closes the files (their storage is freed then).
  ~int_runs();

  /// Writes the `n` entries at `xs`, sorted by key, as one run. Returns what
  /// went wrong (naming the directory and the system's error), or an empty
  /// string. Runs are merged as they pile up (`fan_in` of one size into one
  /// of the next), so the files open stay few (at most `fan_in` per size,
  /// and sizes grow by `fan_in` times) and each entry is rewritten only
  /// log_fan_in(runs) times. `overflow` is set when merging runs found a
  /// key whose sum or count left its range.
  std::string write(const int_entry* xs, std::size_t n, bool& overflow);

  /// Runs merged into one when they pile up.
  static constexpr std::size_t fan_in = 16;

  /// Number of runs.
  std::size_t count() const noexcept {
    return runs_.size();
  }

  /// Entries in all runs (a key in several runs counts in each).
  std::uint64_t entries() const noexcept {
    return entries_;
  }

  /// Merges the runs with the `n` entries at `mem` (sorted by key): calls
  /// `out` once per distinct key, in key order, with its merged entry.
  /// Returns what went wrong (a read failed; or, with `overflow` set, a
  /// key's merged sum or count left its range), or an empty string. The
  /// runs stay as they are (a snapshot may merge again).
  std::string merge(const int_entry* mem, std::size_t n,
                    const std::function<void(const int_entry&)>& out,
                    bool& overflow) const;

private:
  struct run {
    int fd;
    std::uint64_t size;
    /// 0 for a written run; merging fan_in runs of level L makes one of L+1.
    unsigned level;
  };

  /// Merges runs [first, last) with the `n` sorted entries at `mem` (see
  /// merge).
  std::string merge_range(std::size_t first, std::size_t last,
                          const int_entry* mem, std::size_t n,
                          const std::function<void(const int_entry&)>& out,
                          bool& overflow) const;

  /// Merges the last runs while fan_in of them share a level.
  std::string compact(bool& overflow);

  std::string dir_;
  std::vector<run> runs_;
  std::uint64_t entries_ = 0;
};

} // namespace flow::detail
