// flow::key: integer and string keys, their order, equality and hashing.

#include "support.hpp"

#include <algorithm>
#include <cstdint>
#include <limits>
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
