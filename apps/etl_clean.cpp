#include "etl_clean.hpp"

#include <atomic>
#include <tuple>

#include <caf/actor_system.hpp>

#include <libpq-fe.h>
#include <pqxx/connection>
#include <pqxx/transaction>
#include <unistd.h>

#include "common/ads_cleaning.hpp"
#include "common/cli.hpp"
#include "flow/flow.hpp"
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

/// One output row, already in COPY text format (formatted by the reducers,
/// in parallel, so the single sink thread only moves bytes).
struct ad_line {
  bool rejected = false;
  std::string text;
};

/// Appends `x` as one COPY text field: NULL as \N, and backslash, tab,
/// newline and carriage return escaped.
void put_field(std::string& out, const std::optional<std::string>& x) {
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

text opt(const std::optional<std::string_view>& x) {
  return x ? text{std::string{*x}} : text{};
}

/// The cleaning rules applied to one batch of raw ads.
void clean_batch(const batch_ref<raw_ad>& b, partial& out) {
  for (auto& ad : b.items) {
    auto city = normalize_city(ad.city);
    auto price = parse_price_cents(ad.price);
    auto posted = parse_posted_at(ad.posted);
    std::string reason = !city.value    ? city.reason
                         : !price.value ? price.reason
                         : !posted.value ? posted.reason
                                         : std::string{};
    ad_line line;
    auto& t = line.text;
    t += std::to_string(ad.id);
    t += '\t';
    if (!reason.empty()) {
      // ads_rejects(id, title, city, price, posted_at, reason): raw values.
      line.rejected = true;
      put_field(t, ad.title);
      t += '\t';
      put_field(t, ad.city);
      t += '\t';
      put_field(t, ad.price);
      t += '\t';
      put_field(t, ad.posted);
      t += '\t';
      put_field(t, reason);
      t += '\n';
      out.reject(reason);
      out.emit(std::move(line));
      continue;
    }
    // ads_clean(id, title, city, price_cents, posted_at).
    put_field(t, clean_title(ad.title));
    t += '\t';
    put_field(t, *city.value);
    t += '\t';
    t += std::to_string(*price.value);
    t += '\t';
    t += *posted.value;
    t += '\n';
    out.add(*city.value, *price.value);
    out.emit(std::move(line));
  }
}

std::string staging_suffix() {
  static std::atomic<unsigned> counter{0};
  return "_flow_staging_" + std::to_string(::getpid()) + "_"
         + std::to_string(counter++);
}

/// A libpq connection and the last error as one line with its SQL state.
class libpq_session {
public:
  explicit libpq_session(const std::string& conninfo)
    : conninfo_(conninfo), conn_(PQconnectdb(conninfo.c_str())) {
    if (PQstatus(conn_) != CONNECTION_OK)
      throw std::runtime_error(pg::scrub(
        "cannot connect: " + one_line(PQerrorMessage(conn_)), conninfo_));
  }

  ~libpq_session() {
    PQfinish(conn_);
  }

  libpq_session(const libpq_session&) = delete;
  libpq_session& operator=(const libpq_session&) = delete;

  /// Runs one command; throws with the SQL state on failure.
  void exec(const std::string& sql) {
    check(PQexec(conn_, sql.c_str()), PGRES_COMMAND_OK, sql);
  }

  /// The first field of a one-row query.
  std::string scalar(const std::string& sql) {
    auto res = PQexec(conn_, sql.c_str());
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
      check(res, PGRES_TUPLES_OK, sql);
      return {};
    }
    std::string result = PQgetvalue(res, 0, 0);
    PQclear(res);
    return result;
  }

  /// COPY `table` FROM STDIN with `data` (COPY text lines).
  void copy_in(const std::string& table, const std::string& data) {
    check(PQexec(conn_, ("COPY " + table + " FROM STDIN").c_str()),
          PGRES_COPY_IN, "COPY " + table);
    if (PQputCopyData(conn_, data.data(), static_cast<int>(data.size())) != 1
        || PQputCopyEnd(conn_, nullptr) != 1)
      throw std::runtime_error(
        pg::scrub("COPY failed: " + one_line(PQerrorMessage(conn_)),
                  conninfo_));
    check(PQgetResult(conn_), PGRES_COMMAND_OK, "COPY " + table);
    while (auto rest = PQgetResult(conn_))
      PQclear(rest);
  }

private:
  static std::string one_line(std::string x) {
    while (!x.empty() && (x.back() == '\n' || x.back() == ' '))
      x.pop_back();
    for (auto& c : x)
      if (c == '\n')
        c = ' ';
    return x;
  }

  void check(PGresult* res, ExecStatusType want, const std::string& what) {
    if (PQresultStatus(res) == want) {
      if (want != PGRES_COPY_IN)
        PQclear(res);
      return;
    }
    std::string state;
    if (auto s = PQresultErrorField(res, PG_DIAG_SQLSTATE))
      state = s;
    std::string msg = res ? PQresultErrorMessage(res) : PQerrorMessage(conn_);
    PQclear(res);
    auto name = pg::condition_name(state);
    throw std::runtime_error(pg::scrub(
      (state.empty() ? std::string{} : state + " " + name + ": ")
        + one_line(msg) + " (" + what.substr(0, 60) + ")",
      conninfo_));
  }

  std::string conninfo_;
  PGconn* conn_;
};

