#include "etl_clean.hpp"

#include <algorithm>
#include <cstdlib>
#include <map>
#include <memory>
#include <stdexcept>
#include <thread>
#include <tuple>

#include <caf/actor_system.hpp>

#include <pqxx/connection>
#include <pqxx/result>
#include <pqxx/transaction>

#include "common/ads_cleaning.hpp"
#include "common/app_options.hpp"
#include "common/cli.hpp"
#include "common/progress.hpp"
#include "common/signals.hpp"
#include "flow/flow.hpp"
#include "flow/logging.hpp"
#include "flow/parse.hpp"
#include "flow/pg/copy_sink.hpp"
#include "flow/pg/error.hpp"
#include "flow/pg/read.hpp"

#include <spdlog/spdlog.h>

namespace flow::apps {

namespace {

using text = std::optional<std::string>;

/// One raw ad as read.
struct raw_ad {
  std::int64_t id = 0;
  text title;
  text city;
  text price;
  text posted;
};

/// The sink's tables, in this order.
enum output : std::uint32_t { clean_table = 0, rejects_table = 1,
                              summary_table = 2 };

text opt(const std::optional<std::string_view>& x) {
  return x ? text{std::string{*x}} : text{};
}

/// The cleaning rules applied to one batch of raw ads. Output rows are
/// formatted here, in parallel, as COPY lines for the sink.
void clean_batch(const batch_ref<raw_ad>& b, partial& out) {
  for (auto& ad : b.items) {
    auto city = normalize_city(ad.city);
    auto price = parse_price_cents(ad.price);
    auto posted = parse_posted_at(ad.posted);
    std::string reason = !city.value    ? city.reason
                         : !price.value ? price.reason
                         : !posted.value ? posted.reason
                                         : std::string{};
    pg::copy_row row;
    auto& t = row.line;
    pg::append_copy_int(t, ad.id);
    t += '\t';
    if (!reason.empty()) {
      // ads_rejects(id, title, city, price, posted_at, reason): raw values.
      row.table = rejects_table;
      pg::append_copy_field(t, ad.title);
      t += '\t';
      pg::append_copy_field(t, ad.city);
      t += '\t';
      pg::append_copy_field(t, ad.price);
      t += '\t';
      pg::append_copy_field(t, ad.posted);
      t += '\t';
      pg::append_copy_field(t, reason);
      t += '\n';
      out.reject(reason);
      out.emit(std::move(row));
      continue;
    }
    // ads_clean(id, title, city, price_cents, posted_at).
    row.table = clean_table;
    pg::append_copy_field(t, clean_title(ad.title));
    t += '\t';
    pg::append_copy_field(t, *city.value);
    t += '\t';
    pg::append_copy_int(t, *price.value);
    t += '\t';
    t += *posted.value;
    t += '\n';
    out.add(*city.value, *price.value);
    out.emit(std::move(row));
  }
}

/// A raw ad as the first five fields of an ads_rejects COPY line: how a
/// dead letter keeps the ad the reducer failed on.
std::string describe_ad(const raw_ad& ad) {
  std::string t;
  pg::append_copy_int(t, ad.id);
  for (auto* x : {&ad.title, &ad.city, &ad.price, &ad.posted}) {
    t += '\t';
    pg::append_copy_field(t, *x);
  }
  return t;
}

/// ads_rejects rows for dead letters: the raw ad and the reducer's error.
std::vector<pg::copy_row> reject_rows(const std::vector<dead_letter>& xs) {
  std::vector<pg::copy_row> rows;
  for (auto& d : xs) {
    pg::copy_row row{rejects_table, d.value};
    row.line += '\t';
    pg::append_copy_field(row.line, "reducer failed: " + d.error);
    row.line += '\n';
    rows.push_back(std::move(row));
  }
  return rows;
}

/// Test hook: with FLOW_TEST_POISON=ID the cleaning of the ad with that id
/// throws, as a bug in a cleaning rule would.
reducer<raw_ad> with_poison(reducer<raw_ad> fn) {
  auto* env = std::getenv("FLOW_TEST_POISON");
  auto delay = test_reducer_delay();
  if (env == nullptr && delay.count() == 0)
    return fn;
  std::optional<std::int64_t> bad;
  if (env != nullptr) {
    std::string why;
    bad = parse_int64(env, why);
    if (!bad)
      throw usage_error("FLOW_TEST_POISON " + why);
  }
  return [fn = std::move(fn), bad, delay](const batch_ref<raw_ad>& b,
                                          partial& out) {
    if (delay.count() > 0)
      std::this_thread::sleep_for(delay);
    for (auto& ad : b.items)
      if (bad && ad.id == *bad)
        throw std::runtime_error("test hook: poisoned ad "
                                 + std::to_string(*bad));
    fn(b, out);
  };
}

/// ads_summary's rows from the manager's final per-city aggregates.
std::vector<pg::copy_row> summary_rows(const job_result& res) {
  std::vector<pg::copy_row> rows;
  for (auto& k : res.keys) {
    pg::copy_row row{summary_table, {}};
    auto& t = row.line;
    pg::append_copy_field(t, to_string(k.key));
    t += '\t' + std::to_string(k.agg.count) + '\t'
         + flow::to_string(k.agg.sum) + '\t' + std::to_string(k.agg.min)
         + '\t' + std::to_string(k.agg.max) + '\n';
    rows.push_back(std::move(row));
  }
  return rows;
}

/// Counts read back from the committed tables.
caf::error verify_tables(const clean_config& cfg, clean_report& rep) {
  try {
    pqxx::connection conn{cfg.conninfo};
    pqxx::read_transaction tx{conn};
    auto one = [&](const std::string& sql) {
      return tx.exec(sql)[0][0].as<std::uint64_t>();
    };
    auto ads = cfg.ads.quoted();
    auto clean = cfg.clean.quoted();
    auto rejects = cfg.rejects.quoted();
    rep.ads = one("SELECT count(*) FROM " + ads);
    rep.clean_rows = one("SELECT count(*) FROM " + clean);
    rep.reject_rows = one("SELECT count(*) FROM " + rejects);
    rep.in_both = one("SELECT count(*) FROM " + clean + " c JOIN " + rejects
                      + " r USING (id)");
    rep.in_neither = one("SELECT count(*) FROM " + ads + " a WHERE NOT EXISTS "
                         "(SELECT 1 FROM " + clean + " c WHERE c.id = a.id) "
                         "AND NOT EXISTS (SELECT 1 FROM " + rejects
                         + " r WHERE r.id = a.id)");
    rep.summary_rows = one("SELECT count(*) FROM " + cfg.summary.quoted());
    return {};
  } catch (...) {
    return pg::current_error(cfg.conninfo, "verifying the output");
  }
}

} // namespace

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

namespace {

/// The three output tables, written by one sink.
std::vector<pg::output_table> output_tables(const clean_config& cfg) {
  return {{cfg.clean,
           "id bigint NOT NULL, title text, city text NOT NULL, price_cents "
           "bigint NOT NULL, posted_at timestamp NOT NULL",
           "id"},
          {cfg.rejects,
           "id bigint NOT NULL, title text, city text, price text, posted_at "
           "text, reason text NOT NULL",
           "id"},
          {cfg.summary,
           "city text NOT NULL, ads bigint NOT NULL, total_cents numeric NOT "
           "NULL, min_cents bigint NOT NULL, max_cents bigint NOT NULL",
           "city"}};
}

/// The per-city aggregates of the clean rows earlier attempts committed: a
/// resumed run's manager sees only the rest, and ads_summary must cover all.
caf::expected<std::map<std::string, aggregate>>
committed_summary(const clean_config& cfg, const pg::table_name& staging) {
  std::map<std::string, aggregate> result;
  try {
    pqxx::connection conn{cfg.conninfo};
    pqxx::read_transaction tx{conn};
    auto rows = tx.exec("SELECT city, count(*), sum(price_cents)::text, "
                        "min(price_cents), max(price_cents) FROM "
                        + staging.quoted() + " GROUP BY city");
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
    return pg::current_error(cfg.conninfo, "reading the resumed output");
  }
}

/// One attempt: a fresh run, or (resume) the continuation of the run whose
/// checkpoints the staging schema holds. A retry after a lost connection
/// (`fresh_if_none`) starts afresh when the lost run had committed nothing.
caf::expected<clean_report> run_attempt(caf::actor_system& sys,
                                        const clean_config& cfg, bool resume,
                                        bool fresh_if_none) {
  stopwatch sw;
  auto tables = output_tables(cfg);
  pg::read_spec spec{cfg.conninfo, cfg.ads,
                     {"id", "title", "city", "price", "posted_at"}, "ctid",
                     cfg.partitions};
  std::optional<pg::resume_state> state;
  std::map<std::string, aggregate> seed;
  if (resume) {
    auto st = pg::copy_sink::load_resume_state(cfg.conninfo, tables);
    if (!st && !(fresh_if_none && code_of(st.error()) == errc::invalid_config))
      return std::move(st.error());
    if (st)
      state = std::move(*st);
  }
  if (state) {
    spec.plan = state->plan;
    spec.offsets = state->done;
    auto committed = committed_summary(cfg, state->staging.front());
    if (!committed)
      return std::move(committed.error());
    seed = std::move(*committed);
  }
  auto read = pg::partitioned_read::open(spec);
  if (!read)
    return std::move(read.error());
  auto sources = read->row_sources<raw_ad>([](const pg::row_view& r) {
    return raw_ad{r.int64(0), opt(r.opt_text(1)), opt(r.opt_text(2)),
                  opt(r.opt_text(3)), opt(r.opt_text(4))};
  });
  if (!sources)
    return std::move(sources.error());
  auto plan = read->ranges();
  // Every partition has imported the snapshot: the coordinator may go.
  read->release();
  pipeline<raw_ad> p;
  for (auto& src : *sources)
    p.add(std::move(src));
  // ads_summary: the manager's aggregates plus what earlier attempts
  // committed.
  auto summary_keys = std::make_shared<std::size_t>(0);
  auto summary = [seed, summary_keys](const job_result& res) {
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
    *summary_keys = merged.keys.size();
    return summary_rows(merged);
  };
  // The three outputs become visible together, at the sink's commit; until
  // then they are committed in steps, with checkpoints, in flow_resume.
  auto snk = std::make_unique<pg::copy_sink>(cfg.conninfo, tables, summary,
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
  rep.res = std::move(*res);
  rep.seconds = sw.seconds();
  if (state)
    for (auto n : state->done)
      rep.resumed_ads += n;
  if (rep.res.partial) {
    // Stopped by a signal: the sink aborted, no table changed.
    return rep;
  }
  rep.summary_keys = *summary_keys;
  stopwatch verify_sw;
  if (auto err = verify_tables(cfg, rep))
    return err;
  rep.verify_seconds = verify_sw.seconds();
  return rep;
}

} // namespace

caf::expected<clean_report> run_clean(caf::actor_system& sys,
                                      const clean_config& cfg) {
  stopwatch sw;
  bool resume = cfg.resume;
  std::size_t resumes = 0;
  auto backoff = std::chrono::milliseconds(500);
  for (;;) {
    auto rep = run_attempt(sys, cfg, resume, resumes > 0 && !cfg.resume);
    if (rep) {
      rep->resumes = resumes;
      rep->seconds = sw.seconds();
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
                 describe(rep.error()), backoff.count(), resumes,
                 cfg.reconnects);
    std::this_thread::sleep_for(backoff);
    backoff = std::min(backoff * 2, std::chrono::milliseconds(8000));
    resume = true;
  }
}

} // namespace flow::apps
