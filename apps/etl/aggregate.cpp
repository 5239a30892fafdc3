#include "etl/aggregate.hpp"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <future>
#include <iostream>
#include <limits>
#include <map>
#include <memory>
#include <set>
#include <string_view>
#include <thread>

#include <unistd.h>

#include <caf/actor_system.hpp>
#include <pqxx/pqxx>
#include <spdlog/spdlog.h>

#include "common/app_options.hpp"
#include "common/cli.hpp"
#include "common/job_runner.hpp"
#include "common/json.hpp"
#include "common/signals.hpp"
#include "etl/agg_checkpoint.hpp"
#include "etl/agg_nodes.hpp"
#include "etl/agg_plan.hpp"
#include "etl/agg_values.hpp"
#include "etl/backoff.hpp"
#include "etl/command.hpp"
#include "etl/node_error.hpp"
#include "etl/test_hooks.hpp"
#include "flow/distinct.hpp"
#include "flow/exact_sum.hpp"
#include "flow/flow.hpp"
#include "flow/logging.hpp"
#include "flow/pg/copy_sink.hpp"
#include "flow/pg/error.hpp"
#include "flow/pg/pg.hpp"
#include "flow/pg/ownership.hpp"
#include "flow/quantiles.hpp"
#include "flow/stats.hpp"

namespace flow::apps {

namespace {

/// The programs' job runner, for flow-etl aggregate.
const job_runner runner{etl_prog};


/// "FROM" text of a job: the quoted table or the parenthesised query.
std::string from_of(const agg_job& job) {
  if (job.query.empty())
    return job.table.quoted();
  return "(" + job.query + ") AS flow_query";
}


/// Throws usage_error when `sql` (a --where filter) could reach out of its
/// parentheses: unbalanced parentheses or quotes, a semicolon or a comment
/// outside quotes. The filter is the user's own SQL, as trusted as --query;
/// this only keeps a slip from silently changing which rows a partition
/// reads (each partition ANDs its own range to it).
void check_filter(const std::string& sql, const std::string& what) {
  int depth = 0;
  for (std::size_t i = 0; i < sql.size(); ++i) {
    char c = sql[i];
    if (c == '\'' || c == '"') {
      auto end = i + 1;
      for (;;) {
        end = sql.find(c, end);
        if (end == std::string::npos)
          throw usage_error(what + ": unterminated " + std::string(1, c)
                            + " quote");
        if (end + 1 < sql.size() && sql[end + 1] == c) {
          end += 2;
          continue;
        }
        break;
      }
      i = end;
    } else if (c == '(') {
      ++depth;
    } else if (c == ')') {
      if (--depth < 0)
        throw usage_error(what + ": unbalanced ')'");
    } else if (c == ';') {
      throw usage_error(what + ": one condition, without ';'");
    } else if ((c == '-' && i + 1 < sql.size() && sql[i + 1] == '-')
               || (c == '/' && i + 1 < sql.size() && sql[i + 1] == '*')) {
      throw usage_error(what + ": no comments, please");
    } else if (c == '$') {
      throw usage_error(what + ": dollar quoting is not supported here");
    }
  }
  if (depth != 0)
    throw usage_error(what + ": unbalanced '('");
}

/// Runs `body` on a connection, turning database errors into usage_error.
template <class F>
auto with_connection(const std::string& conninfo, F body) {
  try {
    pqxx::connection conn{conninfo};
    return body(conn);
  } catch (const usage_error&) {
    throw;
  } catch (...) {
    fail(pg::current_error(conninfo));
  }
}

source_columns read_columns(pqxx::connection& conn, const agg_job& job) {
  source_columns result;
  pqxx::read_transaction tx{conn};
  if (job.query.empty()) {
    auto rel = tx.exec_params("SELECT to_regclass($1)::oid",
                              job.table.quoted());
    if (rel[0][0].is_null())
      throw usage_error("42P01 undefined_table: table "
                        + job.table.display() + " does not exist");
    auto rows = tx.exec_params(
      "SELECT a.attname, format_type(a.atttypid, a.atttypmod), "
      "COALESCE(b.typname, t.typname)::text "
      "FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid "
      "LEFT JOIN pg_type b ON t.typtype = 'd' AND b.oid = t.typbasetype "
      "WHERE a.attrelid = $1::oid AND a.attnum > 0 AND NOT a.attisdropped "
      "ORDER BY a.attnum",
      rel[0][0].c_str());
    for (auto r : rows)
      result.columns.push_back({r[0].c_str(), r[1].c_str(),
                                class_of_type(r[2].c_str())});
    return result;
  }
  // A query: its result's columns, from a plan that reads no row.
  auto rows = tx.exec("SELECT * FROM (" + job.query
                      + ") AS flow_query LIMIT 0");
  for (pqxx::row::size_type i = 0; i < rows.columns(); ++i) {
    auto oid = rows.column_type(i);
    auto t = tx.exec_params("SELECT format_type($1::oid, NULL), "
                            "COALESCE(b.typname, t.typname)::text "
                            "FROM pg_type t LEFT JOIN pg_type b ON "
                            "t.typtype = 'd' AND b.oid = t.typbasetype "
                            "WHERE t.oid = $1::oid",
                            std::to_string(oid));
    result.columns.push_back({rows.column_name(i), t[0][0].c_str(),
                              class_of_type(t[0][1].c_str())});
  }
  return result;
}

/// Turns JIT compilation off for the rest of `tx`, which only plans: a
/// plan costly enough for JIT (any large table's) makes a fresh backend
/// load the JIT provider even for an EXPLAIN, about 60 ms a statement on
/// this machine, and the plan is the same. The statements that read rows
/// keep the server's setting (JIT made them faster here).
void no_jit(pqxx::transaction_base& tx) {
  // set_config through pg_settings: a server without the setting (before
  // PostgreSQL 11, or a fork) sets nothing instead of failing the job.
  tx.exec("SELECT set_config('jit', 'off', true) FROM pg_settings "
          "WHERE name = 'jit'");
}

/// The planner's estimate of the rows of `sql`'s top node (the "rows=" of
/// the first line of its EXPLAIN), 0 when it has none.
std::size_t planned_rows(pqxx::transaction_base& tx, const std::string& sql) {
  auto r = tx.exec("EXPLAIN " + sql);
  if (r.empty() || r[0][0].is_null())
    return 0;
  std::string_view line = r[0][0].c_str();
  auto at = line.find(" rows=");
  if (at == std::string_view::npos)
    return 0;
  auto from = line.data() + at + 6;
  std::size_t n = 0;
  auto [p, ec] = std::from_chars(from, line.data() + line.size(), n);
  return ec == std::errc{} && p != from ? n : 0;
}

/// The server's estimate of the job's groups (plan.expected_groups), 0
/// without group columns or when it cannot say: only a hint, so a failure
/// here is not the job's (its statements fail on their own, with their
/// own messages).
std::size_t estimate_groups(const std::string& conninfo,
                            const job_plan& plan) {
  if (plan.group_cols.empty())
    return 0;
  try {
    std::string cols;
    for (auto g : plan.group_cols)
      cols += (cols.empty() ? "" : ", ") + pg::quote_ident(plan.read[g].name);
    auto sql = "SELECT 1 FROM " + from_of(plan.job);
    if (!plan.job.where.empty())
      sql += " WHERE (" + plan.job.where + ")";
    sql += " GROUP BY " + cols;
    pqxx::connection conn{conninfo};
    pqxx::read_transaction tx{conn};
    no_jit(tx);
    return planned_rows(tx, sql);
  } catch (...) {
    return 0;
  }
}

/// `estimate`: ask the server for its estimate of the groups (a job that
/// is only checked does not).
job_plan plan_with_catalog(
  const std::string& conninfo, const agg_job& job,
  const std::function<void(const std::vector<column_info>&)>& check
  = nullptr,
  bool estimate = true) {
  if (!job.where.empty())
    check_filter(job.where, job.name == "aggregate" ? "--where" : "where");
  auto cols = with_connection(conninfo, [&](pqxx::connection& conn) {
    auto result = read_columns(conn, job);
    // The filter and the query must plan on the server before any row is
    // read: an error then names them, not a partition.
    pqxx::read_transaction tx{conn};
    no_jit(tx);
    auto sql = "EXPLAIN SELECT 1 FROM " + from_of(job);
    if (!job.where.empty())
      sql += " WHERE (" + job.where + ")";
    tx.exec(sql);
    return result;
  });
  if (check)
    check(cols.columns);
  auto plan = plan_job(job, cols);
  if (estimate) {
    plan.expected_groups = estimate_groups(conninfo, plan);
    // (Only when asked: a job that is only checked has no estimate, and
    // "0 groups" would read as the server's.)
    if (plan.expected_groups > 0)
      logger()->debug("{}: the server estimates {} groups", job.name,
                      plan.expected_groups);
    else
      logger()->debug("{}: no estimate of the groups (no group columns, or "
                      "the server could not say)",
                      job.name);
  }
  return plan;
}

/// The pipeline options of one job: the run's, with the manager told how
/// many groups to expect and the batches sized for the job's rows (--batch
/// as given, else default_batch_rows of the rows' width). (A distributed
/// job's local pipeline carries the nodes' results, not rows: the size
/// does not matter there.)
flow::options job_options(const agg_run_options& run, const job_plan& plan) {
  auto opts = run.opts;
  opts.expected_keys = plan.expected_groups;
  opts.batch_size = run.batch_rows != 0 ? run.batch_rows
                                        : default_batch_rows(plan.read.size());
  logger()->debug("{}: batches of {} rows ({} columns a row{})", plan.job.name,
                  opts.batch_size, plan.read.size(),
                  run.batch_rows != 0 ? ", --batch" : "");
  return opts;
}


/// What one job computed.
struct job_outcome {
  std::shared_ptr<const job_plan> plan;
  job_result res;
  /// key -> row, sorted by key.
  std::vector<const key_result*> groups;
  /// The one group of a job without group columns over no rows.
  key_result no_rows;
  /// The rows' accounting: the job's, or over worker nodes the tasks'.
  job_result rows;
  /// Pushed down: the partial groups the partitions returned.
  std::uint64_t partial_groups = 0;
  /// Over worker nodes: tasks run there and here.
  bool distributed = false;
  std::uint64_t node_tasks = 0;
  std::uint64_t local_tasks = 0;
  std::size_t partitions = 1;
  /// A --table job with an output: the summary says `steps` and
  /// `resumed_rows`, and committing the output drops `checkpoint`.
  bool checkpointable = false;
  std::optional<pg::table_name> checkpoint;
  /// While the job's checkpoints may change (until its output is
  /// committed): the advisory lock that makes them this run's (see
  /// flow/pg/ownership.hpp).
  std::optional<pg::owner_lock> owner;
  /// Steps the job was read in (1: in one go), and the rows an interrupted
  /// run had read (resumed).
  std::size_t steps = 1;
  std::uint64_t resumed_rows = 0;
  /// This run saved a checkpoint of its own: a reconnect resumes from it
  /// (not from one an earlier run left, which a fresh run does not take).
  bool committed_checkpoint = false;
  /// Times the job was tried again after losing its database connection.
  std::size_t reconnects = 0;
  const char* mode = "rows";
  double seconds = 0;
  /// Verification: done, passed, seconds.
  bool verified = false;
  bool verify_ok = true;
  double verify_seconds = 0;
  std::vector<std::string> mismatches;
};

// -- output values ------------------------------------------------------------

/// One output value.
struct out_value {
  enum kind_t { null, integer, exact, dbl, text, boolean, date, ts, tstz };
  kind_t kind = null;
  std::int64_t i = 0;
  double d = 0;
  /// exact: the decimal text; text: the string.
  std::string s;

  /// The value as text (COPY and the table), nothing for NULL.
  std::optional<std::string> sql() const {
    std::string text;
    if (!append_sql(text))
      return std::nullopt;
    return text;
  }

  /// Appends what sql() gives to `out` (the table formats its cells into
  /// one buffer this way); false for NULL, which appends nothing.
  bool append_sql(std::string& out) const {
    char buf[32];
    switch (kind) {
      case null:
        return false;
      case integer: {
        auto r = std::to_chars(buf, buf + sizeof(buf), i);
        out.append(buf, r.ptr);
        return true;
      }
      case exact:
      case text:
        out += s;
        return true;
      case dbl:
        if (std::isfinite(d)) {
          // sql_double's shortest form, as it writes every finite double.
          auto r = std::to_chars(buf, buf + sizeof(buf), d);
          out.append(buf, r.ptr);
        } else {
          out += sql_double(d);
        }
        return true;
      case boolean:
        out += i != 0 ? 't' : 'f';
        return true;
      case date:
        out += format_date(i);
        return true;
      case ts:
        out += format_timestamp(i, false);
        return true;
      case tstz:
        out += format_timestamp(i, true);
        return true;
    }
    return false;
  }

