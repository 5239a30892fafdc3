// Decoding COPY rows, partition ranges, names and connection strings: the
// parts of flow::pg that need no server.

#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdlib>
#include <limits>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include <pqxx/connection>
#include <pqxx/nontransaction>

#include "flow/pg/connection.hpp"
#include "flow/pg/error.hpp"
#include "flow/pg/read.hpp"
#include "flow/pg/row.hpp"
#include "flow/source.hpp"
#include "pg_fixture.hpp"

using namespace flow;

namespace {

/// True when `x` (nullopt: NULL) lies in `r`, by the range's definition.
bool contains(const pg::range& r, std::optional<std::int64_t> x) {
  if (!x)
    return r.nulls;
  return (!r.lo || *x >= *r.lo) && (!r.hi || *x < *r.hi);
}

} // namespace

TEST_CASE("row: fields split on tabs, the NULL marker is NULL, an empty "
          "field is not",
          "[pg][row]") {
  pg::row_view r;
  std::string line = "1\t\\N\t\tx\\ty\\\\z\\101";
  r.assign(line);
  REQUIRE(r.size() == 4);
  CHECK(r.int64(0) == 1);
  CHECK(r.is_null(1));
  CHECK_FALSE(r.opt_int64(1).has_value());
  CHECK_FALSE(r.is_null(2));
  CHECK(r.text(2).empty());
  CHECK(r.text(3) == "x\ty\\z\101");
  CHECK_THROWS_AS(r.text(1), pg::decode_error);
  CHECK_THROWS_AS(r.raw(4), pg::decode_error);
}

TEST_CASE("row: fields split as a find-the-next-tab reference splits them, on "
          "random lines of every length around the eight-byte steps",
          "[pg][row]") {
  // The reference: the rule written plainly.
  auto reference = [](const std::string& line) {
    std::vector<std::optional<std::string>> fields;
    std::size_t start = 0;
    for (;;) {
      auto tab = line.find('\t', start);
      auto f = line.substr(start, tab == std::string::npos
                                    ? std::string::npos
                                    : tab - start);
      if (f == "\\N")
        fields.emplace_back();
      else
        fields.emplace_back(f);
      if (tab == std::string::npos)
        return fields;
      start = tab + 1;
    }
  };
  // Tabs, the NULL marker's bytes, bytes next to the tab's value (8, 10)
  // and above 0x7f (negative chars), which a word-wise search must not
  // mistake for tabs.
  const std::string alphabet = std::string("\t\t\\NNab\x08\x0a\x89\xff")
                               + std::string(1, '\0');
  std::mt19937 rng{9};
  pg::row_view r;
  for (int i = 0; i < 20000; ++i) {
    std::string line;
    auto len = static_cast<std::size_t>(i % 41);
    for (std::size_t j = 0; j < len; ++j)
      line += alphabet[rng() % alphabet.size()];
    r.assign(line);
    auto want = reference(line);
    INFO("line of " << line.size() << " bytes, case " << i);
    REQUIRE(r.size() == want.size());
    for (std::size_t k = 0; k < want.size(); ++k) {
      REQUIRE(r.is_null(k) == !want[k].has_value());
      if (want[k])
        REQUIRE(r.raw(k) == *want[k]);
    }
  }
}

TEST_CASE("row: integers that do not fit or do not parse are decode errors "
          "naming the column and value",
          "[pg][row]") {
  auto big = std::to_string(std::numeric_limits<std::int64_t>::max());
  std::string over = big + "0";
  std::string line = "12x\t" + over + "\t" + big + "\t2147483648\t-7";
  pg::row_view r;
  r.assign(line);
  try {
    r.int64(0);
    FAIL("no error");
  } catch (const pg::decode_error& e) {
    CHECK(e.column() == 0);
    CHECK(std::string{e.what()}.find("'12x' is not an integer")
          != std::string::npos);
  }
  try {
    r.int64(1);
    FAIL("no error");
  } catch (const pg::decode_error& e) {
    CHECK(e.column() == 1);
    CHECK(std::string{e.what()}.find("does not fit a 64-bit integer")
          != std::string::npos);
    CHECK(std::string{e.what()}.find(over) != std::string::npos);
  }
  CHECK(r.int64(2) == std::numeric_limits<std::int64_t>::max());
  CHECK_THROWS_AS(r.int32(3), pg::decode_error);
  CHECK(r.int32(4) == -7);
  CHECK(r.int128_value(1) == int128{std::numeric_limits<std::int64_t>::max()}
                               * 10);
}

