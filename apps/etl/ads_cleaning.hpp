#pragma once

// The data-cleaning rules of flow-etl's `clean` job: raw, scraped classified
// ads in, typed values or a reason out. Pure functions, so they are tested
// (and fuzzed) without a database.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace flow::apps {

/// A cleaning step's outcome: a value, or the reason the input was rejected.
template <class T>
struct cleaned {
  std::optional<T> value;
  std::string reason;

  /// A successful outcome.
  static cleaned ok(T x) {
    return {std::move(x), {}};
  }

  /// A rejection with a reason.
  static cleaned fail(std::string why) {
    return {std::nullopt, std::move(why)};
  }
};

/// The longest normalised city accepted, in bytes.
constexpr std::size_t max_city_bytes = 2048;

/// Normalises a city: trims, collapses runs of white space, title-cases each
/// word (ASCII and the Latin-1 letters of UTF-8, so "SÃO  paulo" becomes
/// "São Paulo"). Rejects NULL or blank ("city missing"), invalid UTF-8 and
/// cities longer than `max_city_bytes` once collapsed ("city too long").
cleaned<std::string> normalize_city(const std::optional<std::string_view>& raw);

/// Parses a price into integer cents: "1200", "$1,200", "$ 1,200.50",
/// "1200.5"; "free" is 0. Rejects NULL or blank ("price missing"), "call"
/// ("price on request"), other currencies ("price in EUR"), negative prices,
/// misplaced thousands separators, more than two decimals and values beyond
/// the int64 range of cents.
cleaned<std::int64_t> parse_price_cents(const std::optional<std::string_view>& raw);

/// A posting date and time of day, as parse_posted_time found it (a date
/// that exists, years 1 to 9999).
struct posted_time {
  int year = 0;
  int month = 0;
  int day = 0;
  int hour = 0;
  int minute = 0;
  int second = 0;

  /// "YYYY-MM-DD HH:MM:SS".
  std::string text() const;
};

/// parse_posted_at's rules and reasons, giving the fields rather than text
/// (the clean job sends them to the server as a binary timestamp).
cleaned<posted_time> parse_posted_time(const std::optional<std::string_view>& raw);

/// Parses a posting date into "YYYY-MM-DD HH:MM:SS": "2021-03-04",
/// "2021-03-04 17:05:00", "04/03/2021" (day first), "March 4, 2021".
/// Rejects NULL or blank ("date missing"), relative dates ("yesterday"),
/// impossible dates (February 30) and anything else ("unrecognised date").
cleaned<std::string> parse_posted_at(const std::optional<std::string_view>& raw);

/// Trims and collapses white space in a title (a NULL title stays NULL).
std::optional<std::string> clean_title(const std::optional<std::string_view>& raw);

/// Trims `x` and collapses its runs of ASCII white space into one space: `x`
/// itself when there is nothing to collapse (most values), otherwise a view
/// of `buf`, which holds the result.
std::string_view collapse_spaces(std::string_view x, std::string& buf);

/// True when `x` is valid UTF-8.
bool valid_utf8(std::string_view x);

} // namespace flow::apps
