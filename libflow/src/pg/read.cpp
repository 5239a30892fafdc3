#include "flow/pg/read.hpp"

#include <algorithm>
#include <cstdio>
#include <cmath>

#include <pqxx/result>
#include <pqxx/stream_from>
#include <pqxx/transaction>

#include "flow/error.hpp"
#include "flow/logging.hpp"
#include "flow/parse.hpp"
#include "flow/pg/error.hpp"
#include "session.hpp"

#include <spdlog/spdlog.h>

namespace flow::pg {

namespace detail {

std::unique_ptr<pqxx::connection> connect(const std::string& conninfo) {
  return std::make_unique<pqxx::connection>(conninfo);
}

} // namespace detail

namespace {

std::string int_literal(std::int64_t x) {
  // Quoted and cast: the most negative int64 is not a valid bare literal.
  return "'" + std::to_string(x) + "'::bigint";
}

std::string join_quoted(const std::vector<std::string>& names) {
  std::string result;
  for (auto& n : names) {
    if (!result.empty())
      result += ", ";
    result += quote_ident(n);
  }
  return result;
}

std::vector<std::int64_t> parse_int_array(const std::string& text) {
  // "{1,2,3}" as PostgreSQL prints an integer array.
  std::vector<std::int64_t> result;
  if (text.size() < 2)
    return result;
  auto body = text.substr(1, text.size() - 2);
  std::size_t pos = 0;
  while (pos < body.size()) {
    auto comma = body.find(',', pos);
    if (comma == std::string::npos)
      comma = body.size();
    if (auto v = parse_int64(std::string_view{body}.substr(pos, comma - pos)))
      result.push_back(*v);
    pos = comma + 1;
  }
  return result;
}

} // namespace

// -- ranges -----------------------------------------------------------------

std::string range::predicate(const std::string& col) const {
  if (blocks) {
    // TID range scan (PostgreSQL 14+): only these blocks are read.
    std::string cond;
    if (lo)
      cond = "ctid >= '(" + std::to_string(*lo) + ",0)'::tid";
    if (hi)
      cond += (cond.empty() ? "" : " AND ") + std::string{"ctid < '("}
              + std::to_string(*hi) + ",0)'::tid";
    return cond.empty() ? "TRUE" : cond;
  }
  std::string cond;
  if (lo)
    cond = col + " >= " + int_literal(*lo);
  if (hi) {
    if (!cond.empty())
      cond += " AND ";
    cond += col + " < " + int_literal(*hi);
  }
  if (cond.empty())
    return nulls ? "TRUE" : col + " IS NOT NULL";
  if (nulls)
    return "(" + cond + " OR " + col + " IS NULL)";
  return cond;
}

std::string range::display() const {
  if (blocks)
    return "blocks [" + (lo ? std::to_string(*lo) : std::string{"0"}) + ", "
           + (hi ? std::to_string(*hi) : std::string{"end"}) + ")";
  auto result = "[" + (lo ? std::to_string(*lo) : std::string{"-inf"}) + ", "
                + (hi ? std::to_string(*hi) : std::string{"+inf"}) + ")";
  if (nulls)
    result += " or NULL";
  return result;
}

std::vector<range> ranges_from_bounds(std::vector<std::int64_t> bounds) {
  std::sort(bounds.begin(), bounds.end());
  bounds.erase(std::unique(bounds.begin(), bounds.end()), bounds.end());
  std::vector<range> result;
  std::optional<std::int64_t> lo;
  for (auto b : bounds) {
    result.push_back(range{lo, b, result.empty()});
    lo = b;
  }
  result.push_back(range{lo, std::nullopt, result.empty()});
  return result;
}

// -- copy_reader ------------------------------------------------------------

struct copy_reader::impl {
  std::string conninfo;
  std::string name;
  std::string target; // "(SELECT ...)": COPY target
  std::unique_ptr<pqxx::connection> conn;
  std::unique_ptr<pqxx::transaction_base> tx;
  std::unique_ptr<pqxx::stream_from> stream;
  std::string line;
  row_view row;
  std::uint64_t rows = 0;
  bool finished = false;
  std::optional<std::uint64_t> estimate; // the planner's rows, when known

