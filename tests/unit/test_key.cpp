// flow::key: integer, string and composite keys, their order, equality and
// hashing.

#include "support.hpp"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <caf/binary_deserializer.hpp>
#include <caf/binary_serializer.hpp>

using flow::key;

namespace {

constexpr auto i64_max = std::numeric_limits<std::int64_t>::max();
constexpr auto i64_min = std::numeric_limits<std::int64_t>::min();

} // namespace

TEST_CASE("key: the default key is the integer 0", "[key]") {
  key k;
  CHECK(k.is_int());
  CHECK_FALSE(k.is_string());
  CHECK(k.as_int() == 0);
  CHECK(k == key{0});
  CHECK(k.as_string().empty());
}

TEST_CASE("key: integer keys hold their value whatever the literal type", "[key]") {
  CHECK(key{5} == key{std::int64_t{5}});
  CHECK(key{-5}.as_int() == -5);
  CHECK(key{i64_max}.as_int() == i64_max);
  CHECK(key{i64_min}.as_int() == i64_min);
  CHECK(key{7}.is_int());
}

TEST_CASE("key: string keys hold their text", "[key]") {
  key a{"apple"};
  key b{std::string{"apple"}};
  CHECK(a.is_string());
  CHECK(a.as_string() == "apple");
  CHECK(a == b);
  CHECK(a.as_int() == 0);
  CHECK(key{""}.is_string());
}

TEST_CASE("key: a string that spells a number differs from the number", "[key]") {
  CHECK(key{"5"} != key{5});
  CHECK(key{""} != key{0});
  CHECK(key{"0"} != key{0});
}

TEST_CASE("key: integers order numerically and before every string", "[key]") {
  CHECK(key{-1} < key{2});
  CHECK(key{2} < key{10});           // "10" < "2" as text: must be numeric
  CHECK(key{i64_min} < key{i64_max});
  CHECK(key{i64_max} < key{""});     // any int before any string
  CHECK(key{i64_max} < key{"0"});
  CHECK_FALSE(key{"0"} < key{i64_min});
  CHECK(key{"10"} < key{"2"});       // strings are lexicographic
  CHECK(key{"a"} < key{"b"});
  CHECK(key{"ab"} < key{"b"});
  CHECK_FALSE(key{3} < key{3});
  CHECK(key{3}.compare(key{3}) == 0);
  CHECK(key{3}.compare(key{4}) < 0);
  CHECK(key{"x"}.compare(key{4}) > 0);
}

TEST_CASE("key: sorting mixed keys puts ints first in numeric order, then strings",
          "[key]") {
  std::vector<key> keys{key{"b"}, key{10},  key{"10"}, key{-3},
                        key{2},   key{"a"}, key{i64_min}, key{""}};
  std::sort(keys.begin(), keys.end());
  std::vector<key> expected{key{i64_min}, key{-3}, key{2}, key{10},
                            key{""},      key{"10"}, key{"a"}, key{"b"}};
  CHECK(keys == expected);
}

