#include "etl/clean_job.hpp"

#include <algorithm>
#include <map>
#include <memory>
#include <stdexcept>
#include <thread>

#include <caf/actor_system.hpp>

#include <pqxx/connection>
#include <pqxx/result>
#include <pqxx/transaction>

#include "common/cli.hpp"
#include "common/progress.hpp"
#include "common/signals.hpp"
#include "etl/test_hooks.hpp"
#include "etl/backoff.hpp"
#include "etl/clean_rows.hpp"
#include "flow/flow.hpp"
#include "flow/logging.hpp"
#include "flow/pg/copy_sink.hpp"
#include "flow/pg/error.hpp"
#include "flow/pg/read.hpp"

#include <spdlog/spdlog.h>

namespace flow::apps {

bool clean_report::ok() const {
  // Dead letters (ads a cleaning rule threw on) are in ads_rejects too.
  bool tables_ok = res.final && res.balanced() && in_both == 0
                   && in_neither == 0 && clean_rows + reject_rows == ads
                   && res.emitted + resumed_ads == ads
                   && summary_rows == summary_keys;
  if (resumed_ads > 0)
    return tables_ok; // this attempt's counts cover only what it read
  return tables_ok && res.aggregated == clean_rows
         && res.rejected + res.dead_lettered == reject_rows
         && res.written + res.dead_lettered == ads;
}

caf::expected<std::map<std::string, aggregate>>
committed_summary(const std::string& conninfo,
                  const std::vector<pg::table_name>& tables) {
  std::map<std::string, aggregate> result;
  if (tables.empty())
    return result;
  try {
    std::string rows_of;
    for (auto& t : tables)
      rows_of += (rows_of.empty() ? "" : " UNION ALL ")
                 + std::string{"SELECT city, price_cents FROM "} + t.quoted();
    pqxx::connection conn{conninfo};
    pqxx::read_transaction tx{conn};
    auto rows = tx.exec("SELECT city, count(*), sum(price_cents)::text, "
                        "min(price_cents), max(price_cents) FROM ("
                        + rows_of + ") x GROUP BY city");
    for (auto row : rows) {
      aggregate a;
      a.count = row[1].as<std::uint64_t>();
      auto sum = pg::parse_int128(row[2].as<std::string>());
      if (!sum)
        return make_error(errc::overflow, "resumed summary out of range");
      a.sum = *sum;
      a.min = row[3].as<std::int64_t>();
      a.max = row[4].as<std::int64_t>();
      result.emplace(row[0].as<std::string>(), a);
    }
    return result;
  } catch (...) {
    return pg::current_error(conninfo, "reading the resumed output");
  }
}

pg::final_rows_fn
summary_with(std::map<std::string, aggregate> seed,
             std::shared_ptr<std::size_t> summary_keys) {
  return [seed = std::move(seed), summary_keys](const job_result& res) {
    auto merged = res;
    for (auto& [city, agg] : seed) {
      auto k = flow::key{city};
      auto i = std::find_if(merged.keys.begin(), merged.keys.end(),
                            [&](const key_result& x) { return x.key == k; });
      if (i == merged.keys.end())
        merged.keys.push_back({k, agg, 0});
      else if (!i->agg.merge(agg))
        throw std::overflow_error("summary of city " + city);
    }
    merged.key_count = merged.keys.size();
    *summary_keys = merged.keys.size();
    return summary_rows(merged);
  };
}

namespace {

/// Where an attempt starts: the read's plan and, when it resumes, the
/// checkpoints and the per-city aggregates earlier attempts committed.
struct attempt_start {
  pg::read_spec spec;
  std::optional<pg::resume_state> state;
  std::map<std::string, aggregate> seed;
};

/// Plans one attempt: a fresh run, or (resume) the continuation of the run
/// whose checkpoints the staging schema holds. A retry after a lost
/// connection (`fresh_if_none`) starts afresh when the lost run had
/// committed nothing.
caf::expected<attempt_start>
plan_attempt(const clean_config& cfg,
             const std::vector<pg::output_table>& tables, bool resume,
             bool fresh_if_none) {
  auto partitions = cfg.partitions;
  if (partitions == 0) {
    auto n = pg::ctid_partitions(cfg.conninfo, cfg.ads,
                                 flow::default_reducers());
    if (!n)
      return std::move(n.error());
    partitions = *n;
  }
  attempt_start start;
  start.spec = ads_read_spec(cfg, partitions);
  if (resume) {
    auto st = pg::copy_sink::load_resume_state(cfg.conninfo, tables);
    if (!st && !(fresh_if_none && code_of(st.error()) == errc::invalid_config))
      return std::move(st.error());
    if (st)
      start.state = std::move(*st);
  }
  if (start.state) {
    start.spec.plan = start.state->plan;
    start.spec.offsets = start.state->done;
    auto committed = committed_summary(cfg.conninfo,
                                       {start.state->staging.front()});
    if (!committed)
      return std::move(committed.error());
    start.seed = std::move(*committed);
  }
  return start;
}

/// One attempt, planned by plan_attempt.
caf::expected<clean_report> run_attempt(caf::actor_system& sys,
                                        const clean_config& cfg, bool resume,
                                        bool fresh_if_none) {
  stopwatch sw;
  auto tables = output_tables(cfg);
  auto start = plan_attempt(cfg, tables, resume, fresh_if_none);
  if (!start)
    return std::move(start.error());
  auto& state = start->state;
  auto read = pg::partitioned_read::open(start->spec);
  if (!read)
    return std::move(read.error());
  test_end_exporter(cfg.conninfo, *read);
  auto sources = read->row_sources<raw_ad>(decode_ad);
  if (!sources)
    return std::move(sources.error());
  auto plan = read->ranges();
  // Every partition has imported the snapshot: the coordinator may go.
  read->release();
  pipeline<raw_ad> p;
  for (auto& src : *sources)
    p.add(std::move(src));
  // The three outputs become visible together, at the sink's commit; until
  // then they are committed in steps, with checkpoints, in flow_resume.
  auto summary_keys = std::make_shared<std::size_t>(0);
  auto snk = std::make_unique<pg::copy_sink>(
    cfg.conninfo, tables, summary_with(std::move(start->seed), summary_keys),
    cfg.before_commit);
  snk->on_dead_letters(reject_rows);
  pg::checkpoint_options ckpt;
  ckpt.plan = plan;
  if (state)
    ckpt.resumed = state->done;
  ckpt.interval = cfg.checkpoint_interval;
  snk->checkpoint(std::move(ckpt));
  auto started = p.reduce(with_poison(clean_batch))
                   .describe(describe_ad)
                   .sink(sink<pg::copy_row>{std::move(snk)})
                   .with(cfg.opts)
                   .start(sys);
  if (!started)
    return std::move(started.error());
  auto res = wait_with_progress(*started, 0, "clean");
  if (!res)
    return std::move(res.error());
  clean_report rep;
  rep.partitions = plan.size();
  rep.res = std::move(*res);
  rep.seconds = sw.seconds();
  if (state)
    for (auto n : state->done)
      rep.resumed_ads += n;
  return checked(cfg, std::move(rep), *summary_keys);
}

} // namespace

caf::expected<clean_report> run_clean(caf::actor_system& sys,
                                      const clean_config& cfg) {
  stopwatch sw;
  bool resume = cfg.resume;
  std::size_t resumes = 0;
  reconnect_backoff backoff;
  for (;;) {
    auto rep = run_attempt(sys, cfg, resume, resumes > 0 && !cfg.resume);
    if (rep) {
      rep->resumes = resumes;
      // The job's time across attempts, without reading the counts back.
      rep->seconds = sw.seconds() - rep->verify_seconds;
      return rep;
    }
    // A server that cannot be reached at the start is reported at once; one
    // lost midway (or not back yet) is waited for.
    auto& err = rep.error();
    if (!pg::connection_lost(err) || resumes >= cfg.reconnects
        || interrupted() || (resumes == 0 && pg::connect_failed(err)))
      return rep;
    // The output committed so far and its checkpoints are safe in the
    // staging schema: continue from them on a new connection.
    ++resumes;
    logger()->warn("clean: {}; resuming from the checkpoints in {} ms "
                 "(attempt {} of {})",
                 describe(rep.error()), backoff.next().count(), resumes,
                 cfg.reconnects);
    if (!backoff.wait())
      return rep; // a signal during the wait: the lost connection's error
    resume = true;
  }
}

} // namespace flow::apps
