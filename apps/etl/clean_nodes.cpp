// flow-etl's `clean` over worker nodes: the partition task a node runs
// (read in the manager's snapshot, clean, stage the rows) and the manager's
// job that hands the partitions out and commits the staged rows. Built with
// networking only (nodes_stub.cpp stands in without it).

#include "etl/clean_nodes.hpp"

#include <atomic>
#include <cctype>
#include <cstdio>
#include <random>
#include <memory>
#include <optional>
#include <vector>

#include <caf/actor_system.hpp>

#include <unistd.h>

#include <pqxx/connection>
#include <pqxx/nontransaction>
#include <pqxx/result>
#include <pqxx/transaction>

#include "common/cli.hpp"
#include "common/progress.hpp"
#include "common/test_hooks.hpp"
#include "etl/clean_rows.hpp"
#include "etl/node_error.hpp"
#include "etl/test_hooks.hpp"
#include "flow/flow.hpp"
#include "flow/logging.hpp"
#include "flow/pg/copy_sink.hpp"
#include "flow/pg/error.hpp"
#include "flow/pg/ownership.hpp"
#include "flow/pg/read.hpp"
#include "flow/net/net.hpp"

#include <spdlog/spdlog.h>

namespace flow::apps {

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
constexpr const char* staging_schema = pg::dist_schema_name;

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

/// A suffix naming one attempt at a partition: two attempts (a speculated
/// one, or a node declared lost that still runs) stage under names of their
/// own, so neither waits for the other's uncommitted tables.
std::string attempt_suffix() {
  static std::atomic<std::uint32_t> counter{0};
  static const std::uint32_t seed = std::random_device{}();
  std::uint64_t h = 1469598103934665603ULL;
  for (auto x : {static_cast<std::uint64_t>(seed),
                 static_cast<std::uint64_t>(::getpid()),
                 static_cast<std::uint64_t>(counter++)}) {
    h ^= x;
    h *= 1099511628211ULL;
  }
  char buf[16];
  std::snprintf(buf, sizeof(buf), "_x%08x",
                static_cast<unsigned>(h ^ (h >> 32)));
  return buf;
}

/// The advisory-lock class of a partition's claim (two-integer keys: a
/// key space apart from the runs' 64-bit owner locks).
constexpr const char* claim_lock_class = "1718382455";

/// Takes the claim lock of the partition whose clean table is `clean` until
/// the transaction ends (an expression: PERFORM or SELECT it).
std::string claim_lock(const std::string& schema, const std::string& clean) {
  return "pg_advisory_xact_lock(" + std::string{claim_lock_class}
         + ", hashtext('" + schema + "." + clean + "'))";
}

/// True when `schema`.`table` exists in the statement's own snapshot (an
/// expression). pg_class is read with it, not through the catalog cache: in
/// a READ COMMITTED transaction, a statement after a lock wait sees the
/// tables an attempt committed meanwhile. The names are checked staging
/// names (hex digits, digits, '_'), safe inside literals.
std::string committed_table(const std::string& schema,
                            const std::string& table) {
  return "EXISTS (SELECT 1 FROM pg_catalog.pg_class c JOIN "
         "pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE "
         "n.nspname = '"
         + schema + "' AND c.relname = '" + table + "')";
}

/// The SQL an attempt runs in its own commit, after its tables got the
/// attempt's names: under the partition's lock, it publishes them under the
/// partition's names unless another attempt already did (both read the
/// same snapshot and cleaning is deterministic: the rows are the same) or
/// the run is over (its plan is gone: committed, abandoned or taken over
/// by a resume). The losing attempt drops its tables in the same commit,
/// so an attempt leaves exactly one copy or nothing.
std::string claim_sql(const std::string& schema, const std::string& clean,
                      const std::string& rejects, const std::string& suffix) {
  auto q = [&](const std::string& t) {
    return pg::table_name{schema, t}.quoted();
  };
  auto plan = clean.substr(0, 17) + "_plan";
  return "DO $flow$ BEGIN PERFORM " + claim_lock(schema, clean) + "; IF "
         + committed_table(schema, clean) + " OR NOT "
         + committed_table(schema, plan) + " THEN DROP TABLE "
         + q(clean + suffix) + "; DROP TABLE " + q(rejects + suffix)
         + "; RAISE NOTICE 'flow: another attempt staged this partition "
           "first, or its run is over: this attempt is discarded'; ELSE "
           "ALTER TABLE "
         + q(clean + suffix) + " RENAME TO " + pg::quote_ident(clean)
         + "; ALTER TABLE " + q(rejects + suffix) + " RENAME TO "
         + pg::quote_ident(rejects) + "; END IF; END $flow$";
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
  // Staged under this attempt's names, published under the partition's at
  // the commit (claim_sql): the partition may be read by two attempts.
  clean_config names;
  auto all = output_tables(names);
  auto suffix = attempt_suffix();
  std::vector<pg::output_table> staged{
    {{task->schema, task->clean + suffix}, all[clean_table].columns, "",
     all[clean_table].format},
    {{task->schema, task->rejects + suffix}, all[rejects_table].columns, "",
     all[rejects_table].format}};
  auto snk = std::make_unique<pg::copy_sink>(ci, staged);
  snk->on_dead_letters(reject_rows);
  snk->at_commit(claim_sql(task->schema, task->clean, task->rejects, suffix));
  pipeline<raw_ad> p;
  p.add(source<raw_ad>{
    std::make_unique<pg::row_source<raw_ad, decltype(&decode_ad)>>(
      std::move(*reader), &decode_ad)});
  options opts;
  opts.batch_size = 16384;
  opts.reducers = flow::default_reducers();
  return p.reduce(with_test_stuck(with_poison(clean_batch)))
    .describe(describe_ad)
    .sink(sink<pg::copy_row>{std::move(snk)})
    .with(opts)
    .run(sys);
}

namespace {

/// The prefix of this run's staging tables: a hash of the snapshot's id
/// (unique while it exists) and this process's id.
std::string staging_tag(const std::string& snapshot_id) {
  std::uint64_t h = 1469598103934665603ULL;
  for (auto c : snapshot_id + std::to_string(::getpid())) {
    h ^= static_cast<unsigned char>(c);
    h *= 1099511628211ULL;
  }
  char tag[24];
  std::snprintf(tag, sizeof(tag), "d%016llx",
                static_cast<unsigned long long>(h));
  return tag;
}

/// Creates the schema the nodes stage their partitions in.
caf::error create_staging_schema(const std::string& conninfo) {
  try {
    pqxx::connection conn{conninfo};
    pqxx::work tx{conn};
    tx.exec("CREATE SCHEMA IF NOT EXISTS " + pg::quote_ident(staging_schema));
    tx.commit();
    return {};
  } catch (...) {
    return pg::current_error(conninfo, "creating the staging schema");
  }
}

/// Drops what the nodes staged for the run tagged `tag`.
void drop_staged(const std::string& conninfo, const std::string& tag) {
  try {
    pqxx::connection conn{conninfo};
    pqxx::work tx{conn};
    auto names = tx.exec_params(
      "SELECT tablename FROM pg_tables WHERE schemaname = $1 AND "
      "starts_with(tablename, $2)",
      std::string{staging_schema}, tag + "_p");
    for (auto row : names)
      tx.exec("DROP TABLE IF EXISTS "
              + pg::table_name{staging_schema, row[0].as<std::string>()}
                  .quoted());
    tx.commit();
  } catch (...) {
    logger()->warn("clean: could not drop the staged partitions in {}",
                   staging_schema);
  }
}

/// The table recording a distributed run's job and plan, next to its staged
/// partitions (dropped with them): what `--resume` finds after the manager
/// was killed. Its name is no staging name (`staged_name`): nodes never
/// write it.
pg::table_name plan_table(const std::string& tag) {
  return {staging_schema, tag + "_plan"};
}

/// The partitions' staged tables of the run tagged `tag`.
pg::table_name staged_clean(const std::string& tag, std::size_t i) {
  return {staging_schema, tag + "_p" + std::to_string(i) + "_c"};
}

pg::table_name staged_rejects(const std::string& tag, std::size_t i) {
  return {staging_schema, tag + "_p" + std::to_string(i) + "_r"};
}

/// What identifies a distributed clean's job: its first output, as the
/// in-process run's resume state does.
caf::expected<std::string> job_of(const clean_config& cfg) {
  try {
    pqxx::connection conn{cfg.conninfo};
    pqxx::nontransaction tx{conn};
    // Copied before the result it points into goes.
    std::string current = tx.exec("SELECT current_schema()")[0][0].c_str();
    return pg::owner_hex(cfg.clean, current);
  } catch (...) {
    return pg::current_error(cfg.conninfo, "reading the current schema");
  }
}

/// A killed run of the same job, as its plan table recorded it.
struct killed_run {
  std::string tag;
  std::vector<pg::range> plan;
};

/// Finds the plan a killed (or still running) distributed run of `job` left
/// in flow_dist; none: errc::invalid_config.
caf::expected<killed_run> find_killed_run(const std::string& conninfo,
                                          const std::string& job,
                                          const pg::table_name& target) {
  try {
    pqxx::connection conn{conninfo};
    pqxx::read_transaction tx{conn};
    auto plans = tx.exec_params(
      "SELECT tablename FROM pg_tables WHERE schemaname = $1 AND tablename "
      "~ '^d[0-9a-f]{16}_plan$' ORDER BY tablename",
      std::string{staging_schema});
    for (auto row : plans) {
      auto name = row[0].as<std::string>();
      pg::table_name t{staging_schema, name};
      auto rows = tx.exec("SELECT job, lo, hi, blocks, nulls FROM "
                          + t.quoted() + " ORDER BY source");
      if (rows.empty() || rows[0][0].as<std::string>() != job)
        continue;
      killed_run k;
      k.tag = name.substr(0, 17);
      for (auto r : rows) {
        pg::range x;
        if (!r[1].is_null())
          x.lo = r[1].as<std::int64_t>();
        if (!r[2].is_null())
          x.hi = r[2].as<std::int64_t>();
        x.blocks = r[3].as<bool>();
        x.nulls = r[4].as<bool>();
        k.plan.push_back(x);
      }
      return k;
    }
  } catch (...) {
    return pg::current_error(conninfo, "looking for the run to resume");
  }
  return make_error(errc::invalid_config,
                    "no interrupted distributed run of " + target.display()
                      + " to resume in " + staging_schema
                      + " (run without --resume)");
}

/// What a resumed run takes over from the killed one.
struct taken_over {
  /// Per partition: true when the killed run's nodes had committed it.
  std::vector<bool> done;
  /// The ads those partitions hold (clean plus rejected rows).
  std::uint64_t ads = 0;
};

/// Takes the killed run's committed partitions over, under its lock (so
/// neither a second resume nor a clean-up touches them meanwhile): renames
/// them to this run's names (`tag`), so a run killed again is resumed the
/// same way, and drops the rest of its tables. A node of the killed run
/// still in the middle of a partition may commit it after this, under the
/// old name: an orphan, dropped by the next run or `flow-etl gc`.
caf::expected<taken_over> take_over(const std::string& conninfo,
                                    const killed_run& old,
                                    const std::string& tag) {
  auto lock = pg::owner_lock::try_acquire(
    conninfo, old.tag.substr(1),
    "the staging tables " + std::string{staging_schema} + "." + old.tag
      + "_p* of the run to resume (another run is resuming it)");
  if (!lock)
    return std::move(lock.error());
  try {
    pqxx::connection conn{conninfo};
    pqxx::work tx{conn};
    auto exists = [&](const pg::table_name& t) {
      return tx.exec("SELECT " + committed_table(t.schema, t.table))[0][0]
        .as<bool>();
    };
    if (!exists(plan_table(old.tag)))
      return make_error(errc::invalid_config,
                        "the interrupted run's state in "
                          + std::string{staging_schema}
                          + " was dropped meanwhile: nothing to resume (run "
                            "without --resume)");
    taken_over result;
    result.done.assign(old.plan.size(), false);
    for (std::size_t i = 0; i < old.plan.size(); ++i) {
      auto c = staged_clean(old.tag, i);
      auto r = staged_rejects(old.tag, i);
      // A node of the killed run still claiming this partition either
      // committed it before this lock (kept here) or claims it after this
      // transaction, when the killed run's plan is gone (and discards it).
      tx.exec("SELECT " + claim_lock(c.schema, c.table));
      // A node commits both tables of a partition in one transaction.
      if (!exists(c) || !exists(r))
        continue;
      result.ads += tx.exec("SELECT (SELECT count(*) FROM " + c.quoted()
                            + ") + (SELECT count(*) FROM " + r.quoted() + ")")
                      [0][0]
                        .as<std::uint64_t>();
      tx.exec("ALTER TABLE " + c.quoted() + " RENAME TO "
              + pg::quote_ident(staged_clean(tag, i).table));
      tx.exec("ALTER TABLE " + r.quoted() + " RENAME TO "
              + pg::quote_ident(staged_rejects(tag, i).table));
      result.done[i] = true;
    }
    auto rest = tx.exec_params(
      "SELECT tablename FROM pg_tables WHERE schemaname = $1 AND "
      "starts_with(tablename, $2)",
      std::string{staging_schema}, old.tag + "_p");
    for (auto row : rest)
      tx.exec("DROP TABLE IF EXISTS "
              + pg::table_name{staging_schema, row[0].as<std::string>()}
                  .quoted());
    tx.commit();
    return result;
  } catch (...) {
    return pg::current_error(conninfo, "taking over the interrupted run");
  }
}

/// Records this run's job and plan (see `plan_table`).
caf::error write_plan(const std::string& conninfo, const std::string& tag,
                      const std::string& job,
                      const std::vector<pg::range>& plan) {
  auto opt = [](const std::optional<std::int64_t>& x) {
    return x ? std::to_string(*x) : std::string{"NULL"};
  };
  try {
    pqxx::connection conn{conninfo};
    pqxx::work tx{conn};
    auto t = plan_table(tag).quoted();
    tx.exec("DROP TABLE IF EXISTS " + t);
    tx.exec("CREATE TABLE " + t
            + " (job text NOT NULL, source integer PRIMARY KEY, lo bigint, "
              "hi bigint, blocks boolean NOT NULL, nulls boolean NOT NULL)");
    for (std::size_t i = 0; i < plan.size(); ++i)
      tx.exec("INSERT INTO " + t + " VALUES (" + tx.quote(job) + ", "
              + std::to_string(i) + ", " + opt(plan[i].lo) + ", "
              + opt(plan[i].hi) + ", " + (plan[i].blocks ? "true" : "false")
              + ", " + (plan[i].nulls ? "true" : "false") + ")");
    tx.commit();
    return {};
  } catch (...) {
    return pg::current_error(conninfo, "recording the distributed plan");
  }
}

/// True for an owner whose tables a fresh run of `job` may drop when no
/// live run holds them: its own job's, or tables no plan ties to a job
/// (another job's killed run stays, for its own --resume or `gc`).
bool droppable(const std::string& conninfo, const std::string& job,
               const std::string& owner) {
  try {
    pqxx::connection conn{conninfo};
    pqxx::read_transaction tx{conn};
    auto t = plan_table("d" + owner);
    if (!tx.exec("SELECT to_regclass(" + tx.quote(t.quoted())
                 + ") IS NOT NULL")[0][0]
           .as<bool>())
      return true;
    auto rows = tx.exec("SELECT job FROM " + t.quoted() + " LIMIT 1");
    return rows.empty() || rows[0][0].as<std::string>() == job;
  } catch (...) {
    return false;
  }
}

} // namespace

caf::expected<clean_report>
run_distributed_clean(caf::actor_system& sys, const clean_config& cfg,
                      const cluster& nodes) {
  stopwatch sw;
  auto job = job_of(cfg);
  if (!job)
    return std::move(job.error());
  // --resume: the killed run's plan, so its committed partitions still
  // cover the same blocks; the rest is read in this run's snapshot.
  std::optional<killed_run> old;
  if (cfg.resume) {
    auto k = find_killed_run(cfg.conninfo, *job, cfg.clean);
    if (!k)
      return std::move(k.error());
    old = std::move(*k);
  }
  // Partitions are the unit of work handed to nodes: as many as cores here
  // at least, whatever the table's size.
  auto spec = ads_read_spec(cfg, cfg.partitions > 0
                                   ? cfg.partitions
                                   : flow::default_reducers());
  if (old)
    spec.plan = old->plan;
  auto read = pg::partitioned_read::open(spec);
  if (!read)
    return std::move(read.error());
  auto tickets = read->tickets();
  if (!tickets)
    return std::move(tickets.error());
  // The nodes' staged tables: in a schema of their own, named after this
  // run's snapshot (unique while it exists) and the partition.
  const std::string schema = staging_schema;
  auto tag = staging_tag(read->snapshot_id());
  if (auto err = create_staging_schema(cfg.conninfo))
    return err;
  // This run owns its staged tables while it holds their lock (until it
  // returns); what killed managers left behind is dropped first.
  auto owner = pg::owner_lock::try_acquire(cfg.conninfo, tag.substr(1),
                                           "the staging tables "
                                             + std::string{staging_schema}
                                             + "." + tag + "_p*");
  if (!owner)
    return std::move(owner.error());
  taken_over resumed;
  resumed.done.assign(tickets->size(), false);
  if (old) {
    auto t = take_over(cfg.conninfo, *old, tag);
    if (!t)
      return std::move(t.error());
    resumed = std::move(*t);
  }
  // Another job's killed run stays for its own --resume (or `gc`).
  auto mine = [&](const std::string& o) {
    return droppable(cfg.conninfo, *job, o);
  };
  if (auto gone = pg::drop_orphans(cfg.conninfo, false, {staging_schema},
                                   mine);
      !gone)
    logger()->warn("clean: could not drop what killed runs left in {}: {}",
                   staging_schema, describe(gone.error()));
  else if (!gone->empty())
    logger()->warn("clean: dropped {} staging tables in {} that killed runs "
                   "left behind",
                   gone->size(), staging_schema);
  if (auto err = write_plan(cfg.conninfo, tag, *job, read->ranges()))
    return err;
  // The summary covers the taken-over partitions too: their cities are
  // read back from their staged rows.
  std::vector<pg::table_name> done_tables;
  for (std::size_t i = 0; i < resumed.done.size(); ++i)
    if (resumed.done[i])
      done_tables.push_back(staged_clean(tag, i));
  auto seed = committed_summary(cfg.conninfo, done_tables);
  if (!seed)
    return std::move(seed.error());
  if (old)
    logger()->info("clean: resuming: {} of {} partitions ({} ads) were "
                   "committed by the interrupted run",
                   done_tables.size(), tickets->size(), resumed.ads);
  auto tables = output_tables(cfg);
  auto summary_keys = std::make_shared<std::size_t>(0);
  auto snk = std::make_unique<pg::copy_sink>(
    cfg.conninfo, tables, summary_with(std::move(*seed), summary_keys),
    cfg.before_commit);
  // The plan goes in the commit that adopts the partitions: an attempt
  // still running then (speculation's loser, a lost node) finds it gone at
  // its own commit and discards its rows instead of leaving an orphan.
  snk->at_commit("DROP TABLE IF EXISTS " + plan_table(tag).quoted());
  auto ledger = std::make_shared<flow::net::task_ledger>();
  pipeline<key_result> p;
  std::size_t pending = 0;
  for (auto& t : *tickets) {
    clean_task task{t, schema, staged_clean(tag, t.index).table,
                    staged_rejects(tag, t.index).table};
    snk->adopt(clean_table, {schema, task.clean});
    snk->adopt(rejects_table, {schema, task.rejects});
    if (resumed.done.at(t.index))
      continue;
    ++pending;
    p.add(flow::net::task_source(
      sys, nodes.coordinator(), clean_partition_task, encode(task),
      "partition " + std::to_string(t.index + 1) + "/"
        + std::to_string(t.count) + " of " + cfg.ads.display(),
      ledger, t.estimate));
  }
  // A resumed run whose partitions were all committed only commits.
  if (pending > 0) {
    try {
      nodes.wait_for_workers("flow-etl");
    } catch (...) {
      // Too few nodes (--min-workers-timeout): nothing was handed out. A
      // fresh run leaves nothing behind; a resumed one keeps what it took
      // over, for another --resume.
      if (!old)
        drop_staged(cfg.conninfo, tag);
      throw;
    }
  }
  test_end_exporter(cfg.conninfo, *read);
  auto started = p.reduce(flow::net::merge_key_results())
                   .sink(sink<pg::copy_row>{std::move(snk)})
                   .with(cfg.opts)
                   .start(sys);
  if (!started)
    return std::move(started.error());
  auto res = wait_with_progress(*started, 0, "clean");
  // A task (on a worker node, or here when none is left) that could not
  // import the snapshot because the server ended this coordinator's session
  // lost its connection (asked before the release).
  if (!res && exporter_lost_in(describe(res.error()), *read))
    res = make_error(errc::source_failed,
                     pg::snapshot_lost_text("a partition task"));
  // The snapshot may go once every partition has been read.
  read->release();
  if (!res || res->partial) {
    // The targets did not change. Partitions not started are withdrawn;
    // what the nodes staged so far goes (a node still in the middle of a
    // partition may yet commit its staging tables after this: they stay in
    // flow_dist, which may be dropped whenever no distributed job runs).
    ledger->cancel();
    drop_staged(cfg.conninfo, tag);
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
  rep.resumed_ads = resumed.ads;
  rep.node_tasks = ledger->remote_tasks();
  rep.local_tasks = ledger->local_tasks();
  rep.seconds = sw.seconds();
  // The plan goes once the output it planned is committed.
  if (!rep.res.partial)
    drop_staged(cfg.conninfo, tag);
  return checked(cfg, std::move(rep), *summary_keys);
}


} // namespace flow::apps
