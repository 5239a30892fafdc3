#include "flow/key.hpp"

#include <algorithm>

#include "flow/error.hpp"

namespace flow {

namespace {

// The encoding of composite keys: per part a tag byte, then
//   boolean: one byte 0 or 1;
//   integer: the fewest big-endian bytes that hold it, their number in the
//            tag: a value x >= 0 of k bytes (k = 0 for 0) has tag 12 + k and
//            x itself; a value x < 0 of k bytes (the least k >= 1 with
//            x >= -2^(8k)) has tag 12 - k and x + 2^(8k);
//   string:  the bytes with 0x00 written as 0x00 0xFF, ended by 0x00 0x01.
// Comparing two encodings bytewise (unsigned) compares the tuples part by
// part, which is why the tags are ordered null < boolean < integer < string
// and the integers' tags by magnitude. Small integers (ids, years, days,
// regions) take 2 to 4 bytes, so a key of a few of them fits the string's
// inline buffer: no heap allocation per row (8 bytes each took 18 for two).
// Tags 2 and 3 were the integer and string tags of the first encoding
// (8 bytes per integer); they are refused, so a state saved by a version
// with that encoding is never read as other keys.
constexpr unsigned char tag_null = 0;
constexpr unsigned char tag_bool = 1;
constexpr unsigned char tag_int_zero = 12;
constexpr unsigned char tag_string = 21;

/// The number of bytes of `u` without leading zero bytes.
int bytes_of(std::uint64_t u) {
  int k = 0;
  while (u != 0) {
    ++k;
    u >>= 8;
  }
  return k;
}

/// Appends integer `x` in the shortest form (see above): its tag, then
/// its k significant bytes, big-endian.
void encode_int(std::int64_t x, std::string& out) {
  auto u = static_cast<std::uint64_t>(x);
  int k;
  if (x >= 0) {
    k = bytes_of(u);
    out.push_back(static_cast<char>(tag_int_zero + k));
  } else {
    // ~x = -x - 1 < 2^(8k) exactly when x >= -2^(8k); the payload is the
    // low 8k bits of x's two's complement, which is x + 2^(8k).
    k = std::max(1, bytes_of(~u));
    out.push_back(static_cast<char>(tag_int_zero - k));
  }
  for (int shift = 8 * (k - 1); shift >= 0; shift -= 8)
    out.push_back(static_cast<char>((u >> shift) & 0xFF));
}

void encode(const key_part& p, std::string& out) {
  switch (p.type()) {
    case key_part::kind::null:
      out.push_back(static_cast<char>(tag_null));
      break;
    case key_part::kind::boolean:
      out.push_back(static_cast<char>(tag_bool));
      out.push_back(static_cast<char>(p.as_bool() ? 1 : 0));
      break;
    case key_part::kind::integer:
      encode_int(p.as_int(), out);
      break;
    case key_part::kind::string:
      out.push_back(static_cast<char>(tag_string));
      for (auto c : p.as_string()) {
        out.push_back(c);
        if (c == '\0')
          out.push_back(static_cast<char>(0xFF));
      }
      out.push_back('\0');
      out.push_back(static_cast<char>(1));
      break;
  }
}

// Decodes an encoding; false when it is not one encode() can produce.
bool decode(const std::string& in, std::vector<key_part>* out) {
  std::size_t i = 0;
  auto n = in.size();
  auto byte = [&](std::size_t j) { return static_cast<unsigned char>(in[j]); };
  while (i < n) {
    auto tag = byte(i++);
    switch (tag) {
      case tag_null:
        if (out)
          out->emplace_back();
        break;
      case tag_bool:
        if (i >= n || byte(i) > 1)
          return false;
        if (out)
          out->emplace_back(byte(i) == 1);
        ++i;
        break;
      case tag_string: {
        std::string s;
        for (;;) {
          if (i >= n)
            return false;
          auto c = byte(i++);
          if (c != 0) {
            s.push_back(static_cast<char>(c));
            continue;
          }
          if (i >= n)
            return false;
          auto next = byte(i++);
          if (next == 0xFF)
            s.push_back('\0');
          else if (next == 1)
            break;
          else
            return false;
        }
        if (out)
          out->emplace_back(std::move(s));
        break;
      }
      default: {
        if (tag < tag_int_zero - 8 || tag > tag_int_zero + 8)
          return false;
        bool neg = tag < tag_int_zero;
        auto k = static_cast<std::size_t>(neg ? tag_int_zero - tag
                                              : tag - tag_int_zero);
        if (n - i < k)
          return false;
        // Only the shortest form is valid: equal keys, equal bytes.
        auto top = k > 0 ? byte(i) : 0;
        if (!neg && k > 0 && top == 0)
          return false;
        if (neg && k > 1 && top == 0xFF)
          return false;
        if (neg && k == 8 && top < 0x80)
          return false; // below -2^63
        if (!neg && k == 8 && top >= 0x80)
          return false; // above 2^63 - 1
        std::uint64_t u = 0;
        for (std::size_t j = 0; j < k; ++j)
          u = (u << 8) | byte(i++);
        if (neg && k < 8)
          u -= std::uint64_t{1} << (8 * k); // wraps to x's two's complement
        if (out)
          out->emplace_back(static_cast<std::int64_t>(u));
        break;
      }
    }
  }
  return true;
}

} // namespace

std::string to_string(const key_part& x) {
  switch (x.type()) {
    case key_part::kind::null:
      return "NULL";
    case key_part::kind::boolean:
      return x.as_bool() ? "true" : "false";
    case key_part::kind::integer:
      return std::to_string(x.as_int());
    default:
      return x.as_string();
  }
}

void key::builder::add_null() {
  buf_.push_back(static_cast<char>(tag_null));
}

void key::builder::add_bool(bool x) {
  buf_.push_back(static_cast<char>(tag_bool));
  buf_.push_back(static_cast<char>(x ? 1 : 0));
}

void key::builder::add_int(std::int64_t x) {
  encode_int(x, buf_);
}

void key::builder::add_string(std::string_view x) {
  buf_.push_back(static_cast<char>(tag_string));
  for (auto c : x) {
    buf_.push_back(c);
    if (c == '\0')
      buf_.push_back(static_cast<char>(0xFF));
  }
  buf_.push_back('\0');
  buf_.push_back(static_cast<char>(1));
}

key key::composite(const std::vector<key_part>& parts) {
  key result;
  result.kind_ = composite_kind;
  for (auto& p : parts)
    encode(p, result.str_);
  return result;
}

std::vector<key_part> key::parts() const {
  std::vector<key_part> result;
  switch (kind_) {
    case int_kind:
      result.emplace_back(int_);
      break;
    case string_kind:
      result.emplace_back(str_);
      break;
    default:
      // Every part takes at least one byte: a few parts' room up front
      // saves the regrowth on every key of a printed million.
      result.reserve(std::min<std::size_t>(str_.size(), 4));
      decode(str_, &result);
  }
  return result;
}

caf::error key::validate() const {
  if (kind_ > composite_kind)
    return make_error(errc::protocol_violation,
                      "a key of unknown kind " + std::to_string(kind_));
  if (kind_ != int_kind && int_ != 0)
    return make_error(errc::protocol_violation, "a key with two values");
  if (kind_ == int_kind && !str_.empty())
    return make_error(errc::protocol_violation, "a key with two values");
  if (kind_ == composite_kind && !decode(str_, nullptr))
    return make_error(errc::protocol_violation,
                      "a composite key with an invalid encoding");
  return caf::error{};
}

int key::compare(const key& other) const noexcept {
  if (kind_ != other.kind_)
    return kind_ < other.kind_ ? -1 : 1;
  if (kind_ != int_kind) {
    // Bytewise: std::char_traits<char> compares as unsigned char.
    auto c = str_.compare(other.str_);
    return c < 0 ? -1 : (c > 0 ? 1 : 0);
  }
  return int_ < other.int_ ? -1 : (int_ > other.int_ ? 1 : 0);
}

std::size_t key::hash() const noexcept {
  if (kind_ == string_kind)
    return std::hash<std::string>{}(str_);
  if (kind_ == composite_kind)
    return std::hash<std::string>{}(str_) ^ 0x5bd1e995u;
  // Mix so that small consecutive integers spread over the buckets.
  auto z = static_cast<std::uint64_t>(int_) * 0x9e3779b97f4a7c15ULL;
  return static_cast<std::size_t>(z ^ (z >> 32));
}

std::string to_string(const key& x) {
  if (x.is_string())
    return x.as_string();
  if (x.is_int())
    return std::to_string(x.as_int());
  std::string result = "(";
  bool first = true;
  for (auto& p : x.parts()) {
    if (!first)
      result += ", ";
    first = false;
    result += to_string(p);
  }
  result += ')';
  return result;
}

} // namespace flow
