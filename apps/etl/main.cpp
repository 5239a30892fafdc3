// flow-etl: the tutorial's last part, data in PostgreSQL. `init` stores the
// tutorial's lists as rows (and a table of messy classified ads for the
// cleaning job); `sum` computes the keyed sums per list size from the
// rows, read by N partition generators in one snapshot, and verifies them
// against the server's own GROUP BY.
//
//   partition 1 (value in [lo, b1))  ─┐  COPY (...) TO STDOUT, one snapshot
//   partition 2 (value in [b1, b2))  ─┼─batches─▶ reducers ─▶ manager
//   partition P (value in [bP, hi))  ─┘  (key = list size, list) {key: sum}
//
// With --pushdown each partition's generator has the server aggregate its
// range and emits the groups' partial aggregates instead of rows.
//
// Without --db and without a PG* environment, a throwaway PostgreSQL cluster
// is started for the run (and `sum` fills it with `init` first).

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstdio>
#include <iostream>
#include <map>
#include <optional>
#include <set>
#include <thread>
#include <tuple>

#include <pqxx/connection>
#include <pqxx/nontransaction>
#include <pqxx/stream_to>
#include <pqxx/transaction>

#include "common/app_options.hpp"
#include "common/cli.hpp"
#include "common/progress.hpp"
#include "common/signals.hpp"
#include "etl_clean.hpp"
#include "etl_tasks.hpp"
#ifdef FLOW_HAS_NET
#include "common/net_options.hpp"
#include "flow/net/net.hpp"
#endif
#include "flow/flow.hpp"
#include "flow/pg/pg.hpp"

namespace {

using namespace flow;
using namespace flow::apps;

constexpr const char* prog = "flow-etl";

const char* overview
  = "usage: flow-etl COMMAND [options]\n"
    "The tutorial's data in PostgreSQL, processed by libflow.\n"
    "\n"
    "commands:\n"
    "  init    create the demo tables: elements(list_id, list_size, value),\n"
    "          the tutorial's lists as rows, and ads(id, title, city, price,\n"
    "          posted_at), raw classified ads (deterministic for a seed)\n"
    "  sum     keyed sums per list_size over elements, read by parallel\n"
    "          partitions in one snapshot (or pushed down to the server with\n"
    "          --pushdown), verified against the server's own GROUP BY\n"
    "  clean   the data-cleaning job: ads -> ads_clean, ads_rejects (with\n"
    "          reasons) and ads_summary (per city), replaced atomically\n"
    "\n"
    "The database: --db URI|CONNINFO, else libpq's environment (PGHOST,\n"
    "PGPORT, PGUSER, PGDATABASE, PGPASSWORD, PGSERVICE, ~/.pgpass). With\n"
    "neither, a throwaway PostgreSQL 15 cluster is started in a temporary\n"
    "directory and removed at exit (--keep keeps it and prints how to\n"
    "connect); `sum` and `clean` then run `init` in it first.\n"
    "\n"
    "Run 'flow-etl COMMAND --help' for the options of a command. Exit codes:\n"
    "0 verified, 1 a result did not verify, 2 bad usage, input or database.\n";

/// The tutorial's three sets of list sizes, one after the other.
const std::vector<std::uint64_t> tutorial_lists = {
  5,        50,       500,      1000,     10000,    10000000, 100000000,
  10000000, 10000000, 10000000, 10000000, 10000000, 10000000, 10000000,
  10000,    10000,    10000,    10000,    10000,    10000,    10000,
  10000};

/// The tutorial's lists scaled to `rows` rows in total: every list keeps at
/// least one row (when rows allow), the largest takes the remainder.
std::vector<std::uint64_t> scaled_lists(std::uint64_t rows) {
  auto n = tutorial_lists.size();
  std::vector<std::uint64_t> result(n, 0);
  if (rows < n) {
    for (std::uint64_t j = 0; j < rows; ++j)
      result[j] = 1;
    return result;
  }
  unsigned __int128 total = 0;
  for (auto s : tutorial_lists)
    total += s;
  std::uint64_t sum = 0;
  std::size_t largest = 0;
  for (std::size_t j = 0; j < n; ++j) {
    auto x = static_cast<std::uint64_t>(tutorial_lists[j] * rows / total);
    result[j] = std::max<std::uint64_t>(x, 1);
    sum += result[j];
    if (tutorial_lists[j] > tutorial_lists[largest])
      largest = j;
  }
  // sum <= rows + n and the largest list holds most rows: the adjustment
  // never empties it.
  result[largest] = result[largest] + rows - sum;
  return result;
}

// -- connection -------------------------------------------------------------

/// Where this run's database is: given, from the environment, or a
/// throwaway cluster owned by this object.
struct database {
  std::string conninfo;
  std::unique_ptr<pg::temp_cluster> cluster;

