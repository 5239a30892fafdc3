// Fuzzes flow-etl's text cleaning: flow::apps::normalize_city, clean_title
// and valid_utf8. The fuzz input is the raw city (and title) as scraped.
//
// Properties: valid_utf8 agrees with a code-point decoder; a city is rejected
// exactly when it is blank, not UTF-8 or over max_city_bytes once collapsed
// (with the reason of the first that applies); a normalised city is valid
// UTF-8, single-spaced and trimmed, differs from the collapsed input only in
// letter case, starts every word (after a space or '-') with a capital and
// lowers the rest, and normalises to itself; a cleaned title is the input's
// words joined by single spaces and cleans to itself.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "etl/ads_cleaning.hpp"
#include "reference.hpp"

namespace {

using flow::apps::clean_title;
using flow::apps::normalize_city;

bool is_upper_ascii(unsigned char c) {
  return c >= 'A' && c <= 'Z';
}

bool is_lower_ascii(unsigned char c) {
  return c >= 'a' && c <= 'z';
}

void check_city(const std::string& raw) {
  auto r = normalize_city(raw);
  FLOW_FUZZ_CHECK(r.value.has_value() != !r.reason.empty());
  auto words = flow::fuzz::join_words(raw);
  if (words.empty()) {
    FLOW_FUZZ_CHECK(r.reason == "city missing");
    return;
  }
  if (!flow::fuzz::reference_utf8(raw)) {
    FLOW_FUZZ_CHECK(r.reason == "city is not valid UTF-8");
    return;
  }
  if (words.size() > flow::apps::max_city_bytes) {
    FLOW_FUZZ_CHECK(r.reason == "city too long");
    return;
  }
  FLOW_FUZZ_CHECK(r.value.has_value());
  const auto& out = *r.value;
  FLOW_FUZZ_CHECK(flow::fuzz::reference_utf8(out));
  // Only case changes, which keep the length in UTF-8 for these letters.
  FLOW_FUZZ_CHECK(out.size() == words.size());
  FLOW_FUZZ_CHECK(flow::fuzz::join_words(out) == out);
  for (std::size_t i = 0; i < out.size(); ++i) {
    auto o = static_cast<unsigned char>(out[i]);
    auto w = static_cast<unsigned char>(words[i]);
    if (o >= 0x80)
      continue; // multi-byte characters: see the next loop
    bool word_start = i == 0 || out[i - 1] == ' ' || out[i - 1] == '-';
    if (is_upper_ascii(o) || is_lower_ascii(o)) {
      FLOW_FUZZ_CHECK((o | 0x20) == (w | 0x20));
      FLOW_FUZZ_CHECK(word_start ? is_upper_ascii(o) : is_lower_ascii(o));
    } else {
      FLOW_FUZZ_CHECK(o == w);
    }
  }
  // Latin-1 letters (C3 xx) follow the same rule as ASCII ones.
  for (std::size_t i = 0; i + 1 < out.size(); ++i) {
    auto lead = static_cast<unsigned char>(out[i]);
    if (lead < 0xc0)
      continue;
    auto second = static_cast<unsigned char>(out[i + 1]);
    auto was = static_cast<unsigned char>(words[i + 1]);
    if (lead == 0xc3) {
      bool word_start = i == 0 || out[i - 1] == ' ' || out[i - 1] == '-';
      FLOW_FUZZ_CHECK(second == was || second == (was ^ 0x20));
      bool lower = second >= 0xa0 && second <= 0xbe && second != 0xb7;
      bool upper = second >= 0x80 && second <= 0x9e && second != 0x97;
      FLOW_FUZZ_CHECK(word_start ? !lower : !upper);
    } else {
      // Other characters are kept byte for byte.
      auto len = lead >= 0xf0 ? 4u : lead >= 0xe0 ? 3u : 2u;
      for (std::size_t k = 0; k < len; ++k)
        FLOW_FUZZ_CHECK(out[i + k] == words[i + k]);
    }
  }
  auto again = normalize_city(out);
  FLOW_FUZZ_CHECK(again.value && *again.value == out);
}

void check_title(const std::string& raw) {
  auto t = clean_title(raw);
  FLOW_FUZZ_CHECK(t.has_value());
  FLOW_FUZZ_CHECK(*t == flow::fuzz::join_words(raw));
  FLOW_FUZZ_CHECK(clean_title(*t) == t);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data,
                                      std::size_t size) {
  std::string raw{reinterpret_cast<const char*>(data), size};
  FLOW_FUZZ_CHECK(flow::apps::valid_utf8(raw)
                  == flow::fuzz::reference_utf8(raw));
  check_city(raw);
  check_title(raw);

  FLOW_FUZZ_CHECK(normalize_city(std::nullopt).reason == "city missing");
  FLOW_FUZZ_CHECK(!clean_title(std::nullopt).has_value());
  return 0;
}
