#include "flow/pg/copy_sink.hpp"
#include "flow/pg/ownership.hpp"

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <iterator>
#include <map>
#include <stdexcept>
#include <string_view>
#include <type_traits>

#include <libpq-fe.h>
#include <unistd.h>

#include "flow/logging.hpp"
#include "flow/pg/error.hpp"

#include <spdlog/spdlog.h>

namespace flow::pg {

void append_copy_field(std::string& out,
                       const std::optional<std::string_view>& x) {
  if (!x) {
    out += "\\N";
    return;
  }
  // Runs of plain bytes go in with one append each; only the four special
  // bytes are escaped.
  auto text = *x;
  std::size_t start = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    // One test for the usual byte: every special one is '\\' or at most
    // '\r'.
    if (static_cast<unsigned char>(text[i]) > '\r' && text[i] != '\\')
      continue;
    const char* esc = nullptr;
    switch (text[i]) {
      case '\\':
        esc = "\\\\";
        break;
      case '\t':
        esc = "\\t";
        break;
      case '\n':
        esc = "\\n";
        break;
      case '\r':
        esc = "\\r";
        break;
      default:
        continue;
    }
    out.append(text.data() + start, i - start);
    out.append(esc, 2);
    start = i + 1;
  }
  out.append(text.data() + start, text.size() - start);
}

void append_copy_int(std::string& out, std::int64_t x) {
  // Into the line directly, without a string of its own.
  char buf[24];
  auto end = std::to_chars(buf, buf + sizeof(buf), x).ptr;
  out.append(buf, end);
}

namespace {

/// Appends `x` in network byte order, as COPY binary wants every number.
template <class T>
void put_big_endian(std::string& out, T x) {
  auto u = static_cast<std::make_unsigned_t<T>>(x);
  char bytes[sizeof(T)];
  for (std::size_t i = 0; i < sizeof(T); ++i)
    bytes[sizeof(T) - 1 - i] = static_cast<char>((u >> (8 * i)) & 0xff);
  out.append(bytes, sizeof(T));
}

/// The start of a COPY binary stream: signature, flags, header extension.
constexpr char binary_header[] = "PGCOPY\n\377\r\n\0\0\0\0\0\0\0\0\0";
constexpr std::size_t binary_header_size = sizeof(binary_header) - 1;
static_assert(binary_header_size == 19);

bool leap_year(int y) {
  return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/// Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar
/// (H. Hinnant's days_from_civil).
std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  auto era = (y >= 0 ? y : y - 399) / 400;
  auto yoe = static_cast<unsigned>(y - era * 400);
  auto doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  auto doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

} // namespace

void begin_binary_row(std::string& out, std::uint16_t fields) {
  // The count is an int16 and -1 ends the stream (PostgreSQL allows at most
  // 1600 columns anyway).
  if (fields > 1600)
    throw std::invalid_argument("begin_binary_row: "
                                + std::to_string(fields)
                                + " fields (PostgreSQL allows 1600)");
  put_big_endian(out, static_cast<std::int16_t>(fields));
}

void append_binary_int(std::string& out, std::int64_t x) {
  put_big_endian(out, std::int32_t{8});
  put_big_endian(out, x);
}

void append_binary_text(std::string& out,
                        const std::optional<std::string_view>& x) {
  if (!x) {
    put_big_endian(out, std::int32_t{-1});
    return;
  }
  if (x->size() > 0x3fffffff)
    throw std::length_error("append_binary_text: field over 1 GB");
  put_big_endian(out, static_cast<std::int32_t>(x->size()));
  out.append(x->data(), x->size());
}

void append_binary_timestamp(std::string& out, std::int64_t micros) {
  append_binary_int(out, micros);
}

std::int64_t timestamp_micros(int year, int month, int day, int hour,
                              int minute, int second) {
  static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (year < 1 || year > 9999 || month < 1 || month > 12 || day < 1
      || day > (month == 2 && leap_year(year) ? 29 : days[month - 1])
      || hour < 0 || hour > 23 || minute < 0 || minute > 59 || second < 0
      || second > 59)
    throw std::invalid_argument("timestamp_micros: no such date and time");
  // PostgreSQL counts from 2000-01-01, 10957 days after 1970-01-01.
  auto d = days_from_civil(year, static_cast<unsigned>(month),
                           static_cast<unsigned>(day))
           - 10957;
  return ((d * 24 + hour) * 60 + minute) * 60'000'000LL + second * 1'000'000LL;
}

namespace {

std::string one_line(std::string x) {
  while (!x.empty() && (x.back() == '\n' || x.back() == ' '))
    x.pop_back();
  for (auto& c : x)
    if (c == '\n')
      c = ' ';
  return x;
}

std::string staging_suffix() {
  static std::atomic<unsigned> counter{0};
  return "_flow_staging_" + std::to_string(::getpid()) + "_"
         + std::to_string(counter++);
}

/// A libpq connection; every failure throws one line with the SQL state.
class session {
public:
  explicit session(const std::string& conninfo)
    : conninfo_(conninfo), conn_(PQconnectdb(conninfo.c_str())) {
    if (PQstatus(conn_) != CONNECTION_OK)
      throw std::runtime_error(scrub(
        "cannot connect: " + one_line(PQerrorMessage(conn_)), conninfo_));
    // Server notices ("table ... does not exist, skipping") go to the log at
    // debug level instead of libpq's default, stderr.
    PQsetNoticeProcessor(
      conn_,
      [](void*, const char* msg) {
        logger()->debug("server notice: {}", one_line(msg));
      },
      nullptr);
  }

