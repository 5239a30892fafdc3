// Small jobs folded on the calling thread: a job whose every source fits in
// one batch, small enough that spawning actors and the four message hops
// (demand, batch, dispatch, partial) would cost more than the fold itself.
// Whatever the fast path does not handle the way the engine would (a source
// or reducer that throws, rows, an overflow) goes to the engine unchanged:
// the batches already taken are handed out again first.

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <spdlog/spdlog.h>

#include "engine.hpp"
#include "flow/job.hpp"
#include "flow/error.hpp"
#include "flow/job_stats.hpp"
#include "flow/logging.hpp"
#include "flow/pipeline.hpp"

namespace flow::detail {

namespace {

/// A source whose first batch was already taken (or whose first `next`
/// threw): hands that batch out again, or throws again, then reads on.
class replay_source final : public any_source {
public:
  replay_source(std::shared_ptr<any_source> inner, erased_slice taken,
                std::exception_ptr error)
    : inner_(std::move(inner)),
      taken_(std::move(taken)),
      error_(std::move(error)) {
    // nop
  }

  erased_slice next(std::size_t max) override {
    if (error_) {
      auto e = error_;
      error_ = nullptr;
      std::rethrow_exception(e);
    }
    if (pending_ && taken_.size <= max) {
      pending_ = false;
      return std::move(taken_);
    }
    return inner_->next(max);
  }

  bool exhausted() const override {
    return !error_ && !pending_ && inner_->exhausted();
  }

  bool blocking() const override {
    return inner_->blocking();
  }

  std::string name() const override {
    return inner_->name();
  }

  std::optional<std::uint64_t> size_hint() const override {
    return inner_->size_hint();
  }

  bool size_is_estimate() const override {
    return inner_->size_is_estimate();
  }