  ~impl() {
    // A COPY abandoned half-way (a cancelled or failed job): ask the server
    // to stop sending, so that closing the stream does not drain it all.
    if (stream && !finished) {
      try {
        conn->cancel_query();
      } catch (...) {
        // closing anyway
      }
    }
    stream.reset();
    tx.reset();
    conn.reset();
  }
};

copy_reader::copy_reader(std::unique_ptr<impl> ptr) : impl_(std::move(ptr)) {
  // nop
}

copy_reader::copy_reader(copy_reader&&) noexcept = default;

copy_reader& copy_reader::operator=(copy_reader&&) noexcept = default;

copy_reader::~copy_reader() = default;

const row_view* copy_reader::next() {
  auto& d = *impl_;
  if (d.finished)
    return nullptr;
  try {
    if (!d.stream)
      d.stream = std::make_unique<pqxx::stream_from>(*d.tx, d.target);
    if (!d.stream->get_raw_line(d.line)) {
      d.finished = true;
      d.stream->complete();
      // Every row is in hand. The transaction only read, so a connection
      // lost while committing it (libpqxx's in_doubt_error; seen when the
      // server restarted at that very moment) loses nothing.
      try {
        d.tx->commit();
      } catch (const std::exception& e) {
        logger()->debug("{}: ending the read-only transaction: {}", d.name,
                        e.what());
      }
      return nullptr;
    }
  } catch (...) {
    d.finished = true;
    rethrow_as_input_error(d.conninfo, d.name);
  }
  if (!d.line.empty() && d.line.back() == '\n')
    d.line.pop_back();
  d.row.assign(d.line);
  ++d.rows;
  return &d.row;
}

std::uint64_t copy_reader::rows() const noexcept {
  return impl_->rows;
}

std::optional<std::uint64_t> copy_reader::estimate() const noexcept {
  return impl_->estimate;
}

const std::string& copy_reader::name() const noexcept {
  return impl_->name;
}

void copy_reader::fail(const decode_error& e) const {
  throw input_error(impl_->name + ", row " + std::to_string(impl_->rows)
                      + ", column " + std::to_string(e.column() + 1) + ": "
                      + e.what(),
                    errc::bad_input);
}

caf::expected<std::size_t> ctid_partitions(const std::string& conninfo,
                                           const table_name& table,
                                           std::size_t cores) {
  try {
    auto conn = detail::connect(conninfo);
    pqxx::read_transaction tx{*conn};
    // Both in blocks; the name goes in as a value, resolved by the server.
    auto r = tx.exec_params(
      "SELECT pg_relation_size($1::regclass) "
      "/ current_setting('block_size')::bigint, "
      "(SELECT setting::bigint FROM pg_settings "
      "WHERE name = 'shared_buffers')",
      table.quoted());
    auto pages = r[0][0].as<std::int64_t>();
    auto buffers = r[0][1].as<std::int64_t>();
    if (cores <= 1 || pages <= buffers / 4)
      return std::max<std::size_t>(1, cores);
    logger()->info("{} ({} pages) is larger than a quarter of the server's "
                   "shared buffers ({} pages): one partition, a sequential "
                   "scan through PostgreSQL's ring buffer (--partitions P "
                   "overrides)",
                   table.display(), pages, buffers);
    return std::size_t{1};
  } catch (...) {
    return current_error(conninfo);
  }
}

caf::expected<copy_reader> open_query(const std::string& conninfo,
                                      const std::string& select) {
  try {
    auto d = std::make_unique<copy_reader::impl>();
    d->conninfo = conninfo;
    d->name = "query";
    d->target = "(" + select + ")";
    d->conn = detail::connect(conninfo);
    d->tx = std::make_unique<pqxx::work>(*d->conn);
    return copy_reader{std::move(d)};
  } catch (...) {
    return current_error(conninfo);
  }
}

// -- partitions in a snapshot ---------------------------------------------

caf::expected<copy_reader> open_query(const std::string& conninfo,
                                      const std::string& select,
                                      const std::string& snapshot) {
  try {
    auto d = std::make_unique<copy_reader::impl>();
    d->conninfo = conninfo;
    d->name = "query";
    d->target = "(" + select + ")";
    d->conn = detail::connect(conninfo);
    auto ptx = std::make_unique<detail::snapshot_tx>(*d->conn);
    ptx->exec("SET TRANSACTION SNAPSHOT " + ptx->quote(snapshot));
    d->tx = std::move(ptx);
    return copy_reader{std::move(d)};
  } catch (...) {
    return current_error(conninfo);
  }
}

namespace {

std::string partition_name(std::size_t i, std::size_t n,
                           const table_name& table, const range& r) {
  return "partition " + std::to_string(i + 1) + "/" + std::to_string(n)
         + " of " + table.display() + " " + r.display();
}

// How a reader's session has the server plan its query.
struct session_settings {
  // Rows in the heap's physical order every time (row reads, which a
  // resumed job may skip a prefix of): no scan joining another one midway.
  bool in_order = true;
  // The server may run the query with parallel workers (a push-down read of
  // one partition). Otherwise none: rows in order must not interleave, and
  // a partition is one of several ranges read at once, where PostgreSQL 15,
  // which has no parallel TID range scan, would make a parallel plan of a
  // ctid range a parallel scan of the whole table with the range a mere
  // filter, so P partitions would read the table P times.
  bool parallel = false;
  // See read_spec::sort_groups and read_spec::min_work_mem.
  bool sort_groups = false;
  std::int64_t min_work_mem = 0;
};

// A reader's session: its own connection, a transaction that imported the
// snapshot, planned as `how` says. Throws libpqxx exceptions.
std::unique_ptr<copy_reader::impl>
snapshot_session(const std::string& conninfo, std::string name,
                 const std::string& select, const std::string& snapshot,
                 const session_settings& how = {}) {
  auto d = std::make_unique<copy_reader::impl>();
  d->conninfo = conninfo;
  d->name = std::move(name);
  d->target = "(" + select + ")";
  d->conn = detail::connect(conninfo);
  auto ptx = std::make_unique<detail::snapshot_tx>(*d->conn);
  ptx->exec("SET TRANSACTION SNAPSHOT " + ptx->quote(snapshot));
  if (how.in_order)
    ptx->exec("SET LOCAL synchronize_seqscans = off");
  if (!how.parallel)
    ptx->exec("SET LOCAL max_parallel_workers_per_gather = 0");
  if (how.sort_groups)
    ptx->exec("SET LOCAL enable_hashagg = off");
  if (how.min_work_mem > 0) {
    // set_config(..., true) is SET LOCAL; the WHERE keeps a larger setting.
    auto kb = std::to_string((how.min_work_mem + 1023) / 1024);
    ptx->exec("SELECT set_config('work_mem', '" + kb + "kB', true) WHERE "
              "pg_size_bytes(current_setting('work_mem')) < "
              + std::to_string(how.min_work_mem));
  }
  d->tx = std::move(ptx);
  return d;
}

std::string select_of(const std::vector<std::string>& columns,
                      const std::string& quoted_table,
                      const std::string& quoted_column, const range& r,
                      std::uint64_t offset, const std::string& filter = {}) {
  auto select = "SELECT " + join_quoted(columns) + " FROM " + quoted_table
                + " WHERE " + r.predicate(quoted_column);
  if (!filter.empty())
    select += " AND (" + filter + ")";
  if (offset > 0)
    select += " OFFSET " + std::to_string(offset);
  return select;
}

// Length-prefixed fields: "<bytes>:<text>" each, so any byte may appear.
void put_field(std::string& out, const std::string& x) {
  out += std::to_string(x.size());
  out += ':';
  out += x;
}

bool get_field(const std::string& in, std::size_t& pos, std::string& x) {
  auto colon = in.find(':', pos);
  if (colon == std::string::npos || colon == pos || colon - pos > 12)
    return false;
  std::uint64_t n = 0;
  for (auto i = pos; i < colon; ++i) {
    if (in[i] < '0' || in[i] > '9')
      return false;
    n = n * 10 + static_cast<std::uint64_t>(in[i] - '0');
  }
  if (n > in.size() - colon - 1)
    return false;
  x = in.substr(colon + 1, n);
  pos = colon + 1 + n;
  return true;
}

std::string opt_text(const std::optional<std::int64_t>& x) {
  return x ? std::to_string(*x) : std::string{};
}

} // namespace

std::string partition_ticket::encode() const {
  std::string out = "flow.partition.2;";
  put_field(out, conninfo);
  put_field(out, table.schema);
  put_field(out, table.table);
  put_field(out, std::to_string(columns.size()));
  for (auto& c : columns)
    put_field(out, c);
  put_field(out, partition_column);
  put_field(out, opt_text(part.lo));
  put_field(out, opt_text(part.hi));
  put_field(out, part.nulls ? "1" : "0");
  put_field(out, part.blocks ? "1" : "0");
  put_field(out, std::to_string(index));
  put_field(out, std::to_string(count));
  put_field(out, snapshot);
  put_field(out, std::to_string(offset));
  put_field(out, filter);
  put_field(out, std::to_string(extra.size()));
  for (auto& x : extra)
    put_field(out, x);
  return out;
}

caf::expected<partition_ticket>
partition_ticket::decode(const std::string& text) {
  auto bad = [](const std::string& why) {
    return make_error(errc::bad_input, "partition ticket: " + why);
  };
  static const std::string magic = "flow.partition.2;";
  if (text.compare(0, magic.size(), magic) != 0)
    return bad("not a partition ticket (or another version)");
  std::size_t pos = magic.size();
  std::string f;
  auto next = [&](std::string& x) { return get_field(text, pos, x); };
  auto next_int = [&](std::int64_t& x, bool allow_empty, bool& empty) {
    if (!next(f))
      return false;
    empty = f.empty();
    if (empty)
      return allow_empty;
    std::string why;
    auto v = flow::parse_int64(f, why);
    if (!v)
      return false;
    x = *v;
    return true;
  };
  partition_ticket t;
  std::int64_t n = 0;
  bool empty = false;
  if (!next(t.conninfo) || !next(t.table.schema) || !next(t.table.table)
      || !next_int(n, false, empty) || n < 0 || n > 1600)
    return bad("malformed header");
  for (std::int64_t i = 0; i < n; ++i) {
    t.columns.emplace_back();
    if (!next(t.columns.back()))
      return bad("malformed column list");
  }
  std::int64_t v = 0;
  if (!next(t.partition_column))
    return bad("malformed partition column");
  if (!next_int(v, true, empty))
    return bad("malformed lower bound");
  if (!empty)
    t.part.lo = v;
  if (!next_int(v, true, empty))
    return bad("malformed upper bound");
  if (!empty)
    t.part.hi = v;
  if (!next_int(v, false, empty) || v < 0 || v > 1)
    return bad("malformed NULL flag");
  t.part.nulls = v == 1;
  if (!next_int(v, false, empty) || v < 0 || v > 1)
    return bad("malformed block flag");
  t.part.blocks = v == 1;
  std::int64_t idx = 0;
  std::int64_t cnt = 0;
  std::int64_t off = 0;
  if (!next_int(idx, false, empty) || !next_int(cnt, false, empty)
      || idx < 0 || cnt < 1 || idx >= cnt)
    return bad("malformed partition index");
  t.index = static_cast<std::size_t>(idx);
  t.count = static_cast<std::size_t>(cnt);
  if (!next(t.snapshot) || t.snapshot.empty())
    return bad("no snapshot");
  if (!next_int(off, false, empty) || off < 0)
    return bad("malformed offset");
  t.offset = static_cast<std::uint64_t>(off);
  if (!next(t.filter))
    return bad("malformed filter");
  std::int64_t m = 0;
  if (!next_int(m, false, empty) || m < 0 || m > 64)
    return bad("malformed extra fields");
  for (std::int64_t i = 0; i < m; ++i) {
    t.extra.emplace_back();
    if (!next(t.extra.back()))
      return bad("malformed extra field");
  }
  if (pos != text.size())
    return bad("trailing bytes");
  return t;
}

caf::expected<copy_reader> open_partition(const partition_ticket& ticket,
                                          const std::string& conninfo) {
  auto ci = conninfo.empty() ? ticket.conninfo : conninfo;
  try {
    if (!ticket.table.schema.empty())
      check_identifier(ticket.table.schema, "schema");
    if (ticket.columns.empty())
      throw input_error("partition ticket: no columns");
    auto select = select_of(ticket.columns, ticket.table.quoted(),
                            quote_ident(ticket.partition_column), ticket.part,
                            ticket.offset, ticket.filter);
    return copy_reader{snapshot_session(
      ci, partition_name(ticket.index, ticket.count, ticket.table, ticket.part),
      select, ticket.snapshot)};
  } catch (...) {
    return current_error(ci);
  }
}

// -- partitioned_read -------------------------------------------------------

struct partitioned_read::impl {
  read_spec spec;
  std::string table;  // quoted
  std::string column; // quoted
  std::unique_ptr<pqxx::connection> conn;
  std::unique_ptr<detail::snapshot_tx> tx;
  std::string snapshot;
  std::vector<range> ranges;
  std::vector<std::optional<std::uint64_t>> estimates; // one per range

