#include "etl_clean.hpp"

#include <atomic>
#include <tuple>

#include <caf/actor_system.hpp>

#include <pqxx/connection>
#include <pqxx/stream_to>
#include <pqxx/transaction>
#include <unistd.h>

#include "common/ads_cleaning.hpp"
#include "common/cli.hpp"
#include "flow/flow.hpp"
#include "flow/pg/error.hpp"
#include "flow/pg/read.hpp"

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

/// One output row: a cleaned ad, or a rejected raw ad with its reason.
struct ad_row {
  bool rejected = false;
  std::int64_t id = 0;
  text title;
  // clean: normalised city; reject: the raw city.
  text city;
  // reject only: the raw price and date.
  text price;
  text posted;
  // clean only.
  std::int64_t price_cents = 0;
  std::string posted_at;
  // reject only.
  std::string reason;
};

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
    if (!reason.empty()) {
      out.reject(reason);
      out.emit(ad_row{true, ad.id, ad.title, ad.city, ad.price, ad.posted, 0,
                      {}, reason});
      continue;
    }
    out.add(*city.value, *price.value);
    out.emit(ad_row{false, ad.id, clean_title(ad.title), *city.value, {}, {},
                    *price.value, *posted.value, {}});
  }
}

std::string staging_suffix() {
  static std::atomic<unsigned> counter{0};
  return "_flow_staging_" + std::to_string(::getpid()) + "_"
         + std::to_string(counter++);
}

/// Writes cleaned ads and rejects into staging tables inside one transaction
/// and, at commit, adds the summary and swaps all three in: readers see the
/// previous output or the new one, never a mix, and a failed or killed run
/// leaves the previous output untouched (the transaction never commits).
class ads_sink final : public sink_impl<ad_row> {
public:
  explicit ads_sink(const clean_config& cfg) : cfg_(cfg) {
    // nop
  }

  void write(const std::vector<ad_row>& rows) override {
    begin();
    bool any_clean = false;
    bool any_reject = false;
    for (auto& r : rows)
      (r.rejected ? any_reject : any_clean) = true;
    // One COPY at a time per connection: clean rows, then rejects.
    if (any_clean) {
      pqxx::stream_to out{*tx_, staging_.clean.quoted()};
      for (auto& r : rows)
        if (!r.rejected)
          out << std::make_tuple(r.id, r.title, r.city, r.price_cents,
                                 r.posted_at);
      out.complete();
    }
    if (any_reject) {
      pqxx::stream_to out{*tx_, staging_.rejects.quoted()};
      for (auto& r : rows)
        if (r.rejected)
          out << std::make_tuple(r.id, r.title, r.city, r.price, r.posted,
                                 r.reason);
      out.complete();
    }
  }

  void commit(const job_result& res) override {
    begin();
    {
      pqxx::stream_to out{*tx_, staging_.summary.quoted()};
      for (auto& k : res.keys)
        out << std::make_tuple(to_string(k.key),
                               static_cast<std::int64_t>(k.agg.count),
                               flow::to_string(k.agg.sum), k.agg.min,
                               k.agg.max);
      out.complete();
    }
    if (cfg_.before_commit)
      cfg_.before_commit();
    swap(staging_.clean, cfg_.clean);
    swap(staging_.rejects, cfg_.rejects);
    swap(staging_.summary, cfg_.summary);
    tx_->commit();
    tx_.reset();
    conn_.reset();
  }

  void abort() noexcept override {
    try {
      if (tx_)
        tx_->abort();
    } catch (...) {
      // The connection may be gone; the server rolls back either way.
    }
    tx_.reset();
    conn_.reset();
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
    if (tx_)
      return;
    conn_ = std::make_unique<pqxx::connection>(cfg_.conninfo);
    tx_ = std::make_unique<pqxx::work>(*conn_);
    auto schema_of = [this](const pg::table_name& t) {
      return t.schema.empty() ? tx_->exec("SELECT current_schema()")[0][0]
                                  .as<std::string>()
                              : t.schema;
    };
    auto suffix = staging_suffix();
    // Staging tables live in their target's schema so a rename swaps them.
    staging_.clean = {schema_of(cfg_.clean), "ads_clean" + suffix};
    staging_.rejects = {schema_of(cfg_.rejects), "ads_rejects" + suffix};
    staging_.summary = {schema_of(cfg_.summary), "ads_summary" + suffix};
    tx_->exec("CREATE TABLE " + staging_.clean.quoted()
              + " (id bigint PRIMARY KEY, title text, city text NOT NULL, "
                "price_cents bigint NOT NULL, posted_at timestamp NOT NULL)");
    tx_->exec("CREATE TABLE " + staging_.rejects.quoted()
              + " (id bigint PRIMARY KEY, title text, city text, price text, "
                "posted_at text, reason text NOT NULL)");
    tx_->exec("CREATE TABLE " + staging_.summary.quoted()
              + " (city text PRIMARY KEY, ads bigint NOT NULL, "
                "total_cents numeric NOT NULL, min_cents bigint NOT NULL, "
                "max_cents bigint NOT NULL)");
  }

  void swap(const pg::table_name& staging, const pg::table_name& target) {
    pg::table_name qualified{staging.schema, target.table};
    tx_->exec("DROP TABLE IF EXISTS " + qualified.quoted());
    tx_->exec("ALTER TABLE " + staging.quoted() + " RENAME TO "
              + pg::quote_ident(target.table));
  }

  clean_config cfg_;
  std::unique_ptr<pqxx::connection> conn_;
  std::unique_ptr<pqxx::work> tx_;
  staging_tables staging_;
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
               .sink(sink<ad_row>{std::make_unique<ads_sink>(cfg)})
               .with(cfg.opts)
               .run(sys);
  if (!res)
    return std::move(res.error());
  clean_report rep;
  rep.res = std::move(*res);
  if (auto err = verify_tables(cfg, rep))
    return err;
  rep.seconds = sw.seconds();
  return rep;
}

} // namespace flow::apps
