// The cleaning rules of flow-etl's clean job, good and bad input.

#include <random>

#include <catch2/catch.hpp>

#include "etl/ads_cleaning.hpp"

using namespace flow::apps;

namespace {

std::optional<std::string> s(const char* x) {
  return std::string{x};
}

} // namespace

TEST_CASE("cleaning: cities are trimmed, collapsed and title-cased",
          "[cleaning]") {
  CHECK(*normalize_city(s("  new   york ")).value == "New York");
  CHECK(*normalize_city(s("BERLIN")).value == "Berlin");
  CHECK(*normalize_city(s("san\tfrancisco")).value == "San Francisco");
  CHECK(*normalize_city(s("SÃO PAULO")).value == "São Paulo");
  CHECK(*normalize_city(s("são paulo")).value == "São Paulo");
  CHECK(*normalize_city(s("winston-salem")).value == "Winston-Salem");
  // Every spelling of one city lands on one key.
  CHECK(normalize_city(s("los angeles")).value
        == normalize_city(s(" Los  ANGELES\t")).value);
}

TEST_CASE("cleaning: missing and malformed cities are rejected with a reason",
          "[cleaning]") {
  CHECK(normalize_city(std::nullopt).reason == "city missing");
  CHECK(normalize_city(s("")).reason == "city missing");
  CHECK(normalize_city(s(" \t ")).reason == "city missing");
  CHECK(normalize_city(s("Ber\xfflin")).reason == "city is not valid UTF-8");
  CHECK(normalize_city(s("\xc3")).reason == "city is not valid UTF-8");
  CHECK_FALSE(normalize_city(s("\xed\xa0\x80")).value); // a surrogate
}

TEST_CASE("cleaning: cities up to max_city_bytes are kept, longer ones are "
          "rejected",
          "[cleaning][utf8]") {
  // Collapsed length counts: 2048 bytes after collapsing is fine.
  std::string limit(max_city_bytes, 'a');
  CHECK(normalize_city("  " + limit + "  ").value
        == "A" + std::string(max_city_bytes - 1, 'a'));
  CHECK(normalize_city(limit + "a").reason == "city too long");
  CHECK(normalize_city(std::string(1 << 20, 'x')).reason == "city too long");
  // A megabyte of blanks is still a missing city.
  CHECK(normalize_city(std::string(1 << 20, ' ')).reason == "city missing");
}

TEST_CASE("cleaning: combining marks and 4-byte characters in cities are kept",
          "[cleaning][utf8]") {
  // A combining tilde belongs to its letter: no new word starts after it.
  CHECK(*normalize_city(s("sa\xcc\x83o PAULO")).value == "Sa\xcc\x83o Paulo");
  CHECK(*normalize_city(s("\xcc\x81" "berlin")).value == "\xcc\x81" "berlin");
  CHECK(*normalize_city(s("\xf0\x9f\x8d\x8e  city")).value
        == "\xf0\x9f\x8d\x8e City");
  CHECK(*clean_title(s("cafe\xcc\x81  \xf0\x9f\x98\x80 "))
        == "cafe\xcc\x81 \xf0\x9f\x98\x80");
}

TEST_CASE("cleaning: prices in the scraped formats parse to cents",
          "[cleaning]") {
  CHECK(*parse_price_cents(s("1200")).value == 120000);
  CHECK(*parse_price_cents(s("$1,200")).value == 120000);
  CHECK(*parse_price_cents(s("$ 1,200.50")).value == 120050);
  CHECK(*parse_price_cents(s("1200.5")).value == 120050);
  CHECK(*parse_price_cents(s("0.07")).value == 7);
  CHECK(*parse_price_cents(s("$1,234,567.89")).value == 123456789);
  CHECK(*parse_price_cents(s("12 USD")).value == 1200);
  CHECK(*parse_price_cents(s("FREE")).value == 0);
  CHECK(*parse_price_cents(s("92233720368547758.07")).value == INT64_MAX);
}