  ~session() {
    PQfinish(conn_);
  }

  session(const session&) = delete;
  session& operator=(const session&) = delete;

  void exec(const std::string& sql) {
    check(PQexec(conn_, sql.c_str()), PGRES_COMMAND_OK, sql);
  }

  /// Rows of text (NULL as nullopt) of a query.
  std::vector<std::vector<std::optional<std::string>>>
  rows(const std::string& sql) {
    auto res = PQexec(conn_, sql.c_str());
    if (PQresultStatus(res) != PGRES_TUPLES_OK)
      check(res, PGRES_TUPLES_OK, sql);
    std::vector<std::vector<std::optional<std::string>>> result;
    for (int r = 0; r < PQntuples(res); ++r) {
      auto& row = result.emplace_back();
      for (int c = 0; c < PQnfields(res); ++c)
        if (PQgetisnull(res, r, c))
          row.emplace_back();
        else
          row.emplace_back(PQgetvalue(res, r, c));
    }
    PQclear(res);
    return result;
  }

  std::string scalar(const std::string& sql) {
    auto res = PQexec(conn_, sql.c_str());
    if (PQresultStatus(res) != PGRES_TUPLES_OK)
      check(res, PGRES_TUPLES_OK, sql);
    std::string result = PQgetvalue(res, 0, 0);
    PQclear(res);
    return result;
  }

  /// One COPY ... FROM STDIN of `pieces`, sent in this order as they are
  /// (libpq copies each into its output buffer: no concatenation here).
  void copy_in(const std::string& table,
               const std::vector<std::string_view>& pieces,
               copy_format format) {
    auto cmd = "COPY " + table + " FROM STDIN";
    if (format == copy_format::binary)
      cmd += " (FORMAT binary)";
    check(PQexec(conn_, cmd.c_str()), PGRES_COPY_IN, cmd);
    bool ok = true;
    for (auto piece : pieces) {
      // CopyData messages are limited to 1 GB - 1 by the protocol (and to
      // an int by libpq): a larger piece goes in parts.
      while (ok && !piece.empty()) {
        auto n = std::min<std::size_t>(piece.size(), std::size_t{1} << 28);
        ok = PQputCopyData(conn_, piece.data(), static_cast<int>(n)) == 1;
        piece.remove_prefix(n);
      }
    }
    if (!ok || PQputCopyEnd(conn_, nullptr) != 1)
      throw std::runtime_error(scrub(
        "COPY failed: " + one_line(PQerrorMessage(conn_)), conninfo_));
    check(PQgetResult(conn_), PGRES_COMMAND_OK, cmd);
    while (auto rest = PQgetResult(conn_))
      PQclear(rest);
  }

private:
  void check(PGresult* res, ExecStatusType want, const std::string& what) {
    if (res != nullptr && PQresultStatus(res) == want) {
      PQclear(res);
      return;
    }
    std::string state;
    if (res != nullptr)
      if (auto s = PQresultErrorField(res, PG_DIAG_SQLSTATE))
        state = s;
    std::string msg = res != nullptr ? PQresultErrorMessage(res)
                                     : PQerrorMessage(conn_);
    PQclear(res);
    auto head = state.empty() ? std::string{}
                              : state + " " + condition_name(state) + ": ";
    throw std::runtime_error(scrub(
      head + one_line(msg) + " (in: " + what.substr(0, 80) + ")", conninfo_));
  }