TEST_CASE("row: 128-bit integers parse exactly up to the limits",
          "[pg][row]") {
  std::mt19937_64 rng{7};
  for (int i = 0; i < 1000; ++i) {
    auto x = static_cast<int128>((static_cast<unsigned __int128>(rng()) << 64)
                                 | rng());
    auto text = to_string(x);
    auto parsed = pg::parse_int128(text);
    REQUIRE(parsed.has_value());
    CHECK(*parsed == x);
  }
  auto max = static_cast<int128>(~static_cast<unsigned __int128>(0) >> 1);
  auto min = -max - 1;
  CHECK(pg::parse_int128(to_string(max)) == max);
  CHECK(pg::parse_int128(to_string(min)) == min);
  CHECK_FALSE(pg::parse_int128(to_string(max) + "0").has_value());
  CHECK(pg::parse_int128("42.000") == int128{42});
  CHECK_FALSE(pg::parse_int128("42.5").has_value());
  CHECK_FALSE(pg::parse_int128("").has_value());
  CHECK_FALSE(pg::parse_int128("-").has_value());
  CHECK_FALSE(pg::parse_int128("1e5").has_value());
}

TEST_CASE("row: a '+' followed by another sign is not an integer",
          "[pg][row]") {
  // Found by tests/fuzz/fuzz_pg_row: from_chars took "+-7" as -7.
  CHECK_FALSE(pg::parse_int64("+-7").has_value());
  CHECK_FALSE(pg::parse_int64("+").has_value());
  CHECK_FALSE(pg::parse_int64("++7").has_value());
  CHECK(pg::parse_int64("+7") == 7);
  CHECK_FALSE(pg::parse_int128("+-7").has_value());
  pg::row_view r;
  std::string line = "+-7\t+-9223372036854775808";
  r.assign(line);
  CHECK_THROWS_AS(r.int64(0), pg::decode_error);
  CHECK_THROWS_AS(r.int32(0), pg::decode_error);
  CHECK_THROWS_AS(r.int64(1), pg::decode_error);
}

TEST_CASE("row: decode errors show control bytes of the field escaped",
          "[pg][row]") {
  // Found by tests/fuzz/fuzz_pg_row: a NUL cut the message short, and an
  // escape sequence would have reached the terminal as it was.
  pg::row_view r;
  std::string line{"x\001\033[31m\0y", 9};
  r.assign(line);
  try {
    r.int64(0);
    FAIL("no error");
  } catch (const pg::decode_error& e) {
    CHECK(std::string{e.what()}
          == "'x\\x01\\x1b[31m\\x00y' is not an integer");
  }
}

TEST_CASE("batch_text: kept text stays where it was put while the store "
          "grows, moves or holds fields larger than a chunk",
          "[pg][row][batch_text]") {
  pg::batch_text text;
  CHECK(text.capacity() == 0);
  std::mt19937_64 rng{7};
  std::vector<std::string> originals;
  std::vector<std::string_view> views;
  // From empty fields to fields of 3 MB: the first chunk (16 KiB), chunks
  // that double to 1 MiB, and fields with chunks of their own.
  for (int i = 0; i < 3000; ++i) {
    auto n = i % 500 == 499 ? std::size_t{3} << 20
                            : static_cast<std::size_t>(rng() % 300);
    std::string x(n, '\0');
    for (auto& c : x)
      c = static_cast<char>(rng());
    originals.push_back(x);
    views.push_back(text.keep(std::string_view{x}));
    // The source of a kept field changes at once (a row buffer reused).
    std::fill(x.begin(), x.end(), 'z');
  }
  auto moved = std::move(text);
  // The moved-from store starts afresh; what it keeps now lands in chunks
  // of its own, not in the space left in the moved store's last chunk.
  CHECK(text.capacity() == 0);
  auto after = text.keep("kept after the move");
  auto more = moved.keep(std::string(100, 'm'));
  CHECK(after == "kept after the move");
  CHECK(more == std::string(100, 'm'));
  for (std::size_t i = 0; i < views.size(); ++i)
    REQUIRE(views[i] == originals[i]);
  CHECK(moved.capacity() >= 6 * (std::size_t{3} << 20));
  // An empty field is text, never NULL: its data pointer is not null.
  auto empty = moved.keep(std::optional<std::string_view>{""});
  REQUIRE(empty);
  CHECK(empty->empty());
  CHECK(empty->data() != nullptr);
  CHECK_FALSE(moved.keep(std::optional<std::string_view>{}));
}