  bool throwaway() const {
    return cluster != nullptr;
  }
};

database open_database(const arg_parser& args) {
  database db;
  if (args.given("db")) {
    db.conninfo = args.get("db");
    if (db.conninfo.empty())
      throw usage_error("--db: empty connection string");
    return db;
  }
  if (pg::environment_configured())
    return db; // libpq reads PGHOST & co.
  auto cluster = pg::temp_cluster::start();
  if (!cluster)
    throw usage_error(describe(cluster.error()));
  db.cluster = std::move(*cluster);
  db.conninfo = db.cluster->conninfo();
  std::cerr << prog
            << ": no database configured (--db or PGHOST/PGPORT/PGDATABASE/"
               "PGSERVICE/PGUSER): started a throwaway PostgreSQL 15 cluster "
               "in "
            << db.cluster->dir() << " ("
            << (args.is_set("keep") ? "kept at exit" : "removed at exit")
            << ")" << std::endl;
  return db;
}

void finish_database(database& db, bool keep) {
  if (!db.cluster)
    return;
  if (keep) {
    db.cluster->keep();
    std::cerr << prog << ": kept the throwaway cluster; use it with\n  --db '"
              << db.cluster->conninfo() << "'\n  or: psql -h "
              << db.cluster->dir() << " -p " << db.cluster->port() << " -U "
              << pg::temp_cluster::superuser()
              << " postgres\n  stop and remove it with: "
              << db.cluster->stop_command() << std::endl;
  }
  db.cluster.reset();
}

/// Turns a library error into the usual one-line error (exit code 2).
[[noreturn]] void fail(const caf::error& err) {
  throw usage_error(describe(err));
}

pg::table_name table_of(const arg_parser& args, const std::string& table) {
  pg::table_name result{args.get("schema"), table};
  try {
    if (!result.schema.empty())
      pg::check_identifier(result.schema, "--schema");
    pg::check_identifier(result.table, "--table");
  } catch (const input_error& e) {
    throw usage_error(e.what());
  }
  return result;
}

void declare_common(arg_parser& args,
                    const std::string& table_help = "the elements table",
                    const std::string& table_default = "elements") {
  args.value("db", "URI",
             "libpq connection URI or key=value string (default: the PG* "
             "environment, else a throwaway cluster)");
  args.flag("keep",
            "keep the throwaway cluster at exit and print how to connect");
  args.value("schema", "NAME",
             "schema of the tables (default: the search_path)");
  args.value("table", "NAME", table_help, table_default);
}

// -- init -------------------------------------------------------------------

/// The k-th random draw in [lo, hi] for ad `id`.
std::int64_t ad_draw(std::uint64_t seed, std::int64_t id, std::uint64_t k,
                     std::int64_t lo, std::int64_t hi) {
  return uniform_ints{derive_seed(seed ^ 0xad5ad5ad5ad5ad5aULL,
                                  static_cast<std::uint64_t>(id)),
                      lo, hi}(k);
}

using text_field = std::optional<std::string>;

/// One raw classified ad, as scraped: deterministic for (seed, id).
std::tuple<std::int64_t, text_field, text_field, text_field, text_field>
make_ad(std::uint64_t seed, std::int64_t id) {
  static const char* adjectives[] = {"Vintage", "Used",   "New",   "Cozy",
                                     "Large",   "Small",  "Sunny", "Quiet",
                                     "Classic", "Modern", "Rare",  "Cheap"};
  static const char* items[] = {"bicycle",   "sofa",       "apartment",
                                "desk lamp", "guitar",     "road bike",
                                "camera",    "dining table", "studio",
                                "laptop",    "bookshelf",  "piano"};
  static const char* cities[] = {"Berlin",   "Hamburg",       "Munich",
                                 "Cologne",  "Frankfurt",     "New York",
                                 "San Francisco", "São Paulo", "Los Angeles",
                                 "Stuttgart"};
  auto draw = [&](std::uint64_t k, std::int64_t lo, std::int64_t hi) {
    return ad_draw(seed, id, k, lo, hi);
  };
  std::string title = std::string{adjectives[draw(0, 0, 11)]} + " "
                      + items[draw(1, 0, 11)];
  if (draw(2, 0, 9) == 0)
    title = "  " + title + " !!";
  // City: mixed case and spacing, sometimes empty or NULL.
  text_field city;
  auto c = draw(3, 0, 99);
  if (c >= 3) {
    std::string x = cities[draw(4, 0, 9)];
    switch (draw(5, 0, 4)) {
      case 0:
        for (auto& ch : x)
          ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
        break;
      case 1:
        for (auto& ch : x)
          ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
        break;
      case 2:
        x = "  " + x + " ";
        break;
      case 3:
        if (auto sp = x.find(' '); sp != std::string::npos)
          x.insert(sp, "  ");
        else
          x += "\t";
        break;
      default:
        break;
    }
    city = x;
  } else if (c >= 1) {
    city = std::string{};
  }
  // Price: many formats, some unusable.
  text_field price;
  auto amount = draw(6, 1, 500000); // cents
  auto whole = std::to_string(amount / 100);
  auto cents = std::to_string(amount % 100);
  if (cents.size() < 2)
    cents = "0" + cents;
  auto with_commas = [](std::string x) {
    for (int i = static_cast<int>(x.size()) - 3; i > 0; i -= 3)
      x.insert(static_cast<std::size_t>(i), ",");
    return x;
  };
  switch (draw(7, 0, 11)) {
    case 0:
    case 1:
      price = whole;
      break;
    case 2:
    case 3:
      price = "$" + with_commas(whole);
      break;
    case 4:
      price = whole + "." + cents;
      break;
    case 5:
      price = "$ " + with_commas(whole) + "." + cents;
      break;
    case 6:
      price = whole + " EUR";
      break;
    case 7:
      price = "call";
      break;
    case 8:
      price = std::string{};
      break;
    case 9:
      break; // NULL
    case 10:
      price = "free";
      break;
    default:
      price = "-" + whole; // invalid: negative
  }
  // Posted at: a few formats, some invalid.
  text_field posted;
  auto y = draw(8, 2019, 2024);
  auto m = draw(9, 1, 12);
  auto d = draw(10, 1, 28);
  auto hh = draw(11, 0, 23);
  auto mm = draw(12, 0, 59);
  char buf[64];
  static const char* months[] = {"January", "February", "March",
                                 "April",   "May",      "June",
                                 "July",    "August",   "September",
                                 "October", "November", "December"};
  switch (draw(13, 0, 9)) {
    case 0:
    case 1:
    case 2:
      std::snprintf(buf, sizeof(buf), "%04lld-%02lld-%02lld",
                    static_cast<long long>(y), static_cast<long long>(m),
                    static_cast<long long>(d));
      posted = buf;
      break;
    case 3:
    case 4:
      std::snprintf(buf, sizeof(buf), "%04lld-%02lld-%02lld %02lld:%02lld:00",
                    static_cast<long long>(y), static_cast<long long>(m),
                    static_cast<long long>(d), static_cast<long long>(hh),
                    static_cast<long long>(mm));
      posted = buf;
      break;
    case 5:
      std::snprintf(buf, sizeof(buf), "%02lld/%02lld/%04lld",
                    static_cast<long long>(d), static_cast<long long>(m),
                    static_cast<long long>(y));
      posted = buf;
      break;
    case 6:
      std::snprintf(buf, sizeof(buf), "%s %lld, %04lld", months[m - 1],
                    static_cast<long long>(d), static_cast<long long>(y));
      posted = buf;
      break;
    case 7:
      std::snprintf(buf, sizeof(buf), "%04lld-02-3%lld",
                    static_cast<long long>(y),
                    static_cast<long long>(d % 2)); // Feb 30/31: invalid
      posted = buf;
      break;
    case 8:
      posted = draw(14, 0, 1) == 0 ? std::string{"yesterday"}
                                   : std::string{};
      break;
    default:
      break; // NULL
  }
  return {id, title, city, price, posted};
}

struct init_config {
  pg::table_name elements;
  pg::table_name ads;
  std::uint64_t rows = 0;
  std::uint64_t ads_rows = 0;
  std::uint64_t seed = 0;
};

/// Creates (or replaces) both tables in one transaction.
void run_init(const std::string& conninfo, const init_config& cfg) {
  stopwatch sw;
  try {
    pqxx::connection conn{conninfo};
    {
      pqxx::work tx{conn};
      if (!cfg.elements.schema.empty())
        tx.exec("CREATE SCHEMA IF NOT EXISTS "
                + pg::quote_ident(cfg.elements.schema));
      tx.exec("DROP TABLE IF EXISTS " + cfg.elements.quoted() + ", "
              + cfg.ads.quoted());
      tx.exec("CREATE TABLE " + cfg.elements.quoted()
              + " (list_id integer, list_size integer, value bigint)");
      {
        pqxx::stream_to out{tx, cfg.elements.quoted()};
        auto lists = scaled_lists(cfg.rows);
        for (std::size_t j = 0; j < lists.size(); ++j) {
          uniform_ints gen{derive_seed(cfg.seed, j), 0, 10000};
          auto size = static_cast<std::int32_t>(lists[j]);
          auto id = static_cast<std::int32_t>(j);
          for (std::uint64_t i = 0; i < lists[j]; ++i)
            out << std::make_tuple(id, size, gen(i));
        }
        out.complete();
      }
      tx.exec("CREATE TABLE " + cfg.ads.quoted()
              + " (id bigint PRIMARY KEY, title text, city text, price text, "
                "posted_at text)");
      {
        pqxx::stream_to out{tx, cfg.ads.quoted()};
        for (std::uint64_t id = 1; id <= cfg.ads_rows; ++id)
          out << make_ad(cfg.seed, static_cast<std::int64_t>(id));
        out.complete();
      }
      tx.commit();
    }
    // Hint bits, visibility map and statistics now, not in the first read.
    pqxx::nontransaction ntx{conn};
    ntx.exec("VACUUM (ANALYZE) " + cfg.elements.quoted());
    ntx.exec("ANALYZE " + cfg.ads.quoted());
  } catch (...) {
    fail(pg::current_error(conninfo, "init"));
  }
  std::cerr << prog << ": init: " << cfg.rows << " rows in "
            << cfg.elements.display() << " (" << scaled_lists(cfg.rows).size()
            << " lists, seed " << cfg.seed << "), " << cfg.ads_rows
            << " ads in " << cfg.ads.display() << ", " << sw.seconds()
            << " s" << std::endl;
}

init_config read_init_options(const arg_parser& args) {
  init_config cfg;
  cfg.elements = table_of(args, args.get("table"));
  cfg.ads = table_of(args, "ads");
  cfg.rows = args.get_uint("rows", 0, std::uint64_t{1} << 31);
  cfg.ads_rows = args.get_uint("ads", 0, std::uint64_t{1} << 31);
  cfg.seed = args.get_uint("seed");
  return cfg;
}

void declare_init_options(arg_parser& args) {
  args.value("rows", "N",
             "rows of elements: the tutorial's 22 lists scaled to N rows",
             "1000000");
  args.value("ads", "N", "rows of ads", "100000");
  args.value("seed", "S", "seed of the data", "42");
}

int cmd_init(int argc, char** argv) {
  arg_parser args{"flow-etl init",
                  "Creates (or replaces, atomically) the demo tables: "
                  "elements(list_id, list_size, value), the tutorial's lists "
                  "as rows, values like flow-keyed's\n(uniform 0..10000 from "
                  "derive_seed(seed, list_id)); and ads(id, title, city, "
                  "price, posted_at), raw messy classified ads. The same "
                  "seed gives the same rows."};
  declare_common(args);
  declare_init_options(args);
  args.value("log-level", "LEVEL",
             "trace, debug, info, warn, error, critical or off", "warn");
  if (!args.parse(argc, argv))
    return exit_ok;
  apply_log_level(args.get("log-level"));
  auto cfg = read_init_options(args);
  auto db = open_database(args);
  try {
    run_init(db.conninfo, cfg);
  } catch (...) {
    finish_database(db, args.is_set("keep"));
    throw;
  }
  finish_database(db, args.is_set("keep"));
  return exit_ok;
}

// -- sum --------------------------------------------------------------------

/// Per list size: the aggregate and the number of lists.
struct size_total {
  aggregate agg;
  std::uint64_t lists = 0;
};

using totals = std::map<std::int64_t, size_total>;

totals fold_lists(const job_result& res) {
  totals result;
  for (auto& k : res.keys) {
    auto& t = result[size_of_key(k.key.as_int())];
    if (!t.agg.merge(k.agg))
      throw usage_error("sum: overflow folding lists");
    ++t.lists;
  }
  return result;
}

/// The server's own answer, in the same snapshot.
struct reference {
  totals by_size;
  std::uint64_t null_values = 0;
  double seconds = 0;
};

reference server_reference(pg::partitioned_read& read,
                           const pg::table_name& table) {
  reference ref;
  stopwatch sw;
  auto rows = read.query(
    "SELECT list_size, sum(value), count(value), "
    "count(DISTINCT list_id) FILTER (WHERE value IS NOT NULL), min(value), "
    "max(value) FROM "
    + table.quoted()
    + " WHERE list_size IS NOT NULL AND list_id IS NOT NULL "
      "GROUP BY list_size HAVING count(value) > 0");
  if (!rows)
    fail(rows.error());
  ref.seconds = sw.seconds();
  for (auto& r : *rows) {
    auto key = pg::parse_int64(*r[0]);
    auto sum = pg::parse_int128(*r[1]);
    if (!key || !sum)
      throw usage_error("sum: unexpected reference row");
    auto& t = ref.by_size[*key];
    t.agg.sum = *sum;
    t.agg.count = std::stoull(*r[2]);
    t.lists = std::stoull(*r[3]);
    t.agg.min = std::stoll(*r[4]);
    t.agg.max = std::stoll(*r[5]);
  }
  auto nulls = read.query("SELECT count(*) FROM " + table.quoted()
                          + " WHERE value IS NULL");
  if (!nulls)
    fail(nulls.error());
  ref.null_values = std::stoull(*(*nulls)[0][0]);
  return ref;
}

bool same(const size_total& x, const size_total& y) {
  return x.agg.sum == y.agg.sum && x.agg.count == y.agg.count
         && x.agg.min == y.agg.min && x.agg.max == y.agg.max
         && x.lists == y.lists;
}

struct sum_config {
  pg::table_name table;
  std::string by;
  std::size_t partitions = 0;
  bool pushdown = false;
  bool json = false;
  std::string output;
  options opts;
#ifdef FLOW_HAS_NET
  /// With --listen: worker nodes read and reduce the partitions.
  const flow::net::coordinator* coord = nullptr;
  std::size_t min_workers = 0;
#endif
};

#ifdef FLOW_HAS_NET
/// The manager side of `sum|clean --listen`: the actor system with CAF's
/// network modules and the coordinator worker nodes connect to.
struct manager_node {
  runtime rt;
  std::optional<flow::net::coordinator> coord;