  std::string conninfo_;
  PGconn* conn_;
};

/// The schema holding resumable runs' staging tables and checkpoints.
constexpr const char* resume_schema = resume_schema_name;

/// A stable name for a job's resume state, derived from its first target
/// (FNV-1a of "schema.table": the same in every process).
std::string resume_prefix(const table_name& first, const std::string& current) {
  return "job_" + owner_hex(first, current);
}

/// The advisory lock a live run of the job with this resume prefix holds.
std::string owner_lock_of(const std::string& prefix) {
  return std::to_string(owner_lock_key(prefix.substr(4)));
}

/// What `--resume` and a second fresh run say while another run is live.
std::string in_progress_message(const std::string& prefix) {
  return "another run of this job is in progress (it holds its resume state "
         "in " + std::string{resume_schema} + "." + prefix
         + "_*); wait for it to end";
}

std::string opt_int(const std::optional<std::int64_t>& x) {
  return x ? std::to_string(*x) : std::string{"NULL"};
}

} // namespace

struct copy_sink::impl {
  std::string conninfo;
  std::vector<output_table> tables;
  final_rows_fn final_rows;
  dead_letter_rows_fn dead_letter_rows;
  std::function<void()> before_commit;
  /// Statements run just before COMMIT (`at_commit`).
  std::vector<std::string> at_commit;
  /// Tables other processes staged: (table index, name), merged at commit.
  std::vector<std::pair<std::size_t, table_name>> adopted;
  std::unique_ptr<session> db;
  std::vector<table_name> staging;
  /// Per table: the COPY data of the batch being written, and its rows.
  std::vector<std::string> buffers;
  std::vector<std::size_t> counts;
  /// Per table: rows this sink has written so far (outputs_written).
  std::vector<std::uint64_t> table_rows;
  double write_seconds = 0;
  // -- checkpoint mode --
  bool resumable = false;
  checkpoint_options ckpt;
  table_name checkpoints;
  /// Per source: elements of this run whose rows are written (a contiguous
  /// prefix), what was committed before this run, and what the last step
  /// recorded.
  std::vector<std::uint64_t> written;
  std::vector<std::uint64_t> base;
  std::vector<std::uint64_t> recorded;
  /// Per source: batches written out of order, held until the batches
  /// before them are written (first element -> size and rows).
  std::vector<std::map<std::uint64_t,
                       std::pair<std::uint64_t, std::vector<copy_row>>>>
    held;
  /// Dead-letter rows of the batch whose write_batch comes next.
  std::vector<copy_row> dead_rows;
  std::chrono::steady_clock::time_point last_step;

  /// Opens the transaction and creates the staging tables on first use.
  void begin() {
    if (db)
      return;
    if (resumable) {
      begin_resumable();
      return;
    }
    db = std::make_unique<session>(conninfo);
    db->exec("BEGIN");
    auto current = db->scalar("SELECT current_schema()");
    auto suffix = staging_suffix();
    staging.clear();
    for (auto& t : tables) {
      // Staging tables live in their target's schema so a rename swaps them.
      table_name s{t.target.schema.empty() ? current : t.target.schema,
                   t.target.table + suffix};
      db->exec("CREATE TABLE " + s.quoted() + " (" + t.columns + ")");
      staging.push_back(std::move(s));
    }
    buffers.assign(tables.size(), {});
  }

