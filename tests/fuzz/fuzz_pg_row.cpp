// Fuzzes flow::pg's decoding of COPY text rows (flow::pg::row_view and the
// parse_int64 / parse_int128 of its header), with no server: the fuzz input
// is one COPY line, held in a buffer of exactly its size so that AddressSanitizer
// sees any read past it.
//
// Properties: the fields are the tab-separated pieces of the line, each a
// view into it, NULL exactly for "\N"; text without backslashes comes back
// as sent, escaped text never grows; the integer accessors agree with
// strtoll- and unsigned-based references, throw decode_error naming the
// column (and "does not fit" exactly for integers beyond the type), and NULL
// gives nothing or a decode_error; an int128 prints back to itself. And the
// input taken as a value, escaped the way PostgreSQL's COPY does (and with
// octal and hex escapes), decodes back to the same bytes.

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <string_view>

#include "flow/pg/row.hpp"
#include "reference.hpp"

namespace {

using flow::pg::decode_error;
using flow::pg::row_view;

/// Calls `f`; true when it throws decode_error for `column` whose message
/// contains `part` and is printable: what the field holds must neither cut
/// the message short (a NUL) nor reach a terminal raw (an escape sequence).
template <class F>
bool throws_decode_error(F f, std::size_t column, const char* part) {
  try {
    f();
  } catch (const decode_error& e) {
    std::string_view msg{e.what()};
    for (auto c : msg)
      if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
        return false;
    return e.column() == column
           && msg.find(part) != std::string_view::npos;
  }
  return false;
}

void check_integers(const row_view& r, std::size_t i) {
  auto raw = r.raw(i);
  if (r.is_null(i)) {
    FLOW_FUZZ_CHECK(!r.opt_int64(i) && !r.opt_int32(i));
    FLOW_FUZZ_CHECK(throws_decode_error([&] { r.int64(i); }, i, "NULL"));
    FLOW_FUZZ_CHECK(throws_decode_error([&] { r.int32(i); }, i, "NULL"));
    FLOW_FUZZ_CHECK(
      throws_decode_error([&] { r.int128_value(i); }, i, "NULL"));
    return;
  }
  std::int64_t want = 0;
  auto status = flow::fuzz::reference_int64(raw, want);
  auto want128 = flow::fuzz::reference_int128(raw);

  // The free functions of the header.
  auto p64 = flow::pg::parse_int64(raw);
  FLOW_FUZZ_CHECK(p64.has_value() == (status == flow::fuzz::int_status::ok));
  if (p64)
    FLOW_FUZZ_CHECK(*p64 == want);
  auto p128 = flow::pg::parse_int128(raw);
  FLOW_FUZZ_CHECK(p128.has_value() == want128.has_value());
  if (p128) {
    FLOW_FUZZ_CHECK(*p128 == *want128);
    auto again = flow::pg::parse_int128(flow::fuzz::to_decimal(*p128));
    FLOW_FUZZ_CHECK(again && *again == *p128);
  }

  // The row's accessors.
  if (status == flow::fuzz::int_status::ok) {
    FLOW_FUZZ_CHECK(r.int64(i) == want);
    FLOW_FUZZ_CHECK(r.opt_int64(i) == want);
    bool fits32 = want >= std::numeric_limits<std::int32_t>::min()
                  && want <= std::numeric_limits<std::int32_t>::max();
    if (fits32)
      FLOW_FUZZ_CHECK(r.int32(i) == want);
    else
      FLOW_FUZZ_CHECK(throws_decode_error([&] { r.int32(i); }, i,
                                          "does not fit a 32-bit integer"));
  } else {
    // An integral numeric within int64 but written with a zero fraction
    // ("12.0") is refused too; its message is not pinned down here.
    bool beyond = want128
                  && (*want128 < std::numeric_limits<std::int64_t>::min()
                      || *want128 > std::numeric_limits<std::int64_t>::max());
    auto why = beyond     ? "does not fit a 64-bit integer"
               : want128 ? ""
                         : "is not an integer";
    FLOW_FUZZ_CHECK(throws_decode_error([&] { r.int64(i); }, i, why));
    FLOW_FUZZ_CHECK(throws_decode_error([&] { r.opt_int32(i); }, i, why));
  }
  if (want128)
    FLOW_FUZZ_CHECK(r.int128_value(i) == *want128);
  else
    FLOW_FUZZ_CHECK(throws_decode_error([&] { r.int128_value(i); }, i,
                                        "is not an integer within 128 bits"));
}

void check_line(std::string_view line) {
  row_view r;
  r.assign(line);
  FLOW_FUZZ_CHECK(r.size() >= 1);
  std::size_t pos = 0;
  for (std::size_t i = 0; i < r.size(); ++i) {
    auto tab = line.find('\t', pos);
    auto end = tab == std::string_view::npos ? line.size() : tab;
    FLOW_FUZZ_CHECK((tab == std::string_view::npos) == (i + 1 == r.size()));
    auto piece = line.substr(pos, end - pos);
    auto raw = r.raw(i);
    FLOW_FUZZ_CHECK(r.is_null(i) == (piece == "\\N"));
    if (r.is_null(i)) {
      FLOW_FUZZ_CHECK(!r.opt_text(i));
      FLOW_FUZZ_CHECK(throws_decode_error([&] { r.text(i); }, i, "NULL"));
    } else {
      // A view into the line itself: nothing copied, nothing beyond it.
      FLOW_FUZZ_CHECK(raw.data() == line.data() + pos);
      FLOW_FUZZ_CHECK(raw == piece);
      std::string text{r.text(i)};
      FLOW_FUZZ_CHECK(r.opt_text(i) == text);
      if (piece.find('\\') == std::string_view::npos)
        FLOW_FUZZ_CHECK(text == piece);
      else
        FLOW_FUZZ_CHECK(text.size() <= piece.size());
    }
    // Each failed conversion throws, which ASan makes slow: the first
    // fields are enough to reach every path of the integer accessors.
    if (i < 8)
      check_integers(r, i);
    pos = end + 1;
  }
  FLOW_FUZZ_CHECK(throws_decode_error([&] { r.raw(r.size()); }, r.size(),
                                      "fields"));
}

/// `value` as one COPY text field: as PostgreSQL writes it (`style` 0), or
/// with every byte as an octal (1) or hex (2) escape, or the three mixed (3).
std::string escape(std::string_view value, int style) {
  static constexpr char hex[] = "0123456789abcdef";
  std::string out;
  for (std::size_t i = 0; i < value.size(); ++i) {
    auto c = static_cast<unsigned char>(value[i]);
    int s = style == 3 ? static_cast<int>(i % 3) : style;
    if (s == 1) {
      out += '\\';
      out += static_cast<char>('0' + (c >> 6));
      out += static_cast<char>('0' + ((c >> 3) & 7));
      out += static_cast<char>('0' + (c & 7));
      continue;
    }
    if (s == 2) {
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 15];
      continue;
    }
    switch (c) {
      case '\\': out += "\\\\"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\v': out += "\\v"; break;
      default: out += static_cast<char>(c);
    }
  }
  return out;
}

void check_round_trip(std::string_view value) {
  for (int style = 0; style < 4; ++style) {
    auto field = escape(value, style);
    auto line = field + "\t\\N\t" + field;
    // Exactly sized, so that a read past the end is caught.
    auto buf = std::make_unique<char[]>(line.size());
    std::memcpy(buf.get(), line.data(), line.size());
    row_view r;
    r.assign({buf.get(), line.size()});
    FLOW_FUZZ_CHECK(r.size() == 3);
    FLOW_FUZZ_CHECK(!r.is_null(0) && r.is_null(1) && !r.is_null(2));
    FLOW_FUZZ_CHECK(r.text(0) == value);
    FLOW_FUZZ_CHECK(r.text(2) == value);
  }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data,
                                      std::size_t size) {
  // Exactly sized and never null, unlike what libFuzzer may pass for size 0.
  auto buf = std::make_unique<char[]>(size);
  if (size > 0)
    std::memcpy(buf.get(), data, size);
  std::string_view input{buf.get(), size};
  check_line(input);
  check_round_trip(input);
  return 0;
}
