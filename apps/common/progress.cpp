#include "progress.hpp"

#include <chrono>
#include <cstdio>

#include <unistd.h>

#include "signals.hpp"
#include "watch.hpp"

namespace flow::apps {

namespace {

/// "what: N of T elements (P%), R/s, ETA S s" from the job's statistics,
/// `total` when the sources do not know theirs.
std::string progress_line(const std::string& what, const job_stats& xs,
                          std::uint64_t total) {
  auto done = xs.aggregated();
  auto known = xs.total();
  if (!known && total > 0)
    known = total;
  char buf[256];
  double rate = xs.elapsed_seconds > 0
                  ? static_cast<double>(done) / xs.elapsed_seconds
                  : 0;
  if (known && *known > 0) {
    double left = rate > 0 ? static_cast<double>(*known - std::min(done, *known))
                               / rate
                           : -1;
    std::snprintf(buf, sizeof(buf),
                  "%llu of %llu elements (%.0f%%), %.0f/s, ETA %s%.0f s",
                  static_cast<unsigned long long>(done),
                  static_cast<unsigned long long>(*known),
                  100.0 * static_cast<double>(done)
                    / static_cast<double>(*known),
                  rate, left < 0 ? "~" : "", left < 0 ? 0.0 : left);
  } else {
    std::snprintf(buf, sizeof(buf), "%llu elements, %.0f/s",
                  static_cast<unsigned long long>(done), rate);
  }
  return what + ": " + buf;
}

/// --progress: a line every `every`, each on its own line (logs, pipes).
caf::expected<job_result> wait_printing(const job& j, std::uint64_t total,
                                        const std::string& what,
                                        std::chrono::milliseconds every) {
  while (!j.wait_for(every)) {
    auto xs = j.stats();
    auto line = progress_line(what, xs, total);
    std::fprintf(stderr, "%s\n", line.c_str());
    std::fflush(stderr);
  }
  return j.take();
}

} // namespace

caf::expected<job_result> wait_with_progress(const job& j, std::uint64_t total,
                                             const std::string& what) {
  using namespace std::chrono_literals;
  // While this job runs, SIGINT/SIGTERM stop it instead of the process.
  watch_job watch{j};
  watch_job_status(j, what);
  if (auto every = progress_interval())
    return wait_printing(j, total, what, *every);
  if (!isatty(STDERR_FILENO))
    return j.take();
  // Short jobs print nothing: the first snapshot comes after half a second.
  if (j.wait_for(500ms))
    return j.take();
  bool shown = false;
  do {
    // The published statistics, not a snapshot: a snapshot copies every
    // key, four times a second.
    if (auto xs = j.stats(); xs.state == job_state::running
                             || xs.state == job_state::draining) {
      auto done = xs.aggregated();
      if (total > 0)
        std::fprintf(stderr, "\r%s: %llu of %llu elements (%.0f%%)   ",
                     what.c_str(), static_cast<unsigned long long>(done),
                     static_cast<unsigned long long>(total),
                     100.0 * static_cast<double>(done)
                       / static_cast<double>(total));
      else
        std::fprintf(stderr, "\r%s: %llu elements   ", what.c_str(),
                     static_cast<unsigned long long>(done));
      std::fflush(stderr);
      shown = true;
    }
  } while (!j.wait_for(250ms));
  if (shown) {
    // Clear the progress line so results start on a clean line.
    std::fprintf(stderr, "\r\033[K");
    std::fflush(stderr);
  }
  return j.take();
}

} // namespace flow::apps