  /// Checkpoint mode: staging tables and checkpoints in `flow_resume`,
  /// created afresh (a new run) or found (a resumed one).
  void begin_resumable() {
    db = std::make_unique<session>(conninfo);
    auto current = db->scalar("SELECT current_schema()");
    auto prefix = resume_prefix(tables.front().target, current);
    // Ownership: this session holds the job's advisory lock until it ends,
    // so another run of the same job (or `flow-etl gc`) leaves these tables
    // alone while this one is live, and finds them orphaned once it is not.
    // It waits a moment for a holder that is going away (a run killed just
    // now, gc's momentary lock).
    db->exec("SET lock_timeout = '" + std::to_string(owner_lock_wait.count())
             + "ms'");
    try {
      db->scalar("SELECT pg_advisory_lock(" + owner_lock_of(prefix) + ")");
    } catch (const std::runtime_error& e) {
      if (std::string{e.what()}.rfind("55P03", 0) != 0)
        throw;
      throw std::runtime_error(in_progress_message(prefix));
    }
    db->exec("SET lock_timeout = 0");
    staging.clear();
    for (std::size_t i = 0; i < tables.size(); ++i)
      staging.push_back({resume_schema, prefix + "_" + std::to_string(i)});
    checkpoints = {resume_schema, prefix + "_checkpoints"};
    auto n = ckpt.plan.size();
    written.assign(n, 0);
    recorded.assign(n, 0);
    held.assign(n, {});
    base = ckpt.resumed.empty() ? std::vector<std::uint64_t>(n, 0)
                                : ckpt.resumed;
    if (ckpt.resumed.empty()) {
      // A fresh run: whatever an earlier run left is discarded, and that is
      // committed at once.
      db->exec("BEGIN");
      db->exec(std::string{"CREATE SCHEMA IF NOT EXISTS "} + resume_schema);
      for (std::size_t i = 0; i < tables.size(); ++i)
        db->exec("DROP TABLE IF EXISTS " + staging[i].quoted());
      db->exec("DROP TABLE IF EXISTS " + checkpoints.quoted());
      db->exec("COMMIT");
      // The new state is created in the first step's transaction: rows
      // COPYed into a table created in the same transaction need no WAL
      // under wal_level = minimal (the server writes the table's files
      // instead), like a bulk load's. Killed before its first step, the
      // run leaves no state, as one killed before it wrote anything.
      db->exec("BEGIN");
      for (std::size_t i = 0; i < tables.size(); ++i)
        db->exec("CREATE TABLE " + staging[i].quoted() + " ("
                 + tables[i].columns + ")");
      db->exec("CREATE TABLE " + checkpoints.quoted()
               + " (source integer PRIMARY KEY, lo bigint, hi bigint, "
                 "blocks boolean NOT NULL, nulls boolean NOT NULL, done bigint "
                 "NOT NULL)");
      std::string values;
      for (std::size_t i = 0; i < n; ++i) {
        auto& r = ckpt.plan[i];
        values += (i > 0 ? ", (" : "(") + std::to_string(i) + ", "
                  + opt_int(r.lo) + ", " + opt_int(r.hi) + ", "
                  + (r.blocks ? "true" : "false") + ", "
                  + (r.nulls ? "true" : "false") + ", 0)";
      }
      if (n > 0)
        db->exec("INSERT INTO " + checkpoints.quoted() + " VALUES " + values);
    } else if (db->scalar("SELECT to_regclass("
                          + quote_literal(checkpoints.quoted())
                          + ") IS NOT NULL")
               != "t") {
      // Read before this session held the lock, dropped since (by gc).
      throw std::runtime_error("the interrupted run's state in "
                               + std::string{resume_schema}
                               + " was dropped meanwhile: nothing to resume "
                                 "(run without --resume)");
    } else {
      db->exec("BEGIN");
    }
    buffers.assign(tables.size(), {});
    last_step = std::chrono::steady_clock::now();
  }

  /// Commits the rows written so far with every source's progress, then
  /// opens the next step's transaction.
  void step() {
    for (std::size_t i = 0; i < written.size(); ++i) {
      if (written[i] == recorded[i])
        continue;
      db->exec("UPDATE " + checkpoints.quoted() + " SET done = "
               + std::to_string(base[i] + written[i])
               + " WHERE source = " + std::to_string(i));
      recorded[i] = written[i];
    }
    db->exec("COMMIT");
    db->exec("BEGIN");
    last_step = std::chrono::steady_clock::now();
  }

