// flow-etl's `init`: the demo data, deterministic for a seed.

#include "etl/init.hpp"

#include <cctype>
#include <cstdio>
#include <iostream>
#include <optional>
#include <tuple>
#include <vector>

#include <pqxx/connection>
#include <pqxx/nontransaction>
#include <pqxx/stream_to>
#include <pqxx/transaction>

#include "common/watch.hpp"
#include "etl/command.hpp"
#include "flow/pg/error.hpp"
#include "flow/random.hpp"

namespace flow::apps {

namespace {

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

using text_field = std::optional<std::string>;

/// The k-th random draw in [lo, hi] for ad `id`.
std::int64_t ad_draw(std::uint64_t seed, std::int64_t id, std::uint64_t k,
                     std::int64_t lo, std::int64_t hi) {
  return uniform_ints{derive_seed(seed ^ 0xad5ad5ad5ad5ad5aULL,
                                  static_cast<std::uint64_t>(id)),
                      lo, hi}(k);
}

/// The random draws of one ad: draw k is a pure function of (seed, id, k),
/// so every field can be made on its own.
struct ad_dice {
  std::uint64_t seed;
  std::int64_t id;

  std::int64_t operator()(std::uint64_t k, std::int64_t lo,
                          std::int64_t hi) const {
    return ad_draw(seed, id, k, lo, hi);
  }
};

/// Title: an adjective and an item, sometimes padded and shouted.
std::string ad_title(const ad_dice& draw) {
  static const char* adjectives[] = {"Vintage", "Used",   "New",   "Cozy",
                                     "Large",   "Small",  "Sunny", "Quiet",
                                     "Classic", "Modern", "Rare",  "Cheap"};
  static const char* items[] = {"bicycle",   "sofa",       "apartment",
                                "desk lamp", "guitar",     "road bike",
                                "camera",    "dining table", "studio",
                                "laptop",    "bookshelf",  "piano"};
  std::string title = std::string{adjectives[draw(0, 0, 11)]} + " "
                      + items[draw(1, 0, 11)];
  if (draw(2, 0, 9) == 0)
    title = "  " + title + " !!";
  return title;
}

/// City: mixed case and spacing, sometimes empty or NULL.
text_field ad_city(const ad_dice& draw) {
  static const char* cities[] = {"Berlin",   "Hamburg",       "Munich",
                                 "Cologne",  "Frankfurt",     "New York",
                                 "San Francisco", "São Paulo", "Los Angeles",
                                 "Stuttgart"};
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
  return city;
}

/// Price: many formats, some unusable.
text_field ad_price(const ad_dice& draw) {
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
  return price;
}

/// Posted at: a few formats, some invalid.
text_field ad_posted(const ad_dice& draw) {
  static const char* months[] = {"January", "February", "March",
                                 "April",   "May",      "June",
                                 "July",    "August",   "September",
                                 "October", "November", "December"};
  text_field posted;
  auto y = draw(8, 2019, 2024);
  auto m = draw(9, 1, 12);
  auto d = draw(10, 1, 28);
  auto hh = draw(11, 0, 23);
  auto mm = draw(12, 0, 59);
  char buf[64];
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
  return posted;
}

/// One raw classified ad, as scraped: deterministic for (seed, id).
std::tuple<std::int64_t, text_field, text_field, text_field, text_field>
make_ad(std::uint64_t seed, std::int64_t id) {
  ad_dice draw{seed, id};
  return {id, ad_title(draw), ad_city(draw), ad_price(draw), ad_posted(draw)};
}

/// Creates and fills elements in `tx`.
void write_elements(pqxx::work& tx, const init_config& cfg) {
  tx.exec("CREATE TABLE " + cfg.elements.quoted()
          + " (list_id integer, list_size integer, value bigint)");
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

/// Creates and fills ads in `tx`.
void write_ads(pqxx::work& tx, const init_config& cfg) {
  tx.exec("CREATE TABLE " + cfg.ads.quoted()
          + " (id bigint PRIMARY KEY, title text, city text, price text, "
            "posted_at text)");
  pqxx::stream_to out{tx, cfg.ads.quoted()};
  for (std::uint64_t id = 1; id <= cfg.ads_rows; ++id)
    out << make_ad(cfg.seed, static_cast<std::int64_t>(id));
  out.complete();
}

} // namespace

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
      write_elements(tx, cfg);
      write_ads(tx, cfg);
      tx.commit();
    }
    // Hint bits, visibility map and statistics now, not in the first read.
    pqxx::nontransaction ntx{conn};
    ntx.exec("VACUUM (ANALYZE) " + cfg.elements.quoted());
    ntx.exec("ANALYZE " + cfg.ads.quoted());
  } catch (...) {
    fail(pg::current_error(conninfo, "init"));
  }
  std::cerr << etl_prog << ": init: " << cfg.rows << " rows in "
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

void fill_throwaway(database& db, bool keep, const init_config& cfg,
                    const std::string& cmd) {
  if (!db.throwaway())
    return;
  try {
    std::cerr << etl_prog << ": " << cmd
              << ": filling the throwaway cluster with init first"
              << std::endl;
    run_init(db.conninfo, cfg);
  } catch (...) {
    finish_database(db, keep);
    throw;
  }
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
  // init fills tables with SQL and runs no job: --status serves the
  // process alone, --progress prints nothing. Accepted like every command's.
  declare_watch_options(args);
  if (!args.parse(argc, argv))
    return exit_ok;
  apply_log_level(args.get("log-level"));
  read_watch_options(args);
  set_status_info("command", "init");
  auto cfg = read_init_options(args);
  auto db = open_database(args);
  return with_database(db, args.is_set("keep"), [&] {
    run_init(db.conninfo, cfg);
    return exit_ok;
  });
}

} // namespace flow::apps