TEST_CASE("cleaning: unusable prices are rejected with a reason",
          "[cleaning]") {
  CHECK(parse_price_cents(std::nullopt).reason == "price missing");
  CHECK(parse_price_cents(s("")).reason == "price missing");
  CHECK(parse_price_cents(s("call")).reason == "price on request");
  CHECK(parse_price_cents(s("1200 EUR")).reason == "price in EUR");
  CHECK(parse_price_cents(s("-5")).reason == "negative price");
  CHECK(parse_price_cents(s("$-5")).reason == "negative price");
  CHECK(parse_price_cents(s("1,20")).reason == "misplaced thousands separator");
  CHECK(parse_price_cents(s("12,3456")).reason
        == "misplaced thousands separator");
  CHECK(parse_price_cents(s("1.234")).reason == "unparsable price");
  CHECK(parse_price_cents(s("1.")).reason == "unparsable price");
  CHECK(parse_price_cents(s("$")).reason == "unparsable price");
  CHECK(parse_price_cents(s("12abc")).reason == "unparsable price");
  CHECK(parse_price_cents(s("92233720368547758.08")).reason
        == "price out of range");
  CHECK(parse_price_cents(s("99999999999999999999999")).reason
        == "price out of range");
}

TEST_CASE("cleaning: dates in the scraped formats parse to timestamps",
          "[cleaning]") {
  CHECK(*parse_posted_at(s("2021-03-04")).value == "2021-03-04 00:00:00");
  CHECK(*parse_posted_at(s("2021-03-04 17:05:09")).value
        == "2021-03-04 17:05:09");
  CHECK(*parse_posted_at(s("2021-03-04 17:05")).value
        == "2021-03-04 17:05:00");
  CHECK(*parse_posted_at(s("04/03/2021")).value == "2021-03-04 00:00:00");
  CHECK(*parse_posted_at(s("March 4, 2021")).value == "2021-03-04 00:00:00");
  CHECK(*parse_posted_at(s("february 29, 2024")).value
        == "2024-02-29 00:00:00");
}

TEST_CASE("cleaning: parse_posted_time gives the fields parse_posted_at "
          "prints, and the same reasons",
          "[cleaning]") {
  auto t = parse_posted_time(s("March 4, 2021"));
  REQUIRE(t.value);
  CHECK(t.value->year == 2021);
  CHECK(t.value->month == 3);
  CHECK(t.value->day == 4);
  CHECK(t.value->hour == 0);
  t = parse_posted_time(s("2021-03-04 17:05:09"));
  REQUIRE(t.value);
  CHECK(t.value->hour == 17);
  CHECK(t.value->minute == 5);
  CHECK(t.value->second == 9);
  CHECK(t.value->text() == "2021-03-04 17:05:09");
  for (auto raw : {"2023-02-30", "yesterday", "Smarch 4, 2021", " "}) {
    auto bad = parse_posted_time(s(raw));
    CHECK_FALSE(bad.value);
    CHECK(bad.reason == parse_posted_at(s(raw)).reason);
  }
}