  /// COPYs one batch's rows: one COPY command per table that has rows.
  /// Small rows are gathered into one buffer per table; a large one (a
  /// block of rows, see copy_row) goes to libpq as it is, not copied here.
  void flush(const std::vector<copy_row>& rows) {
    constexpr std::size_t large = 16384;
    counts.assign(buffers.size(), 0);
    for (auto& r : rows) {
      if (r.table >= buffers.size())
        throw std::logic_error("copy_sink: row for table "
                               + std::to_string(r.table) + " of "
                               + std::to_string(buffers.size()));
      // Rows that would be written but not counted (final or dead-letter
      // rows do not pass through partial::emit's check).
      if (!copy_row::valid_block(r))
        throw std::logic_error("copy_sink: a block of 0 rows holds "
                               + std::to_string(r.line.size()) + " bytes");
      counts[r.table] += r.rows; // one row, or a block of them
    }
    for (std::size_t i = 0; i < buffers.size(); ++i) {
      if (counts[i] == 0)
        continue;
      auto binary = tables[i].format == copy_format::binary;
      // Offsets into buffers[i] (views only once it is complete: it may
      // reallocate while it grows) or indices into `rows`.
      auto& buf = buffers[i];
      buf.clear();
      if (binary)
        buf.append(binary_header, binary_header_size);
      // (start, length) in buf, or (npos, row index) for a large row.
      std::vector<std::pair<std::size_t, std::size_t>> parts;
      std::size_t run = 0;
      auto close_run = [&] {
        if (buf.size() > run)
          parts.emplace_back(run, buf.size() - run);
        run = buf.size();
      };
      for (std::size_t k = 0; k < rows.size(); ++k) {
        auto& r = rows[k];
        if (r.table != i)
          continue;
        if (r.line.size() >= large) {
          close_run();
          parts.emplace_back(std::string::npos, k);
        } else {
          buf += r.line;
        }
      }
      if (binary)
        put_big_endian(buf, std::int16_t{-1}); // the trailer
      close_run();
      std::vector<std::string_view> pieces;
      pieces.reserve(parts.size());
      for (auto& [start, n] : parts)
        pieces.push_back(start == std::string::npos
                           ? std::string_view{rows[n].line}
                           : std::string_view{buf}.substr(start, n));
      db->copy_in(staging[i].quoted(), pieces, tables[i].format);
      table_rows[i] += counts[i];
    }
  }
};

copy_sink::copy_sink(std::string conninfo, std::vector<output_table> tables,
                     final_rows_fn final_rows,
                     std::function<void()> before_commit)
  : impl_(std::make_unique<impl>()) {
  for (auto& t : tables) {
    if (!t.target.schema.empty())
      check_identifier(t.target.schema, "schema");
    check_identifier(t.target.table, "table");
  }
  impl_->conninfo = std::move(conninfo);
  impl_->tables = std::move(tables);
  impl_->table_rows.assign(impl_->tables.size(), 0);
  impl_->final_rows = std::move(final_rows);
  impl_->before_commit = std::move(before_commit);
}

void copy_sink::checkpoint(checkpoint_options opts) {
  if (!opts.resumed.empty() && opts.resumed.size() != opts.plan.size())
    throw std::invalid_argument("copy_sink::checkpoint: resumed and plan "
                                "differ in size");
  impl_->resumable = true;
  impl_->ckpt = std::move(opts);
}

bool copy_sink::wants_every_batch() const {
  return impl_->resumable;
}

void copy_sink::write_batch(const batch_info& b,
                            const std::vector<copy_row>& rows) {
  auto& st = *impl_;
  if (!st.resumable) {
    write(rows);
    return;
  }
  auto t0 = std::chrono::steady_clock::now();
  st.begin();
  if (b.source >= st.written.size())
    throw std::logic_error("copy_sink: batch of source "
                           + std::to_string(b.source) + " of "
                           + std::to_string(st.written.size()));
  auto& held = st.held[b.source];
  auto& done = st.written[b.source];
  if (b.first != done || !st.dead_rows.empty()) {
    std::vector<copy_row> all = rows;
    all.insert(all.end(), std::make_move_iterator(st.dead_rows.begin()),
               std::make_move_iterator(st.dead_rows.end()));
    st.dead_rows.clear();
    if (b.first != done) {
      // Written later, once the batches before it are: a step's progress
      // always covers exactly the rows it committed.
      held.emplace(b.first, std::make_pair(b.size, std::move(all)));
    } else {
      st.flush(all);
      done += b.size;
    }
  } else {
    // The common case: in order, no dead letters, no copy.
    st.flush(rows);
    done += b.size;
  }
  // Batches held for this one can follow now.
  for (auto i = held.find(done); i != held.end(); i = held.find(done)) {
    st.flush(i->second.second);
    done += i->second.first;
    held.erase(i);
  }
  st.write_seconds
    += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0)
         .count();
  if (std::chrono::steady_clock::now() - st.last_step >= st.ckpt.interval)
    st.step();
}

