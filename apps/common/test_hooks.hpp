#pragma once

// The FLOW_TEST_* environment hooks with which tests make the programs'
// reducers slow or faulty, deterministically. Every program wraps its
// reducers with these helpers, so a hook means the same everywhere.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <thread>
#include <utility>

#include "flow/partial.hpp"
#include "flow/reducer.hpp"

namespace flow::apps {

/// FLOW_TEST_REDUCER_DELAY_MS=N: reducers sleep N ms per batch (0 without
/// it), so tests can make a drain slow. Throws usage_error when malformed.
std::chrono::milliseconds test_reducer_delay();

/// FLOW_TEST_POISON=N: the value reducers throw on, if set. Throws
/// usage_error when malformed.
std::optional<std::int64_t> test_poison();

/// FLOW_TEST_PAUSE_FILE=PATH: every reducer call in this process (the
/// reducers of with_test_hooks and with_test_delay) first waits while PATH
/// exists, so a test can hold a job running, its batches in flight, for as
/// long as it needs (empty without it).
std::string test_pause_file();

/// Returns once `path` does not exist (checked every 10 ms).
void wait_while_exists(const std::string& path);

/// The hooks around `fn`: waits while test_pause_file() exists, sleeps
/// test_reducer_delay() per batch and throws
/// "test hook: poisoned <what> N" on every batch holding an element whose
/// `value_of` is test_poison(). Without either variable, returns `fn`.
///
/// @code
/// p.reduce(with_test_hooks<std::int64_t>(sum_by_label(),
///                                        [](std::int64_t x) { return x; }));
/// @endcode
template <class T, class ValueOf>
reducer<T> with_test_hooks(reducer<T> fn, ValueOf value_of,
                           std::string what = "value") {
  auto poison = test_poison();
  auto delay = test_reducer_delay();
  auto pause = test_pause_file();
  if (!poison && delay.count() == 0 && pause.empty())
    return fn;
  return [fn = std::move(fn), poison, delay, pause, value_of,
          what = std::move(what)](const batch_ref<T>& b, partial& out) {
    if (!pause.empty())
      wait_while_exists(pause);
    if (delay.count() > 0)
      std::this_thread::sleep_for(delay);
    if (poison)
      for (auto& x : b.items)
        if (value_of(x) == *poison)
          throw std::runtime_error("test hook: poisoned " + what + " "
                                   + std::to_string(*poison));
    fn(b, out);
  };
}

/// FLOW_TEST_STUCK_SEQ=N: every reducer call on a batch with seq N or more
/// in this process never returns (a worker node stuck in user code while it
/// still answers heartbeats; its own second attempts get stuck too). Throws
/// usage_error when malformed.
std::optional<std::uint64_t> test_stuck_seq();

/// Blocks the calling thread for ever (the first call logs "test hook:
/// stuck on batch N").
[[noreturn]] void stuck_for_ever(std::uint64_t seq);

/// Whether any hook of with_test_delay is set (pause, delay or stuck):
/// only then does a program need to wrap the reducers it registers.
inline bool any_delay_hook() {
  return test_reducer_delay().count() > 0 || test_stuck_seq()
         || !test_pause_file().empty();
}

/// Only the pause, delay and stuck hooks around `fn` (worker nodes' partition
/// tasks and the reducers they lend: tests kill a node while it still reads
/// a partition or holds batches, or leave it stuck).
template <class T>
reducer<T> with_test_delay(reducer<T> fn) {
  if (!any_delay_hook())
    return fn;
  auto delay = test_reducer_delay();
  auto stuck = test_stuck_seq();
  auto pause = test_pause_file();
  return [fn = std::move(fn), delay, stuck, pause](const batch_ref<T>& b,
                                                   partial& out) {
    if (!pause.empty())
      wait_while_exists(pause);
    if (stuck && b.seq >= *stuck)
      stuck_for_ever(b.seq);
    if (delay.count() > 0)
      std::this_thread::sleep_for(delay);
    fn(b, out);
  };
}

/// Only the stuck hook around `fn` (FLOW_TEST_STUCK_SEQ), for reducers
/// that take their delay from with_test_hooks already (a worker node's
/// clean partitions).
template <class T>
reducer<T> with_test_stuck(reducer<T> fn) {
  auto stuck = test_stuck_seq();
  if (!stuck)
    return fn;
  return [fn = std::move(fn), stuck](const batch_ref<T>& b, partial& out) {
    if (b.seq >= *stuck)
      stuck_for_ever(b.seq);
    fn(b, out);
  };
}

} // namespace flow::apps
