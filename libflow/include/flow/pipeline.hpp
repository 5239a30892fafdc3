#pragma once

/// @file
/// Building and running a pipeline: generators -> reducer pool -> manager.

#include <cstddef>
#include <functional>
#include <string>
#include <memory>
#include <stdexcept>
#include <utility>
#include <vector>

#include <caf/expected.hpp>
#include <caf/fwd.hpp>

#include "flow/detail/job_spec.hpp"
#include "flow/job.hpp"
#include "flow/options.hpp"
#include "flow/reducer.hpp"
#include "flow/result.hpp"
#include "flow/source.hpp"

namespace flow {

namespace detail {

/// Starts a job in `sys` (defined in the library).
job start_job(caf::actor_system& sys, job_spec spec);

/// Runs a job in an actor system of its own and waits for it.
caf::expected<job_result> run_job(job_spec spec);

/// Validates a spec; returns an error for a pipeline configured wrongly.
caf::error validate(const job_spec& spec);

} // namespace detail

/// Builds a job over elements of type T: one generator actor per source, a
/// pool of stateless reducer actors applying the reducer to each batch, and a
/// manager actor that owns the keyed aggregates.
///
/// @code
/// auto res = flow::pipeline<std::int64_t>{}
///              .add(flow::from_random(10'000'000, 42), 10'000'000)
///              .reduce(flow::sum_by_label())
///              .run();
/// if (res)
///   std::cout << flow::to_string(res->keys[0].agg.sum) << '\n';
/// @endcode
template <class T>
class pipeline {
public:
  /// An empty pipeline: add sources, set a reducer, then run.
  pipeline() {
    spec_.format = detail::default_formatter<T>();
    spec_.kind = detail::element_traits<T>::kind;
  }

  /// Adds a source; its generator labels every batch with `label` (for
  /// example the size of the list it emits), which reducers such as
  /// `sum_by_label` use as the key.
  pipeline& add(source<T> src, flow::key label) {
    return add_impl(std::move(src), std::move(label), true);
  }

  /// Adds a source without a label (its batches carry the key 0).
  pipeline& add(source<T> src) {
    return add_impl(std::move(src), flow::key{}, false);
  }

  /// Sets the function the reducers apply to each batch.
  pipeline& reduce(reducer<T> fn) {
    if (!fn)
      throw std::invalid_argument("flow::pipeline::reduce: empty function");
    spec_.reduce = detail::erase_reducer<T>(std::move(fn));
    return *this;
  }

  /// Sets the sink that receives the rows reducers emit with
  /// `partial::emit<O>`. The job's result is delivered only after the sink
  /// has committed; if the job fails, the sink aborts.
  template <class O>
  pipeline& sink(flow::sink<O> snk) {
    if (!snk)
      throw std::invalid_argument("flow::pipeline::sink: null sink");
    spec_.sink = std::make_shared<detail::sink_adapter<O>>(std::move(snk));
    return *this;
  }

  /// Sets how an element is rendered in a dead letter (numbers and keyed
  /// values have a default; other types show no value unless set here).
  pipeline& describe(std::function<std::string(const T&)> fn) {
    if (fn)
      spec_.format = [fn = std::move(fn)](const void* p) {
        return fn(*static_cast<const T*>(p));
      };
    else
      spec_.format = nullptr;
    return *this;
  }

  /// Sets what happens when the reducer function throws (see
  /// `failure_policy`) and how often a failed batch is retried.
  pipeline& on_failure(failure_policy policy,
                       std::size_t retries = 2) noexcept {
    spec_.opts.on_failure = policy;
    spec_.opts.retries = retries;
    return *this;
  }

  /// Sets a function the manager calls with every dead letter.
  pipeline& on_dead_letter(std::function<void(const dead_letter&)> fn) {
    spec_.opts.dead_letter_handler = std::move(fn);
    return *this;
  }

  /// Hands the final result's keys to `fn` one by one, in key order, instead
  /// of collecting them in `job_result::keys` (see
  /// `options::on_result_key`).
  pipeline& on_result_key(std::function<void(const key_result&)> fn) {
    spec_.opts.on_result_key = std::move(fn);
    return *this;
  }

  /// Declares the aggregator columns the reducer fills (see
  /// flow/aggregator.hpp): the job checks that their states can cross
  /// processes when it is distributed, and programs name them in output.
  pipeline& aggregate_with(const aggregators& aggs) {
    spec_.columns = aggs.columns();
    return *this;
  }

  /// Lets worker nodes join the job (see flow::net): they run the reducer
  /// registered under `name` there, which must compute what this pipeline's
  /// reducer computes. Elements cross processes when CAF can serialise them
  /// (numbers, strings, keyed values, types with an `inspect` function); for
  /// other element types this throws std::invalid_argument. Aggregator states
  /// without an `inspect` function make the job fail with
  /// `errc::not_serializable` when it starts.
  pipeline& distribute_as(std::string name) {
    if (spec_.kind == detail::element_kind::opaque)
      throw std::invalid_argument("flow::pipeline::distribute_as: elements of "
                                  "this type cannot cross processes");
    spec_.reducer_name = std::move(name);
    return *this;
  }

  /// Sets the number of reducer actors (0: default_reducers()).
  pipeline& reducers(std::size_t n) noexcept {
    spec_.opts.reducers = n;
    return *this;
  }

  /// The former name of reducers(): "workers" now means worker nodes only.
  [[deprecated("use reducers(n)")]] pipeline& workers(std::size_t n) noexcept {
    return reducers(n);
  }

  /// Sets the maximum number of elements per batch.
  pipeline& batch_size(std::size_t n) noexcept {
    spec_.opts.batch_size = n;
    return *this;
  }

  /// Sets the number of manager shards (options::manager_shards; 0: the
  /// default, sharded for integer keys only; 1: none).
  pipeline& manager_shards(std::size_t n) noexcept {
    spec_.opts.manager_shards = n;
    return *this;
  }

  /// Sets the credit: the most batches one generator may have in flight.
  pipeline& credits(std::size_t n) noexcept {
    spec_.opts.credits = n;
    return *this;
  }

  /// Replaces all options at once.
  pipeline& with(const options& opts) noexcept {
    spec_.opts = opts;
    return *this;
  }

  /// Starts the job in an actor system the application owns and returns at
  /// once. The pipeline's sources move into the job.
  caf::expected<job> start(caf::actor_system& sys) {
    if (auto err = detail::validate(spec_))
      return err;
    return detail::start_job(sys, take());
  }

  /// Runs the job in an actor system the application owns and blocks until
  /// it ends.
  caf::expected<job_result> run(caf::actor_system& sys) {
    auto j = start(sys);
    if (!j)
      return std::move(j.error());
    return j->take();
  }

  /// Runs the job in an actor system of its own and blocks until it ends.
  caf::expected<job_result> run() {
    if (auto err = detail::validate(spec_))
      return err;
    return detail::run_job(take());
  }

private:
  pipeline& add_impl(source<T> src, flow::key label, bool labeled) {
    if (!src)
      throw std::invalid_argument("flow::pipeline::add: null source");
    spec_.sources.push_back(
      {std::make_shared<detail::source_adapter<T>>(std::move(src)),
       std::move(label), labeled});
    return *this;
  }

  detail::job_spec take() {
    auto result = std::move(spec_);
    spec_ = detail::job_spec{};
    spec_.opts = result.opts;
    spec_.format = result.format;
    spec_.kind = result.kind;
    spec_.reducer_name = result.reducer_name;
    spec_.columns = result.columns;
    return result;
  }

  detail::job_spec spec_;
};

} // namespace flow
