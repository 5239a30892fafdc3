#pragma once

// The wait between two tries after a lost database connection, shared by
// flow-etl's commands that reconnect (clean, aggregate, run): 0.5 s,
// doubling up to 8 s.

#include <algorithm>
#include <chrono>
#include <thread>

#include "common/signals.hpp"

namespace flow::apps {

/// The next wait before reconnecting; each wait doubles the next.
class reconnect_backoff {
public:
  /// How long the next wait() sleeps.
  std::chrono::milliseconds next() const noexcept {
    return next_;
  }

  /// Sleeps next() in short steps, so that a signal (SIGINT, SIGTERM) ends
  /// the wait at once; then doubles next(), up to 8 s. Returns false when
  /// a signal came.
  bool wait() {
    auto until = std::chrono::steady_clock::now() + next_;
    while (std::chrono::steady_clock::now() < until) {
      if (interrupted() != 0)
        return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    next_ = std::min(next_ * 2, std::chrono::milliseconds(8000));
    return interrupted() == 0;
  }

private:
  std::chrono::milliseconds next_{500};
};

} // namespace flow::apps
