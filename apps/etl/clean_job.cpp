#include "etl_clean.hpp"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <stdexcept>
#include <thread>
#include <tuple>

#include <caf/actor_system.hpp>

#include <unistd.h>

#include <pqxx/connection>
#include <pqxx/result>
#include <pqxx/transaction>

#include "common/ads_cleaning.hpp"
#include "common/app_options.hpp"
#include "common/cli.hpp"
#include "common/progress.hpp"
#include "common/signals.hpp"
#include "etl_tasks.hpp"
#include "flow/flow.hpp"
#include "flow/logging.hpp"
#include "flow/parse.hpp"
#include "flow/pg/copy_sink.hpp"
#include "flow/pg/error.hpp"
#include "flow/pg/read.hpp"
#ifdef FLOW_HAS_NET
#include "common/net_options.hpp"
#include "flow/net/net.hpp"
#endif

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
  // One row per ad: no vector growth, and room for a typical row up front.
  out.rows<pg::copy_row>().reserve(b.items.size());
  for (auto& ad : b.items) {
    auto city = normalize_city(ad.city);
    auto price = parse_price_cents(ad.price);
    auto posted = parse_posted_time(ad.posted);
    std::string reason = !city.value    ? city.reason
                         : !price.value ? price.reason
                         : !posted.value ? posted.reason
                                         : std::string{};
    pg::copy_row row;
    auto& t = row.line;
    t.reserve(128);
    if (!reason.empty()) {
      // ads_rejects(id, title, city, price, posted_at, reason): raw values.
      row.table = rejects_table;
      pg::append_copy_int(t, ad.id);
      t += '\t';
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
    // ads_clean(id, title, city, price_cents, posted_at), in COPY's binary
    // format: the server then parses no timestamps or numbers.
    row.table = clean_table;
    pg::begin_binary_row(t, 5);
    pg::append_binary_int(t, ad.id);
    pg::append_binary_text(t, clean_title(ad.title));
    pg::append_binary_text(t, *city.value);
    pg::append_binary_int(t, *price.value);
    auto& when = *posted.value;
    pg::append_binary_timestamp(
      t, pg::timestamp_micros(when.year, when.month, when.day, when.hour,
                              when.minute, when.second));
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

std::size_t cores() {
  return flow::default_reducers();
}

/// Decodes a row of (id, title, city, price, posted_at).
raw_ad decode_ad(const pg::row_view& r) {
  return raw_ad{r.int64(0), opt(r.opt_text(1)), opt(r.opt_text(2)),
                opt(r.opt_text(3)), opt(r.opt_text(4))};
}

/// The columns of the raw ads a partition reads.
const std::vector<std::string> ad_columns = {"id", "title", "city", "price",
                                             "posted_at"};

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

/// After the job: unless it was stopped (then the sink aborted and no table
/// changed), the counts read back from the committed tables.
caf::expected<clean_report> checked(const clean_config& cfg, clean_report rep,
                                    std::size_t summary_keys) {
  if (rep.res.partial)
    return rep;
  rep.summary_keys = summary_keys;
  stopwatch verify_sw;
  if (auto err = verify_tables(cfg, rep))
    return err;
  rep.verify_seconds = verify_sw.seconds();
  return rep;
}

/// The three output tables, written by one sink.
std::vector<pg::output_table> output_tables(const clean_config& cfg) {
  return {{cfg.clean,
           "id bigint NOT NULL, title text, city text NOT NULL, price_cents "
           "bigint NOT NULL, posted_at timestamp NOT NULL",
           "id", pg::copy_format::binary},
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
  auto partitions = cfg.partitions;
  if (partitions == 0) {
    auto n = pg::ctid_partitions(cfg.conninfo, cfg.ads, cores());
    if (!n)
      return std::move(n.error());
    partitions = *n;
  }
  pg::read_spec spec{cfg.conninfo, cfg.ads, ad_columns, "ctid", partitions};
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
  auto sources = read->row_sources<raw_ad>(decode_ad);
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
  auto backoff = std::chrono::milliseconds(500);
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
                 describe(rep.error()), backoff.count(), resumes,
                 cfg.reconnects);
    std::this_thread::sleep_for(backoff);
    backoff = std::min(backoff * 2, std::chrono::milliseconds(8000));
    resume = true;
  }
}

// -- distributed: worker nodes clean partitions ------------------------------

namespace {

/// Where a node stages one partition's output: two tables in `schema`,
/// committed by the node, adopted by the manager's sink at its commit. They
/// travel as the partition ticket's extra fields.
struct clean_task {
  pg::partition_ticket ticket;
  std::string schema;
  std::string clean;
  std::string rejects;
};

/// The schema of the nodes' staging tables.
constexpr const char* staging_schema = "flow_dist";

/// True for "d<16 hex digits>_p<digits>_<suffix>", the staging names a
/// distributed clean makes.
bool staged_name(const std::string& x, char suffix) {
  if (x.size() < 22 || x[0] != 'd' || x[17] != '_' || x[18] != 'p'
      || x[x.size() - 2] != '_' || x.back() != suffix)
    return false;
  for (std::size_t i = 1; i < 17; ++i)
    if (!std::isxdigit(static_cast<unsigned char>(x[i])))
      return false;
  for (std::size_t i = 19; i + 2 < x.size(); ++i)
    if (!std::isdigit(static_cast<unsigned char>(x[i])))
      return false;
  return true;
}

std::string encode(const clean_task& t) {
  auto ticket = t.ticket;
  ticket.extra = {t.schema, t.clean, t.rejects};
  return ticket.encode();
}

caf::expected<clean_task> decode_clean_task(const std::string& payload) {
  auto tk = pg::partition_ticket::decode(payload);
  if (!tk)
    return std::move(tk.error());
  if (tk->extra.size() != 3)
    return make_error(errc::bad_input,
                      "clean task: the ticket does not name its staging "
                      "tables");
  clean_task t{*tk, tk->extra[0], tk->extra[1], tk->extra[2]};
  return t;
}

} // namespace

caf::expected<job_result> run_clean_partition(caf::actor_system& sys,
                                              const std::string& conninfo,
                                              const std::string& payload) {
  auto task = decode_clean_task(payload);
  if (!task)
    return std::move(task.error());
  // The node drops and replaces these tables with its own credentials: only
  // names a distributed clean makes, in its own schema, are accepted.
  if (task->schema != staging_schema || !staged_name(task->clean, 'c')
      || !staged_name(task->rejects, 'r'))
    return make_error(errc::bad_input,
                      "clean task: refusing to write anything but "
                        + std::string{staging_schema} + "'s staging tables");
  auto ci = conninfo.empty() ? task->ticket.conninfo : conninfo;
  auto reader = pg::open_partition(task->ticket, ci);
  if (!reader)
    return node_error(std::move(reader.error()));
  // The same clean and rejects columns as the targets; no primary keys here
  // (the manager builds them once, over every partition, at its commit).
  clean_config names;
  auto all = output_tables(names);
  std::vector<pg::output_table> staged{
    {{task->schema, task->clean}, all[clean_table].columns, "",
     all[clean_table].format},
    {{task->schema, task->rejects}, all[rejects_table].columns, "",
     all[rejects_table].format}};
  auto snk = std::make_unique<pg::copy_sink>(ci, staged);
  snk->on_dead_letters(reject_rows);
  pipeline<raw_ad> p;
  p.add(source<raw_ad>{
    std::make_unique<pg::row_source<raw_ad, decltype(&decode_ad)>>(
      std::move(*reader), &decode_ad)});
  options opts;
  opts.batch_size = 16384;
  opts.reducers = flow::default_reducers();
  return p.reduce(with_poison(clean_batch))
    .describe(describe_ad)
    .sink(sink<pg::copy_row>{std::move(snk)})
    .with(opts)
    .run(sys);
}

#ifdef FLOW_HAS_NET

caf::expected<clean_report>
run_distributed_clean(caf::actor_system& sys, const clean_config& cfg,
                      const flow::net::coordinator& coord,
                      std::size_t min_workers) {
  stopwatch sw;
  // Partitions are the unit of work handed to nodes: as many as cores here
  // at least, whatever the table's size.
  pg::read_spec spec{cfg.conninfo, cfg.ads, ad_columns, "ctid",
                     cfg.partitions > 0 ? cfg.partitions : cores()};
  auto read = pg::partitioned_read::open(spec);
  if (!read)
    return std::move(read.error());
  auto tickets = read->tickets();
  if (!tickets)
    return std::move(tickets.error());
  // The nodes' staged tables: in a schema of their own, named after this
  // run's snapshot (unique while it exists) and the partition.
  const std::string schema = staging_schema;
  std::uint64_t h = 1469598103934665603ULL;
  for (auto c : read->snapshot_id() + std::to_string(::getpid())) {
    h ^= static_cast<unsigned char>(c);
    h *= 1099511628211ULL;
  }
  char tag[24];
  std::snprintf(tag, sizeof(tag), "d%016llx",
                static_cast<unsigned long long>(h));
  try {
    pqxx::connection conn{cfg.conninfo};
    pqxx::work tx{conn};
    tx.exec("CREATE SCHEMA IF NOT EXISTS " + pg::quote_ident(schema));
    tx.commit();
  } catch (...) {
    return pg::current_error(cfg.conninfo, "creating the staging schema");
  }
  auto tables = output_tables(cfg);
  auto summary_keys = std::make_shared<std::size_t>(0);
  auto summary = [summary_keys](const job_result& res) {
    *summary_keys = res.keys.size();
    return summary_rows(res);
  };
  auto snk = std::make_unique<pg::copy_sink>(cfg.conninfo, tables, summary,
                                             cfg.before_commit);
  auto ledger = std::make_shared<flow::net::task_ledger>();
  pipeline<key_result> p;
  for (auto& t : *tickets) {
    clean_task task{t, schema,
                    std::string{tag} + "_p" + std::to_string(t.index) + "_c",
                    std::string{tag} + "_p" + std::to_string(t.index) + "_r"};
    snk->adopt(clean_table, {schema, task.clean});
    snk->adopt(rejects_table, {schema, task.rejects});
    p.add(flow::net::task_source(
      sys, &coord, clean_partition_task, encode(task),
      "partition " + std::to_string(t.index + 1) + "/"
        + std::to_string(t.count) + " of " + cfg.ads.display(),
      ledger));
  }
  wait_for_workers(coord, min_workers, "flow-etl");
  auto started = p.reduce(flow::net::merge_key_results())
                   .sink(sink<pg::copy_row>{std::move(snk)})
                   .with(cfg.opts)
                   .start(sys);
  if (!started)
    return std::move(started.error());
  auto res = wait_with_progress(*started, 0, "clean");
  // The snapshot may go once every partition has been read.
  read->release();
  if (!res || res->partial) {
    // The targets did not change. Partitions not started are withdrawn;
    // what the nodes staged so far goes (a node still in the middle of a
    // partition may yet commit its staging tables after this: they stay in
    // flow_dist, which may be dropped whenever no distributed job runs).
    ledger->cancel();
    try {
      pqxx::connection conn{cfg.conninfo};
      pqxx::work tx{conn};
      auto names = tx.exec_params(
        "SELECT tablename FROM pg_tables WHERE schemaname = $1 AND "
        "starts_with(tablename, $2)",
        schema, std::string{tag} + "_p");
      for (auto row : names)
        tx.exec("DROP TABLE IF EXISTS "
                + pg::table_name{schema, row[0].as<std::string>()}.quoted());
      tx.commit();
    } catch (...) {
      logger()->warn("clean: could not drop the staged partitions in {}",
                     schema);
    }
  }
  if (!res)
    return std::move(res.error());
  clean_report rep;
  rep.partitions = tickets->size();
  // The rows' accounting is the tasks'; the keys are the manager's.
  rep.res = ledger->totals();
  rep.res.keys = std::move(res->keys);
  rep.res.final = res->final;
  rep.res.partial = res->partial;
  rep.res.abandoned = res->abandoned;
  rep.node_tasks = ledger->remote_tasks();
  rep.local_tasks = ledger->local_tasks();
  rep.seconds = sw.seconds();
  return checked(cfg, std::move(rep), *summary_keys);
}

#endif // FLOW_HAS_NET

} // namespace flow::apps
