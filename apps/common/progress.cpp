#include "progress.hpp"

#include <chrono>
#include <cstdio>

#include <unistd.h>

#include "signals.hpp"

namespace flow::apps {

caf::expected<job_result> wait_with_progress(const job& j, std::uint64_t total,
                                             const std::string& what) {
  using namespace std::chrono_literals;
  // While this job runs, SIGINT/SIGTERM stop it instead of the process.
  watch_job watch{j};
  if (!isatty(STDERR_FILENO))
    return j.wait();
  // Short jobs print nothing: the first snapshot comes after half a second.
  if (j.wait_for(500ms))
    return j.wait();
  bool shown = false;
  do {
    if (auto snap = j.snapshot(); snap && !snap->final) {
      if (total > 0)
        std::fprintf(stderr, "\r%s: %llu of %llu elements (%.0f%%)   ",
                     what.c_str(),
                     static_cast<unsigned long long>(snap->aggregated),
                     static_cast<unsigned long long>(total),
                     100.0 * static_cast<double>(snap->aggregated)
                       / static_cast<double>(total));
      else
        std::fprintf(stderr, "\r%s: %llu elements   ", what.c_str(),
                     static_cast<unsigned long long>(snap->aggregated));
      std::fflush(stderr);
      shown = true;
    }
  } while (!j.wait_for(250ms));
  if (shown) {
    // Clear the progress line so results start on a clean line.
    std::fprintf(stderr, "\r\033[K");
    std::fflush(stderr);
  }
  return j.wait();
}

} // namespace flow::apps
