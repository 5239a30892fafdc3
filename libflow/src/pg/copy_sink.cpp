#include "flow/pg/copy_sink.hpp"

#include <atomic>
#include <chrono>
#include <stdexcept>

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
  for (auto c : *x) {
    switch (c) {
      case '\\':
        out += "\\\\";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      default:
        out += c;
    }
  }
}

void append_copy_int(std::string& out, std::int64_t x) {
  out += std::to_string(x);
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

  std::string scalar(const std::string& sql) {
    auto res = PQexec(conn_, sql.c_str());
    if (PQresultStatus(res) != PGRES_TUPLES_OK)
      check(res, PGRES_TUPLES_OK, sql);
    std::string result = PQgetvalue(res, 0, 0);
    PQclear(res);
    return result;
  }

  void copy_in(const std::string& table, const std::string& data) {
    auto cmd = "COPY " + table + " FROM STDIN";
    check(PQexec(conn_, cmd.c_str()), PGRES_COPY_IN, cmd);
    if (PQputCopyData(conn_, data.data(), static_cast<int>(data.size())) != 1
        || PQputCopyEnd(conn_, nullptr) != 1)
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

} // namespace

struct copy_sink::impl {
  std::string conninfo;
  std::vector<output_table> tables;
  final_rows_fn final_rows;
  dead_letter_rows_fn dead_letter_rows;
  std::function<void()> before_commit;
  std::unique_ptr<session> db;
  std::vector<table_name> staging;
  std::vector<std::string> buffers;
  double write_seconds = 0;

  /// Opens the transaction and creates the staging tables on first use.
  void begin() {
    if (db)
      return;
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

  void flush(const std::vector<copy_row>& rows) {
    for (auto& b : buffers)
      b.clear();
    for (auto& r : rows) {
      if (r.table >= buffers.size())
        throw std::logic_error("copy_sink: row for table "
                               + std::to_string(r.table) + " of "
                               + std::to_string(buffers.size()));
      buffers[r.table] += r.line;
    }
    for (std::size_t i = 0; i < buffers.size(); ++i)
      if (!buffers[i].empty())
        db->copy_in(staging[i].quoted(), buffers[i]);
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
  impl_->final_rows = std::move(final_rows);
  impl_->before_commit = std::move(before_commit);
}

copy_sink::~copy_sink() {
  abort();
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
  for (std::size_t i = 0; i < st.tables.size(); ++i)
    if (!st.tables[i].primary_key.empty())
      st.db->exec("ALTER TABLE " + st.staging[i].quoted() + " ADD PRIMARY KEY ("
                  + st.tables[i].primary_key + ")");
  if (st.before_commit)
    st.before_commit();
  for (std::size_t i = 0; i < st.tables.size(); ++i) {
    table_name target{st.staging[i].schema, st.tables[i].target.table};
    st.db->exec("DROP TABLE IF EXISTS " + target.quoted());
    st.db->exec("ALTER TABLE " + st.staging[i].quoted() + " RENAME TO "
                + quote_ident(target.table));
  }
  st.db->exec("COMMIT");
  st.db.reset();
  logger()->debug("copy sink ({}): {:.3f} s writing, committed", name(),
                  st.write_seconds);
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

void copy_sink::on_dead_letters(dead_letter_rows_fn fn) {
  impl_->dead_letter_rows = std::move(fn);
}

void copy_sink::write_dead_letters(const std::vector<dead_letter>& letters) {
  if (impl_->dead_letter_rows)
    write(impl_->dead_letter_rows(letters));
}

double copy_sink::write_seconds() const noexcept {
  return impl_->write_seconds;
}

} // namespace flow::pg