caf::expected<resume_state>
copy_sink::load_resume_state(const std::string& conninfo,
                             const std::vector<output_table>& tables) {
  try {
    if (tables.empty())
      throw std::invalid_argument("copy_sink: no tables");
    session db{conninfo};
    auto current = db.scalar("SELECT current_schema()");
    auto prefix = resume_prefix(tables.front().target, current);
    table_name ckpt{resume_schema, prefix + "_checkpoints"};
    auto exists = db.scalar("SELECT to_regclass("
                            + quote_literal(ckpt.quoted()) + ") IS NOT NULL");
    if (exists != "t") {
      // A live run creates its state in its first step's transaction: until
      // that commits, only its advisory lock shows it.
      auto key = owner_lock_of(prefix);
      if (db.scalar("SELECT pg_try_advisory_lock(" + key + ")") != "t")
        return make_error(errc::invalid_config, in_progress_message(prefix));
      db.scalar("SELECT pg_advisory_unlock(" + key + ")");
      return make_error(errc::invalid_config,
                        "no interrupted run of " + tables.front().target.display()
                          + " to resume (run without --resume)");
    }
    resume_state result;
    for (std::size_t i = 0; i < tables.size(); ++i)
      result.staging.push_back({resume_schema, prefix + "_" + std::to_string(i)});
    for (auto& row : db.rows("SELECT lo, hi, blocks, nulls, done FROM "
                             + ckpt.quoted() + " ORDER BY source")) {
      range r;
      if (row[0])
        r.lo = std::stoll(*row[0]);
      if (row[1])
        r.hi = std::stoll(*row[1]);
      r.blocks = row[2] && *row[2] == "t";
      r.nulls = row[3] && *row[3] == "t";
      result.plan.push_back(r);
      result.done.push_back(std::stoull(row[4].value_or("0")));
    }
    return result;
  } catch (const std::exception& e) {
    return make_error(errc::sink_failed,
                      scrub(std::string{"reading the resume state: "}
                              + e.what(),
                            conninfo));
  }
}

copy_sink::~copy_sink() {
  abort();
}

void copy_sink::open() {
  // A sink that adopts other processes' tables (a distributed job's manager)
  // writes nothing until its commit: opening its transaction now would only
  // leave it idle for the whole job, exposed to the server's
  // idle_in_transaction_session_timeout. It connects at commit, as before.
  if (!impl_->adopted.empty())
    return;
  impl_->begin();
}

void copy_sink::write(const std::vector<copy_row>& rows) {
  auto t0 = std::chrono::steady_clock::now();
  struct add_time {
    std::chrono::steady_clock::time_point t0;
    double& total;
    ~add_time() {
      total += std::chrono::duration<double>(std::chrono::steady_clock::now()
                                             - t0)
                 .count();
    }
  } guard{t0, impl_->write_seconds};
  impl_->begin();
  impl_->flush(rows);
}

