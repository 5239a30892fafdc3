#include "etl/clean_rows.hpp"

#include <utility>

#include <pqxx/connection>
#include <pqxx/result>
#include <pqxx/transaction>

#include "common/cli.hpp"
#include "common/test_hooks.hpp"
#include "etl/ads_cleaning.hpp"
#include "flow/partial.hpp"
#include "flow/pg/error.hpp"

namespace flow::apps {

namespace {

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

const std::vector<std::string> ad_columns = {"id", "title", "city", "price",
                                             "posted_at"};

pg::read_spec ads_read_spec(const clean_config& cfg, std::size_t partitions) {
  pg::read_spec spec;
  spec.conninfo = cfg.conninfo;
  spec.table = cfg.ads;
  spec.columns = ad_columns;
  spec.partition_column = "ctid";
  spec.partitions = partitions;
  return spec;
}

/// The cleaning rules applied to one batch of raw ads. Output rows are
/// formatted here, in parallel, as COPY data for the sink: one block per
/// table and batch (see pg::copy_row), not a string per row.
void clean_batch(const batch_ref<raw_ad>& b, partial& out) {
  // A string per row was an eighth of the client's time: an allocation,
  // first touches of fresh pages, and a free on the sink's thread.
  pg::copy_row clean{clean_table, {}, 0};
  pg::copy_row rejects{rejects_table, {}, 0};
  // Room for every ad as a typical row of either table (about 90 bytes
  // clean, 60 rejected): growing a block copies it and touches fresh pages
  // again; room never written is never touched.
  clean.line.reserve(b.items.size() * 96);
  rejects.line.reserve(b.items.size() * 64);
  std::string title_buf; // a title's collapsed text, when it has to change
  for (auto& ad : b.items) {
    auto city = normalize_city(ad.city);
    auto price = parse_price_cents(ad.price);
    auto posted = parse_posted_time(ad.posted);
    // The first failed step's reason, not a copy of it.
    const std::string* reason = !city.value     ? &city.reason
                                : !price.value  ? &price.reason
                                : !posted.value ? &posted.reason
                                                : nullptr;
    if (reason != nullptr) {
      // ads_rejects(id, title, city, price, posted_at, reason): raw values.
      auto& t = rejects.line;
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
      pg::append_copy_field(t, *reason);
      t += '\n';
      ++rejects.rows;
      out.reject(*reason);
      continue;
    }
    // ads_clean(id, title, city, price_cents, posted_at), in COPY's binary
    // format: the server then parses no timestamps or numbers.
    auto& t = clean.line;
    pg::begin_binary_row(t, 5);
    pg::append_binary_int(t, ad.id);
    if (ad.title)
      pg::append_binary_text(t, collapse_spaces(*ad.title, title_buf));
    else
      pg::append_binary_text(t, std::nullopt);
    pg::append_binary_text(t, *city.value);
    pg::append_binary_int(t, *price.value);
    auto& when = *posted.value;
    pg::append_binary_timestamp(
      t, pg::timestamp_micros(when.year, when.month, when.day, when.hour,
                              when.minute, when.second));
    ++clean.rows;
    out.add(*city.value, *price.value);
  }
  // Emitted last: a rule that throws half-way leaves no rows behind.
  if (clean.rows > 0)
    out.emit(std::move(clean));
  if (rejects.rows > 0)
    out.emit(std::move(rejects));
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

/// Decodes a row of (id, title, city, price, posted_at) into `ad`, its text
/// kept in the batch's `text`.
void decode_ad(const pg::row_view& r, raw_ad& ad, pg::batch_text& text) {
  ad.id = r.int64(0);
  ad.title = text.keep(r.opt_text(1));
  ad.city = text.keep(r.opt_text(2));
  ad.price = text.keep(r.opt_text(3));
  ad.posted = text.keep(r.opt_text(4));
}

reducer<raw_ad> with_poison(reducer<raw_ad> fn) {
  return with_test_hooks<raw_ad>(
    std::move(fn), [](const raw_ad& ad) { return ad.id; }, "ad");
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

} // namespace flow::apps