  std::shared_ptr<const task_monitor> task() const override {
    return inner_->task();
  }

private:
  std::shared_ptr<any_source> inner_;
  erased_slice taken_;
  std::exception_ptr error_;
  bool pending_ = true;
};

/// True when the job may be folded on the calling thread: local, without a
/// sink or fault injection, every source non-blocking, of exactly known size
/// within one batch, and all of them within `opts.inline_elements`.
bool small_enough(const job_spec& spec) {
  auto& opts = spec.opts;
  if (opts.inline_elements == 0 || spec.sink || !spec.reducer_name.empty()
      || opts.crash_reducer || spec.sources.empty())
    return false;
  std::uint64_t total = 0;
  for (auto& s : spec.sources) {
    auto& src = *s.src;
    if (src.blocking() || src.task() || src.size_is_estimate())
      return false;
    auto hint = src.size_hint();
    if (!hint || *hint > opts.batch_size)
      return false;
    total += *hint;
    if (total > opts.inline_elements)
      return false;
  }
  return true;
}

/// Hands the batches taken from the first `read` sources (or what their
/// `next` threw) back to the engine and starts it; the other sources were
/// not touched.
job fall_back(caf::actor_system& sys, job_spec spec, std::size_t read,
              std::vector<erased_slice>& taken,
              std::vector<std::exception_ptr>& errors) {
  logger()->debug("small job handed to the engine (a source or the reducer "
                  "threw, a size hint was wrong, rows or an overflow)");
  for (std::size_t i = 0; i < read; ++i)
    spec.sources[i].src = std::make_shared<replay_source>(
      std::move(spec.sources[i].src), std::move(taken[i]),
      std::move(errors[i]));
  spec.opts.inline_elements = 0;
  return start_job(sys, std::move(spec));
}

} // namespace

std::optional<job> try_inline(const std::function<caf::actor_system&()>& get_sys,
                              job_spec& spec) {
  if (!small_enough(spec))
    return std::nullopt;
  auto started = std::chrono::system_clock::now();
  auto started_steady = std::chrono::steady_clock::now();
  auto n = spec.sources.size();
  std::vector<erased_slice> taken(n);
  std::vector<std::exception_ptr> errors(n);
  bool surprise = false;
  std::size_t read = 0;
  for (std::size_t i = 0; i < n && !surprise; ++i) {
    auto& src = *spec.sources[i].src;
    ++read;
    try {
      taken[i] = src.next(spec.opts.batch_size);
    } catch (...) {
      // The generator reports it, as it would have.
      errors[i] = std::current_exception();
      surprise = true;
      continue;
    }
    // A size hint that was wrong: the engine copes with any stream.
    if (taken[i].size > spec.opts.batch_size
        || (taken[i].size > 0 && !src.exhausted()))
      surprise = true;
  }
  if (surprise)
    return fall_back(get_sys(), std::move(spec), read, taken, errors);
  // One partial per source, as one batch each would make, so that the
  // statistics say which source rejected what.
  std::vector<partial> outs(n);
  std::shared_ptr<std::max_align_t> scratch;
  std::size_t scratch_words = 0;
  std::uint32_t current = 0;
  try {
    for (std::uint32_t i = 0; i < n; ++i) {
      current = i;
      auto& xs = taken[i];
      if (xs.size == 0)
        continue;
      batch_header hdr{&spec.sources[i].label, i, 0, 0};
      if (xs.deferred()) {
        // A recipe (elements made from their index): made and folded a
        // piece at a time in one small buffer that stays in cache, as a
        // loop would (a buffer of the whole batch costs a page fault every
        // 4 KiB, more than folding small input). Folding pieces apart is
        // what bisection does too: the partials merge to the same result.
        constexpr std::size_t piece_bytes = 4096;
        auto piece = std::max<std::size_t>(1, piece_bytes / xs.elem_size);
        auto words = (std::min(piece, xs.size) * xs.elem_size
                      + sizeof(std::max_align_t) - 1)
                     / sizeof(std::max_align_t);
        if (!scratch || scratch_words < words || scratch.use_count() > 1) {
          scratch.reset(new std::max_align_t[words],
                        std::default_delete<std::max_align_t[]>());
          scratch_words = words;
        }
        for (std::size_t lo = 0; lo < xs.size; lo += piece) {
          auto m = std::min(piece, xs.size - lo);
          xs.materialize(xs.owner.get(), xs.first + lo, m, scratch.get());
          auto made = xs;
          made.data = scratch.get();
          made.owner = scratch;
          made.size = m;
          made.first = xs.first + lo;
          made.materialize = nullptr;
          batch_header piece_hdr{&spec.sources[i].label, i, 0, lo};
          spec.reduce(piece_hdr, made, outs[i]);
        }
      } else {
        spec.reduce(hdr, xs, outs[i]);
      }
    }
  } catch (const std::exception& e) {
    // Retries, bisection and dead letters are the engine's: it folds the
    // batch again (the reducer is stateless), counting this try as the
    // first.
    spec.inline_failures.emplace_back(current, e.what());
    return fall_back(get_sys(), std::move(spec), read, taken, errors);
  } catch (...) {
    spec.inline_failures.emplace_back(current, "unknown exception");
    return fall_back(get_sys(), std::move(spec), read, taken, errors);
  }
  for (std::uint32_t i = 0; i < n; ++i)
    if (outs[i].rejected() > taken[i].size)
      return fall_back(get_sys(), std::move(spec), read, taken, errors);
  std::vector<std::uint64_t> rejected(n);
  for (std::uint32_t i = 0; i < n; ++i)
    rejected[i] = outs[i].rejected();
  partial out = std::move(outs[0]);
  try {
    for (std::uint32_t i = 1; i < n; ++i)
      out.merge(std::move(outs[i]));
  } catch (...) {
    // Rows of two types: the engine says so.
    return fall_back(get_sys(), std::move(spec), read, taken, errors);
  }
  if (out.emitted_rows() > 0 || out.overflowed())
    return fall_back(get_sys(), std::move(spec), read, taken, errors);
  bool states_ok = true;
  try {
    for (auto& [k, agg] : out.entries())
      states_ok = states_ok && agg.states.ok();
  } catch (...) {
    states_ok = false;
  }
  if (!states_ok)
    return fall_back(get_sys(), std::move(spec), read, taken, errors);
  // The result, as the manager would make it.
  job_result res;
  res.final = true;
  res.sources = n;
  std::map<flow::key, std::uint64_t> labels;
  for (std::uint32_t i = 0; i < n; ++i) {
    res.emitted += taken[i].size;
    if (taken[i].size > 0)
      ++res.batches;
    if (spec.sources[i].labeled)
      ++labels[spec.sources[i].label];
  }
  res.rejected = out.rejected();
  res.aggregated = res.emitted - res.rejected;
  // At most one batch per source was ever in flight.
  res.peak_in_flight = res.batches > 0 ? 1 : 0;
  // Every batch was folded into one partial.
  res.partials = res.batches > 0 ? 1 : 0;
  auto reasons = out.take_reasons();
  std::sort(reasons.begin(), reasons.end());
  res.rejections = std::move(reasons);
  auto entries = out.take_entries();
  std::sort(entries.begin(), entries.end(),
            [](const partial::entry& x, const partial::entry& y) {
              return x.first < y.first;
            });
  res.key_count = entries.size();
  auto stream = spec.opts.on_result_key;
  if (!stream)
    res.keys.reserve(entries.size());
  try {
    for (auto& [k, agg] : entries) {
      auto i = labels.find(k);
      key_result kr{std::move(k), std::move(agg),
                    i == labels.end() ? 0 : i->second};
      if (stream)
        stream(kr);
      else
        res.keys.push_back(std::move(kr));
    }
  } catch (const std::exception& e) {
    return error_job(make_error(errc::sink_failed,
                                     std::string{"options::on_result_key "
                                                 "threw: "}
                                       + e.what()));
  } catch (...) {
    return error_job(make_error(errc::sink_failed,
                                     "options::on_result_key threw: unknown "
                                     "exception"));
  }
  logger()->debug("job complete: {} elements in {} batches from {} sources "
                  "(folded on the calling thread)",
                  res.emitted, res.batches, res.sources);
  // The statistics, as the manager publishes them at the end.
  auto xs = std::make_shared<job_stats>();
  xs->state = job_state::done;
  xs->started = started;
  xs->elapsed_seconds = std::chrono::duration<double>(
                          std::chrono::steady_clock::now() - started_steady)
                          .count();
  for (std::uint32_t i = 0; i < n; ++i) {
    source_stats y;
    y.name = spec.sources[i].src->name();
    y.total = taken[i].size;
    y.emitted = taken[i].size;
    y.batches = taken[i].size > 0 ? 1 : 0;
    y.merged = y.batches;
    y.credit = spec.opts.credits;
    y.done = true;
    xs->sources.push_back(std::move(y));
  }
  for (std::uint32_t i = 0; i < n; ++i) {
    xs->sources[i].rejected = rejected[i];
    xs->sources[i].aggregated = taken[i].size - rejected[i];
  }
  xs->batches_dispatched = res.batches;
  xs->keys = res.key_count;
  xs->rejections = res.rejections;
  xs->result = result_for_stats(res);
  // A finished job needs no actor system: its handle answers from here.
  auto impl = std::make_shared<job_impl>();
  impl->publish(std::move(xs));
  impl->complete(std::move(res));
  return job{impl};
}

job_result result_for_stats(const job_result& r) {
  auto out = r.without_keys();
  auto n = std::min(r.keys.size(), job_stats::result_keys);
  out.keys.assign(r.keys.begin(),
                  r.keys.begin() + static_cast<std::ptrdiff_t>(n));
  return out;
}

job error_job(caf::error err) {
  auto impl = std::make_shared<job_impl>();
  // As the manager's last statistics of a failed job say.
  auto xs = std::make_shared<job_stats>();
  xs->state = job_state::failed;
  xs->started = std::chrono::system_clock::now();
  xs->errors.push_back(describe(err));
  impl->publish(std::move(xs));
  impl->complete(std::move(err));
  return job{impl};
}

} // namespace flow::detail