TEST_CASE("key: equal keys hash equally and unordered containers tell keys apart",
          "[key]") {
  CHECK(key{42}.hash() == key{std::int64_t{42}}.hash());
  CHECK(key{"q"}.hash() == key{std::string{"q"}}.hash());
  std::unordered_set<key> set;
  for (std::int64_t i = -5000; i < 5000; ++i)
    set.insert(key{i});
  for (int i = 0; i < 1000; ++i)
    set.insert(key{"s" + std::to_string(i)});
  set.insert(key{"0"});
  CHECK(set.size() == 11'001);
  CHECK(set.count(key{-5000}) == 1);
  CHECK(set.count(key{"s999"}) == 1);
  CHECK(set.count(key{5000}) == 0);
  CHECK(set.count(key{"s1000"}) == 0);
  // Small consecutive integers must spread over the buckets.
  std::unordered_set<std::size_t> hashes;
  for (std::int64_t i = 0; i < 1000; ++i)
    hashes.insert(key{i}.hash());
  CHECK(hashes.size() == 1000);
}

TEST_CASE("key: to_string renders integers in decimal and strings as they are",
          "[key]") {
  CHECK(flow::to_string(key{-42}) == "-42");
  CHECK(flow::to_string(key{i64_min}) == "-9223372036854775808");
  CHECK(flow::to_string(key{"hello world"}) == "hello world");
  CHECK(flow::to_string(key{}) == "0");
}

TEST_CASE("key: survives a binary round trip", "[key][serialization]") {
  for (auto& k : {key{i64_min}, key{0}, key{"text key"}, key{""}}) {
    std::vector<char> buf;
    caf::binary_serializer sink{nullptr, buf};
    auto copy = k;
    REQUIRE(!sink(copy));
    key back{12345};
    caf::binary_deserializer source{nullptr, buf};
    REQUIRE(!source(back));
    CHECK(back == k);
    CHECK(back.is_string() == k.is_string());
  }
}

namespace {

// The reference order of composite keys: part by part, NULL < bool < int <
// string, values by their natural order, a prefix first.
int ref_compare(const std::vector<flow::key_part>& x,
                const std::vector<flow::key_part>& y) {
  for (std::size_t i = 0; i < std::min(x.size(), y.size()); ++i) {
    auto tx = static_cast<int>(x[i].type());
    auto ty = static_cast<int>(y[i].type());
    if (tx != ty)
      return tx < ty ? -1 : 1;
    switch (x[i].type()) {
      case flow::key_part::kind::null:
        break;
      case flow::key_part::kind::boolean:
        if (x[i].as_bool() != y[i].as_bool())
          return x[i].as_bool() ? 1 : -1;
        break;
      case flow::key_part::kind::integer:
        if (x[i].as_int() != y[i].as_int())
          return x[i].as_int() < y[i].as_int() ? -1 : 1;
        break;
      case flow::key_part::kind::string: {
        // Bytewise, as unsigned bytes.
        auto& a = x[i].as_string();
        auto& b = y[i].as_string();
        auto n = std::min(a.size(), b.size());
        for (std::size_t j = 0; j < n; ++j)
          if (a[j] != b[j])
            return static_cast<unsigned char>(a[j])
                       < static_cast<unsigned char>(b[j])
                     ? -1
                     : 1;
        if (a.size() != b.size())
          return a.size() < b.size() ? -1 : 1;
        break;
      }
    }
  }
  if (x.size() != y.size())
    return x.size() < y.size() ? -1 : 1;
  return 0;
}

flow::key_part random_part(std::mt19937_64& gen) {
  switch (gen() % 4) {
    case 0:
      return flow::key_part{};
    case 1:
      return flow::key_part{gen() % 2 == 0};
    case 2: {
      // The edges of every byte length, and random values of random
      // bit lengths (the encoding's length depends on the magnitude).
      std::int64_t vals[] = {i64_min, i64_min + 1, -65537, -65536, -65535,
                             -257,    -256,        -255,   -1,     0,
                             1,       255,         256,    65535,  65536,
                             i64_max - 1, i64_max};
      auto nvals = sizeof(vals) / sizeof(vals[0]);
      switch (gen() % 3) {
        case 0:
          return flow::key_part{vals[gen() % nvals]};
        case 1:
          return flow::key_part{static_cast<std::int64_t>(gen())};
        default:
          return flow::key_part{static_cast<std::int64_t>(gen())
                                >> (gen() % 64)};
      }
    }
    default: {
      // Short strings over an alphabet with NUL, 0x01, 0xFF and UTF-8.
      const std::string alphabet[] = {std::string(1, '\0'), "\x01", "\xff",
                                      "a", "b", "\xc3\xbc"};
      std::string s;
      auto n = gen() % 4;
      for (std::uint64_t i = 0; i < n; ++i)
        s += alphabet[gen() % 6];
      return flow::key_part{s};
    }
  }
}

} // namespace

TEST_CASE("key: composite keys order part by part and hash by value",
          "[key][composite]") {
  std::mt19937_64 gen{42};
  std::vector<std::vector<flow::key_part>> tuples;
  for (int i = 0; i < 400; ++i) {
    std::vector<flow::key_part> t;
    auto n = gen() % 4;
    for (std::uint64_t j = 0; j < n; ++j)
      t.push_back(random_part(gen));
    tuples.push_back(std::move(t));
  }
  for (auto& x : tuples) {
    auto kx = key::composite(x);
    REQUIRE(kx.is_composite());
    CHECK(kx.parts() == x);
    for (auto& y : tuples) {
      auto ky = key::composite(y);
      auto want = ref_compare(x, y);
      INFO(flow::to_string(kx) << " vs " << flow::to_string(ky));
      CHECK(kx.compare(ky) == want);
      CHECK((kx == ky) == (want == 0));
      if (want == 0)
        CHECK(kx.hash() == ky.hash());
    }
  }
}

TEST_CASE("key: a builder makes the same composite as the parts",
          "[key][composite]") {
  std::mt19937_64 gen{7};
  key::builder b;
  for (int i = 0; i < 400; ++i) {
    std::vector<flow::key_part> t;
    b.clear();
    auto n = gen() % 5;
    for (std::uint64_t j = 0; j < n; ++j) {
      t.push_back(random_part(gen));
      auto& p = t.back();
      switch (p.type()) {
        case flow::key_part::kind::null:
          b.add_null();
          break;
        case flow::key_part::kind::boolean:
          b.add_bool(p.as_bool());
          break;
        case flow::key_part::kind::integer:
          b.add_int(p.as_int());
          break;
        case flow::key_part::kind::string:
          b.add_string(p.as_string());
          break;
      }
    }
    auto k = b.build();
    CHECK(k == key::composite(t));
    CHECK(k.parts() == t);
  }
}

TEST_CASE("key: composites order after ints and strings and render as tuples",
          "[key][composite]") {
  auto c = key::composite({"Berlin", 2024, true, flow::key_part{}});
  CHECK(flow::to_string(c) == "(Berlin, 2024, true, NULL)");
  CHECK(key{i64_max} < c);
  CHECK(key{"zzz"} < c);
  // A composite of one string is not the string key.
  CHECK(key::composite({"x"}) != key{"x"});
  CHECK(key::composite({}) < key::composite({flow::key_part{}}));
  std::unordered_set<key> set{c, key::composite({"Berlin", 2024, true, {}})};
  CHECK(set.size() == 1);
}

TEST_CASE("key: composite keys survive a binary round trip and invalid encodings "
          "are refused",
          "[key][composite][serialization]") {
  auto k = key::composite({std::string("a\0b", 3), -7, false, {}});
  std::vector<char> buf;
  caf::binary_serializer sink{nullptr, buf};
  REQUIRE(!sink(k));
  key back;
  caf::binary_deserializer source{nullptr, buf};
  REQUIRE(!source(back));
  CHECK(back == k);
  CHECK(back.parts() == k.parts());
  // Truncate the encoding (the last byte of the buffer is the composite's
  // last byte): the string terminator goes missing.
  buf.back() = '\x07';
  key bad;
  caf::binary_deserializer source2{nullptr, buf};
  auto e = source2(bad);
  REQUIRE(e);
  CHECK(flow::code_of(e) == flow::errc::protocol_violation);
}

TEST_CASE("key: small integers in a composite take the fewest bytes",
          "[key][composite]") {
  // A tag byte and the bytes of the magnitude: a (region, day) key fits the
  // string's inline buffer.
  CHECK(key::composite({0}).as_string().size() == 1);
  CHECK(key::composite({-1}).as_string().size() == 2);
  CHECK(key::composite({255}).as_string().size() == 2);
  CHECK(key::composite({-256}).as_string().size() == 2);
  CHECK(key::composite({-257}).as_string().size() == 3);
  CHECK(key::composite({1000, 19000}).as_string().size() == 6);
  CHECK(key::composite({i64_min}).as_string().size() == 9);
  CHECK(key::composite({i64_max}).as_string().size() == 9);
  // Every length boundary orders and round-trips.
  std::vector<std::int64_t> edges{i64_min, i64_min + 1};
  for (int k = 7; k >= 1; --k) {
    auto p = std::int64_t{1} << (8 * k);
    edges.insert(edges.end(), {-p - 1, -p, -p + 1});
  }
  for (std::int64_t x : {-2, -1, 0, 1, 2})
    edges.push_back(x);
  for (int k = 1; k <= 7; ++k) {
    auto p = std::int64_t{1} << (8 * k);
    edges.insert(edges.end(), {p - 1, p, p + 1});
  }
  edges.insert(edges.end(), {i64_max - 1, i64_max});
  for (std::size_t i = 0; i < edges.size(); ++i) {
    auto ki = key::composite({edges[i]});
    INFO(edges[i]);
    CHECK(ki.parts() == std::vector<flow::key_part>{edges[i]});
    if (i > 0)
      CHECK(key::composite({edges[i - 1]}) < ki);
  }
}

namespace {

/// Loads a composite key whose encoding is `bytes`, through the
/// deserializer (which validates it): an error for an invalid encoding.
caf::error load_composite(const std::string& bytes) {
  // Serialize a composite of the same length, then overwrite its encoding,
  // which is the buffer's last bytes.
  auto k = key::composite({std::string(bytes.size() - 3, 'x')});
  REQUIRE(k.as_string().size() == bytes.size());
  std::vector<char> buf;
  caf::binary_serializer sink{nullptr, buf};
  REQUIRE(!sink(k));
  std::copy(bytes.begin(), bytes.end(), buf.end() - bytes.size());
  key back;
  caf::binary_deserializer source{nullptr, buf};
  return source(back);
}

} // namespace

TEST_CASE("key: an integer encoded longer than it needs, or in the first "
          "8-byte encoding, is refused",
          "[key][composite][serialization]") {
  // The shortest forms load (so the patching works) ...
  CHECK(!load_composite(std::string("\x0e\x01\x00", 3)));  // 256
  CHECK(!load_composite(std::string("\x0a\xfe\xff", 3)));  // -257
  // ... longer ones do not: one value, one encoding.
  CHECK(load_composite(std::string("\x0e\x00\x01", 3)));   // 1 in 2 bytes
  CHECK(load_composite(std::string("\x0a\xff\xff", 3)));   // -1 in 2 bytes
  CHECK(load_composite(std::string("\x0d\x01\x01", 3)));   // 1 byte short
  // The first encoding's integer (tag 2, 8 bytes, sign bit flipped) and
  // string tag (3).
  CHECK(load_composite(std::string("\x02\x80\0\0\0\0\0\0\x01", 9)));
  CHECK(load_composite(std::string("\x03x\0\x01", 4)));
  // An 8-byte negative below -2^63 or an 8-byte positive above 2^63 - 1
  // cannot be (the second would be INT64_MIN again, under another tag).
  CHECK(load_composite(std::string("\x04\x7f\0\0\0\0\0\0\0", 9)));
  CHECK(load_composite(std::string("\x14\x80\0\0\0\0\0\0\0", 9)));
  CHECK(!load_composite(
    std::string("\x14\x7f\xff\xff\xff\xff\xff\xff\xff", 9))); // max
}