  ~impl() {
    release();
  }

  void release() noexcept {
    if (tx) {
      try {
        tx->commit();
      } catch (...) {
        // read-only: nothing to lose
      }
      tx.reset();
    }
    conn.reset();
  }

  // True when the server ended the coordinator's session. Only a lost
  // connection counts: a transaction that an SQL error aborted (libpqxx
  // then refuses further statements) is no lost connection.
  bool lost() noexcept {
    return tx && session_lost([this] { tx->exec("SELECT 1"); });
  }

  // Opens a partition's session: a transaction that imported the snapshot.
  // Out of order (push-down), the server's parallel workers run the query
  // when it is the only partition; with several, the partitions are the
  // parallelism (see session_settings).
  std::unique_ptr<copy_reader::impl> session(std::size_t i,
                                             const std::string& select,
                                             bool in_order = true) {
    if (!tx)
      throw input_error("partitioned read: the snapshot was released before "
                        "every partition imported it",
                        errc::invalid_config);
    auto name = partition_name(i, ranges.size(), spec.table, ranges[i]);
    session_settings how;
    how.in_order = in_order;
    if (!in_order) {
      how.parallel = ranges.size() == 1;
      how.sort_groups = spec.sort_groups;
      how.min_work_mem = spec.min_work_mem;
    }
    try {
      return snapshot_session(spec.conninfo, name, select, snapshot, how);
    } catch (const pqxx::sql_error& e) {
      // An exported snapshot dies with the transaction that exported it: a
      // server that ended this coordinator's session (pg_terminate_backend,
      // a restart) makes the import fail with 22023 "invalid snapshot
      // identifier", or 55000 "could not import the requested snapshot" when
      // it is still dying. That is a lost connection, which a job may
      // reconnect from, not bad input: report the coordinator's own error.
      if (spec.snapshot.empty()
          && (e.sqlstate() == "22023" || e.sqlstate() == "55000")
          && lost())
        throw input_error(snapshot_lost_text(name), errc::source_failed);
      throw;
    }
  }
};

partitioned_read::partitioned_read(std::unique_ptr<impl> ptr)
  : impl_(std::move(ptr)) {
  // nop
}

partitioned_read::partitioned_read(partitioned_read&&) noexcept = default;

partitioned_read&
partitioned_read::operator=(partitioned_read&&) noexcept = default;

partitioned_read::~partitioned_read() = default;

namespace {

/// Throws input_error for a partitioned read asked for wrongly.
void check_read_spec(const read_spec& spec) {
  if (spec.partitions == 0)
    throw input_error("partitioned read: 0 partitions", errc::invalid_config);
  if (!spec.table.schema.empty())
    check_identifier(spec.table.schema, "schema");
  check_identifier(spec.table.table, "table");
  check_identifier(spec.partition_column, "partition column");
  if (spec.columns.empty())
    throw input_error("partitioned read: no columns");
  for (auto& c : spec.columns)
    check_identifier(c, "column");
}

/// Equal shares of a heap of `pages` blocks, by ctid; the last range is open
/// so it also covers blocks added after the size was read (whose rows the
/// snapshot does not see anyway).
std::vector<range> block_ranges(std::int64_t pages, std::size_t partitions) {
  std::vector<range> result;
  std::optional<std::int64_t> lo;
  auto parts = static_cast<std::int64_t>(partitions);
  for (std::int64_t i = 1; i < parts; ++i) {
    auto b = pages * i / parts;
    if (b == 0 || (lo && b == *lo))
      continue;
    result.push_back(range{lo, b, false, true});
    lo = b;
  }
  result.push_back(range{lo, std::nullopt, false, true});
  return result;
}

/// The planner's estimate of the rows in each of `ranges` of a table of
/// `pages` pages whose pg_class says `reltuples` rows in `relpages` pages:
/// the planner's own density (reltuples / relpages) times the current pages,
/// shared by blocks for ctid ranges and equally for value ranges (cut at
/// sampled quantiles). Unknown when the table was never analysed or
/// vacuumed (reltuples < 0 or relpages 0).
std::vector<std::optional<std::uint64_t>>
range_estimates(const std::vector<range>& ranges, double reltuples,
                std::int64_t relpages, std::int64_t pages) {
  std::vector<std::optional<std::uint64_t>> result(ranges.size());
  if (reltuples < 0 || relpages <= 0 || ranges.empty())
    return result;
  auto density = reltuples / static_cast<double>(relpages);
  auto rows = density * static_cast<double>(pages);
  for (std::size_t i = 0; i < ranges.size(); ++i) {
    auto& r = ranges[i];
    double share;
    if (r.blocks) {
      auto lo = std::clamp<std::int64_t>(r.lo.value_or(0), 0, pages);
      auto hi = std::clamp<std::int64_t>(r.hi.value_or(pages), lo, pages);
      share = static_cast<double>(hi - lo) * density;
    } else {
      share = rows / static_cast<double>(ranges.size());
    }
    result[i] = static_cast<std::uint64_t>(std::llround(share));
  }
  return result;
}

/// Throws input_error unless the partition column of table `oid` exists and
/// holds integers.
void check_integer_column(detail::snapshot_tx& tx, std::int64_t oid,
                          const read_spec& s) {
  auto type = tx.exec_params(
    "SELECT a.atttypid::regtype::text FROM pg_attribute a "
    "WHERE a.attrelid = $1::bigint::oid AND a.attname = $2 "
    "AND a.attnum > 0 AND NOT a.attisdropped",
    oid, s.partition_column);
  if (type.empty())
    throw input_error("42703 undefined_column: column \""
                      + s.partition_column + "\" of relation \""
                      + s.table.display() + "\" does not exist");
  auto tname = type[0][0].as<std::string>();
  if (tname != "bigint" && tname != "integer" && tname != "smallint")
    throw input_error("partition column \"" + s.partition_column + "\" is "
                      + tname + ", not an integer column");
}

/// The values of the partition column that split the table into
/// `s.partitions` equal shares, from a sample of at most `s.sample_pages`
/// pages of a table (relkind `kind`) of `pages` pages.
std::vector<std::int64_t> sample_bounds(detail::snapshot_tx& tx,
                                        const std::string& table,
                                        const std::string& column,
                                        const std::string& kind,
                                        std::int64_t pages,
                                        const read_spec& s) {
  std::vector<std::int64_t> bounds;
  if (s.partitions <= 1)
    return bounds;
  std::string qs;
  for (std::size_t i = 1; i < s.partitions; ++i) {
    char buf[32];
    std::snprintf(buf, sizeof(buf), "%.17g",
                  static_cast<double>(i) / static_cast<double>(s.partitions));
    qs += (qs.empty() ? "" : ",") + std::string{buf};
  }
  std::string from = table;
  if ((kind == "r" || kind == "m") && pages > s.sample_pages
      && s.sample_pages > 0) {
    char pct[32];
    std::snprintf(pct, sizeof(pct), "%.6f",
                  100.0 * static_cast<double>(s.sample_pages)
                    / static_cast<double>(pages));
    from += " TABLESAMPLE SYSTEM (" + std::string{pct} + ") REPEATABLE (42)";
  }
  auto q = tx.exec("SELECT percentile_disc(ARRAY[" + qs
                   + "]::float8[]) WITHIN GROUP (ORDER BY " + column
                   + ")::bigint[]::text FROM " + from);
  if (!q.empty() && !q[0][0].is_null())
    bounds = parse_int_array(q[0][0].as<std::string>());
  return bounds;
}

} // namespace

caf::expected<partitioned_read> partitioned_read::open(read_spec spec) {
  auto conninfo = spec.conninfo;
  try {
    check_read_spec(spec);
    auto d = std::make_unique<impl>();
    d->table = spec.table.quoted();
    d->column = quote_ident(spec.partition_column);
    d->spec = std::move(spec);
    auto& s = d->spec;
    d->conn = detail::connect(s.conninfo);
    d->tx = std::make_unique<detail::snapshot_tx>(*d->conn);
    auto& tx = *d->tx;
    if (s.snapshot.empty()) {
      d->snapshot
        = tx.exec("SELECT pg_export_snapshot()")[0][0].as<std::string>();
    } else {
      // Another transaction's snapshot: the partitions import the same id,
      // valid while that transaction stays open.
      tx.exec("SET TRANSACTION SNAPSHOT " + tx.quote(s.snapshot));
      d->snapshot = s.snapshot;
    }
    // The name goes in as a value and is resolved by the server: a missing
    // table is 42P01, whatever the name holds.
    auto info = tx.exec_params(
      "SELECT c.oid::bigint, c.relkind::text, "
      "pg_relation_size(c.oid) / current_setting('block_size')::bigint, "
      "c.reltuples::float8, c.relpages::bigint "
      "FROM pg_class c WHERE c.oid = $1::regclass",
      d->table);
    auto oid = info[0][0].as<std::int64_t>();
    auto kind = info[0][1].as<std::string>();
    auto pages = info[0][2].as<std::int64_t>();
    auto reltuples = info[0][3].as<double>();
    auto relpages = info[0][4].as<std::int64_t>();
    if (!s.plan.empty()) {
      d->ranges = s.plan;
    } else if (s.partition_column == "ctid") {
      d->ranges = block_ranges(pages, s.partitions);
    } else {
      check_integer_column(tx, oid, s);
      d->ranges = ranges_from_bounds(
        sample_bounds(tx, d->table, d->column, kind, pages, s));
    }
    d->estimates = range_estimates(d->ranges, reltuples, relpages, pages);
    return partitioned_read{std::move(d)};
  } catch (...) {
    return current_error(conninfo);
  }
}

const std::vector<range>& partitioned_read::ranges() const noexcept {
  return impl_->ranges;
}

const std::string& partitioned_read::snapshot_id() const noexcept {
  return impl_->snapshot;
}

const read_spec& partitioned_read::spec() const noexcept {
  return impl_->spec;
}

caf::expected<text_rows> partitioned_read::query(const std::string& sql) {
  try {
    if (!impl_->tx)
      throw input_error("partitioned read: the snapshot was released",
                        errc::invalid_config);
    auto res = impl_->tx->exec(sql);
    text_rows result;
    for (std::size_t i = 0; i < res.size(); ++i) {
      std::vector<std::optional<std::string>> fields;
      auto row = res[static_cast<pqxx::result::size_type>(i)];
      for (std::size_t j = 0; j < row.size(); ++j) {
        auto f = row[static_cast<pqxx::row::size_type>(j)];
        if (f.is_null())
          fields.emplace_back();
        else
          fields.emplace_back(f.c_str());
      }
      result.push_back(std::move(fields));
    }
    return result;
  } catch (...) {
    return current_error(impl_->spec.conninfo);
  }
}

void partitioned_read::release() {
  impl_->release();
}

bool partitioned_read::exporter_lost() {
  return impl_->lost();
}

caf::expected<std::vector<copy_reader>> partitioned_read::readers() {
  try {
    std::vector<copy_reader> result;
    auto& offsets = impl_->spec.offsets;
    for (std::size_t i = 0; i < impl_->ranges.size(); ++i) {
      auto select = select_of(impl_->spec.columns, impl_->table, impl_->column,
                              impl_->ranges[i],
                              i < offsets.size() ? offsets[i] : 0,
                              impl_->spec.filter);
      auto session = impl_->session(i, select);
      session->estimate = impl_->estimates[i];
      if (session->estimate && i < offsets.size())
        *session->estimate -= std::min(*session->estimate, offsets[i]);
      result.emplace_back(std::move(session));
    }
    return result;
  } catch (...) {
    return current_error(impl_->spec.conninfo);
  }
}

caf::expected<std::vector<partition_ticket>>
partitioned_read::tickets() const {
  auto ci = without_password(impl_->spec.conninfo);
  if (!ci)
    return std::move(ci.error());
  if (!impl_->tx)
    return make_error(errc::invalid_config,
                      "partitioned read: the snapshot was released");
  std::vector<partition_ticket> result;
  auto& offsets = impl_->spec.offsets;
  for (std::size_t i = 0; i < impl_->ranges.size(); ++i) {
    partition_ticket t;
    t.conninfo = *ci;
    t.table = impl_->spec.table;
    t.columns = impl_->spec.columns;
    t.partition_column = impl_->spec.partition_column;
    t.part = impl_->ranges[i];
    t.index = i;
    t.count = impl_->ranges.size();
    t.snapshot = impl_->snapshot;
    t.offset = i < offsets.size() ? offsets[i] : 0;
    t.filter = impl_->spec.filter;
    // As readers() does: the skipped rows are not read.
    t.estimate = impl_->estimates[i];
    if (t.estimate)
      *t.estimate -= std::min(*t.estimate, t.offset);
    result.push_back(std::move(t));
  }
  return result;
}

caf::expected<std::vector<copy_reader>>
partitioned_read::grouped_readers(const std::string& select_list,
                                  const std::string& group_by) {
  try {
    std::vector<copy_reader> result;
    for (std::size_t i = 0; i < impl_->ranges.size(); ++i) {
      auto select = "SELECT " + select_list + " FROM " + impl_->table
                    + " WHERE " + impl_->ranges[i].predicate(impl_->column);
      if (!impl_->spec.filter.empty())
        select += " AND (" + impl_->spec.filter + ")";
      if (!group_by.empty())
        select += " GROUP BY " + group_by;
      result.emplace_back(impl_->session(i, select, false));
    }
    return result;
  } catch (...) {
    return current_error(impl_->spec.conninfo);
  }
}

caf::expected<std::vector<copy_reader>>
partitioned_read::aggregate_readers(const pushdown_spec& spec) {
  try {
    if (spec.group_columns.empty())
      throw input_error("push-down: no grouping columns", errc::invalid_config);
    auto groups = join_quoted(spec.group_columns);
    auto v = quote_ident(spec.value_column);
    std::vector<copy_reader> result;
    for (std::size_t i = 0; i < impl_->ranges.size(); ++i) {
      // sum(bigint) is numeric on the server: exact, read as int128.
      auto select = "SELECT " + groups + ", sum(" + v + "), count(" + v
                    + "), min(" + v + "), max(" + v + ") FROM " + impl_->table
                    + " WHERE " + impl_->ranges[i].predicate(impl_->column)
                    + " GROUP BY " + groups + " HAVING count(" + v + ") > 0";
      result.emplace_back(impl_->session(i, select, false));
    }
    return result;
  } catch (...) {
    return current_error(impl_->spec.conninfo);
  }
}

caf::expected<std::vector<source<keyed_aggregate>>>
partitioned_read::aggregate_sources(const pushdown_spec& spec) {
  if (!spec.key)
    return make_error(errc::invalid_config, "push-down: no key function");
  auto rs = aggregate_readers(spec);
  if (!rs)
    return std::move(rs.error());
  auto g = spec.group_columns.size();
  auto decode = [g, key = spec.key](const row_view& r) {
    keyed_aggregate x;
    x.key = key(r);
    x.agg.sum = r.int128_value(g);
    auto n = r.int64(g + 1);
    x.agg.count = static_cast<std::uint64_t>(n);
    x.agg.min = r.int64(g + 2);
    x.agg.max = r.int64(g + 3);
    return x;
  };
  std::vector<source<keyed_aggregate>> result;
  for (auto& r : *rs)
    result.emplace_back(
      std::make_unique<row_source<keyed_aggregate, decltype(decode)>>(
        std::move(r), decode));
  return result;
}

} // namespace flow::pg