  manager_node(const net_options& net, const std::string& conninfo)
    : rt([&](caf::actor_system_config& cfg) {
        if (net.listen)
          flow::net::configure(cfg, net.sec);
      }) {
    if (!net.listen)
      return;
    // With no node connected the manager reads partitions itself.
    register_etl_tasks(conninfo);
    auto c = flow::net::coordinator::listen(rt.system(), *net.listen,
                                            net.sec);
    if (!c)
      throw usage_error(describe(c.error()));
    // Tests and scripts read the port from this line (port 0: a free one).
    std::cerr << prog << ": listening on " << net.listen->host << ":"
              << c->port() << std::endl;
    coord.emplace(std::move(*c));
  }
};

/// Runs `body` as the manager of a --listen job. CAF 0.17's middleman does
/// not always shut down while peers are connected, so once the results are
/// out (or the error is reported) and the database is finished, the process
/// leaves at once; the worker nodes see the connection go and stop.
template <class F>
int run_listening(database& db, bool keep, const net_options& net, F body) {
  int rc = exit_ok;
  try {
    // Never destroyed: the process leaves with _Exit below.
    auto* mgr = new manager_node{net, db.conninfo};
    rc = body(*mgr);
  } catch (const std::exception& e) { // usage_error and the rest alike
    rc = report_usage_error(prog, e.what());
  }
  finish_database(db, keep);
  std::cout.flush();
  std::fflush(stdout);
  std::fflush(stderr);
  std::_Exit(rc);
}
#endif

/// True with --listen: partitions are then the work handed to nodes.
bool distributed_sum(const sum_config& cfg) {
#ifdef FLOW_HAS_NET
  return cfg.coord != nullptr;
#else
  static_cast<void>(cfg);
  return false;
#endif
}

int run_sum(const std::string& conninfo, const sum_config& cfg,
            caf::actor_system& sys) {
  stopwatch sw;
  pg::read_spec spec;
  spec.conninfo = conninfo;
  spec.table = cfg.table;
  spec.columns = {"list_id", "list_size", "value"};
  spec.partition_column = cfg.by;
  spec.partitions = cfg.partitions;
  if (spec.partitions == 0) {
    auto hw = flow::default_reducers();
    if (cfg.pushdown) {
      spec.partitions = 1;
    } else if (cfg.by != "ctid" || distributed_sum(cfg)) {
      spec.partitions = hw;
    } else {
      auto n = pg::ctid_partitions(conninfo, cfg.table, hw);
      if (!n)
        fail(n.error());
      spec.partitions = *n;
    }
  }
  auto read = pg::partitioned_read::open(spec);
  if (!read)
    fail(read.error());
  caf::expected<job> started = caf::error{};
  // With --listen, the rows' accounting comes from the partitions' tasks
  // (the manager's own job merges their keys).
#ifdef FLOW_HAS_NET
  std::shared_ptr<flow::net::task_ledger> ledger;
  if (cfg.coord != nullptr) {
    auto tickets = read->tickets();
    if (!tickets)
      fail(tickets.error());
    wait_for_workers(*cfg.coord, cfg.min_workers, prog);
    ledger = std::make_shared<flow::net::task_ledger>();
    pipeline<key_result> p;
    for (auto& t : *tickets)
      p.add(flow::net::task_source(
        sys, cfg.coord, sum_task, t.encode(),
        "partition " + std::to_string(t.index + 1) + "/"
          + std::to_string(t.count) + " of " + cfg.table.display(),
        ledger));
    started = p.reduce(flow::net::merge_key_results())
                .with(cfg.opts)
                .start(sys);
  } else
#endif
  if (cfg.pushdown) {
    pg::pushdown_spec pd;
    pd.group_columns = {"list_size", "list_id"};
    pd.value_column = "value";
    pd.key = [](const pg::row_view& r) {
      return flow::key{list_key(r.int32(0), r.int32(1))};
    };
    auto srcs = read->aggregate_sources(pd);
    if (!srcs)
      fail(srcs.error());
    pipeline<pg::keyed_aggregate> p;
    for (auto& s : *srcs)
      p.add(std::move(s));
    started = p.reduce(pg::merge_by_key()).with(cfg.opts).start(sys);
  } else {
    auto srcs = read->row_sources<element_row>(
      [](const pg::row_view& r) { return decode_element_row(r); });
    if (!srcs)
      fail(srcs.error());
    pipeline<element_row> p;
    for (auto& s : *srcs)
      p.add(std::move(s));
    started = p.reduce(sum_per_list()).with(cfg.opts).start(sys);
  }
  if (!started)
    fail(started.error());
  auto res = wait_with_progress(*started, 0, "sum");
  auto flow_s = sw.seconds();
  if (!res)
    fail(res.error());
  if (res->partial || interrupted()) {
    // Stopped by a signal: print what was merged, marked partial; nothing
    // is verified and no output table is written.
    for (auto& [k, t] : fold_lists(*res)) {
      if (cfg.json) {
        json_object obj;
        obj.add("key", k)
          .add("sum", t.agg.sum)
          .add("lists", t.lists)
          .add("elements", t.agg.count)
          .add("ok", false)
          .add("partial", true);
        std::cout << obj.str() << '\n';
      } else {
        std::printf("%12lld %12llu %16s PARTIAL\n", static_cast<long long>(k),
                    static_cast<unsigned long long>(t.agg.count),
                    to_string(t.agg.sum).c_str());
      }
    }
    std::cout.flush();
    std::fflush(stdout);
    if (res->partial)
      report_partial(prog, *res);
    return interrupted_exit_code();
  }
  report_dead_letters(prog, *res, "");
  auto mine = fold_lists(*res);
  auto ref = server_reference(*read, cfg.table);
  read->release();
  // Verify: every key equal, no key missing or extra, every row accounted.
  std::uint64_t rows = 0;
  for (auto& [k, t] : mine)
    rows += t.agg.count;
  // The rows' own accounting: this job's, or, distributed, the tasks'.
  auto rows_res = *res;
  bool dist = false;
  std::uint64_t node_tasks = 0;
  std::uint64_t local_tasks = 0;
#ifdef FLOW_HAS_NET
  if (ledger) {
    dist = true;
    rows_res = ledger->totals();
    node_tasks = ledger->remote_tasks();
    local_tasks = ledger->local_tasks();
  }
#endif
  bool all_ok = res->final && res->balanced() && rows_res.balanced()
                && mine.size() == ref.by_size.size()
                && (cfg.pushdown || rows_res.rejected == ref.null_values);
  std::set<std::int64_t> keys;
  for (auto& [k, t] : mine)
    keys.insert(k);
  for (auto& [k, t] : ref.by_size)
    keys.insert(k);
  auto mode = dist ? "distributed" : cfg.pushdown ? "push-down" : "rows";
  if (!cfg.json)
    std::printf("%12s %6s %12s %16s %4s\n", "key", "lists", "elements", "sum",
                "ok");
  for (auto k : keys) {
    auto m = mine.find(k);
    auto r = ref.by_size.find(k);
    bool ok = m != mine.end() && r != ref.by_size.end()
              && same(m->second, r->second);
    all_ok = all_ok && ok;
    size_total empty;
    auto& x = m != mine.end() ? m->second : empty;
    if (cfg.json) {
      json_object obj;
      obj.add("key", k)
        .add("sum", x.agg.sum)
        .add("lists", x.lists)
        .add("elements", x.agg.count)
        .add("reference_sum",
             r != ref.by_size.end() ? r->second.agg.sum : int128{0})
        .add("reference_lists",
             r != ref.by_size.end() ? r->second.lists : std::uint64_t{0})
        .add("ok", ok);
      if (x.agg.count > 0)
        obj.add("min", x.agg.min).add("max", x.agg.max);
      obj.add("mode", mode)
        .add("partitions", static_cast<std::uint64_t>(read->ranges().size()))
        .add("libflow_s", flow_s)
        .add("server_s", ref.seconds);
      if (dist)
        obj.add("rows_read", rows_res.emitted)
          .add("rows_rejected", rows_res.rejected)
          .add("node_tasks", node_tasks)
          .add("local_tasks", local_tasks);
      std::cout << obj.str() << '\n';
    } else {
      std::printf("%12lld %6llu %12llu %16s %4s\n", static_cast<long long>(k),
                  static_cast<unsigned long long>(x.lists),
                  static_cast<unsigned long long>(x.agg.count),
                  to_string(x.agg.sum).c_str(), ok ? "yes" : "NO");
    }
  }
  if (!cfg.json) {
    std::printf("%s: %llu rows of %s in %zu partitions (%s, by %s), "
                "libflow %.3f s, server GROUP BY %.3f s, %s\n",
                mode, static_cast<unsigned long long>(rows),
                cfg.table.display().c_str(), read->ranges().size(), mode,
                cfg.by.c_str(), flow_s, ref.seconds,
                all_ok ? "verified" : "MISMATCH");
    if (dist)
      std::printf("distributed: %llu rows read, %llu NULL values rejected; "
                  "%llu partitions read by worker nodes, %llu here\n",
                  static_cast<unsigned long long>(rows_res.emitted),
                  static_cast<unsigned long long>(rows_res.rejected),
                  static_cast<unsigned long long>(node_tasks),
                  static_cast<unsigned long long>(local_tasks));
  }
  std::fflush(stdout);
  if (!all_ok) {
    std::cerr << prog << ": sum: the result does not match the server's GROUP BY"
              << std::endl;
    return res->dead_lettered > 0 ? exit_dead_letters : exit_mismatch;
  }
  if (!cfg.output.empty()) {
    job_result out;
    out.final = true;
    for (auto& [k, t] : mine)
      out.keys.push_back({flow::key{k}, t.agg, t.lists});
    if (auto err = pg::write_aggregates(conninfo, {cfg.table.schema,
                                                   cfg.output},
                                        out))
      fail(err);
  }
  return exit_ok;
}

int cmd_sum(int argc, char** argv) {
  arg_parser args{
    "flow-etl sum",
    "Keyed sums per list_size over the elements table (sum, elements, number "
    "of lists, min, max), read by parallel partitions that share one "
    "snapshot,\nverified against the server's own GROUP BY in that snapshot. "
    "With a throwaway cluster (no --db, no PG* environment) it runs init "
    "first,\nwith --rows/--ads/--seed."};
  declare_common(args);
  args.value("partitions", "P",
             "partition generators (ranges of --by, balanced by quantiles); "
             "0 = one per hardware thread, but 1 for a table larger than a "
             "quarter of the server's shared buffers (read by block ranges "
             "it would churn them) and 1 with --pushdown (the server runs "
             "it with its own parallel workers)",
             "0");
  args.value("by", "COLUMN",
             "integer column whose ranges make the partitions, or ctid: equal "
             "shares of the table's blocks, each partition reading only its "
             "own",
             "ctid");
  args.flag("pushdown",
            "let the server aggregate each partition (GROUP BY in the "
            "snapshot) and merge the partial aggregates");
  args.value("output", "NAME",
             "also write the verified sums to table NAME (replaced "
             "atomically)");
  args.flag("json", "print one JSON object per key instead of a table");
  declare_init_options(args);
  declare_pipeline_options(args, "16384");
#ifdef FLOW_HAS_NET
  declare_net_options(args, true);
#endif
  if (!args.parse(argc, argv))
    return exit_ok;
  sum_config cfg;
  cfg.opts = read_pipeline_options(args);
  cfg.table = table_of(args, args.get("table"));
  cfg.by = args.get("by");
  try {
    pg::check_identifier(cfg.by, "--by");
  } catch (const input_error& e) {
    throw usage_error(e.what());
  }
  auto hw = flow::default_reducers();
  cfg.partitions = args.get_uint("partitions", 0, 1024);
  cfg.pushdown = args.is_set("pushdown");
  // Pushed down, a partition is one query the server may run with its own
  // parallel workers, which share the table out block by block as they go;
  // fixed ranges on top of them only add processes (measured: 1 partition
  // 1.3 s, 2 partitions 2.0 s over 10^7 rows on 2 cores).
  // 0 is decided in run_sum, once the table is there.
  cfg.json = args.is_set("json");
#ifdef FLOW_HAS_NET
  auto net = read_net_options(args, prog, true);
  if (net.listen && cfg.pushdown)
    throw usage_error("--pushdown and --listen exclude each other (with "
                      "--pushdown the server aggregates every partition)");
  cfg.min_workers = net.min_workers;
#endif
  if (args.given("output")) {
    cfg.output = args.get("output");
    table_of(args, cfg.output);
  }
  if (cfg.opts.reducers == 0)
    cfg.opts.reducers = hw;
  auto init = read_init_options(args);
  auto db = open_database(args);
  if (db.throwaway()) {
    std::cerr << prog << ": sum: filling the throwaway cluster with init first"
              << std::endl;
    try {
      run_init(db.conninfo, init);
    } catch (...) {
      finish_database(db, args.is_set("keep"));
      throw;
    }
  }
#ifdef FLOW_HAS_NET
  if (net.listen)
    return run_listening(db, args.is_set("keep"), net, [&](manager_node& mgr) {
      cfg.coord = &*mgr.coord;
      return run_sum(db.conninfo, cfg, mgr.rt.system());
    });
#endif
  int rc = exit_ok;
  try {
    runtime rt;
    rc = run_sum(db.conninfo, cfg, rt.system());
  } catch (...) {
    finish_database(db, args.is_set("keep"));
    throw;
  }
  finish_database(db, args.is_set("keep"));
  return rc;
}

// -- clean ------------------------------------------------------------------

void print_clean(const clean_report& rep, const clean_config& cfg,
                 bool json) {
  auto& res = rep.res;
  if (json) {
    json_object reasons;
    for (auto& [reason, n] : res.rejections)
      reasons.add(reason, n);
    json_object obj;
    obj.add("ads", rep.ads)
      .add("clean", rep.clean_rows)
      .add("rejected", rep.reject_rows)
      .add("cities", rep.summary_rows)
      .add("emitted", res.emitted)
      .add("aggregated", res.aggregated)
      .add("dead_lettered", res.dead_lettered)
      .add("written", res.written)
      .add("in_both", rep.in_both)
      .add("in_neither", rep.in_neither)
      .add("resumed_ads", rep.resumed_ads)
      .add("resumes", static_cast<std::uint64_t>(rep.resumes))
      .add_raw("reasons", reasons.str())
      .add("ok", rep.ok())
      .add("partitions", static_cast<std::uint64_t>(rep.partitions))
      .add("libflow_s", rep.seconds)
      .add("rows_per_s", rep.seconds > 0 ? rep.ads / rep.seconds : 0.0)
      .add("verify_s", rep.verify_seconds);
    if (rep.node_tasks + rep.local_tasks > 0)
      obj.add("node_tasks", rep.node_tasks).add("local_tasks", rep.local_tasks);
    std::cout << obj.str() << std::endl;
    return;
  }
  std::printf("%-28s %12s\n", "ads", "rows");
  std::printf("%-28s %12llu\n", cfg.ads.display().c_str(),
              static_cast<unsigned long long>(rep.ads));
  std::printf("%-28s %12llu\n", cfg.clean.display().c_str(),
              static_cast<unsigned long long>(rep.clean_rows));
  std::printf("%-28s %12llu\n", cfg.rejects.display().c_str(),
              static_cast<unsigned long long>(rep.reject_rows));
  std::printf("%-28s %12llu\n", cfg.summary.display().c_str(),
              static_cast<unsigned long long>(rep.summary_rows));
  for (auto& [reason, n] : res.rejections)
    std::printf("  rejected: %-24s %8llu\n", reason.c_str(),
                static_cast<unsigned long long>(n));
  if (rep.resumed_ads > 0)
    std::printf("resumed: %llu ads were committed by an interrupted run "
                "(%zu reconnects in this one)\n",
                static_cast<unsigned long long>(rep.resumed_ads), rep.resumes);
  if (rep.node_tasks + rep.local_tasks > 0)
    std::printf("distributed: %llu partitions cleaned by worker nodes, %llu "
                "here\n",
                static_cast<unsigned long long>(rep.node_tasks),
                static_cast<unsigned long long>(rep.local_tasks));
  std::printf("every ad in exactly one of %s and %s: %s (%llu in both, %llu "
              "in neither); job %.3f s, %.0f rows/s; checked in %.3f s\n",
              cfg.clean.display().c_str(), cfg.rejects.display().c_str(),
              rep.ok() ? "yes" : "NO",
              static_cast<unsigned long long>(rep.in_both),
              static_cast<unsigned long long>(rep.in_neither), rep.seconds,
              rep.seconds > 0 ? rep.ads / rep.seconds : 0.0,
              rep.verify_seconds);
  std::fflush(stdout);
}

/// Prints a clean run's outcome; returns the exit code.
int clean_outcome(caf::expected<clean_report> rep, const clean_config& cfg,
                  bool json) {
  int rc = exit_ok;
  if (!rep)
    fail(rep.error());
  if (rep->res.partial || interrupted()) {
    // The sink aborted before the result came back: no output table
    // changed. Say what the stopped job had covered.
    auto& res = rep->res;
    if (json) {
      json_object obj;
      obj.add("partial", true)
        .add("committed", !res.partial)
        .add("emitted", res.emitted)
        .add("aggregated", res.aggregated)
        .add("rejected", res.rejected)
        .add("dead_lettered", res.dead_lettered)
        .add("abandoned", res.abandoned)
        .add("ok", false);
      std::cout << obj.str() << std::endl;
    }
    if (res.partial) {
      report_partial(prog, res);
      std::cerr << prog << ": clean: nothing was written; the output "
                << "tables are unchanged" << std::endl;
    }
    return interrupted_exit_code();
  }
  print_clean(*rep, cfg, json);
  report_dead_letters(prog, rep->res, cfg.rejects.display());
  if (!rep->ok()) {
    std::cerr << prog
              << ": clean: the output does not account for every ad"
              << std::endl;
    rc = exit_mismatch;
  } else if (rep->res.dead_lettered > 0) {
    rc = exit_dead_letters;
  }
  return rc;
}

int cmd_clean(int argc, char** argv) {
  arg_parser args{
    "flow-etl clean",
    "The data-cleaning job: reads the raw ads by parallel partitions (block "
    "ranges, one snapshot); the reducers normalise the city, parse the price "
    "into\ninteger cents and posted_at into a timestamp; writes ads_clean, "
    "ads_rejects (with the reason) and, from the manager's per-city "
    "aggregates,\nads_summary, all three replaced in one transaction. Every "
    "ad lands in exactly one of ads_clean and ads_rejects. With a throwaway "
    "cluster\n(no --db, no PG* environment) it runs init first."};
  declare_common(args, "the raw ads table", "ads");
  args.value("clean", "NAME", "output table of cleaned ads", "ads_clean");
  args.value("rejects", "NAME", "output table of rejected ads",
             "ads_rejects");
  args.value("summary", "NAME", "output table of per-city aggregates",
             "ads_summary");
  args.value("partitions", "P",
             "partition generators (equal shares of the table's blocks); "
             "0 = one per hardware thread, but 1 for a table larger than a "
             "quarter of the server's shared buffers",
             "0");
  args.flag("json", "print one JSON object instead of a table");
  args.flag("resume",
            "continue the run that was interrupted (killed, or its database "
            "connection lost for good) from its checkpoints instead of "
            "starting over");
  args.value("reconnects", "N",
             "when the database connection is lost, resume from the "
             "checkpoints up to N times (backoff 0.5 s doubling to 8 s)",
             "5");
  declare_init_options(args);
  declare_pipeline_options(args, "16384");
#ifdef FLOW_HAS_NET
  declare_net_options(args, true);
#endif
  if (!args.parse(argc, argv))
    return exit_ok;
  clean_config cfg;
  cfg.opts = read_pipeline_options(args);
  cfg.ads = table_of(args, args.get("table"));
  cfg.clean = table_of(args, args.get("clean"));
  cfg.rejects = table_of(args, args.get("rejects"));
  cfg.summary = table_of(args, args.get("summary"));
  auto names = std::set<std::string>{cfg.ads.table, cfg.clean.table,
                                     cfg.rejects.table, cfg.summary.table};
  if (names.size() != 4)
    throw usage_error("--table, --clean, --rejects and --summary must name "
                      "four different tables");
  auto hw = flow::default_reducers();
  // 0: as many as cores, or 1 for a table larger than a quarter of the
  // server's shared buffers (decided once the table is there).
  cfg.partitions = args.get_uint("partitions", 0, 1024);
  if (cfg.opts.reducers == 0)
    cfg.opts.reducers = hw;
  bool json = args.is_set("json");
  cfg.resume = args.is_set("resume");
  cfg.reconnects = args.get_uint("reconnects", 0, 1000);
#ifdef FLOW_HAS_NET
  auto net = read_net_options(args, prog, true);
  if (net.listen && cfg.resume)
    throw usage_error("--resume and --listen exclude each other (a "
                      "distributed clean re-reads a lost partition instead)");
#endif
  // Test hook (tests/pg/test_clean.cpp): fail, or pause to be killed, at the
  // last moment before the output would become visible.
  if (auto hook = std::getenv("FLOW_ETL_TEST_BEFORE_COMMIT")) {
    std::string what = hook;
    cfg.before_commit = [what] {
      if (what == "fail")
        throw std::runtime_error("test hook: failing before commit");
      if (what == "pause") {
        std::cerr << prog << ": test hook: pausing before commit" << std::endl;
        std::this_thread::sleep_for(std::chrono::seconds(60));
      }
    };
  }
  // --table names the ads table here; init's other table keeps its name.
  auto init = read_init_options(args);
  init.elements = table_of(args, "elements");
  init.ads = cfg.ads;
  auto db = open_database(args);
  cfg.conninfo = db.conninfo;
  int rc = exit_ok;
  try {
    if (db.throwaway()) {
      std::cerr << prog
                << ": clean: filling the throwaway cluster with init first"
                << std::endl;
      run_init(db.conninfo, init);
    }
#ifdef FLOW_HAS_NET
    if (net.listen)
      return run_listening(db, args.is_set("keep"), net,
                           [&](manager_node& mgr) {
                             return clean_outcome(
                               run_distributed_clean(mgr.rt.system(), cfg,
                                                     *mgr.coord,
                                                     net.min_workers),
                               cfg, json);
                           });
#endif
    runtime rt;
    rc = clean_outcome(run_clean(rt.system(), cfg), cfg, json);
  } catch (...) {
    finish_database(db, args.is_set("keep"));
    throw;
  }
  finish_database(db, args.is_set("keep"));
  return rc;
}

int run(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << overview;
    throw usage_error("missing command (init, sum or clean)");
  }
  std::string cmd = argv[1];
  if (cmd == "--help" || cmd == "-h" || cmd == "help") {
    std::cout << overview;
    return exit_ok;
  }
  if (cmd == "init")
    return cmd_init(argc - 1, argv + 1);
  if (cmd == "sum")
    return cmd_sum(argc - 1, argv + 1);
  if (cmd == "clean")
    return cmd_clean(argc - 1, argv + 1);
  throw usage_error("unknown command " + quote_token(cmd)
                    + " (init, sum or clean; see --help)");
}

} // namespace

int main(int argc, char** argv) {
  return guarded_main(prog, [&] { return run(argc, argv); });
}