TEST_CASE("ranges: every value and NULL fall in exactly one range, whatever "
          "the bounds",
          "[pg][partition]") {
  std::mt19937_64 rng{11};
  std::uniform_int_distribution<std::int64_t> small{-20, 20};
  for (int round = 0; round < 200; ++round) {
    std::vector<std::int64_t> bounds;
    auto n = rng() % 6;
    for (std::uint64_t i = 0; i < n; ++i)
      bounds.push_back(small(rng));
    if (round % 10 == 0)
      bounds.push_back(std::numeric_limits<std::int64_t>::min());
    auto ranges = pg::ranges_from_bounds(bounds);
    std::sort(bounds.begin(), bounds.end());
    auto distinct = static_cast<std::size_t>(
      std::unique(bounds.begin(), bounds.end()) - bounds.begin());
    REQUIRE(ranges.size() == distinct + 1);
    std::vector<std::optional<std::int64_t>> probes{
      std::nullopt, std::numeric_limits<std::int64_t>::min(),
      std::numeric_limits<std::int64_t>::max()};
    for (int v = -25; v <= 25; ++v)
      probes.emplace_back(v);
    for (auto& p : probes) {
      int hits = 0;
      for (auto& r : ranges)
        hits += contains(r, p) ? 1 : 0;
      INFO("round " << round << ", value "
                    << (p ? std::to_string(*p) : std::string{"NULL"}));
      CHECK(hits == 1);
    }
  }
}

TEST_CASE("ranges: predicates quote the column and cast bounds",
          "[pg][partition]") {
  auto ranges = pg::ranges_from_bounds(
    {std::numeric_limits<std::int64_t>::min(), 10});
  REQUIRE(ranges.size() == 3);
  auto col = pg::quote_ident("va\"l");
  auto first = ranges[0].predicate(col);
  CHECK(first.find("IS NULL") != std::string::npos);
  CHECK(first.find(col) != std::string::npos);
  CHECK(ranges[1].predicate(col).find("'"
                                      + std::to_string(
                                        std::numeric_limits<
                                          std::int64_t>::min())
                                      + "'::bigint")
        != std::string::npos);
  CHECK(pg::ranges_from_bounds({})[0].predicate(col) == "TRUE");
}

TEST_CASE("names: identifiers are quoted, never interpreted", "[pg][names]") {
  std::string evil = "x\"; DROP TABLE elements; --";
  auto q = pg::quote_ident(evil);
  CHECK(q.front() == '"');
  CHECK(q.back() == '"');
  // Inside the quotes every quote is doubled: the name cannot end early.
  auto inner = q.substr(1, q.size() - 2);
  for (std::size_t i = 0; i < inner.size(); ++i)
    if (inner[i] == '"') {
      REQUIRE(i + 1 < inner.size());
      CHECK(inner[i + 1] == '"');
      ++i;
    }
  CHECK(pg::table_name{"a b", "c;d"}.quoted() == "\"a b\".\"c;d\"");
  CHECK_THROWS_AS(pg::check_identifier("", "--table"), input_error);
  CHECK_THROWS_AS(pg::check_identifier(std::string(64, 'x'), "--table"),
                  input_error);
  CHECK_NOTHROW(pg::check_identifier(std::string(63, 'x'), "--table"));
  CHECK_THROWS_AS(pg::quote_ident(std::string{"a\0b", 3}), input_error);
}

