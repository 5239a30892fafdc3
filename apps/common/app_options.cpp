#include "app_options.hpp"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <optional>
#include <thread>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>

#include "flow/parse.hpp"
#include "flow/types.hpp"
#include "signals.hpp"

namespace flow::apps {

void declare_pipeline_options(arg_parser& args, const std::string& batch) {
  args.value("workers", "N", "reducer actors; 0 = one per hardware thread",
             "0");
  args.value("batch", "N", "elements per batch (one message)", batch);
  args.value("credits", "N", "batches in flight per generator", "4");
  args.value("on-failure", "POLICY",
             "when the reducer throws on a batch: fail (end the job), "
             "dead-letter (retry, then isolate the failing elements) or skip "
             "(retry, then drop the whole batch as dead letters)",
             "dead-letter");
  args.value("retries", "N", "retries of a failed batch before dead-lettering",
             "2");
  args.value("drain-timeout", "SECONDS",
             "after SIGINT/SIGTERM, how long in-flight batches may drain "
             "before the partial result is printed",
             "5");
  args.value("log-level", "LEVEL",
             "trace, debug, info, warn, error, critical or off", "warn");
}

flow::options read_pipeline_options(const arg_parser& args) {
  apply_log_level(args.get("log-level"));
  flow::options opts;
  opts.reducers = args.get_uint("workers", 0, 4096);
  opts.batch_size = args.get_uint("batch", 1, std::uint64_t{1} << 30);
  opts.credits = args.get_uint("credits", 1, 1 << 16);
  auto& policy = args.get("on-failure");
  if (policy == "fail")
    opts.on_failure = failure_policy::fail_fast;
  else if (policy == "dead-letter")
    opts.on_failure = failure_policy::dead_letter;
  else if (policy == "skip")
    opts.on_failure = failure_policy::skip;
  else
    throw usage_error("--on-failure: " + quote_token(policy)
                      + " is not fail, dead-letter or skip");
  opts.retries = args.get_uint("retries", 0, 1000);
  set_drain_timeout(std::chrono::milliseconds(
    args.get_uint("drain-timeout", 0, 86400) * 1000));
  return opts;
}

void declare_dead_letter_option(arg_parser& args) {
  args.value("dead-letter", "FILE",
             "write the elements the reducer failed on to FILE as JSON lines");
}

dead_letter_file::dead_letter_file(const std::string& path) : path_(path) {
  if (path_.empty())
    return;
  file_ = std::fopen(path_.c_str(), "w");
  if (file_ == nullptr)
    throw usage_error("--dead-letter: cannot open " + quote_token(path_)
                      + ": " + std::strerror(errno));
}

dead_letter_file::~dead_letter_file() {
  if (file_ != nullptr)
    std::fclose(file_);
}

void dead_letter_file::attach(flow::options& opts) {
  if (file_ == nullptr)
    return;
  auto* f = file_;
  opts.dead_letter_handler = [f](const dead_letter& d) {
    json_object obj;
    obj.add("source", static_cast<std::uint64_t>(d.source))
      .add("index", d.index)
      .add("count", d.count)
      .add("value", d.value)
      .add("error", d.error);
    auto line = obj.str() + '\n';
    if (std::fwrite(line.data(), 1, line.size(), f) != line.size())
      throw std::runtime_error("writing the dead-letter file failed");
  };
}

void dead_letter_file::close() {
  if (file_ == nullptr)
    return;
  auto failed = std::fflush(file_) != 0 || std::ferror(file_) != 0;
  std::fclose(file_);
  file_ = nullptr;
  if (failed)
    throw usage_error("--dead-letter: writing " + quote_token(path_)
                      + " failed");
}

void report_dead_letters(const std::string& prog, const job_result& res,
                         const std::string& file) {
  if (res.dead_lettered == 0)
    return;
  std::cerr << prog << ": the reducer failed on " << res.dead_lettered
            << " elements; they are dead-lettered, not in the result";
  if (!file.empty())
    std::cerr << " (written to " << file << ")";
  std::cerr << '\n';
  std::size_t shown = 0;
  for (auto& d : res.dead_letters) {
    if (++shown > 3)
      break;
    std::cerr << prog << ":   source " << d.source << " element " << d.index;
    if (d.count > 1)
      std::cerr << " (+" << (d.count - 1) << " more)";
    if (!d.value.empty())
      std::cerr << " value " << quote_token(d.value);
    std::cerr << ": " << d.error << '\n';
  }
  std::cerr.flush();
}

void report_partial(const std::string& prog, const job_result& res) {
  std::cerr << prog << ": PARTIAL result: the job was stopped by a signal "
            << "after accepting " << res.emitted << " elements ("
            << res.aggregated << " aggregated, " << res.rejected
            << " rejected, " << res.dead_lettered << " dead-lettered, "
            << res.abandoned << " abandoned when the drain timed out)"
            << std::endl;
}

namespace {

std::optional<std::int64_t> poison_value() {
  auto* env = std::getenv("FLOW_TEST_POISON");
  if (env == nullptr)
    return std::nullopt;
  std::string why;
  auto x = parse_int64(env, why);
  if (!x)
    throw usage_error("FLOW_TEST_POISON " + why);
  return x;
}

} // namespace

std::chrono::milliseconds test_reducer_delay() {
  auto* env = std::getenv("FLOW_TEST_REDUCER_DELAY_MS");
  if (env == nullptr)
    return std::chrono::milliseconds{0};
  std::string why;
  auto x = parse_int64(env, why);
  if (!x || *x < 0)
    throw usage_error("FLOW_TEST_REDUCER_DELAY_MS must be a number of "
                      "milliseconds");
  return std::chrono::milliseconds{*x};
}

namespace {

/// The test hooks around `fn`: sleep per batch, throw on the poison value
/// (`value_of` reads an element's value).
template <class T, class ValueOf>
reducer<T> with_test_hooks(reducer<T> fn, ValueOf value_of) {
  auto poison = poison_value();
  auto delay = test_reducer_delay();
  if (!poison && delay.count() == 0)
    return fn;
  return [fn = std::move(fn), poison, delay,
          value_of](const batch_ref<T>& b, partial& out) {
    if (delay.count() > 0)
      std::this_thread::sleep_for(delay);
    if (poison)
      for (auto& x : b.items)
        if (value_of(x) == *poison)
          throw std::runtime_error("test hook: poisoned value "
                                   + std::to_string(*poison));
    fn(b, out);
  };
}

} // namespace

reducer<std::int64_t> poisoned(reducer<std::int64_t> fn) {
  return with_test_hooks<std::int64_t>(std::move(fn),
                                       [](std::int64_t x) { return x; });
}

reducer<keyed_value> poisoned(reducer<keyed_value> fn) {
  return with_test_hooks<keyed_value>(std::move(fn),
                                      [](const keyed_value& x) {
                                        return x.value;
                                      });
}

runtime::runtime(
  const std::function<void(caf::actor_system_config&)>& extra) {
  configure_scheduler(cfg_);
  if (extra)
    extra(cfg_);
  sys_ = std::make_unique<caf::actor_system>(cfg_);
}

} // namespace flow::apps