/// Writes cleaned ads and rejects into staging tables inside one transaction
/// and, at commit, adds the summary and swaps all three in: readers see the
/// previous output or the new one, never a mix, and a failed or killed run
/// leaves the previous output untouched (the transaction never commits).
/// Primary keys are built at commit, in bulk; a duplicate id would fail it.
class ads_sink final : public sink_impl<ad_line> {
public:
  explicit ads_sink(const clean_config& cfg) : cfg_(cfg) {
    // nop
  }

  void write(const std::vector<ad_line>& rows) override {
    stopwatch sw;
    write_guard guard{sw, write_seconds_};
    begin();
    clean_buf_.clear();
    reject_buf_.clear();
    for (auto& r : rows)
      (r.rejected ? reject_buf_ : clean_buf_) += r.text;
    if (!clean_buf_.empty())
      db_->copy_in(staging_.clean.quoted(), clean_buf_);
    if (!reject_buf_.empty())
      db_->copy_in(staging_.rejects.quoted(), reject_buf_);
  }

  void commit(const job_result& res) override {
    stopwatch sw;
    begin();
    std::string summary;
    for (auto& k : res.keys) {
      put_field(summary, to_string(k.key));
      summary += '\t' + std::to_string(k.agg.count) + '\t'
                 + flow::to_string(k.agg.sum) + '\t'
                 + std::to_string(k.agg.min) + '\t'
                 + std::to_string(k.agg.max) + '\n';
    }
    if (!summary.empty())
      db_->copy_in(staging_.summary.quoted(), summary);
    db_->exec("ALTER TABLE " + staging_.clean.quoted() + " ADD PRIMARY KEY (id)");
    db_->exec("ALTER TABLE " + staging_.rejects.quoted()
              + " ADD PRIMARY KEY (id)");
    db_->exec("ALTER TABLE " + staging_.summary.quoted()
              + " ADD PRIMARY KEY (city)");
    if (cfg_.before_commit)
      cfg_.before_commit();
    swap(staging_.clean, cfg_.clean);
    swap(staging_.rejects, cfg_.rejects);
    swap(staging_.summary, cfg_.summary);
    db_->exec("COMMIT");
    db_.reset();
    logger()->debug("ads sink: {:.3f} s writing, {:.3f} s committing",
                    write_seconds_, sw.seconds());
  }

  void abort() noexcept override {
    // Closing the connection rolls the transaction back on the server.
    db_.reset();
  }

  std::string name() const override {
    return "ads output (" + cfg_.clean.display() + ", "
           + cfg_.rejects.display() + ", " + cfg_.summary.display() + ")";
  }

private:
  struct staging_tables {
    pg::table_name clean;
    pg::table_name rejects;
    pg::table_name summary;
  };

