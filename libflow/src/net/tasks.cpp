// flow::net's tasks: running one here, and the manager's side of a job made
// of tasks (a source per task, the ledger of their accounting, the reducer
// that merges their keys). Where a task runs is the coordinator's business.

#include "flow/net/tasks.hpp"

#include <algorithm>
#include <exception>
#include <vector>

#include <caf/error.hpp>

#include <spdlog/spdlog.h>

#include "flow/error.hpp"
#include "flow/logging.hpp"
#include "flow/net/coordinator.hpp"
#include "flow/parse.hpp"
#include "internal.hpp"

namespace flow::net {

caf::expected<job_result> run_task_here(caf::actor_system& sys,
                                        const std::string& kind,
                                        const std::string& payload) {
  auto fn = find_task(kind);
  if (!fn)
    return make_error(errc::invalid_config,
                      "unknown task kind " + quote_token(kind));
  try {
    return (*fn)(sys, payload);
  } catch (const std::exception& e) {
    return make_error(errc::source_failed,
                      "task " + kind + " threw: " + e.what());
  } catch (...) {
    return make_error(errc::source_failed, "task " + kind + " threw");
  }
}

bool no_worker_node(const caf::error& err) {
  return code_of(err) == errc::no_workers;
}

void task_ledger::record(const job_result& r, bool remote) {
  std::lock_guard<std::mutex> guard{mtx_};
  auto& t = totals_;
  t.emitted += r.emitted;
  t.aggregated += r.aggregated;
  t.rejected += r.rejected;
  t.dead_lettered += r.dead_lettered;
  t.batches += r.batches;
  t.written += r.written;
  t.retried += r.retried;
  t.reducers_replaced += r.reducers_replaced;
  t.speculated += r.speculated;
  t.speculation_won += r.speculation_won;
  t.sources += 1;
  if (remote)
    t.remote_batches += r.batches;
  for (auto& [why, n] : r.rejections) {
    auto i = std::find_if(t.rejections.begin(), t.rejections.end(),
                          [&](const auto& x) { return x.first == why; });
    if (i == t.rejections.end())
      t.rejections.emplace_back(why, n);
    else
      i->second += n;
  }
  for (auto& d : r.dead_letters)
    if (t.dead_letters.size() < 1000)
      t.dead_letters.push_back(d);
  ++(remote ? remote_ : local_);
}

job_result task_ledger::totals() const {
  std::lock_guard<std::mutex> guard{mtx_};
  return totals_;
}

std::uint64_t task_ledger::remote_tasks() const {
  std::lock_guard<std::mutex> guard{mtx_};
  return remote_;
}

std::uint64_t task_ledger::local_tasks() const {
  std::lock_guard<std::mutex> guard{mtx_};
  return local_;
}

void task_ledger::cancel() noexcept {
  cancelled_ = true;
}

bool task_ledger::cancelled() const noexcept {
  return cancelled_;
}

namespace {

class task_source_impl : public source_impl<key_result> {
public:
  task_source_impl(caf::actor_system& sys, const coordinator* coord,
                   std::string kind, std::string payload, std::string name,
                   std::shared_ptr<task_ledger> ledger,
                   std::optional<std::uint64_t> rows_estimate)
    : sys_(sys),
      coord_(coord),
      kind_(std::move(kind)),
      payload_(std::move(payload)),
      name_(std::move(name)),
      ledger_(std::move(ledger)),
      monitor_(std::make_shared<task_monitor>(rows_estimate, true)) {
    // nop
  }

  slice<key_result> next(std::size_t max) override {
    if (!ran_)
      run();
    std::vector<key_result> xs;
    while (pos_ < keys_.size() && xs.size() < max)
      xs.push_back(std::move(keys_[pos_++]));
    return slice<key_result>::owning(std::move(xs));
  }

  bool exhausted() const override {
    return ran_ && pos_ == keys_.size();
  }

  bool blocking() const override {
    return true;
  }

  std::string name() const override {
    return name_;
  }

  std::shared_ptr<const task_monitor> task() const override {
    return monitor_;
  }

private:
  void run() {
    ran_ = true;
    caf::expected<job_result> res = caf::error{};
    bool remote = false;
    if (coord_ != nullptr) {
      res = coord_->run_task(
        kind_, payload_, [l = ledger_] { return !l->cancelled(); },
        [m = monitor_](const std::string& node) { m->started_on(node); });
      remote = static_cast<bool>(res);
      if (!res && no_worker_node(res.error())) {
        logger()->info("{}: no worker node connected, running it here",
                       name_);
        monitor_->started_here();
        res = run_task_here(sys_, kind_, payload_);
      }
    } else {
      monitor_->started_here();
      res = run_task_here(sys_, kind_, payload_);
    }
    // The rows are known only now: a node reports them with its result.
    if (res && res->final && !res->partial && res->balanced())
      monitor_->finished(res->emitted, res->aggregated, res->rejected,
                         res->dead_lettered);
    else
      monitor_->failed();
    if (!res)
      throw input_error(name_ + ": " + describe(res.error()),
                        code_of(res.error()) == errc::none
                          ? errc::source_failed
                          : code_of(res.error()));
    if (!res->final || res->partial || !res->balanced())
      throw input_error(name_ + ": the task's result does not account for "
                                "every element it read (emitted "
                          + std::to_string(res->emitted) + ", aggregated "
                          + std::to_string(res->aggregated) + ", rejected "
                          + std::to_string(res->rejected) + ")",
                        errc::accounting_mismatch);
    ledger_->record(*res, remote);
    keys_ = std::move(res->keys);
  }

  caf::actor_system& sys_;
  const coordinator* coord_;
  std::string kind_;
  std::string payload_;
  std::string name_;
  std::shared_ptr<task_ledger> ledger_;
  std::shared_ptr<task_monitor> monitor_;
  bool ran_ = false;
  std::vector<key_result> keys_;
  std::size_t pos_ = 0;
};

} // namespace

source<key_result> task_source(caf::actor_system& sys,
                               const coordinator* coord, std::string kind,
                               std::string payload, std::string name,
                               std::shared_ptr<task_ledger> ledger,
                               std::optional<std::uint64_t> rows_estimate) {
  return std::make_unique<task_source_impl>(sys, coord, std::move(kind),
                                            std::move(payload),
                                            std::move(name),
                                            std::move(ledger), rows_estimate);
}

reducer<key_result> merge_key_results() {
  return [](const batch_ref<key_result>& b, partial& out) {
    for (auto& x : b.items)
      out.add(x.key, x.agg);
  };
}

} // namespace flow::net