void copy_sink::commit(const job_result& result) {
  auto& st = *impl_;
  st.begin();
  if (st.final_rows)
    st.flush(st.final_rows(result));
  for (auto& [i, staged] : st.adopted) {
    // Counted as this sink's rows of table i: the job wrote them through
    // another process, and they become visible at this commit.
    auto moved = st.db->scalar("WITH moved AS (INSERT INTO "
                               + st.staging[i].quoted() + " SELECT * FROM "
                               + staged.quoted()
                               + " RETURNING 1) SELECT count(*) FROM moved");
    st.table_rows[i] += std::stoull(moved);
    st.db->exec("DROP TABLE " + staged.quoted());
  }
  for (std::size_t i = 0; i < st.tables.size(); ++i)
    if (!st.tables[i].primary_key.empty())
      st.db->exec("ALTER TABLE " + st.staging[i].quoted() + " ADD PRIMARY KEY ("
                  + st.tables[i].primary_key + ")");
  if (st.before_commit)
    st.before_commit();
  if (st.resumable) {
    for (auto& h : st.held)
      if (!h.empty())
        throw std::logic_error("copy_sink: batches still held at commit");
    auto current = st.db->scalar("SELECT current_schema()");
    for (std::size_t i = 0; i < st.tables.size(); ++i) {
      auto& t = st.tables[i].target;
      table_name target{t.schema.empty() ? current : t.schema, t.table};
      // The old target goes first: its indexes carry the names an earlier
      // resumable run gave them, which this run's staging table reuses.
      st.db->exec("DROP TABLE IF EXISTS " + target.quoted());
      st.db->exec("ALTER TABLE " + st.staging[i].quoted() + " SET SCHEMA "
                  + quote_ident(target.schema));
      st.staging[i].schema = target.schema;
    }
  }
  for (std::size_t i = 0; i < st.tables.size(); ++i) {
    table_name target{st.staging[i].schema, st.tables[i].target.table};
    st.db->exec("DROP TABLE IF EXISTS " + target.quoted());
    st.db->exec("ALTER TABLE " + st.staging[i].quoted() + " RENAME TO "
                + quote_ident(target.table));
  }
  if (st.resumable)
    st.db->exec("DROP TABLE " + st.checkpoints.quoted());
  for (auto& sql : st.at_commit)
    st.db->exec(sql);
  st.db->exec("COMMIT");
  if (st.resumable) {
    // The job's lock goes now, not when the server notices the closed
    // connection: the next run of the job may start at once.
    try {
      st.db->scalar("SELECT pg_advisory_unlock_all()");
    } catch (...) {
      // Committed; the lock goes with the connection anyway.
    }
  }
  st.db.reset();
  logger()->debug("copy sink ({}): {:.3f} s writing, committed", name(),
                  st.write_seconds);
}

void copy_sink::at_commit(std::string sql) {
  impl_->at_commit.push_back(std::move(sql));
}

void copy_sink::adopt(std::size_t table, table_name staged) {
  if (table >= impl_->tables.size())
    throw std::invalid_argument("copy_sink::adopt: no table "
                                + std::to_string(table));
  impl_->adopted.emplace_back(table, std::move(staged));
}

void copy_sink::abort() noexcept {
  if (impl_)
    impl_->db.reset();
}

std::string copy_sink::name() const {
  std::string result = "tables ";
  for (std::size_t i = 0; i < impl_->tables.size(); ++i) {
    if (i > 0)
      result += ", ";
    result += impl_->tables[i].target.display();
  }
  return result;
}

std::vector<output_rows> copy_sink::outputs_written() const {
  std::vector<output_rows> result;
  for (std::size_t i = 0; i < impl_->tables.size(); ++i)
    result.push_back({impl_->tables[i].target.display(),
                      impl_->table_rows[i]});
  return result;
}

void copy_sink::on_dead_letters(dead_letter_rows_fn fn) {
  impl_->dead_letter_rows = std::move(fn);
}

void copy_sink::write_dead_letters(const std::vector<dead_letter>& letters) {
  if (!impl_->dead_letter_rows)
    return;
  if (impl_->resumable) {
    // They belong to the batch whose write_batch follows: written with it.
    auto rows = impl_->dead_letter_rows(letters);
    impl_->dead_rows.insert(impl_->dead_rows.end(),
                            std::make_move_iterator(rows.begin()),
                            std::make_move_iterator(rows.end()));
    return;
  }
  write(impl_->dead_letter_rows(letters));
}

double copy_sink::write_seconds() const noexcept {
  return impl_->write_seconds;
}

} // namespace flow::pg
