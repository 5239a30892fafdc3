// flow-etl's `clean` over worker nodes: the partition task a node runs
// (read in the manager's snapshot, clean, stage the rows) and the manager's
// job that hands the partitions out and commits the staged rows. Built with
// networking only (nodes_stub.cpp stands in without it).

#include "etl/clean_nodes.hpp"

#include <cctype>
#include <cstdio>
#include <memory>

#include <caf/actor_system.hpp>

#include <unistd.h>

#include <pqxx/connection>
#include <pqxx/result>
#include <pqxx/transaction>

#include "common/cli.hpp"
#include "common/progress.hpp"
#include "etl/clean_rows.hpp"
#include "etl/node_error.hpp"
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

} // namespace

caf::expected<clean_report>
run_distributed_clean(caf::actor_system& sys, const clean_config& cfg,
                      const cluster& nodes) {
  stopwatch sw;
  // Partitions are the unit of work handed to nodes: as many as cores here
  // at least, whatever the table's size.
  auto spec = ads_read_spec(cfg, cfg.partitions > 0
                                   ? cfg.partitions
                                   : flow::default_reducers());
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
  if (auto gone = pg::drop_orphans(cfg.conninfo, false, {staging_schema});
      !gone)
    logger()->warn("clean: could not drop what killed runs left in {}: {}",
                   staging_schema, describe(gone.error()));
  else if (!gone->empty())
    logger()->warn("clean: dropped {} staging tables in {} that killed runs "
                   "left behind",
                   gone->size(), staging_schema);
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
      sys, nodes.coordinator(), clean_partition_task, encode(task),
      "partition " + std::to_string(t.index + 1) + "/"
        + std::to_string(t.count) + " of " + cfg.ads.display(),
      ledger, t.estimate));
  }
  nodes.wait_for_workers("flow-etl");
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
  rep.node_tasks = ledger->remote_tasks();
  rep.local_tasks = ledger->local_tasks();
  rep.seconds = sw.seconds();
  return checked(cfg, std::move(rep), *summary_keys);
}


} // namespace flow::apps

