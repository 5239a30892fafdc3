#pragma once

// What the benchmark programs share: the median, minimum and maximum of
// several timed runs of one piece of work.

#include <algorithm>
#include <chrono>
#include <functional>
#include <vector>

namespace flow::bench {

/// Seconds: the median, fastest and slowest of the runs.
struct stats {
  double median = 0;
  double min = 0;
  double max = 0;
};

/// Runs `f` `runs` times (at least once) and times each run.
inline stats measure(int runs, const std::function<void()>& f) {
  using clock_type = std::chrono::steady_clock;
  std::vector<double> xs;
  for (int i = 0; i < std::max(1, runs); ++i) {
    auto t0 = clock_type::now();
    f();
    xs.push_back(std::chrono::duration<double>(clock_type::now() - t0).count());
  }
  std::sort(xs.begin(), xs.end());
  return {xs[xs.size() / 2], xs.front(), xs.back()};
}

} // namespace flow::bench
