#include "flow/job_stats.hpp"

namespace flow {

const char* to_string(job_state x) noexcept {
  switch (x) {
    case job_state::running:
      return "running";
    case job_state::draining:
      return "draining";
    case job_state::done:
      return "done";
    case job_state::failed:
      return "failed";
  }
  return "unknown";
}

namespace {

template <class F>
std::uint64_t sum_of(const std::vector<source_stats>& xs, F f) {
  std::uint64_t result = 0;
  for (auto& x : xs)
    result += f(x);
  return result;
}

} // namespace

std::uint64_t job_stats::emitted() const noexcept {
  return sum_of(sources, [](const source_stats& x) { return x.emitted; });
}

std::uint64_t job_stats::aggregated() const noexcept {
  return sum_of(sources, [](const source_stats& x) { return x.aggregated; });
}

std::uint64_t job_stats::rejected() const noexcept {
  return sum_of(sources, [](const source_stats& x) { return x.rejected; });
}

std::uint64_t job_stats::dead_lettered() const noexcept {
  return sum_of(sources,
                [](const source_stats& x) { return x.dead_lettered; });
}

std::uint64_t job_stats::batches_merged() const noexcept {
  return sum_of(sources, [](const source_stats& x) { return x.merged; });
}

std::uint64_t job_stats::elements_in_flight() const noexcept {
  return emitted() - aggregated() - rejected() - dead_lettered();
}

std::optional<std::uint64_t> job_stats::total() const noexcept {
  std::uint64_t result = 0;
  for (auto& x : sources) {
    if (!x.total)
      return std::nullopt;
    result += *x.total;
  }
  return result;
}

} // namespace flow