TEST_CASE("names: literals are quoted and the server reads back the same "
          "text",
          "[pg][names]") {
  CHECK(pg::quote_literal("it's") == "'it''s'");
  CHECK(pg::quote_literal("") == "''");
  // A backslash makes an escape string, read alike under either setting
  // of standard_conforming_strings.
  CHECK(pg::quote_literal("a\\b") == "E'a\\\\b'");
  for (std::string scs : {"on", "off"}) {
    // Set before the SELECT is sent: a query string is lexed whole, before
    // a SET inside it would run.
    pqxx::connection conn{flow::test::conninfo()};
    pqxx::nontransaction tx{conn};
    tx.exec0("SET standard_conforming_strings = " + scs);
    for (std::string text : {"", "it's", "a''b", "back\\slash \\n",
                             "x'; DROP TABLE elements; --",
                             "\\'; SELECT 1; --", "\"q\" Zürich 東京",
                             "'"}) {
      INFO(text << " with standard_conforming_strings " << scs);
      CHECK(tx.exec1("SELECT " + pg::quote_literal(text))[0].as<std::string>()
            == text);
    }
  }
}

TEST_CASE("redact: passwords in URIs and key=value strings never show",
          "[pg][password]") {
  std::string secret = "s3cr3t-pw";
  std::vector<std::string> cases{
    "postgresql://alice:" + secret + "@db.example:5433/app?sslmode=require",
    "postgres://alice:" + secret + "@h1,h2/app",
    "postgresql://alice@db/app?password=" + secret + "&application_name=x",
    "host=db user=alice password=" + secret + " dbname=app",
    "host=db user=alice password = '" + secret + " with \\' quote' dbname=app",
  };
  for (auto& c : cases) {
    INFO(c);
    auto shown = pg::redact(c);
    CHECK(shown.find(secret) == std::string::npos);
    CHECK(shown.find("***") != std::string::npos);
    CHECK(shown.find("alice") != std::string::npos);
  }
  // Whatever the syntax, scrub removes the password libpq would use.
  CHECK(pg::scrub("failed: " + secret + " x", cases[3])
        == "failed: *** x");
  auto quoted = secret + " with ' quote";
  CHECK(pg::scrub("failed: " + quoted, cases[4]).find(quoted)
        == std::string::npos);
  CHECK(pg::redact("host=db dbname=app") == "host=db dbname=app");
  CHECK(pg::redact("") == "(environment)");
}

TEST_CASE("errors: SQL states map to names and codes", "[pg][error]") {
  CHECK(pg::condition_name("42P01") == "undefined_table");
  CHECK(pg::condition_name("28P01") == "invalid_password");
  CHECK(pg::condition_name("ZZZZZ").empty());
  CHECK(pg::errc_of_sqlstate("42P01") == errc::bad_input);
  CHECK(pg::errc_of_sqlstate("42501") == errc::bad_input);
  CHECK(pg::errc_of_sqlstate("22003") == errc::bad_input);
  CHECK(pg::errc_of_sqlstate("08006") == errc::source_failed);
  CHECK(pg::errc_of_sqlstate("") == errc::source_failed);
}

TEST_CASE("pg errors: lost connections are told apart from unreachable "
          "servers and from other errors",
          "[pg][errors]") {
  auto err = [](const std::string& text) {
    return flow::make_error(flow::errc::source_failed, text);
  };
  auto admin = err("57P01 admin_shutdown: terminating connection due to "
                   "administrator command");
  auto closed = err("COPY failed: server closed the connection unexpectedly");
  auto refused = err("cannot connect: connection to server at \"127.0.0.1\", "
                     "port 1 failed: Connection refused");
  auto missing = err("42P01 undefined_table: relation \"x\" does not exist");
  CHECK(flow::pg::connection_lost(admin));
  CHECK(flow::pg::connection_lost(closed));
  CHECK(flow::pg::connection_lost(refused));
  CHECK_FALSE(flow::pg::connection_lost(missing));
  CHECK_FALSE(flow::pg::connection_lost(caf::error{}));
  CHECK(flow::pg::connect_failed(refused));
  CHECK_FALSE(flow::pg::connect_failed(admin));
  CHECK_FALSE(flow::pg::connect_failed(closed));
}