  /// Opens the transaction and creates the staging tables on first use.
  void begin() {
    if (db_)
      return;
    db_ = std::make_unique<libpq_session>(cfg_.conninfo);
    db_->exec("BEGIN");
    auto current = db_->scalar("SELECT current_schema()");
    auto schema_of = [&](const pg::table_name& t) {
      return t.schema.empty() ? current : t.schema;
    };
    auto suffix = staging_suffix();
    // Staging tables live in their target's schema so a rename swaps them.
    staging_.clean = {schema_of(cfg_.clean), "ads_clean" + suffix};
    staging_.rejects = {schema_of(cfg_.rejects), "ads_rejects" + suffix};
    staging_.summary = {schema_of(cfg_.summary), "ads_summary" + suffix};
    db_->exec("CREATE TABLE " + staging_.clean.quoted()
              + " (id bigint NOT NULL, title text, city text NOT NULL, "
                "price_cents bigint NOT NULL, posted_at timestamp NOT NULL)");
    db_->exec("CREATE TABLE " + staging_.rejects.quoted()
              + " (id bigint NOT NULL, title text, city text, price text, "
                "posted_at text, reason text NOT NULL)");
    db_->exec("CREATE TABLE " + staging_.summary.quoted()
              + " (city text NOT NULL, ads bigint NOT NULL, "
                "total_cents numeric NOT NULL, min_cents bigint NOT NULL, "
                "max_cents bigint NOT NULL)");
  }

  void swap(const pg::table_name& staging, const pg::table_name& target) {
    pg::table_name qualified{staging.schema, target.table};
    db_->exec("DROP TABLE IF EXISTS " + qualified.quoted());
    db_->exec("ALTER TABLE " + staging.quoted() + " RENAME TO "
              + pg::quote_ident(target.table));
  }

  clean_config cfg_;
  std::unique_ptr<libpq_session> db_;
  staging_tables staging_;
  std::string clean_buf_;
  std::string reject_buf_;
  double write_seconds_ = 0;

  /// Adds the time of one write to the total, however it ends.
  struct write_guard {
    stopwatch& sw;
    double& total;
    ~write_guard() {
      total += sw.seconds();
    }
  };
};

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
  return res.final && res.balanced() && in_both == 0 && in_neither == 0
         && clean_rows + reject_rows == ads && res.emitted == ads
         && res.aggregated == clean_rows && res.rejected == reject_rows
         && res.written == ads && summary_rows == res.keys.size();
}

caf::expected<clean_report> run_clean(caf::actor_system& sys,
                                      const clean_config& cfg) {
  stopwatch sw;
  auto read = pg::partitioned_read::open(
    {cfg.conninfo, cfg.ads, {"id", "title", "city", "price", "posted_at"},
     "id", cfg.partitions});
  if (!read)
    return std::move(read.error());
  auto sources = read->row_sources<raw_ad>([](const pg::row_view& r) {
    return raw_ad{r.int64(0), opt(r.opt_text(1)), opt(r.opt_text(2)),
                  opt(r.opt_text(3)), opt(r.opt_text(4))};
  });
  if (!sources)
    return std::move(sources.error());
  // Every partition has imported the snapshot: the coordinator may go.
  read->release();
  pipeline<raw_ad> p;
  for (auto& src : *sources)
    p.add(std::move(src));
  auto res = p.reduce(clean_batch)
               .sink(sink<ad_line>{std::make_unique<ads_sink>(cfg)})
               .with(cfg.opts)
               .run(sys);
  if (!res)
    return std::move(res.error());
  clean_report rep;
  rep.res = std::move(*res);
  rep.seconds = sw.seconds();
  stopwatch verify_sw;
  if (auto err = verify_tables(cfg, rep))
    return err;
  rep.verify_seconds = verify_sw.seconds();
  return rep;
}

} // namespace flow::apps
