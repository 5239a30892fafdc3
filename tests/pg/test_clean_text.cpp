// flow-etl clean on awkward text: 1 MB titles, cities, prices and dates, and
// unusual but valid Unicode (combining marks, 4-byte emoji, other scripts).
// Every ad still lands in exactly one of ads_clean and ads_rejects, with the
// reason the cleaning rules give (a megabyte city used to fail the whole job
// at commit: the summary's key did not fit its index). Invalid UTF-8 and NUL
// cannot reach the cleaner: the server (UTF8) refuses to store them.

#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "flow/pg/connection.hpp"
#include "json_fields.hpp"
#include "pg_fixture.hpp"
#include "run_program.hpp"

using namespace flow;
using namespace flow::test;

namespace {

const std::string prog = FLOW_ETL_PATH;

std::string q(const std::string& schema, const std::string& table) {
  return pg::table_name{schema, table}.quoted();
}

/// One raw ad as SQL expressions (the long values are built by the server),
/// and where the cleaning rules must put it.
struct ad_case {
  int id;
  std::string title;
  std::string city;
  std::string price;
  std::string posted;
  /// Empty: ads_clean; otherwise the reason in ads_rejects.
  std::string reason;
  /// For clean ads: SQL for the expected city and title (title "" = as is).
  std::string clean_city;
  std::string clean_title;
};

const std::string mb = "1048576";

/// 2048 bytes of hexadecimal digits that do not compress.
const std::string md5_2048 = "(SELECT string_agg(md5(i::text), '' ORDER BY i) "
                             "FROM generate_series(1, 64) i)";

std::vector<ad_case> cases() {
  auto ok_price = "'$1,200.50'";
  auto ok_date = "'2021-03-04'";
  return {
    // 1 MB title of words and assorted white space: collapsed.
    {1, "repeat(E'word \\t\\n  ', 150000)", "'paris'", ok_price, ok_date, "",
     "'Paris'", "rtrim(repeat('word ', 150000))"},
    // Megabyte cities are no cities (and would not fit the summary's
    // primary key): rejected, not a failed job.
    {2, "'t'", "repeat('a', " + mb + ")", ok_price, ok_date, "city too long",
     "", ""},
    {3, "'t'", "repeat('sÃO  paulo ', 100000)", ok_price, ok_date,
     "city too long", "", ""},
    {4, "'t'", "repeat('Ω', 524288)", ok_price, ok_date, "city too long", "",
     ""},
    // The longest city kept: 2048 bytes that do not compress (the summary's
    // key is indexed) ...
    {15, "'t'", md5_2048, ok_price, ok_date, "",
     "upper(left(" + md5_2048 + ", 1)) || substr(" + md5_2048 + ", 2)", ""},
    // ... and one of Latin-1 letters and double spaces, collapsed to 2046.
    {16, "'t'", "repeat('sÃO  paulo ', 186)", ok_price, ok_date, "",
     "rtrim(repeat('São Paulo ', 186))", ""},
    // 1 MB of spaces is no city.
    {5, "'t'", "repeat(' ', " + mb + ")", ok_price, ok_date, "city missing",
     "", ""},
    // A combining tilde is part of its letter, not a word start.
    {6, "'t'", "'sa' || U&'\\0303' || 'o PAULO'", ok_price, ok_date, "",
     "'Sa' || U&'\\0303' || 'o Paulo'", ""},
    // A city that starts with a combining mark: accepted, kept.
    {7, "'t'", "U&'\\0301' || 'berlin'", ok_price, ok_date, "",
     "U&'\\0301' || 'berlin'", ""},
    // Four-byte emoji in cities and titles.
    {8, "U&'caf\\0065\\0301  \\+01F600'", "U&'\\+01F34E  city'", ok_price,
     ok_date, "", "U&'\\+01F34E City'", "U&'caf\\0065\\0301 \\+01F600'"},
    {9, "NULL", "U&'\\+01F34E\\+01F34F'", ok_price, ok_date, "",
     "U&'\\+01F34E\\+01F34F'", "NULL"},
    // 1 MB price and date: rejected, not parsed for ever.
    {10, "repeat('x', " + mb + ")", "'lyon'", "repeat('9', " + mb + ")",
     ok_date, "price out of range", "", ""},
    {11, "'t'", "'lyon'", ok_price, "repeat('2021-03-04', 100000)",
     "unrecognised date", "", ""},
    // Look-alike symbols and digits from other blocks are not numbers.
    {12, "'t'", "'lyon'", "U&'\\+01F4B2100'", ok_date, "unparsable price", "",
     ""},
    {13, "'t'", "'lyon'", ok_price, "U&'\\FF12\\FF10\\FF12\\FF11-03-04'",
     "unrecognised date", "", ""},
    {14, "'t'", "'lyon'", "U&'\\FF11\\FF12'", ok_date, "unparsable price", "",
     ""},
  };
}

} // namespace