TEST_CASE("cleaning: impossible, relative and unknown dates are rejected",
          "[cleaning]") {
  CHECK(parse_posted_at(std::nullopt).reason == "date missing");
  CHECK(parse_posted_at(s(" ")).reason == "date missing");
  CHECK(parse_posted_at(s("yesterday")).reason == "relative date");
  CHECK(parse_posted_at(s("3 days ago")).reason == "relative date");
  // Keywords match in any ASCII case, compared in place.
  CHECK(parse_posted_at(s("YESTERDAY")).reason == "relative date");
  CHECK(parse_posted_at(s("Just  Now")).reason == "relative date");
  CHECK(parse_posted_at(s("2 hours AGO")).reason == "relative date");
  CHECK(parse_posted_at(s("agora")).reason == "unrecognised date");
  CHECK(*parse_posted_at(s("MARCH 4, 2021")).value == "2021-03-04 00:00:00");
  CHECK(*parse_posted_at(s("sePtember 30, 1999")).value
        == "1999-09-30 00:00:00");
  CHECK(parse_posted_at(s("Mar 4, 2021")).reason == "unrecognised date");
  CHECK(parse_posted_at(s("March")).reason == "unrecognised date");
  CHECK(parse_price_cents(s("Call For Price")).reason == "price on request");
  CHECK(parse_price_cents(s("ASK")).reason == "price on request");
  CHECK(*parse_price_cents(s(" Free ")).value == 0);
  CHECK(parse_price_cents(s("freebie")).reason == "unparsable price");
  CHECK(parse_posted_at(s("2023-02-30")).reason == "invalid date");
  CHECK(parse_posted_at(s("2023-02-29")).reason == "invalid date");
  CHECK(parse_posted_at(s("1900-02-29")).reason == "invalid date");
  CHECK(parse_posted_at(s("2023-13-01")).reason == "invalid date");
  CHECK(parse_posted_at(s("2023-01-01 24:00:00")).reason == "invalid date");
  CHECK(parse_posted_at(s("31/04/2022")).reason == "invalid date");
  CHECK(parse_posted_at(s("2023/01/01")).reason == "unrecognised date");
  CHECK(parse_posted_at(s("Smarch 4, 2021")).reason == "unrecognised date");
  CHECK(parse_posted_at(s("March 4 2021")).reason == "unrecognised date");
  CHECK(parse_posted_at(s("2021-03-04x")).reason == "unrecognised date");
}

TEST_CASE("cleaning: white space is trimmed and collapsed as a one-byte-at-"
          "a-time reference does, on random text", "[cleaning]") {
  // The reference: the rule written plainly (ASCII white space is ' ' and
  // '\t' to '\r'; runs become one ' ', none at either end).
  auto reference = [](const std::string& x) {
    std::string r;
    bool pending = false;
    for (char c : x) {
      if (c == ' ' || (c >= '\t' && c <= '\r')) {
        pending = !r.empty();
        continue;
      }
      if (pending)
        r += ' ';
      pending = false;
      r += c;
    }
    return r;
  };
  // Mostly letters with single spaces (the fast path), with every white
  // space byte, control bytes below ' ' that are not white space, and bytes
  // above 0x7f (negative chars) mixed in.
  const std::string alphabet = std::string("ab  \t\n\v\f\r\x01\x1f\x7f")
                               + "\xc3\xa9" + std::string(1, '\0');
  std::mt19937 rng{5};
  for (int i = 0; i < 20000; ++i) {
    std::string x;
    auto len = rng() % 12;
    for (std::size_t j = 0; j < len; ++j)
      x += i % 2 == 0 && rng() % 4 != 0 ? static_cast<char>('a' + rng() % 3)
                                        : alphabet[rng() % alphabet.size()];
    INFO("input of " << x.size() << " bytes, case " << i);
    REQUIRE(*clean_title(x) == reference(x));
    // The same through collapse_spaces: the input itself when nothing
    // changes (no copy), the buffer otherwise.
    std::string buf = "stale";
    auto v = collapse_spaces(x, buf);
    REQUIRE(v == reference(x));
    if (reference(x) == x)
      CHECK(v.data() == x.data());
    else
      CHECK(v.data() == buf.data());
  }
  CHECK(*clean_title(s("a b")) == "a b");
  CHECK(*clean_title(s("a  b")) == "a b");
  CHECK(*clean_title(s("a \tb")) == "a b");
  CHECK(*clean_title(s(" a")) == "a");
  CHECK(*clean_title(s("a ")) == "a");
  CHECK(*clean_title(s("\x01 a")) == "\x01 a");
  CHECK(clean_title(s(""))->empty());
}

TEST_CASE("cleaning: titles are trimmed and NULL stays NULL", "[cleaning]") {
  CHECK(*clean_title(s("  red   bike !!")) == "red bike !!");
  CHECK_FALSE(clean_title(std::nullopt));
}
