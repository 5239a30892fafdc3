#pragma once

// Plain threads for the ThreadSanitizer tests: a gate that lets every thread
// start at once (so their work overlaps instead of running one after the
// other), and a blocking queue to hand objects from one thread to another.
// Catch2's assertions are not thread-safe: threads record what they saw and
// the test's own thread checks it after join.

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

namespace flow::test {

/// Runs `fn(i)` for i in [0, n) on n threads that start together, and joins
/// them. `after_start` runs on the calling thread once every thread is past
/// the gate (for example, to drop the caller's references while they work).
inline void run_together(std::size_t n, const std::function<void(std::size_t)>& fn,
                         const std::function<void()>& after_start = {}) {
  std::mutex mtx;
  std::condition_variable cv;
  std::size_t ready = 0;
  bool go = false;
  std::vector<std::thread> threads;
  threads.reserve(n);
  for (std::size_t i = 0; i < n; ++i)
    threads.emplace_back([&, i] {
      {
        std::unique_lock<std::mutex> guard{mtx};
        ++ready;
        cv.notify_all();
        cv.wait(guard, [&] { return go; });
      }
      fn(i);
    });
  {
    std::unique_lock<std::mutex> guard{mtx};
    cv.wait(guard, [&] { return ready == n; });
    go = true;
  }
  cv.notify_all();
  if (after_start)
    after_start();
  for (auto& t : threads)
    t.join();
}

/// An unbounded multi-producer, multi-consumer queue; `pop` returns nothing
/// once the queue is closed and drained.
template <class T>
class blocking_queue {
public:
  /// Appends `x`.
  void push(T x) {
    {
      std::lock_guard<std::mutex> guard{mtx_};
      items_.push_back(std::move(x));
    }
    cv_.notify_one();
  }

  /// Ends the stream: consumers drain what is left, then get nothing.
  void close() {
    {
      std::lock_guard<std::mutex> guard{mtx_};
      closed_ = true;
    }
    cv_.notify_all();
  }

  /// The next item, or nothing after `close` once empty.
  std::optional<T> pop() {
    std::unique_lock<std::mutex> guard{mtx_};
    cv_.wait(guard, [this] { return closed_ || !items_.empty(); });
    if (items_.empty())
      return std::nullopt;
    auto x = std::move(items_.front());
    items_.pop_front();
    return x;
  }

private:
  std::mutex mtx_;
  std::condition_variable cv_;
  std::deque<T> items_;
  bool closed_ = false;
};

} // namespace flow::test