TEST_CASE("flow-etl clean: 1 MB text fields and unusual Unicode land in "
          "exactly one table with the expected reason",
          "[pg][flow-etl][clean][utf8]") {
  auto schema = fresh_schema("cleantext");
  auto ads = q(schema, "ads");
  auto cl = q(schema, "ads_clean");
  auto rj = q(schema, "ads_rejects");
  // The table flow-etl init creates.
  exec("CREATE TABLE " + ads
       + " (id bigint PRIMARY KEY, title text, city text, price text, "
         "posted_at text)");
  auto all = cases();
  for (auto& c : all)
    exec("INSERT INTO " + ads + " VALUES (" + std::to_string(c.id) + ", "
         + c.title + ", " + c.city + ", " + c.price + ", " + c.posted + ")");
  // The server keeps invalid UTF-8 and NUL out: the cleaner never sees them.
  CHECK_THROWS(exec("INSERT INTO " + ads + " VALUES (100, 't', "
                    "convert_from('\\xff'::bytea, 'UTF8'), '1', '2021-01-01')"));
  CHECK_THROWS(exec("INSERT INTO " + ads
                    + " VALUES (101, 't', 'a' || chr(0), '1', '2021-01-01')"));
  CHECK_THROWS(exec("INSERT INTO " + ads
                    + " VALUES (102, 't', E'\\xc0\\xaf', '1', '2021-01-01')"));

  // Small batches: each carries megabytes.
  auto res = run_program(prog, {"clean", "--db", conninfo(), "--schema",
                                schema, "--json", "--partitions", "2",
                                "--batch", "3"});
  INFO("stderr: " << res.err.substr(0, 2000));
  REQUIRE(res.rc == 0);
  CHECK(json_field(res.out, "ok") == "true");
  CHECK(json_field(res.out, "ads") == std::to_string(all.size()));

  // Exactly one table per ad.
  CHECK(scalar("SELECT count(*) FROM " + cl + " JOIN " + rj + " USING (id)")
        == "0");
  CHECK(scalar("SELECT count(*) FROM " + ads + " a WHERE NOT EXISTS (SELECT "
               "1 FROM " + cl + " c WHERE c.id = a.id) AND NOT EXISTS "
               "(SELECT 1 FROM " + rj + " r WHERE r.id = a.id)") == "0");
  for (auto& c : all) {
    INFO("ad " << c.id << ": city " << c.city.substr(0, 80) << ", price "
               << c.price.substr(0, 80) << ", posted "
               << c.posted.substr(0, 80));
    auto id = std::to_string(c.id);
    if (!c.reason.empty()) {
      CHECK(scalar("SELECT reason FROM " + rj + " WHERE id = " + id)
            == c.reason);
      continue;
    }
    REQUIRE(scalar("SELECT count(*) FROM " + cl + " WHERE id = " + id)
            == "1");
    CHECK(scalar("SELECT city = (" + c.clean_city + ") FROM " + cl
                 + " WHERE id = " + id)
          == "t");
    auto title = c.clean_title.empty() ? "(SELECT title FROM " + ads
                                           + " WHERE id = " + id + ")"
                                       : c.clean_title;
    CHECK(scalar("SELECT title IS NOT DISTINCT FROM (" + title + ") FROM "
                 + cl + " WHERE id = " + id)
          == "t");
  }
  // Rejects keep every raw value, megabytes included.
  CHECK(scalar("SELECT count(*) FROM " + rj + " r JOIN " + ads
               + " a USING (id) WHERE r.city IS DISTINCT FROM a.city OR "
                 "r.price IS DISTINCT FROM a.price OR r.posted_at IS DISTINCT "
                 "FROM a.posted_at OR r.title IS DISTINCT FROM a.title")
        == "0");
  // The summary (2 KB city keys included) equals the clean rows' GROUP BY.
  CHECK(scalar("SELECT count(*) FROM (SELECT city, count(*) AS ads, "
               "sum(price_cents) AS total_cents FROM " + cl
               + " GROUP BY city) g FULL JOIN " + q(schema, "ads_summary")
               + " s USING (city) WHERE g.ads IS DISTINCT FROM s.ads OR "
                 "g.total_cents IS DISTINCT FROM s.total_cents")
        == "0");
  CHECK(scalar("SELECT max(octet_length(city)) FROM "
               + q(schema, "ads_summary"))
        == "2048");
}