  /// Adds the value to a JSON object.
  void json(json_object& obj, const std::string& name) const {
    switch (kind) {
      case null:
        obj.add_raw(name, "null");
        return;
      case integer:
        obj.add(name, i);
        return;
      case exact:
        obj.add_raw(name, s);
        return;
      case dbl:
        obj.add_exact(name, d);
        return;
      case boolean:
        obj.add(name, i != 0);
        return;
      default:
        obj.add(name, *sql());
    }
  }
};

out_value value_of_cell(col_class cls, const cell& c) {
  out_value v;
  if (c.null)
    return v;
  switch (cls) {
    case col_class::integer:
      v.kind = out_value::integer;
      v.i = c.i;
      break;
    case col_class::numeric:
      v.kind = out_value::exact;
      v.s = to_string(c.n);
      break;
    case col_class::floating:
      v.kind = out_value::dbl;
      v.d = c.d;
      break;
    case col_class::boolean:
      v.kind = out_value::boolean;
      v.i = c.i;
      break;
    case col_class::date:
      v.kind = out_value::date;
      v.i = c.i;
      break;
    case col_class::timestamp:
      v.kind = out_value::ts;
      v.i = c.i;
      break;
    case col_class::timestamptz:
      v.kind = out_value::tstz;
      v.i = c.i;
      break;
    default:
      v.kind = out_value::text;
      v.s = c.s;
  }
  return v;
}

/// A group column's value from a key part.
out_value value_of_part(col_class cls, const key_part& p) {
  out_value v;
  if (p.is_null())
    return v;
  switch (cls) {
    case col_class::integer:
      v.kind = out_value::integer;
      v.i = p.as_int();
      break;
    case col_class::numeric:
      v.kind = out_value::exact;
      v.s = p.as_string();
      break;
    case col_class::floating: {
      v.kind = out_value::dbl;
      std::string why;
      auto& s = p.as_string();
      v.d = s == "NaN"        ? std::nan("")
            : s == "Infinity"  ? HUGE_VAL
            : s == "-Infinity" ? -HUGE_VAL
                               : std::strtod(s.c_str(), nullptr);
      break;
    }
    case col_class::boolean:
      v.kind = out_value::boolean;
      v.i = p.as_bool() ? 1 : 0;
      break;
    case col_class::date:
      v.kind = out_value::date;
      v.i = p.as_int();
      break;
    case col_class::timestamp:
      v.kind = out_value::ts;
      v.i = p.as_int();
      break;
    case col_class::timestamptz:
      v.kind = out_value::tstz;
      v.i = p.as_int();
      break;
    default:
      v.kind = out_value::text;
      v.s = p.as_string();
  }
  return v;
}

out_value exact_value(const std::optional<decimal>& x) {
  out_value v;
  if (x) {
    v.kind = out_value::exact;
    flow::append_to(v.s, *x);
  }
  return v;
}

/// Appends sum / count (count > 0) of a decimal sum, u * 10^-scale, with
/// max(scale, 16) digits after the point (as PostgreSQL's avg of integers
/// and numerics prints it), rounded half away from zero, to `out`: exact
/// integer division, so it does not depend on how the rows were split.
void append_mean(std::string& out, int128 u, int scale,
                 std::uint64_t count) {
  bool neg = u < 0;
  auto mag = neg ? static_cast<unsigned __int128>(0)
                     - static_cast<unsigned __int128>(u)
                 : static_cast<unsigned __int128>(u);
  auto n = static_cast<unsigned __int128>(count);
  // The whole part q in units of 10^-scale, then the k = 16 - scale more
  // digits of the remainder in one 128-bit division: rem < n < 2^64 and
  // 10^k <= 10^16, so rem * 10^k fits.
  auto q = mag / n;
  auto rem = mag % n;
  int k = std::max(scale, 16) - scale;
  std::uint64_t p10 = 1;
  for (int i = 0; i < k; ++i)
    p10 *= 10;
  auto t = rem * p10;
  auto f = static_cast<std::uint64_t>(t / n);
  // Round half away from zero on the next digit, carrying into q.
  if ((t % n) * 2 >= n && ++f == p10) {
    f = 0;
    ++q;
  }
  // The whole part with its sign through append_scaled, which takes a
  // signed value: -q fits an int128 even when q is 2^127 (u the smallest
  // int128, count 1), and the carry cannot overflow (q <= mag / 2 when
  // anything is rounded). A negative mean whose whole part is zero gets
  // its '-' here; one that prints as zero gets none.
  if (neg && q == 0 && f != 0)
    out += '-';
  flow::append_scaled(out, static_cast<int128>(neg ? 0 - q : q), scale);
  if (k == 0)
    return;
  if (scale == 0)
    out += '.';
  char buf[24];
  auto len = std::to_chars(buf, buf + sizeof(buf), f).ptr - buf;
  out.append(static_cast<std::size_t>(k - len), '0');
  out.append(buf, static_cast<std::size_t>(len));
}

/// append_mean's text as a value.
out_value mean_of(int128 u, int scale, std::uint64_t count) {
  out_value v;
  v.kind = out_value::exact;
  append_mean(v.s, u, scale, count);
  return v;
}

out_value mean_value(const std::optional<decimal>& sum, std::uint64_t count) {
  if (!sum || count == 0)
    return {};
  return mean_of(sum->unscaled(), sum->scale(), count);
}

out_value dbl_value(double d) {
  out_value v;
  v.kind = out_value::dbl;
  v.d = d;
  return v;
}

out_value int_value(std::uint64_t n) {
  out_value v;
  v.kind = out_value::integer;
  v.i = static_cast<std::int64_t>(n);
  return v;
}

/// A pushed-down sum's count(col) in a group's row (its second slot): 0
/// when no value was seen.
std::uint64_t pushed_count(const job_plan& plan, const planned_agg& p,
                           const aggregate& agg) {
  auto c = plan.slots[p.slot2].get(agg);
  return c ? static_cast<const row_count*>(c)->n : 0;
}

/// Aggregate `p`'s value in a group's row, for the states value_into does
/// not write in place.
out_value other_value(const job_plan& plan, const planned_agg& p,
                      const aggregate& agg) {
  auto state = plan.slots[p.slot].get(agg);
  auto f = p.expr.func;
  switch (plan.slots[p.slot].kind) {
    case state_kind::distinct:
      return int_value(
        state ? static_cast<const distinct_count*>(state)->count() : 0);
    case state_kind::hll:
      return int_value(
        state ? static_cast<std::uint64_t>(std::llround(
                  static_cast<const hll*>(state)->estimate()))
              : 0);
    default:
      break;
  }
  if (state == nullptr)
    return {};
  switch (plan.slots[p.slot].kind) {
    case state_kind::dsum: {
      auto& s = *static_cast<const decimal_sum*>(state);
      if (s.count() == 0)
        return {};
      if (f == agg_func::sum)
        return exact_value(s.sum());
      if (f == agg_func::avg && plan.pushdown) {
        // The partial sums' total over the partial counts' total.
        auto n = plan.slots[p.slot2].get(agg);
        return mean_value(s.sum(),
                          n ? static_cast<const row_count*>(n)->n : 0);
      }
      if (f == agg_func::avg)
        return mean_value(s.sum(), s.count());
      auto v = exact_value(f == agg_func::min ? s.min() : s.max());
      if (p.cls == col_class::integer && v.kind == out_value::exact) {
        v.kind = out_value::integer;
        v.i = std::strtoll(v.s.c_str(), nullptr, 10);
      }
      return v;
    }
    case state_kind::imoments: {
      auto& s = *static_cast<const int_moments*>(state);
      if (s.count() < 2)
        return {};
      return dbl_value(s.stddev());
    }
    case state_kind::fmoments: {
      auto& s = *static_cast<const exact_moments*>(state);
      if (s.count() < 2)
        return {};
      return dbl_value(s.stddev_sample());
    }
    case state_kind::irange: {
      auto& s = *static_cast<const int_range*>(state);
      if (s.n == 0)
        return {};
      cell c;
      c.null = false;
      c.i = f == agg_func::min ? s.lo : s.hi;
      return value_of_cell(p.cls, c);
    }
    case state_kind::srange: {
      auto& s = *static_cast<const text_range*>(state);
      if (s.n == 0)
        return {};
      out_value v;
      v.kind = out_value::text;
      v.s = f == agg_func::min ? s.lo : s.hi;
      return v;
    }
    case state_kind::kll: {
      auto& s = *static_cast<const kll*>(state);
      if (s.empty())
        return {};
      return dbl_value(s.quantile(p.expr.q));
    }
    default:
      return {};
  }
}

/// Aggregate `p`'s value in a group's row, into `v`, whose string keeps its
/// capacity: the aggregates a printed million groups mostly have (exact
/// sums and means, counts, doubles) are written in place, without a string
/// made per value; the others through other_value.
void value_into(const job_plan& plan, const planned_agg& p,
                const aggregate& agg, out_value& v) {
  auto state = plan.slots[p.slot].get(agg);
  auto f = p.expr.func;
  auto null = [&] { v.kind = out_value::null; };
  auto exact = [&]() -> std::string& {
    v.kind = out_value::exact;
    v.s.clear();
    return v.s;
  };
  auto dbl = [&](double d) {
    v.kind = out_value::dbl;
    v.d = d;
  };
  auto integer = [&](std::int64_t i) {
    v.kind = out_value::integer;
    v.i = i;
  };
  auto kind = plan.slots[p.slot].kind;
  switch (kind) {
    // Counts are 0, never null, in a group without the state (no row of it
    // had a value); the distinct counts are other_value's.
    case state_kind::count:
      return integer(static_cast<std::int64_t>(
        state ? static_cast<const row_count*>(state)->n : 0));
    case state_kind::distinct:
    case state_kind::hll:
      v = other_value(plan, p, agg);
      return;
    default:
      break;
  }
  // Every other aggregate of a group without the state is null.
  if (state == nullptr)
    return null();
  switch (kind) {
    case state_kind::istats: {
      auto& s = *static_cast<const int_stats*>(state);
      if (s.n == 0)
        return null();
      if (f == agg_func::sum)
        return flow::append_to(exact(), s.sum);
      if (f == agg_func::avg)
        return append_mean(exact(), s.sum, 0, s.n);
      return integer(f == agg_func::min ? s.lo : s.hi);
    }
    case state_kind::isum:
    case state_kind::nsum: {
      auto n = pushed_count(plan, p, agg);
      if (n == 0)
        return null();
      auto sum = kind == state_kind::isum
                   ? static_cast<const int_sum*>(state)->sum()
                   : static_cast<const dec_sum*>(state)->sum();
      if (!sum)
        return null();
      if (f == agg_func::sum)
        return flow::append_to(exact(), *sum);
      return append_mean(exact(), sum->unscaled(), sum->scale(), n);
    }
    case state_kind::dmin:
    case state_kind::dmax: {
      auto put = [&](const auto& s) {
        if (s.n == 0)
          return null();
        flow::append_to(exact(), s.v);
      };
      if (kind == state_kind::dmin)
        return put(*static_cast<const decimal_extreme<false>*>(state));
      return put(*static_cast<const decimal_extreme<true>*>(state));
    }
    case state_kind::psum: {
      auto& s = *static_cast<const part_fsum*>(state);
      // The partial sums' exact total; the count is count(col)'s.
      auto n = pushed_count(plan, p, agg);
      if (n == 0)
        return null();
      if (f == agg_func::sum)
        return dbl(s.value());
      return dbl(s.value() / static_cast<double>(n));
    }
    case state_kind::fsum: {
      auto& s = *static_cast<const exact_fsum*>(state);
      if (s.count() == 0)
        return null();
      if (f == agg_func::sum)
        return dbl(s.value());
      // The correctly rounded sum over the count: within 1 ulp of the mean.
      return dbl(s.value() / static_cast<double>(s.count()));
    }
    case state_kind::frange: {
      auto& s = *static_cast<const double_range*>(state);
      if (s.n == 0)
        return null();
      return dbl(f == agg_func::min ? s.lo : s.hi);
    }
    default:
      v = other_value(plan, p, agg);
  }
}

/// A group's output row into `row` (its values' strings keep their
/// capacity from group to group): group values, then aggregate values.
void output_row(const job_plan& plan, const key_result& k,
                std::vector<out_value>& row) {
  auto groups = plan.group_cols.size();
  row.resize(groups + plan.aggs.size());
  auto parts = k.key.parts();
  for (std::size_t g = 0; g < groups; ++g)
    row[g] = value_of_part(plan.read[plan.group_cols[g]].cls,
                           g < parts.size() ? parts[g] : key_part{});
  for (std::size_t a = 0; a < plan.aggs.size(); ++a)
    value_into(plan, plan.aggs[a], k.agg, row[groups + a]);
}

/// A group's output row: group values, then aggregate values.
std::vector<out_value> output_row(const job_plan& plan, const key_result& k) {
  std::vector<out_value> row;
  output_row(plan, k, row);
  return row;
}

std::vector<std::string> output_names(const job_plan& plan) {
  std::vector<std::string> names;
  for (auto g : plan.group_cols)
    names.push_back(plan.read[g].name);
  for (auto& p : plan.aggs)
    names.push_back(p.expr.name);
  return names;
}

// -- verification -------------------------------------------------------------

/// The server's expression(s) for aggregate `p` (two for quantile: the
/// bounds its documented rank error allows).
std::vector<std::string> server_exprs(const job_plan& plan,
                                      const planned_agg& p) {
  (void) plan;
  auto c = p.expr.column.empty() ? std::string{}
                                 : pg::quote_ident(p.expr.column);
  bool fl = p.cls == col_class::floating;
  switch (p.expr.func) {
    case agg_func::count_rows:
      return {"count(*)"};
    case agg_func::count:
      return {"count(" + c + ")"};
    case agg_func::count_distinct:
    case agg_func::approx_count_distinct:
      return {"count(DISTINCT " + c + ")"};
    case agg_func::sum:
      // PostgreSQL 15 casts float8 to numeric through 15 significant digits
      // (0.1 + 0.2 gives 0.3), so its numeric sum is the exact sum of those
      // roundings: off by at most 5e-16 of each |value|. The second field
      // bounds that (see compare_agg).
      if (fl)
        return {"sum(" + c + "::numeric)::float8",
                "sum(abs(" + c + ")::numeric)::float8"};
      return {"sum(" + c + ")"};
    case agg_func::avg:
      return {fl ? "(sum(" + c + "::numeric) / count(" + c + "))::float8"
                 : "avg(" + c + ")"};
    case agg_func::min:
    case agg_func::max: {
      auto f = std::string{func_name(p.expr.func)};
      return {p.cls == col_class::text ? f + "(" + c + " COLLATE \"C\")"
                                       : f + "(" + c + ")"};
    }
    case agg_func::stddev:
      return {fl ? "stddev(" + c + "::numeric)::float8" : "stddev(" + c + ")"};
    case agg_func::quantile: {
      // kll's rank error is below 1 % of the group's count.
      auto lo = std::max(0.0, p.expr.q - 0.01);
      auto hi = std::min(1.0, p.expr.q + 0.01);
      auto pd = [&](double q) {
        return "percentile_disc(" + sql_double(q)
               + ") WITHIN GROUP (ORDER BY " + c + ")::float8";
      };
      return {pd(lo), pd(hi)};
    }
  }
  return {};
}

bool close_rel(double x, double y, double rel) {
  if (std::isnan(x) || std::isnan(y))
    return std::isnan(x) && std::isnan(y);
  if (x == y)
    return true;
  return std::fabs(x - y) <= rel * std::max(std::fabs(x), std::fabs(y));
}

double to_double(const out_value& v) {
  switch (v.kind) {
    case out_value::integer:
      return static_cast<double>(v.i);
    case out_value::dbl:
      return v.d;
    case out_value::exact:
      return std::strtod(v.s.c_str(), nullptr);
    default:
      return 0;
  }
}

/// Compares aggregate `p`'s value `mine` with the server's text field(s);
/// returns why they differ, or an empty string.
std::string compare_agg(const planned_agg& p, const out_value& mine,
                        const std::vector<std::optional<std::string>>& srv) {
  auto show = [](const std::optional<std::string>& x) {
    return x ? *x : std::string{"NULL"};
  };
  auto mine_text = mine.sql();
  if (p.expr.func == agg_func::quantile) {
    if (!srv[0] || !mine_text)
      return (!srv[0] && !mine_text)
               ? std::string{}
               : "is " + show(mine_text) + ", the server has "
                   + show(srv[0]);
    auto v = mine.d;
    auto lo = std::strtod(srv[0]->c_str(), nullptr);
    auto hi = std::strtod(srv[1]->c_str(), nullptr);
    if (v >= lo && v <= hi)
      return {};
    return "is " + *mine_text + ", outside the server's [" + *srv[0] + ", "
           + *srv[1] + "] (q +- 1 %)";
  }
  auto& s = srv[0];
  if (!s || !mine_text)
    return (!s && !mine_text) ? std::string{}
                              : "is " + show(mine_text)
                                  + ", the server's GROUP BY says "
                                  + show(s);
  auto differ = "is " + *mine_text + ", the server's GROUP BY says " + *s;
  switch (p.expr.func) {
    case agg_func::approx_count_distinct: {
      // hll (p = 14): standard error 0.81 %; 4 standard errors, and small
      // counts are exact in its sparse mode.
      auto exact = std::strtod(s->c_str(), nullptr);
      auto est = static_cast<double>(mine.i);
      return std::fabs(est - exact) <= std::max(1.0, 0.0325 * exact)
               ? std::string{}
               : differ + " (beyond 4 standard errors)";
    }
    case agg_func::sum:
      if (p.cls == col_class::floating && srv.size() == 2 && srv[1]) {
        // Ours is the exact sum rounded once; the server's is exact over
        // 15-digit roundings of the values: they differ by at most half an
        // ulp plus 5e-16 of the sum of |values| (1e-15 allowed).
        cell ref;
        cell mag;
        decode_cell(col_class::floating, *s, ref);
        decode_cell(col_class::floating, *srv[1], mag);
        auto x = mine.d;
        if (std::isnan(x) || std::isnan(ref.d))
          return std::isnan(x) && std::isnan(ref.d) ? std::string{} : differ;
        if (std::isinf(x) || std::isinf(ref.d))
          return x == ref.d ? std::string{} : differ;
        auto bound = 1e-15 * mag.d + std::ldexp(std::fabs(ref.d), -52);
        return std::fabs(x - ref.d) <= bound
                 ? std::string{}
                 : differ + " (beyond the bound of the server's 15-digit "
                            "float8 to numeric cast)";
      }
      break;
    case agg_func::avg:
    case agg_func::stddev: {
      // 1e-12 relative, or half a unit of the last digit the server prints
      // (its numeric avg and stddev stop at a display scale).
      auto x = to_double(mine);
      auto y = std::strtod(s->c_str(), nullptr);
      auto point = s->find('.');
      auto shown = point == std::string::npos
                     ? 0
                     : static_cast<int>(s->find_first_not_of("0123456789",
                                                             point + 1)
                                          == std::string::npos
                                          ? s->size() - point - 1
                                          : 0);
      auto ulp = point == std::string::npos ? 0.5 : 0.5 * std::pow(10, -shown);
      if (close_rel(x, y, 1e-12) || std::fabs(x - y) <= ulp * (1 + 1e-9))
        return {};
      return differ + " (beyond 1e-12 relative)";
    }
    default:
      break;
  }
  // Exact comparisons: by value for numbers, by the decoded value for the
  // rest (the server's text of a date or a timestamp decodes like a COPY
  // field).
  if (mine.kind == out_value::exact || mine.kind == out_value::integer) {
    auto x = parse_decimal(*mine_text);
    auto y = parse_decimal(*s);
    return x && y && x->compare(*y) == 0 ? std::string{} : differ;
  }
  if (mine.kind == out_value::dbl) {
    cell c;
    decode_cell(col_class::floating, *s, c);
    return (mine.d == c.d || (std::isnan(mine.d) && std::isnan(c.d)))
             ? std::string{}
             : differ;
  }
  if (mine.kind == out_value::date || mine.kind == out_value::ts
      || mine.kind == out_value::tstz) {
    cell c;
    decode_cell(p.cls, *s, c);
    return c.i == mine.i ? std::string{} : differ;
  }
  return *mine_text == *s ? std::string{} : differ;
}

/// Runs the server's GROUP BY in the snapshot (through `query`) and
/// compares every group and aggregate.
void verify_job(job_outcome& out,
                const std::function<caf::expected<pg::text_rows>(
                  const std::string&)>& query) {
  stopwatch sw;
  auto& plan = *out.plan;
  std::string groups;
  for (auto g : plan.group_cols)
    groups += (groups.empty() ? "" : ", ") + pg::quote_ident(plan.read[g].name);
  std::string sql = "SELECT " + groups;
  std::vector<std::size_t> first_field;
  std::size_t field = plan.group_cols.size();
  for (auto& p : plan.aggs) {
    first_field.push_back(field);
    for (auto& e : server_exprs(plan, p)) {
      sql += (sql.size() > 7 ? ", " : "") + e;
      ++field;
    }
  }
  sql += " FROM " + from_of(plan.job);
  if (!plan.job.where.empty())
    sql += " WHERE (" + plan.job.where + ")";
  if (!groups.empty())
    sql += " GROUP BY " + groups;
  auto rows = query(sql);
  if (!rows)
    fail(rows.error());
  out.verified = true;
  // The server's groups by our key.
  std::map<flow::key, const std::vector<std::optional<std::string>>*> srv;
  for (auto& r : *rows) {
    std::vector<key_part> parts;
    for (std::size_t g = 0; g < plan.group_cols.size(); ++g) {
      cell c;
      c.null = !r[g];
      if (r[g]) {
        auto why = decode_cell(plan.read[plan.group_cols[g]].cls, *r[g], c);
        if (!why.empty())
          throw usage_error("--verify: the server's group value " + *r[g]
                            + " " + why);
      }
      parts.push_back(key_part_of(plan.read[plan.group_cols[g]].cls, c));
    }
    srv[key::composite(parts)] = &r;
  }
  auto names = output_names(plan);
  auto describe_key = [&](const key_result& k) {
    auto row = output_row(plan, k);
    std::string text = "(";
    for (std::size_t g = 0; g < plan.group_cols.size(); ++g) {
      auto v = row[g].sql();
      text += (g ? ", " : "") + (v ? *v : std::string{"NULL"});
    }
    return text + ")";
  };
  std::set<flow::key> seen;
  for (auto* k : out.groups) {
    auto it = srv.find(k->key);
    if (it == srv.end()) {
      out.mismatches.push_back("group " + describe_key(*k)
                               + " is not in the server's GROUP BY");
      continue;
    }
    seen.insert(k->key);
    auto row = output_row(plan, *k);
    for (std::size_t a = 0; a < plan.aggs.size(); ++a) {
      auto& p = plan.aggs[a];
      auto n = server_exprs(plan, p).size();
      std::vector<std::optional<std::string>> fields(
        it->second->begin() + static_cast<std::ptrdiff_t>(first_field[a]),
        it->second->begin()
          + static_cast<std::ptrdiff_t>(first_field[a] + n));
      auto why = compare_agg(p, row[plan.group_cols.size() + a], fields);
      if (!why.empty())
        out.mismatches.push_back("group " + describe_key(*k) + ": "
                                 + p.expr.name + " " + why);
    }
  }
  for (auto& [k, r] : srv)
    if (seen.count(k) == 0) {
      key_result kr;
      kr.key = k;
      out.mismatches.push_back("group " + describe_key(kr)
                               + " of the server's GROUP BY is missing");
    }
  out.verify_ok = out.mismatches.empty();
  out.verify_seconds = sw.seconds();
}

pg::table_name output_name(const agg_job& job);

// -- running a job ------------------------------------------------------------

/// From this many groups (the server's estimate) on, a push-down job groups
/// each partition by sorting and reads as many block ranges as there are
/// cores: PostgreSQL's hash tables spill at its default `work_mem`, and one
/// partition's parallel plan ends in a serial merge of every worker's groups
/// in the leader. Measured over 10^7 rows (docs/etl.md, "Push-down"): at
/// 10^5 groups all plans take the same time, at 3·10^5 the block ranges
/// 15 % less, at 10^6 sorted block ranges 25 % less (hashed: 10 % more).
constexpr std::size_t many_groups = 250'000;

/// The `work_mem` a push-down job of fewer groups gives its sessions at
/// least: at 10^4 groups of the benchmark's 13 aggregates PostgreSQL's hash
/// aggregate spills at the default 4 MB (docs/etl.md, "Push-down": 16 % off
/// the job; no change at 10^5 groups). Many groups sort instead.
constexpr std::int64_t pushdown_work_mem = 64 << 20;

/// True when a push-down job of `plan` has many groups (many_groups).
bool pushdown_many_groups(const job_plan& plan) {
  return plan.pushdown && plan.expected_groups >= many_groups;
}

/// The partitions of a table read.
std::size_t partitions_for(const std::string& conninfo, const job_plan& plan,
                           const agg_run_options& run) {
  if (run.partitions != 0)
    return run.partitions;
  // Pushed down, a partition is one query the server runs with its own
  // parallel workers (as for `sum --pushdown`), unless the groups are many:
  // then one block range per core, each read without workers. (Not ranges
  // of a --by column: without an index on it, each would scan the table.)
  if (plan.pushdown)
    return pushdown_many_groups(plan) && run.by == "ctid"
             ? flow::default_reducers()
             : 1;
  auto hw = flow::default_reducers();
  if (run.by != "ctid")
    return hw;
  auto n = pg::ctid_partitions(conninfo, plan.job.table, hw);
  if (!n)
    fail(n.error());
  return *n;
}

/// The planner's sample of each float column of `plan.push_floats` (its
/// histogram bounds and most common values in pg_stats, in `read`'s
/// snapshot) as a range; empty ranges for a column without statistics.
std::vector<float_range> sampled_float_ranges(pg::partitioned_read& read,
                                              const job_plan& plan) {
  std::vector<float_range> out(plan.push_floats.size());
  auto rel = pg::quote_literal(read.spec().table.quoted()) + "::regclass";
  for (std::size_t i = 0; i < out.size(); ++i) {
    // Every statistics row of the column (a parent table may have two:
    // with and without its children).
    auto rows = read.query(
      "SELECT max(abs(v))::text, (min(abs(v)) FILTER (WHERE v <> 0))::text"
      " FROM pg_stats s CROSS JOIN LATERAL unnest(coalesce("
      "s.histogram_bounds::text::float8[], '{}') || coalesce("
      "s.most_common_vals::text::float8[], '{}')) AS v"
      " WHERE (s.schemaname, s.tablename) = (SELECT n.nspname, c.relname"
      " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
      " WHERE c.oid = " + rel + ") AND s.attname = "
      + pg::quote_literal(plan.push_floats[i].name));
    // Never expected to fail (the cast is of a double precision column's
    // own values); when it does, the snapshot's transaction is aborted.
    if (!rows)
      fail(rows.error());
    if (rows->empty())
      continue;
    auto& row = (*rows)[0];
    if (row.size() == 2 && row[0])
      out[i] = {*row[0], row[1].value_or("")};
  }
  return out;
}

/// Pushed down, the exact float sums in limbs where the values allow
/// (docs/etl.md, "Exact float sums on the server"). With `guess`, a
/// column's window comes from the planner's statistics where it has them
/// (`float_guess_window`), with a check in the query that fails the read
/// when a value falls outside it (true is returned: the caller runs again
/// with `guess` false). Otherwise first the exact range of each float
/// column over `read`'s ranges (one small query per range, in the read's
/// snapshot, so the range holds every value the partitions will sum). Each
/// field whose window fits is replaced in `exprs` by its limbs and its
/// bucket dropped from `groups`. Without the bucket the server keeps its
/// parallel hash aggregate instead of sorting every row.
bool push_float_sums(pg::partitioned_read& read, const job_plan& plan,
                     std::vector<std::string>& exprs,
                     std::vector<std::string>& groups, bool guess) {
  if (plan.push_floats.empty())
    return false;
  auto use = [&](const job_plan::float_push& f, const std::string& sql) {
    exprs[f.expr] = sql;
    groups.erase(std::remove(groups.begin(), groups.end(), f.bucket),
                 groups.end());
  };
  bool guessed = false;
  std::vector<bool> done(plan.push_floats.size());
  if (guess) {
    auto samples = sampled_float_ranges(read, plan);
    for (std::size_t i = 0; i < samples.size(); ++i) {
      auto& f = plan.push_floats[i];
      auto w = float_guess_window(samples[i]);
      if (!w)
        continue;
      logger()->info("push-down: the exact sum of {} in {} limbs, its window "
                     "guessed from the statistics (sample: |x| up to {}, "
                     "down to {}) and checked",
                     f.column, w->limbs, samples[i].max_abs,
                     samples[i].min_abs);
      use(f, float_limbs_checked_sql(f.column, *w));
      done[i] = guessed = true;
    }
  }
  std::string list;
  std::vector<std::size_t> unguessed;
  for (std::size_t i = 0; i < plan.push_floats.size(); ++i) {
    if (done[i])
      continue;
    auto& f = plan.push_floats[i];
    unguessed.push_back(i);
    list += (list.empty() ? "" : ", ") + ("max(abs(" + f.column
            + "))::text, (min(abs(" + f.column + ")) FILTER (WHERE "
            + f.column + " <> 0))::text");
  }
  if (unguessed.empty())
    return guessed;
  auto readers = read.grouped_readers(list, "");
  if (!readers)
    fail(readers.error());
  std::vector<float_range> ranges(unguessed.size());
  // The largest of the maxima, the smallest of the minima, compared as
  // doubles; NaN, Infinity and anything else that is not a finite number
  // win, and then keep the buckets.
  auto worse = [](const std::string& mine, std::string_view theirs,
                  bool larger) {
    if (theirs.empty())
      return false;
    auto b = finite_magnitude(theirs);
    if (mine.empty() || !b)
      return true;
    auto a = finite_magnitude(mine);
    if (!a)
      return false;
    return larger ? *b > *a : *b < *a;
  };
  try {
    for (auto& r : *readers) {
      while (auto* row = r.next())
        for (std::size_t i = 0; i < ranges.size(); ++i) {
          if (auto mx = row->opt_text(2 * i);
              mx && worse(ranges[i].max_abs, *mx, true))
            ranges[i].max_abs = std::string{*mx};
          if (auto mn = row->opt_text(2 * i + 1);
              mn && worse(ranges[i].min_abs, *mn, false))
            ranges[i].min_abs = std::string{*mn};
        }
    }
  } catch (...) {
    fail(pg::current_error(read.spec().conninfo,
                           "push-down: the range of the float sums"));
  }
  for (std::size_t j = 0; j < unguessed.size(); ++j) {
    auto& f = plan.push_floats[unguessed[j]];
    auto limbs = float_limbs_field(f.column, ranges[j]);
    if (!limbs) {
      logger()->info("push-down: the exact sum of {} by exponent bucket "
                     "(its values: |x| up to {}, down to {})",
                     f.column, ranges[j].max_abs, ranges[j].min_abs);
      continue;
    }
    logger()->info("push-down: the exact sum of {} in {} limbs (its values: "
                   "|x| up to {}, down to {})",
                   f.column, std::count(limbs->begin(), limbs->end(), ';') + 1,
                   ranges[j].max_abs.empty() ? "0" : ranges[j].max_abs,
                   ranges[j].min_abs.empty() ? "0" : ranges[j].min_abs);
    use(f, *limbs);
  }
  return guessed;
}

/// True when `err` ended a push-down whose float windows were guessed
/// because a value fell outside one: below it (`decode.outside`), or so far
/// above it, or not finite, that the first limb's bigint overflowed (SQLSTATE
/// 22003; when the user's own --where raises it, the run again reports it).
bool window_missed(const caf::error& err, const row_decoder& decode) {
  return (decode.outside && decode.outside->load())
         || describe(err).find("22003") != std::string::npos;
}

/// Fails with the lost connection an import error stands for (its text
/// `what`): a reader that could not import `coord`'s snapshot (22023,
/// 55000) because the server ended `coord`'s session, which --reconnects
/// may take up. Returns otherwise.
void fail_if_exporter_lost(const std::string& what,
                           pg::partitioned_read& coord,
                           const std::string& reader) {
  if (exporter_lost_in(what, coord))
    fail(make_error(errc::source_failed, pg::snapshot_lost_text(reader)));
}

/// Fails with `err`, or with the lost connection it stands for
/// (fail_if_exporter_lost).
[[noreturn]] void fail_import(const caf::error& err,
                              pg::partitioned_read& coord,
                              const std::string& reader) {
  fail_if_exporter_lost(describe(err), coord, reader);
  fail(err);
}

/// The row sources of a table read: one per range of `read`, reading rows,
/// or pushed down, the server's partial groups. True when a float sum's
/// window was guessed (`push_float_sums` with `guess`): `decode.outside`
/// must then be set.
bool add_table_sources(pipeline<agg_row>& p, pg::partitioned_read& read,
                       const job_plan& plan, const row_decoder& decode,
                       bool guess = false) {
  if (plan.pushdown) {
    std::string groups;
    for (auto g : plan.group_cols)
      groups += (groups.empty() ? "" : ", ")
                + pg::quote_ident(plan.read[g].name);
    auto exprs = plan.push_exprs;
    auto bucket_groups = plan.push_groups;
    bool guessed = push_float_sums(read, plan, exprs, bucket_groups, guess);
    auto list = groups;
    for (auto& e : exprs)
      list += (list.empty() ? "" : ", ") + e;
    for (auto& e : bucket_groups)
      groups += (groups.empty() ? "" : ", ") + e;
    auto readers = read.grouped_readers(list, groups);
    if (!readers)
      fail(readers.error());
    for (auto& r : *readers)
      p.add(source<agg_row>{
        std::make_unique<pg::row_source<agg_row, row_decoder>>(std::move(r),
                                                               decode)});
    return guessed;
  }
  auto srcs = read.row_sources<agg_row>(decode);
  if (!srcs)
    fail(srcs.error());
  for (auto& s : *srcs)
    p.add(std::move(s));
  return false;
}

/// Rows behind a result: its elements, or pushed down, the server's counts
/// of the rows behind each partial group.
std::uint64_t rows_behind(const job_plan& plan, const job_result& res) {
  if (!plan.pushdown)
    return res.emitted;
  std::uint64_t rows = 0;
  for (auto& k : res.keys)
    if (auto n = plan.slots[plan.rows_slot].get(k.agg))
      rows += static_cast<const row_count*>(n)->n;
  return rows;
}

// -- checkpointed steps ---------------------------------------------------------

/// Steps are capped: each costs a pipeline, P connections and a checkpoint
/// holding every group so far, so more steps would cost more than the work
/// a kill can lose.
constexpr std::size_t max_steps = 64;

/// Bytes a row is assumed to take when the planner knows nothing of the
/// table (never analysed or vacuumed): the steps are then sized by its
/// size on disk.
constexpr std::uint64_t unknown_row_bytes = 100;

/// What identifies a checkpointed job: a checkpoint of another one is
/// refused. The output table is not in it: it names the checkpoint. The
/// last line (checkpoint_store::layout_line) is this build's state columns:
/// the same job with other columns (push-down min and max came to share
/// one) must be refused as a whole, since a saved row drops its trailing
/// empty columns and the columns it keeps can line up by type.
std::string fingerprint_of(const job_plan& plan, const agg_run_options& run) {
  std::string layout;
  for (auto& c : plan.layout.columns())
    layout += (layout.empty() ? "" : ",") + c.ops->name;
  return encode_plan(plan) + "\n" + plan.job.table.quoted() + "\nwhere "
         + plan.job.where + "\nby " + run.by
         + (plan.pushdown ? "\npushdown" : "\nrows")
         + checkpoint_store::layout_line + layout;
}

/// The planner's estimate of the rows `read` will read (its tickets'
/// estimates), or the table's size over unknown_row_bytes.
std::uint64_t estimated_rows(pg::partitioned_read& read) {
  auto tickets = read.tickets();
  if (!tickets)
    fail(tickets.error());
  std::uint64_t rows = 0;
  bool known = true;
  for (auto& t : *tickets) {
    known = known && t.estimate.has_value();
    rows += t.estimate.value_or(0);
  }
  if (known)
    return rows;
  auto size = read.query("SELECT pg_relation_size("
                         + pg::quote_literal(read.spec().table.quoted())
                         + "::regclass)");
  if (!size)
    fail(size.error());
  auto& v = (*size)[0][0];
  return v ? std::stoull(*v) / unknown_row_bytes : 0;
}

/// Test hook (tests/pg/test_aggregate_resume.cpp):
/// FLOW_ETL_TEST_KILL_AFTER_STEP=k kills the process (SIGKILL, no clean-up)
/// right after this run committed its k-th checkpoint, as a crash would;
/// `k,INT` sends it SIGINT there instead, as a user would.
void kill_after_checkpoint(std::size_t committed) {
  auto hook = std::getenv("FLOW_ETL_TEST_KILL_AFTER_STEP");
  if (hook == nullptr)
    return;
  auto k = std::to_string(committed);
  if (k == hook)
    std::raise(SIGKILL);
  if (k + ",INT" == hook) {
    // To the process, as a user's ^C: the signal thread (sigwait) takes
    // it; wait until it has, so the next step sees it.
    ::kill(::getpid(), SIGINT);
    for (int i = 0; i < 1000 && interrupted() == 0; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

/// The ticket of range `index` of a checkpointed job's plan: `any` (a ticket
/// of the coordinator's snapshot) for that range.
pg::partition_ticket range_ticket(pg::partition_ticket any, pg::range part,
                                  std::size_t index,
                                  const agg_checkpoint& ckpt) {
  any.part = std::move(part);
  any.index = index;
  any.count = ckpt.ranges.size();
  any.estimate.reset();
  return any;
}

/// Runs steps `ckpt.steps_done` .. `ckpt.steps - 1` of a checkpointed job,
/// each a job over its `ckpt.partitions` ranges in `coord`'s snapshot (read
/// here, or with `out.distributed` by worker nodes), and merges them into
/// `ckpt.state`; commits a checkpoint after every step but the last. Returns the merged result (stopped by a signal: what was merged,
/// partial; a step that did not balance: merged, and stepping ends).
job_result run_steps(std::shared_ptr<const job_plan> plan,
                     const agg_run_options& run, caf::actor_system& sys,
                     pg::partitioned_read& coord, agg_checkpoint& ckpt,
                     checkpoint_store& store, job_outcome& out) {
  row_decoder decode{plan, nullptr};
  auto total = ckpt.state;
  std::size_t committed = 0;
  auto tickets = coord.tickets();
  if (!tickets || tickets->empty())
    fail(tickets ? make_error(errc::invalid_config, "no partition to read")
                 : tickets.error());
  for (auto k = ckpt.steps_done; k < ckpt.steps; ++k) {
    if (interrupted() != 0) {
      // Between steps: what is merged is the partial result; the last
      // checkpoint stays for --resume.
      total.partial = true;
      return total;
    }
    auto first = std::min(k * ckpt.partitions, ckpt.ranges.size());
    auto last = std::min(first + ckpt.partitions, ckpt.ranges.size());
    auto spec = coord.spec();
    spec.plan.assign(ckpt.ranges.begin() + static_cast<std::ptrdiff_t>(first),
                     ckpt.ranges.begin() + static_cast<std::ptrdiff_t>(last));
    spec.partitions = spec.plan.size();
    spec.snapshot = coord.snapshot_id();
    spec.offsets.clear();
    job_result res;
    if (!spec.plan.empty() && out.distributed) {
      // Over worker nodes: the step's ranges are the tasks, each read in
      // the coordinator's snapshot; the rows' accounting is the tasks'.
      std::vector<pg::partition_ticket> step_tickets;
      for (std::size_t i = 0; i < spec.plan.size(); ++i)
        step_tickets.push_back(
          range_ticket(tickets->front(), spec.plan[i], first + i, ckpt));
      aggregate_over_nodes step_nodes;
      if (k == ckpt.steps_done)
        test_end_exporter(coord.spec().conninfo, coord);
      auto started = step_nodes.start(std::move(step_tickets), *plan,
                                      job_options(run, *plan), *run.nodes, sys,
                                      k == ckpt.steps_done);
      auto r = runner.wait(started, 0, plan->job.name);
      if (!r)
        // The tasks import the coordinator's snapshot (worker nodes take
        // `aggregate`'s one job, never a `flow-etl run`'s shared snapshot).
        fail_import(r.error(), coord,
                    "a partition task of step " + std::to_string(k + 1));
      res = std::move(*r);
      auto tasks = step_nodes.totals();
      res.emitted = tasks.rows.emitted;
      res.aggregated = tasks.rows.aggregated;
      res.rejected = tasks.rows.rejected;
      res.dead_lettered = tasks.rows.dead_lettered;
      res.rejections = tasks.rows.rejections;
      res.speculated = tasks.rows.speculated;
      res.speculation_won = tasks.rows.speculation_won;
      out.node_tasks += tasks.node_tasks;
      out.local_tasks += tasks.local_tasks;
    } else if (!spec.plan.empty()) {
      pipeline<agg_row> p;
      std::optional<pg::partitioned_read> read;
      if (plan->pushdown) {
        // Grouped readers come from a read of the step's ranges (its
        // coordinator imports the snapshot too).
        auto r = pg::partitioned_read::open(spec);
        if (!r)
          fail_import(r.error(), coord, "step " + std::to_string(k + 1));
        read.emplace(std::move(*r));
        if (k == ckpt.steps_done)
          test_end_exporter(coord.spec().conninfo, coord);
        try {
          add_table_sources(p, *read, *plan, decode);
        } catch (const failure& e) {
          // The step's partitions import the coordinator's snapshot too.
          if (!e.connection_lost())
            fail_if_exporter_lost(e.what(), coord,
                                  "a partition of step "
                                    + std::to_string(k + 1));
          throw;
        }
      } else {
        // Rows: each range a ticket of the coordinator's snapshot, read on
        // one connection of its own (no second coordinator per step).
        // Connecting is most of a step's overhead: the P connections are
        // opened at once.
        if (k == ckpt.steps_done)
          test_end_exporter(coord.spec().conninfo, coord);
        std::vector<std::future<caf::expected<pg::copy_reader>>> opening;
        for (std::size_t i = 0; i < spec.plan.size(); ++i) {
          auto t = range_ticket(tickets->front(), spec.plan[i], first + i,
                                ckpt);
          opening.push_back(std::async(
            std::launch::async, [t, ci = coord.spec().conninfo] {
              return pg::open_partition(t, ci);
            }));
        }
        std::vector<caf::expected<pg::copy_reader>> readers;
        for (auto& f : opening)
          readers.push_back(f.get());
        for (auto& reader : readers) {
          if (!reader)
            fail_import(reader.error(), coord,
                        "a partition of step " + std::to_string(k + 1));
          p.add(source<agg_row>{
            std::make_unique<pg::row_source<agg_row, row_decoder>>(
              std::move(*reader), decode)});
        }
      }
      auto started = p.aggregate_with(plan->layout)
                       .reduce(agg_reducer(plan))
                       .with(job_options(run, *plan))
                       .start(sys);
      auto r = runner.wait(started, 0, plan->job.name);
      if (!r)
        fail(r.error());
      res = std::move(*r);
    } else {
      res.final = true;
    }
    bool stopped = job_runner::stopped(res);
    bool good = res.final && res.balanced();
    if (!merge_step(total, res))
      throw usage_error(plan->job.name + ": step " + std::to_string(k + 1)
                        + " of " + std::to_string(ckpt.steps)
                        + ": the groups' states cannot be merged (an exact "
                          "sum beyond its range)");
    if (stopped || !good)
      return total;
    if (k + 1 < ckpt.steps) {
      ckpt.steps_done = k + 1;
      ckpt.state = total;
      store.save(ckpt);
      out.committed_checkpoint = true;
      kill_after_checkpoint(++committed);
    }
  }
  total.final = true;
  total.partial = false;
  return total;
}

/// A fresh checkpointed job's plan of steps: `coord`'s P partitions, and
/// enough steps of about `run.checkpoint_rows` rows each (the planner's
/// estimate, at most max_steps), the ranges planned P x steps finely in
/// `coord`'s snapshot. One step: nothing to checkpoint (run as usual).
agg_checkpoint plan_steps(const job_plan& plan,
                          const agg_run_options& run,
                          pg::partitioned_read& coord) {
  agg_checkpoint ckpt;
  ckpt.fingerprint = fingerprint_of(plan, run);
  ckpt.partitions = coord.ranges().size();
  ckpt.ranges = coord.ranges();
  auto rows = estimated_rows(coord);
  auto want = (rows + run.checkpoint_rows - 1) / run.checkpoint_rows;
  auto steps = static_cast<std::size_t>(
    std::clamp<std::uint64_t>(want, 1, max_steps));
  if (steps <= 1)
    return ckpt;
  auto spec = coord.spec();
  spec.partitions = ckpt.partitions * steps;
  spec.snapshot = coord.snapshot_id();
  auto fine = pg::partitioned_read::open(spec);
  if (!fine)
    fail_import(fine.error(), coord, "the plan of the steps");
  ckpt.ranges = fine->ranges();
  // A small table or a column of few values gives fewer ranges.
  ckpt.steps = (ckpt.ranges.size() + ckpt.partitions - 1) / ckpt.partitions;
  return ckpt;
}

/// The checkpoint an interrupted run of this job left, noted in `out`;
/// none when there is none (a usage error when another job left it).
std::optional<agg_checkpoint> load_checkpoint(checkpoint_store& store,
                                              const job_plan& plan,
                                              const agg_run_options& run,
                                              job_outcome& out) {
  auto ckpt = store.load(fingerprint_of(plan, run));
  if (ckpt) {
    // The fingerprint holds the state columns' types too; this checks the
    // states themselves (the fingerprint matched, so a damaged checkpoint):
    // a state of another type is refused by name, before any is merged.
    auto& cols = plan.layout.columns();
    for (auto& k : ckpt->state.keys) {
      auto& row = k.agg.states;
      for (std::size_t i = 0; i < row.size(); ++i) {
        // get() checks the type (no allocation while it matches) and
        // throws when the column holds another one.
        try {
          if (i < cols.size()) {
            (void) row.get(i, *cols[i].ops);
            continue;
          }
          if (row.names()[i].empty())
            continue;
        } catch (const std::logic_error&) {
        }
        auto mine = i < cols.size()
                      ? "keeps '" + cols[i].ops->name + "'"
                      : "has " + std::to_string(cols.size()) + " columns";
        throw usage_error(
          "the checkpoint of " + output_name(plan.job).display()
          + " was written by another version of flow-etl (its state column "
          + std::to_string(i + 1) + " holds '" + row.names()[i]
          + "' states, where this one " + mine
          + "); run without --resume to start over");
      }
    }
    out.resumed_rows = rows_behind(plan, ckpt->state);
    out.checkpoint = store.table();
  }
  return ckpt;
}

/// Resuming (--resume): that checkpoint, which must be there.
agg_checkpoint resume_point(checkpoint_store& store, const job_plan& plan,
                            const agg_run_options& run, job_outcome& out) {
  auto ckpt = load_checkpoint(store, plan, run, out);
  if (!ckpt)
    throw usage_error("no interrupted run of " + output_name(plan.job).display()
                      + " to resume (run without --resume)");
  return std::move(*ckpt);
}

/// A fresh checkpointable job: its steps when there is more than one
/// (an earlier run's checkpoint then discarded), else nothing (read in one
/// go, as without checkpoints). Names the checkpoint in `out` either way,
/// for the output's commit to drop.
std::optional<agg_checkpoint> fresh_steps(checkpoint_store& store,
                                          const job_plan& plan,
                                          const agg_run_options& run,
                                          pg::partitioned_read& read,
                                          job_outcome& out) {
  // The name needs the current schema: asked in the coordinator's
  // transaction, which costs no connection (a job of one step opens none
  // for its checkpoints).
  std::string current;
  if (output_name(plan.job).schema.empty()) {
    auto cs = read.query("SELECT current_schema()");
    if (!cs)
      fail(cs.error());
    current = (*cs)[0][0].value_or("");
  }
  out.checkpoint = checkpoint_table(output_name(plan.job), current);
  auto steps = plan_steps(plan, run, read);
  if (steps.steps <= 1)
    return std::nullopt;
  // An earlier run's checkpoint is obsolete (the first step's would
  // replace it; until then --resume would find it).
  store.discard();
  return steps;
}

/// Runs a query in a job's snapshot.
using snapshot_query
  = std::function<caf::expected<pg::text_rows>(const std::string&)>;

/// Runs one job into `out` (in place: `out.groups` points into it). `after`
/// (when given) runs once the job finished and was verified, while its
/// snapshot is still held (not when a signal stopped it).
void run_job(const std::string& conninfo,
             std::shared_ptr<const job_plan> plan, const agg_run_options& run,
             caf::actor_system& sys, job_outcome& out,
             const std::function<void(job_outcome&, const snapshot_query&)>*
               after
             = nullptr) {
  out.plan = plan;
  stopwatch sw;
  std::vector<std::string> cols;
  for (auto& c : plan->read)
    cols.push_back(c.name);
  if (plan->pushdown)
    cols = {"ctid"}; // not read: the partitions run grouped_readers
  row_decoder decode{plan, nullptr};
  pipeline<agg_row> p;
  bool guessed = false;
  // The coordinator of the snapshot: a partitioned read for a table, a
  // REPEATABLE READ transaction exporting its snapshot for a query.
  std::optional<pg::partitioned_read> read;
  std::unique_ptr<pqxx::connection> qconn;
  std::unique_ptr<pqxx::transaction<pqxx::repeatable_read,
                                    pqxx::read_only>> qtx;
  bool listening = run.nodes != nullptr && run.nodes->listening();
  // Checkpoints: an output of a table read, by this process's partitions or
  // by worker nodes step by step (a query is one stream).
  std::optional<agg_checkpoint> stepped;
  std::optional<checkpoint_store> store;
  if (plan->job.query.empty() && !plan->job.output.empty()
      && run.checkpoint_rows > 0) {
    out.checkpointable = true;
    store.emplace(conninfo, output_name(plan->job));
    // Before reading or discarding a checkpoint: a live run of the same job
    // owns it (flow-etl gc and a second run leave it alone).
    auto& t = store->table();
    auto lock = pg::owner_lock::try_acquire(conninfo, t.table.substr(4),
                                            "its checkpoint in "
                                              + t.display());
    if (!lock)
      fail(lock.error());
    out.owner.emplace(std::move(*lock));
  }
  if (plan->job.query.empty()) {
    pg::read_spec spec;
    spec.conninfo = conninfo;
    spec.table = plan->job.table;
    spec.columns = cols;
    spec.partition_column = run.by;
    spec.partitions = partitions_for(conninfo, *plan, run);
    spec.sort_groups = pushdown_many_groups(*plan);
    if (spec.sort_groups)
      logger()->debug("push-down: about {} groups: each partition grouped by "
                      "sorting, {} partition(s)",
                      plan->expected_groups, spec.partitions);
    else if (plan->pushdown)
      spec.min_work_mem = pushdown_work_mem;
    spec.filter = plan->job.where;
    spec.snapshot = run.snapshot;
    if (out.checkpointable && (run.resume || run.resume_if_any)) {
      // --resume: the interrupted run's checkpoint; a reconnect after this
      // run committed one (run_aggregate_jobs): that one.
      stepped = run.resume_if_any ? load_checkpoint(*store, *plan, run, out)
                                  : resume_point(*store, *plan, run, out);
      // The coordinator only holds the snapshot: the ranges are the
      // interrupted run's.
      if (stepped)
        spec.plan = stepped->ranges;
    }
    auto r = pg::partitioned_read::open(spec);
    if (!r)
      fail(r.error());
    read.emplace(std::move(*r));
    out.partitions = read->ranges().size();
    out.mode = "table";
    if (out.checkpointable && !stepped)
      stepped = fresh_steps(*store, *plan, run, *read, out);
    if (stepped) {
      out.partitions = stepped->partitions;
      out.steps = stepped->steps;
      if (plan->pushdown)
        out.mode = "push-down";
      if (listening) {
        out.distributed = true;
        out.mode = "distributed";
      }
    } else if (listening) {
      out.distributed = true;
      out.mode = "distributed";
    } else if (plan->pushdown) {
      out.mode = "push-down";
      decode.outside = std::make_shared<std::atomic<bool>>(false);
      test_end_exporter(conninfo, *read);
      guessed = add_table_sources(p, *read, *plan, decode, true);
    } else {
      test_end_exporter(conninfo, *read);
      add_table_sources(p, *read, *plan, decode);
    }
  } else {
    std::string snapshot;
    try {
      qconn = std::make_unique<pqxx::connection>(conninfo);
      qtx = std::make_unique<
        pqxx::transaction<pqxx::repeatable_read, pqxx::read_only>>(*qconn);
      if (run.snapshot.empty()) {
        snapshot = qtx->exec("SELECT pg_export_snapshot()")[0][0].c_str();
      } else {
        qtx->exec("SET TRANSACTION SNAPSHOT " + qtx->quote(run.snapshot));
        snapshot = run.snapshot;
      }
    } catch (...) {
      fail(pg::current_error(conninfo));
    }
    std::string select = "SELECT ";
    for (std::size_t i = 0; i < cols.size(); ++i)
      select += (i ? ", " : "") + pg::quote_ident(cols[i]);
    select += " FROM (" + plan->job.query + ") AS flow_query";
    if (!plan->job.where.empty())
      select += " WHERE (" + plan->job.where + ")";
    test_end_exporter(conninfo, std::to_string(qconn->backendpid()));
    auto reader = pg::open_query(conninfo, select, snapshot);
    if (!reader) {
      // The snapshot dies with the session that exported it: one the server
      // ended meanwhile fails the import with 22023, where what happened is
      // a lost connection (which --reconnects may take up).
      if (run.snapshot.empty()
          && pg::session_lost([&] { qtx->exec("SELECT 1"); }))
        fail(make_error(errc::source_failed,
                        pg::snapshot_lost_text("the query's reader")));
      fail(reader.error());
    }
    p.add(source<agg_row>{
      std::make_unique<pg::row_source<agg_row, row_decoder>>(
        std::move(*reader), decode)});
    out.partitions = 1;
    out.mode = "query (one stream)";
  }
  aggregate_over_nodes over_nodes;
  if (stepped) {
    out.res = run_steps(plan, run, sys, *read, *stepped, *store, out);
  } else {
    auto start_local = [&](pipeline<agg_row>& q) {
      return q.aggregate_with(plan->layout)
        .reduce(agg_reducer(plan))
        .with(job_options(run, *plan))
        .start(sys);
    };
    if (out.distributed)
      test_end_exporter(conninfo, *read);
    auto started = out.distributed
                     ? over_nodes.start(*read, *plan, job_options(run, *plan),
                                        *run.nodes, sys)
                     : start_local(p);
    auto res = runner.wait(started, 0, plan->job.name);
    if (!res && guessed && window_missed(res.error(), decode)) {
      // A float sum's guessed window did not hold: nothing was merged into
      // the output, and the same snapshot is read again with the values'
      // exact range (one more scan, as without statistics).
      logger()->info("push-down: a float sum's window guessed from the "
                     "statistics did not hold ({}); running again with the "
                     "values' exact range",
                     describe(res.error()));
      pipeline<agg_row> again;
      decode.outside->store(false);
      add_table_sources(again, *read, *plan, decode, false);
      res = runner.wait(start_local(again), 0, plan->job.name);
    }
    if (!res && out.distributed)
      // The tasks (on worker nodes, or here when none is left) import the
      // coordinator's snapshot (worker nodes take `aggregate`'s one job,
      // never a `flow-etl run`'s shared snapshot).
      fail_import(res.error(), *read, "a partition task");
    if (!res)
      fail(res.error());
    out.res = std::move(*res);
  }
  // The accounting only: the keys are not copied.
  out.rows = out.res.without_keys();
  if (over_nodes.started()) {
    auto tasks = over_nodes.totals();
    out.rows = tasks.rows;
    out.node_tasks = tasks.node_tasks;
    out.local_tasks = tasks.local_tasks;
  }
  out.seconds = sw.seconds();
  if (job_runner::stopped(out.res))
    return;
  if (plan->pushdown) {
    // The elements were partial groups; the rows behind them are the
    // server's counts.
    out.partial_groups = out.res.emitted;
    auto rows = rows_behind(*plan, out.res);
    out.rows.emitted = rows;
    out.rows.aggregated = rows;
    out.rows.rejected = 0;
  }
  for (auto& k : out.res.keys)
    out.groups.push_back(&k);
  // The engine's result is sorted by key already; merged steps may not be.
  auto by_key = [](auto* x, auto* y) { return x->key < y->key; };
  if (!std::is_sorted(out.groups.begin(), out.groups.end(), by_key))
    std::sort(out.groups.begin(), out.groups.end(), by_key);
  if (plan->group_cols.empty() && out.groups.empty()) {
    // No GROUP BY: one group even over no rows, as in SQL (count 0, the
    // other aggregates NULL).
    out.no_rows.key = key::composite({});
    out.groups.push_back(&out.no_rows);
  }
  if (!run.verify && after == nullptr)
    return;
  snapshot_query query;
  if (read)
    query = [&](const std::string& sql) { return read->query(sql); };
  else
    query = [&](const std::string& sql) -> caf::expected<pg::text_rows> {
      try {
        pg::text_rows rows;
        for (auto r : qtx->exec(sql)) {
          std::vector<std::optional<std::string>> row;
          for (auto f : r)
            row.push_back(f.is_null() ? std::nullopt
                                      : std::optional<std::string>{f.c_str()});
          rows.push_back(std::move(row));
        }
        return rows;
      } catch (...) {
        return pg::current_error(conninfo);
      }
    };
  if (run.verify)
    verify_job(out, query);
  if (after != nullptr)
    (*after)(out, query);
}

// -- printing -----------------------------------------------------------------

/// Folds the groups [0, n) into blocks of `Block` (text, column widths) on
/// up to four threads and hands the blocks to `consume` in order:
/// `fold(i, block)` adds group i to its block, cleared first by its
/// `clear()` (which may keep scratch buffers). A million groups'
/// output is formatting (exact decimals, shortest doubles) more than
/// writing, and the server is idle by then. An exception from `fold` reaches
/// the caller once the round's threads are done.
template <class Block, class Fold, class Consume>
void in_blocks(std::size_t n, const Fold& fold, const Consume& consume) {
  constexpr std::size_t block = 4096;
  auto threads = static_cast<std::size_t>(
    std::clamp(std::thread::hardware_concurrency(), 1u, 4u));
  std::vector<Block> blocks(threads);
  auto run = [&](std::size_t t, std::size_t from) {
    auto& b = blocks[t];
    b.clear();
    for (auto i = from; i < std::min(n, from + block); ++i)
      fold(i, b);
  };
  for (std::size_t base = 0; base < n; base += threads * block) {
    std::vector<std::future<void>> others;
    for (std::size_t t = 1; t < threads && base + t * block < n; ++t)
      others.push_back(std::async(std::launch::async, run, t, base + t * block));
    std::exception_ptr failed;
    try {
      run(0, base);
    } catch (...) {
      failed = std::current_exception();
    }
    for (auto& f : others) {
      try {
        f.get();
      } catch (...) {
        if (!failed)
          failed = std::current_exception();
      }
    }
    if (failed)
      std::rethrow_exception(failed);
    for (std::size_t t = 0; t <= others.size(); ++t)
      consume(blocks[t]);
  }
}

/// Asks for the states of the group a few places after group i: the groups
/// are printed in key order, their states lie wherever they were made, and
/// a formatting thread would otherwise wait for each in turn.
template <class Groups>
void prefetch_states(const Groups& groups, std::size_t i) {
  if (i + 4 < groups.size())
    groups[i + 4]->agg.states.prefetch();
}

/// Writes `text` to stdout.
void write_stdout(const std::string& text) {
  std::fwrite(text.data(), 1, text.size(), stdout);
}

/// A group's cells as text, one after the other, and where each ends: the
/// scratch of a formatting thread, reused from group to group.
struct row_text {
  /// The group's values (output_row).
  std::vector<out_value> values;
  /// Its cells' text, one after the other.
  std::string text;
  /// Where each cell's text ends in `text`.
  std::vector<std::size_t> ends;

  /// Group `k`'s cells (NULL as "NULL").
  void format(const job_plan& plan, const key_result& k) {
    output_row(plan, k, values);
    text.clear();
    ends.clear();
    for (auto& v : values) {
      if (!v.append_sql(text))
        text += "NULL";
      ends.push_back(text.size());
    }
  }

  /// Cell c.
  std::string_view cell(std::size_t c) const {
    auto from = c == 0 ? 0 : ends[c - 1];
    return std::string_view{text}.substr(from, ends[c] - from);
  }
};

void print_table(const job_outcome& out) {
  auto& plan = *out.plan;
  auto names = output_names(plan);
  auto cols = names.size();
  // Two passes, the cells formatted in each: the column widths first, then
  // the lines; a table of millions of groups is not held as text. Each
  // thread formats into its block's scratch (no string per cell).
  std::vector<std::size_t> width(cols);
  for (std::size_t i = 0; i < cols; ++i)
    width[i] = names[i].size();
  /// A block of the width pass: its columns' widths, a thread's scratch.
  struct width_block {
    std::vector<std::size_t> w;
    row_text row;
    /// Forgets the widths (keeps the scratch).
    void clear() {
      w.clear();
    }
  };
  /// A block of the line pass: its lines, a thread's scratch.
  struct line_block {
    std::string text;
    row_text row;
    /// Forgets the lines (keeps the scratch).
    void clear() {
      text.clear();
    }
  };
  auto& groups = out.groups;
  auto ahead = [&](std::size_t i) { prefetch_states(groups, i); };
  auto start = std::chrono::steady_clock::now();
  in_blocks<width_block>(
    groups.size(),
    [&](std::size_t i, width_block& b) {
      ahead(i);
      b.row.format(plan, *groups[i]);
      b.w.resize(cols);
      for (std::size_t c = 0; c < cols; ++c)
        b.w[c] = std::max(b.w[c], b.row.cell(c).size());
    },
    [&](const width_block& b) {
      for (std::size_t c = 0; c < b.w.size(); ++c)
        width[c] = std::max(width[c], b.w[c]);
    });
  auto line = [&](auto cell_of, std::string& text) {
    auto start = text.size();
    // The line's room filled with spaces once, then each cell copied to its
    // place: not two appends per cell.
    std::size_t len = 0;
    for (std::size_t i = 0; i < cols; ++i)
      len += (i ? 2 : 0) + std::max(width[i], cell_of(i).size());
    text.resize(start + len, ' ');
    auto* p = text.data() + start;
    for (std::size_t i = 0; i < cols; ++i) {
      std::string_view cell = cell_of(i);
      if (i)
        p += 2;
      auto w = std::max(width[i], cell.size());
      // Group columns to the left, aggregates (numbers) to the right.
      auto at = i < plan.group_cols.size() ? p : p + (w - cell.size());
      if (!cell.empty())
        std::memcpy(at, cell.data(), cell.size());
      p += w;
    }
    while (text.size() > start && text.back() == ' ')
      text.pop_back();
    text += '\n';
  };
  std::string head;
  line([&](std::size_t c) { return std::string_view{names[c]}; }, head);
  write_stdout(head);
  in_blocks<line_block>(
    groups.size(),
    [&](std::size_t i, line_block& b) {
      ahead(i);
      b.row.format(plan, *groups[i]);
      line([&](std::size_t c) { return b.row.cell(c); }, b.text);
    },
    [](const line_block& b) { write_stdout(b.text); });
  // After the job, printing is the wait a million groups add (two
  // formatting passes); the debug log says how long it took.
  logger()->debug("the table's {} groups printed in {:.3f} s", groups.size(),
                  std::chrono::duration<double>(
                    std::chrono::steady_clock::now() - start)
                    .count());
}

void print_json(const job_outcome& out) {
  auto& plan = *out.plan;
  auto names = output_names(plan);
  auto& groups = out.groups;
  auto ahead = [&](std::size_t i) { prefetch_states(groups, i); };
  /// A block of JSON lines and a thread's scratch.
  struct json_block {
    std::string text;
    std::vector<out_value> values;
    /// Forgets the lines (keeps the scratch).
    void clear() {
      text.clear();
    }
  };
  in_blocks<json_block>(
    groups.size(),
    [&](std::size_t i, json_block& b) {
      json_object obj;
      ahead(i);
      output_row(plan, *groups[i], b.values);
      for (std::size_t c = 0; c < b.values.size(); ++c)
        b.values[c].json(obj, names[c]);
      b.text += obj.str();
      b.text += '\n';
    },
    [](const json_block& b) { write_stdout(b.text); });
}

void print_summary(const job_outcome& out, const agg_run_options& run,
                   const std::string& output_table) {
  auto& plan = *out.plan;
  auto& res = out.rows;
  if (run.json) {
    json_object obj;
    obj.add("summary", true).add("job", plan.job.name);
    obj.add("source", source_name(plan.job)).add("mode", out.mode);
    obj.add("partitions", static_cast<std::uint64_t>(out.partitions));
    obj.add("rows_read", res.emitted)
      .add("rows_aggregated", res.aggregated)
      .add("rows_skipped", res.rejected)
      .add("groups", static_cast<std::uint64_t>(out.groups.size()));
    obj.add("balanced", res.balanced() && out.res.balanced());
    if (out.distributed)
      obj.add("node_tasks", out.node_tasks)
        .add("local_tasks", out.local_tasks)
        .add("speculated", res.speculated)
        .add("speculation_won", res.speculation_won);
    if (plan.pushdown)
      obj.add("partial_groups", out.partial_groups);
    if (out.checkpointable)
      obj.add("steps", static_cast<std::uint64_t>(out.steps))
        .add("resumed_rows", out.resumed_rows);
    obj.add("reconnects", static_cast<std::uint64_t>(out.reconnects));
    if (out.verified)
      obj.add("verified", out.verify_ok);
    else
      obj.add_raw("verified", "null");
    if (!output_table.empty())
      obj.add("output", output_table);
    obj.add("libflow_s", out.seconds);
    if (out.verified)
      obj.add("server_s", out.verify_seconds);
    std::printf("%s\n", obj.str().c_str());
    return;
  }
  std::printf("%s: %llu rows of %s read in %zu partition%s (%s), %llu "
              "aggregated, %llu skipped, %zu groups, libflow %.3f s",
              plan.job.name.c_str(),
              static_cast<unsigned long long>(res.emitted),
              source_name(plan.job).c_str(), out.partitions,
              out.partitions == 1 ? "" : "s", out.mode,
              static_cast<unsigned long long>(res.aggregated),
              static_cast<unsigned long long>(res.rejected),
              out.groups.size(), out.seconds);
  if (out.verified)
    std::printf(", server GROUP BY %.3f s, %s", out.verify_seconds,
                out.verify_ok ? "verified" : "MISMATCH");
  if (!output_table.empty())
    std::printf(", written to %s", output_table.c_str());
  std::printf("\n");
  if (plan.pushdown)
    std::printf("push-down: the server aggregated each partition; %llu "
                "partial groups merged\n",
                static_cast<unsigned long long>(out.partial_groups));
  if (out.steps > 1 || out.resumed_rows > 0)
    std::printf("checkpointed: read in %zu steps of %zu partition%s; %llu "
                "rows resumed from an interrupted run\n",
                out.steps, out.partitions, out.partitions == 1 ? "" : "s",
                static_cast<unsigned long long>(out.resumed_rows));
  if (out.reconnects > 0)
    std::printf("reconnected %zu time%s after losing the database "
                "connection\n",
                out.reconnects, out.reconnects == 1 ? "" : "s");
  if (out.distributed)
    std::printf("distributed: %llu partitions read by worker nodes, %llu "
                "here\n",
                static_cast<unsigned long long>(out.node_tasks),
                static_cast<unsigned long long>(out.local_tasks));
}

// -- output tables ------------------------------------------------------------

pg::table_name output_name(const agg_job& job) {
  auto schema = !job.output_schema.empty() ? job.output_schema
                                           : job.table.schema;
  return {schema, job.output};
}

pg::output_table output_table_of(const job_plan& plan) {
  std::string defs;
  for (auto g : plan.group_cols)
    defs += (defs.empty() ? "" : ", ") + pg::quote_ident(plan.read[g].name)
            + " " + plan.read[g].type;
  for (auto& p : plan.aggs)
    defs += (defs.empty() ? "" : ", ") + pg::quote_ident(p.expr.name) + " "
            + p.out_type;
  pg::output_table t;
  t.target = output_name(plan.job);
  t.columns = defs;
  return t;
}

std::vector<pg::copy_row> output_rows(const job_outcome& out,
                                      std::size_t table) {
  std::vector<pg::copy_row> rows;
  for (auto* k : out.groups) {
    pg::copy_row r;
    r.table = table;
    auto vals = output_row(*out.plan, *k);
    for (std::size_t i = 0; i < vals.size(); ++i) {
      if (i)
        r.line += '\t';
      auto t = vals[i].sql();
      pg::append_copy_field(r.line, t ? std::optional<std::string_view>{*t}
                                      : std::nullopt);
    }
    r.line += '\n';
    rows.push_back(std::move(r));
  }
  return rows;
}

/// Writes the outputs of `outs` (those with an output table) in one
/// transaction: every table replaced, or none.
void write_outputs(const std::string& conninfo,
                   const std::vector<const job_outcome*>& outs) {
  std::vector<pg::output_table> tables;
  std::vector<const job_outcome*> writers;
  for (auto* o : outs)
    if (!o->plan->job.output.empty()) {
      tables.push_back(output_table_of(*o->plan));
      writers.push_back(o);
    }
  if (tables.empty())
    return;
  try {
    auto rows = [&](const job_result&) {
      std::vector<pg::copy_row> all;
      for (std::size_t t = 0; t < writers.size(); ++t) {
        auto r = output_rows(*writers[t], t);
        std::move(r.begin(), r.end(), std::back_inserter(all));
      }
      return all;
    };
    pg::copy_sink snk{conninfo, tables, rows};
    // The checkpoints are obsolete once the output is there: dropped in the
    // same transaction, so a kill leaves either both or the output alone.
    for (auto* w : writers)
      if (w->checkpoint)
        snk.at_commit(drop_checkpoint_sql(*w->checkpoint));
    snk.open();
    job_result none;
    none.final = true;
    snk.commit(none);
  } catch (const usage_error&) {
    throw;
  } catch (const std::exception& e) {
    // A lost connection may be tried again (the write is one transaction:
    // replaced, or not at all).
    auto err = pg::to_error(e, conninfo, "writing the output");
    if (pg::connection_lost(err))
      throw failure(err);
    if (dynamic_cast<const input_error*>(&e) != nullptr)
      throw usage_error(std::string{"writing the output: "} + e.what());
    throw usage_error(std::string{"writing the output: "}
                      + pg::scrub(e.what(), conninfo));
  }
}

/// Tries `body` again after a lost database connection, up to
/// `run.reconnects` times with backoff (0.5 s doubling to 8 s), while
/// `may_retry()` does not throw; `again` prepares the next try. Any other
/// error, a signal, or a loss beyond the last try propagates. (The server
/// was reached when the jobs were planned: a connection refused now is a
/// server going away or restarting, worth waiting for.) Returns the number
/// of reconnects.
template <class Body, class MayRetry, class Again>
std::size_t with_reconnects(const agg_run_options& run,
                            const std::string& what, Body body,
                            MayRetry may_retry, Again again) {
  reconnect_backoff backoff;
  for (std::size_t tries = 0;; ++tries) {
    try {
      body();
      return tries;
    } catch (const failure& e) {
      if (!e.connection_lost() || tries >= run.reconnects
          || interrupted() != 0)
        throw;
      may_retry(e);
      logger()->warn("{}: {}; trying again in {} ms (reconnect {} of {})",
                     what, e.what(), backoff.next().count(), tries + 1,
                     run.reconnects);
      if (!backoff.wait())
        throw;
      again();
    }
  }
}

} // namespace

// -- the entry points ---------------------------------------------------------

void prepare_session_environment() {
  // libpq sends these at connection start; the server then prints every
  // timestamptz with "+00" and every date as YYYY-MM-DD, which is what
  // decode_cell reads and what the output tables receive back.
  ::setenv("PGTZ", "UTC", 1);
  ::setenv("PGDATESTYLE", "ISO", 1);
}

void check_aggregate_job(const std::string& conninfo, const agg_job& job) {
  plan_with_catalog(conninfo, job, nullptr, false);
  if (!job.output.empty())
    try {
      pg::check_identifier(job.output, "output");
    } catch (const input_error& e) {
      throw usage_error(e.what());
    }
}

int run_aggregate_jobs(const std::string& conninfo,
                       const std::vector<agg_job>& jobs,
                       const agg_run_options& run, bool atomic,
                       caf::actor_system& sys) {
  // Every job is planned first: a bad name or type in the last job fails
  // before the first one runs.
  std::vector<std::shared_ptr<const job_plan>> plans;
  std::set<std::string> outputs;
  for (auto& j : jobs) {
    auto plan = plan_with_catalog(conninfo, j);
    if (run.pushdown && j.query.empty()) {
      std::string why_not;
      if (auto pp = plan_pushdown(plan, why_not))
        plan = std::move(*pp);
      else
        std::cerr << etl_prog << ": " << j.name << ": --pushdown: " << why_not
                  << " cannot be computed exactly by the server per "
                     "partition; reading rows"
                  << std::endl;
    }
    plans.push_back(std::make_shared<job_plan>(std::move(plan)));
    if (!j.output.empty() && !outputs.insert(output_name(j).quoted()).second)
      throw usage_error("two jobs write the output table "
                        + output_name(j).display());
  }
  // Several jobs read one snapshot: this transaction exports it and stays
  // open (read-only, holding no lock) until the last job has read.
  std::unique_ptr<pqxx::connection> sconn;
  std::unique_ptr<pqxx::transaction<pqxx::repeatable_read, pqxx::read_only>>
    stx;
  auto shared = run;
  if (plans.size() > 1 && run.snapshot.empty()) {
    try {
      sconn = std::make_unique<pqxx::connection>(conninfo);
      stx = std::make_unique<
        pqxx::transaction<pqxx::repeatable_read, pqxx::read_only>>(*sconn);
      shared.snapshot
        = stx->exec("SELECT pg_export_snapshot()")[0][0].c_str();
    } catch (...) {
      fail(pg::current_error(conninfo));
    }
    test_end_exporter(conninfo, std::to_string(sconn->backendpid()));
  }
  // A job that loses its connection midway is tried again, in the jobs'
  // shared snapshot while the transaction holding it is alive; a job of
  // its own takes a new one (from its checkpoint when it has one).
  auto snapshot_alive = [&](const failure& e, const std::string& job) {
    if (!stx)
      return;
    try {
      stx->exec("SELECT 1");
    } catch (...) {
      // A job that could not import the snapshot (22023, 55000) failed
      // because its session ended, not because of its input.
      std::string what = e.what();
      if (import_failed(what))
        what = pg::snapshot_lost_text("job " + job);
      throw usage_error(what
                        + "; the connection holding the jobs' shared "
                          "snapshot was lost with it, so the remaining jobs "
                          "cannot read that snapshot (run again)");
    }
  };
  std::vector<std::unique_ptr<job_outcome>> done;
  int rc = exit_ok;
  for (auto& plan : plans) {
    std::unique_ptr<job_outcome> out;
    auto attempt = shared;
    auto reconnects = with_reconnects(
      run, plan->job.name,
      [&] {
        out = std::make_unique<job_outcome>();
        try {
          run_job(conninfo, plan, attempt, sys, *out);
        } catch (const failure& e) {
          // A job that starts after the shared snapshot's session was lost
          // cannot import it (22023): say so rather than blame the input.
          if (!e.connection_lost())
            snapshot_alive(e, plan->job.name);
          throw;
        }
      },
      [&](const failure& e) {
        if (run.nodes != nullptr && run.nodes->listening())
          throw; // worker nodes took part: not tried again (docs/etl.md)
        snapshot_alive(e, plan->job.name);
      },
      [&] {
        // Resumed from the checkpoint this run committed, if it got that
        // far; a checkpoint an earlier run left is not this run's (it was
        // read in another snapshot, maybe by another version). The lost
        // try's lock on the checkpoint goes first.
        if (out && out->committed_checkpoint)
          attempt.resume_if_any = true;
        out.reset();
      });
    out->reconnects = reconnects;
    if (job_runner::stopped(out->res)) {
      // Stopped by a signal: what was merged, marked partial; no output.
      if (run.json)
        print_json(*out);
      else
        print_table(*out);
      std::fflush(stdout);
      return runner.stopped_exit_code(out->res);
    }
    if (run.json)
      print_json(*out);
    else
      print_table(*out);
    bool ok = out->res.final && out->res.balanced() && out->rows.balanced()
              && out->verify_ok;
    std::string written;
    if (ok && !atomic && !plan->job.output.empty()) {
      out->reconnects += with_reconnects(
        run, plan->job.name + ": writing the output",
        [&] { write_outputs(conninfo, {out.get()}); }, [](auto&) {},
        [] {});
      written = output_name(plan->job).display();
    }
    print_summary(*out, run, written);
    std::fflush(stdout);
    for (std::size_t i = 0; i < out->mismatches.size() && i < 20; ++i)
      std::cerr << etl_prog << ": " << plan->job.name << ": "
                << out->mismatches[i] << std::endl;
    if (!ok) {
      std::cerr << etl_prog << ": " << plan->job.name
                << ": the result does not match the server's GROUP BY"
                << (plan->job.output.empty() ? "" : "; nothing written")
                << std::endl;
      rc = exit_mismatch;
      if (atomic)
        return rc;
    }
    done.push_back(std::move(out));
  }
  if (atomic && rc == exit_ok) {
    std::vector<const job_outcome*> outs;
    for (auto& o : done)
      outs.push_back(o.get());
    with_reconnects(
      run, "writing the outputs", [&] { write_outputs(conninfo, outs); },
      [](auto&) {}, [] {});
    std::size_t n = 0;
    for (auto* o : outs)
      n += o->plan->job.output.empty() ? 0 : 1;
    if (n > 0 && !run.json)
      std::printf("%zu output table%s committed in one transaction\n", n,
                  n == 1 ? "" : "s");
  }
  return rc;
}

int run_aggregate_preset(
  const std::string& conninfo, const agg_job& job, const agg_run_options& run,
  caf::actor_system& sys,
  const std::function<void(const std::vector<column_info>&)>& check,
  const std::function<int(const agg_preset_result&)>& consume) {
  auto plan = plan_with_catalog(conninfo, job, check);
  if (run.pushdown && job.query.empty()) {
    std::string why_not;
    if (auto pp = plan_pushdown(plan, why_not))
      plan = std::move(*pp);
    else
      throw usage_error("--pushdown: " + why_not
                        + " cannot be computed exactly by the server per "
                          "partition");
  }
  auto shared = std::make_shared<const job_plan>(std::move(plan));
  job_outcome out;
  agg_preset_result result;
  auto fill = [&](job_outcome& o) {
    result.res = &o.res;
    result.rows = &o.rows;
    result.mode = o.mode;
    result.partitions = o.partitions;
    result.seconds = o.seconds;
    result.distributed = o.distributed;
    result.node_tasks = o.node_tasks;
    result.local_tasks = o.local_tasks;
    std::vector<const key_result*> keys;
    for (auto& k : o.res.keys)
      keys.push_back(&k);
    std::sort(keys.begin(), keys.end(),
              [](auto* x, auto* y) { return x->key < y->key; });
    for (auto* k : keys) {
      std::vector<std::optional<std::string>> row;
      for (auto& v : output_row(*shared, *k))
        row.push_back(v.sql());
      result.groups.push_back(std::move(row));
    }
  };
  int rc = exit_ok;
  std::function<void(job_outcome&, const snapshot_query&)> after
    = [&](job_outcome& o, const snapshot_query& query) {
        fill(o);
        result.query = query;
        rc = consume(result);
        // It reads through run_job's connections, gone once it returns.
        result.query = nullptr;
      };
  run_job(conninfo, shared, run, sys, out, &after);
  if (job_runner::stopped(out.res)) {
    fill(out);
    result.stopped = true;
    return consume(result);
  }
  return rc;
}

int cmd_aggregate(int argc, char** argv) {
  arg_parser args{
    "flow-etl aggregate",
    "GROUP BY any columns of a table (or of a query's rows) with any of "
    "sum, count, count(distinct), approx_count_distinct, avg, min, max,\n"
    "stddev and quantile, read by parallel partitions in one snapshot; "
    "optionally verified against the server's own GROUP BY (--verify)\n"
    "and written to a table replaced atomically (--output). See "
    "docs/etl.md."};
  declare_common(args, "the table to read (or --query)", "");
  args.value("query", "SQL",
             "read the rows of this SELECT instead of a table (one stream, "
             "in one snapshot)");
  args.value("group-by", "COLS",
             "comma-separated group columns, exact names (double-quote a "
             "name with a comma or a quote); none: one group");
  args.value("agg", "EXPRS",
             "comma-separated aggregates: sum(c), count(*), count(c), "
             "count(distinct c), approx_count_distinct(c), avg(c), min(c), "
             "max(c), stddev(c), quantile(c, q), each optionally AS name");
  args.value("where", "SQL", "filter the rows (the user's own SQL)");
  args.value("output", "NAME",
             "write one row per group to table NAME (in --schema), replaced "
             "atomically");
  args.flag("json", "print one JSON object per group, then a summary object");
  args.flag("verify",
            "compare every group and aggregate with the server's GROUP BY "
            "in the same snapshot (exit 1 when anything differs)");
  args.value("partitions", "P",
             "partition generators of a table read; 0 = one per hardware "
             "thread (1 for a table larger than a quarter of the server's "
             "shared buffers; with --pushdown 1, or one block range per "
             "hardware thread when the server expects 250000 groups or more)",
             "0");
  args.value("by", "COLUMN",
             "integer column whose ranges make the partitions, or ctid",
             "ctid");
  args.flag("pushdown",
            "let the server compute count, sum of integers, numerics and "
            "doubles, min and max per partition and group (exact), and "
            "merge those; other aggregates make the job read rows (said on "
            "stderr)");
  args.value("checkpoint-rows", "N",
             "with --output of a --table: read in steps of about N rows "
             "(the planner's estimate, at most 64 steps) and commit a "
             "checkpoint after each, for --resume; 0 = in one go",
             "1000000");
  args.flag("resume",
            "continue the interrupted run of this job (same --table, "
            "--agg, --group-by, --where, --by, --pushdown and --output) from "
            "its last checkpoint instead of starting over");
  args.value("reconnects", "N",
             "when the database connection is lost midway, try the job "
             "again up to N times (backoff 0.5 s doubling to 8 s): from its "
             "last checkpoint with --output, else from the start in a new "
             "snapshot; not with --listen",
             "5");
  declare_pipeline_options(args, "16384", wide_batch_help);
  declare_combine_option(args, "8");
  cluster::declare_options(args);
  if (!args.parse(argc, argv))
    return exit_ok;
  cluster nodes;
  nodes.read_options(args, etl_prog);
  agg_job job;
  if (args.given("table") == args.given("query"))
    throw usage_error("give exactly one of --table and --query");
  if (args.given("table")) {
    job.table = table_of(args, args.get("table"));
  } else {
    job.query = args.get("query");
    if (job.query.find_first_not_of(" \t\n") == std::string::npos)
      throw usage_error("--query: empty");
    job.table.schema = args.get("schema");
  }
  if (!args.given("agg"))
    throw usage_error("--agg is required (e.g. --agg 'sum(cents), count(*)')");
  job.aggs = parse_agg_list(args.get("agg"), "--agg");
  job.group_by = parse_name_list(args.get("group-by"), "--group-by");
  job.where = args.get("where");
  if (args.given("where"))
    check_filter(job.where, "--where");
  if (args.given("output")) {
    job.output = args.get("output");
    table_of(args, job.output);
    job.output_schema = args.get("schema");
  }
  agg_run_options run;
  run.opts = read_pipeline_options(args);
  if (run.opts.reducers == 0)
    run.opts.reducers = flow::default_reducers();
  read_combine_option(args, run.opts);
  if (args.given("batch"))
    run.batch_rows = run.opts.batch_size;
  run.json = args.is_set("json");
  run.verify = args.is_set("verify");
  run.partitions = args.get_uint("partitions", 0, 1024);
  run.by = args.get("by");
  try {
    pg::check_identifier(run.by, "--by");
  } catch (const input_error& e) {
    throw usage_error(e.what());
  }
  run.pushdown = args.is_set("pushdown");
  if (run.pushdown && nodes.listening())
    throw usage_error("--pushdown and --listen exclude each other (with "
                      "--pushdown the server aggregates every partition)");
  if (run.pushdown && !job.query.empty())
    throw usage_error("--pushdown needs --table (a query is read as one "
                      "stream)");
  if (nodes.listening() && !job.query.empty())
    throw usage_error("--query and --listen exclude each other (a query is "
                      "read as one stream; worker nodes read partitions of "
                      "a table)");
  run.checkpoint_rows = args.get_uint("checkpoint-rows", 0,
                                      std::uint64_t{1} << 62);
  run.resume = args.is_set("resume");
  run.reconnects = args.get_uint("reconnects", 0, 1000);
  if (run.resume && (job.output.empty() || !job.query.empty()))
    throw usage_error("--resume needs --output and --table (only those "
                      "runs take checkpoints)");
  if (run.resume && run.checkpoint_rows == 0)
    throw usage_error("--resume and --checkpoint-rows 0 exclude each other");
  prepare_session_environment();
  auto db = open_database(args);
  auto keep = args.is_set("keep");
  if (nodes.listening())
    run_listening(db, keep, nodes, [&](caf::actor_system& sys) {
      run.nodes = &nodes;
      return run_aggregate_jobs(db.conninfo, {job}, run, false, sys);
    });
  return with_database(db, keep, [&] {
    runtime rt;
    return run_aggregate_jobs(db.conninfo, {job}, run, false, rt.system());
  });
}

} // namespace flow::apps
