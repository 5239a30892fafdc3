// flow-keyed as a user runs it: keyed sums, presets, grouped input, errors.

#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <stdexcept>
#include <map>
#include <string>
#include <vector>

#include <unistd.h>

#include "flow/aggregate.hpp"
#include "flow/parse.hpp"
#include "flow/random.hpp"
#include "json_fields.hpp"
#include "run_program.hpp"

using namespace flow::test;

namespace {

const std::string prog = FLOW_KEYED_PATH;

/// The per-size sums flow-keyed must find: list j of the set is generated
/// from sub-stream j of the seed, summed here by a plain loop.
std::map<std::uint64_t, flow::int128>
reference_sums(const std::vector<std::uint64_t>& sizes, std::uint64_t seed) {
  std::map<std::uint64_t, flow::int128> result;
  for (std::size_t j = 0; j < sizes.size(); ++j) {
    flow::uniform_ints gen{flow::derive_seed(seed, j), 0, 10000};
    auto& sum = result[sizes[j]];
    for (std::uint64_t i = 0; i < sizes[j]; ++i)
      sum += gen(i);
  }
  return result;
}

} // namespace

TEST_CASE("flow-keyed: lists of equal size add up under one key",
          "[apps][flow-keyed]") {
  std::vector<std::uint64_t> sizes{1000, 5, 1000, 0, 1000, 5, 70000};
  auto res = run_program(prog, {"--sizes", "1000,5,1000,0,1000,5,70000",
                                "--seed", "3", "--batch", "999", "--json"});
  INFO("stderr: " << res.err);
  REQUIRE(res.rc == 0);
  auto ref = reference_sums(sizes, 3);
  auto lines = lines_of(res.out);
  REQUIRE(lines.size() == 4); // keys 0, 5, 1000, 70000
  std::map<std::string, std::string> lists{
    {"0", "1"}, {"5", "2"}, {"1000", "3"}, {"70000", "1"}};
  for (auto& line : lines) {
    INFO("line: " << line);
    auto key = json_field(line, "key");
    REQUIRE(lists.count(key) == 1);
    auto k = std::stoull(key);
    CHECK(json_field(line, "sum") == flow::to_string(ref[k]));
    CHECK(json_field(line, "lists") == lists[key]);
    CHECK(json_field(line, "elements")
          == std::to_string(k * std::stoull(lists[key])));
    CHECK(json_field(line, "ok") == "true");
  }
}

TEST_CASE("flow-keyed: preset 3 is eight lists of 10000 under one key",
          "[apps][flow-keyed]") {
  auto res = run_program(prog, {"--preset", "3", "--json"});
  REQUIRE(res.rc == 0);
  auto lines = lines_of(res.out);
  REQUIRE(lines.size() == 1);
  CHECK(json_field(lines[0], "key") == "10000");
  CHECK(json_field(lines[0], "lists") == "8");
  CHECK(json_field(lines[0], "elements") == "80000");
  auto ref = reference_sums(std::vector<std::uint64_t>(8, 10000), 42);
  CHECK(json_field(lines[0], "sum") == flow::to_string(ref[10000]));
}

TEST_CASE("flow-keyed: the table reports each key as verified",
          "[apps][flow-keyed]") {
  auto res = run_program(prog, {"--sizes", "10,20,10"});
  REQUIRE(res.rc == 0);
  CHECK(res.out.find("sequential C++") != std::string::npos);
  int verified = 0;
  for (auto& line : lines_of(res.out))
    if (line.size() > 4 && line.compare(line.size() - 4, 4, " yes") == 0)
      ++verified;
  CHECK(verified == 2);
}

TEST_CASE("flow-keyed: --input computes a grouped sum of key value lines",
          "[apps][flow-keyed]") {
  auto path = temp_file("apple 3\nbanana -2\n\napple 0\r\n  cherry\t10\n"
                        "banana -9223372036854775808\nbanana -1\n");
  auto res = run_program(prog, {"--input", path, "--json"});
  INFO("stderr: " << res.err);
  REQUIRE(res.rc == 0);
  auto lines = lines_of(res.out);
  REQUIRE(lines.size() == 3);
  CHECK(json_field(lines[0], "key") == "\"apple\"");
  CHECK(json_field(lines[0], "sum") == "3");
  CHECK(json_field(lines[0], "elements") == "2");
  CHECK(json_field(lines[1], "key") == "\"banana\"");
  CHECK(json_field(lines[1], "sum")
        == flow::to_string(flow::int128{INT64_MIN} - 3));
  CHECK(json_field(lines[1], "elements") == "3");
  CHECK(json_field(lines[2], "key") == "\"cherry\"");
  for (auto& line : lines)
    CHECK(json_field(line, "ok") == "true");
}

TEST_CASE("flow-keyed: bad input is a one-line error with exit code 2",
          "[apps][flow-keyed]") {
  auto check = [](const run_result& res,
                  const std::vector<std::string>& fragments) {
    INFO("stderr: " << res.err);
    CHECK(res.rc == 2);
    CHECK(res.out.empty());
    auto lines = lines_of(res.err);
    REQUIRE(lines.size() == 1);
    for (auto& f : fragments)
      CHECK(lines[0].find(f) != std::string::npos);
  };
  SECTION("a line without a value") {
    check(run_program(prog, {"--input", temp_file("a 1\nb\nc 2\n")}),
          {"line 2", "'b'"});
  }
  SECTION("a value that is not a number") {
    check(run_program(prog, {"--input", temp_file("a 1\nb x2\n")}),
          {"line 2", "'x2'", "not an integer"});
  }
  SECTION("a third token on a line") {
    check(run_program(prog, {"--input", temp_file("a 1 2\n")}),
          {"line 1", "third token"});
  }
  SECTION("an unknown preset") {
    check(run_program(prog, {"--preset", "4"}), {"--preset", "'4'"});
  }
  SECTION("a negative size") {
    check(run_program(prog, {"--sizes", "-5"}), {"negative"});
  }
  SECTION("--sizes with --preset") {
    check(run_program(prog, {"--sizes", "5", "--preset", "1"}), {"exclude"});
  }
  SECTION("an unknown flag") {
    check(run_program(prog, {"--fast"}), {"unknown option"});
  }
}

TEST_CASE("flow-keyed: keys and values that are not printable UTF-8 are a "
          "short, printable one-line error naming the line",
          "[apps][flow-keyed][utf8]") {
  struct bad_case {
    std::string text;
    std::string fragment;
  };
  auto c = GENERATE(values<bad_case>({
    {"ok 1\n\xff\xfe 2\n", "line 2: key '\\xff\\xfe' is not valid UTF-8"},
    {"ok 1\r\nk\xc0\xaf 2\r\n", "line 2: key 'k\\xc0\\xaf' is not valid UTF-8"},
    {"\xed\xa0\x80 1\n", "line 1: key '\\xed\\xa0\\x80' is not valid UTF-8"},
    {std::string{"a 1\nk\0y 2\n", 10},
     "line 2: key 'k\\x00y' contains a control character"},
    {"a 1\n\n\x1b[2Jwiped 2\n",
     "line 3: key '\\x1b[2Jwiped' contains a control character"},
    {"a 1\nb \xff\n", "line 2: value '\\xff' is not an integer"},
  }));
  auto res = run_program(prog, {"--input", temp_file(c.text)});
  INFO("stderr: " << flow::quote_token(res.err));
  CHECK(res.rc == 2);
  CHECK(res.out.empty());
  auto lines = lines_of(res.err);
  REQUIRE(lines.size() == 1);
  CHECK(lines[0].find(c.fragment) != std::string::npos);
  std::string why;
  CHECK(flow::check_printable(lines[0], why));
}

TEST_CASE("flow-keyed: keys in unusual but valid UTF-8 are grouped and "
          "printed byte for byte",
          "[apps][flow-keyed][utf8]") {
  // Precomposed and combining accents are different keys; CRLF line ends.
  auto path = temp_file("caf\xc3\xa9 1\r\n\xf0\x9f\x8d\x8e 2\r\n"
                        "cafe\xcc\x81 3\r\ncaf\xc3\xa9 4\r\n");
  auto res = run_program(prog, {"--input", path, "--json"});
  INFO("stderr: " << res.err);
  REQUIRE(res.rc == 0);
  auto lines = lines_of(res.out);
  REQUIRE(lines.size() == 3);
  std::map<std::string, std::string> sums;
  for (auto& line : lines) {
    sums[json_field(line, "key")] = json_field(line, "sum");
    CHECK(json_field(line, "ok") == "true");
  }
  CHECK(sums["\"caf\xc3\xa9\""] == "5");
  CHECK(sums["\"cafe\xcc\x81\""] == "3");
  CHECK(sums["\"\xf0\x9f\x8d\x8e\""] == "2");
}

TEST_CASE("flow-keyed: a 10 MB key fails fast, 10^6 spaces between key and "
          "value are fine",
          "[apps][flow-keyed]") {
  SECTION("a 10 MB key") {
    auto path = temp_file("a 1\n" + std::string(10'000'000, 'k') + " 2\n");
    auto res = run_program(prog, {"--input", path});
    std::remove(path.c_str());
    INFO("stderr: " << flow::quote_token(res.err));
    CHECK(res.rc == 2);
    auto lines = lines_of(res.err);
    REQUIRE(lines.size() == 1);
    CHECK(lines[0].find("line 2: token starting '" + std::string(32, 'k')
                        + "' is too long")
          != std::string::npos);
    CHECK(res.err.size() < 300);
  }
  SECTION("10^6 spaces inside lines and a line of only spaces") {
    std::string spaces(1'000'000, ' ');
    auto path = temp_file("a" + spaces + "1\n" + spaces + "\nb\t" + spaces
                          + "-4" + spaces + "\r\na 2\n");
    auto res = run_program(prog, {"--input", path, "--json"});
    std::remove(path.c_str());
    INFO("stderr: " << res.err);
    REQUIRE(res.rc == 0);
    auto lines = lines_of(res.out);
    REQUIRE(lines.size() == 2);
    CHECK(json_field(lines[0], "key") == "\"a\"");
    CHECK(json_field(lines[0], "sum") == "3");
    CHECK(json_field(lines[1], "key") == "\"b\"");
    CHECK(json_field(lines[1], "sum") == "-4");
  }
}

// Named so that the sanitizer run, whose shadow memory distorts RSS, leaves
// it out.
TEST_CASE("flow-keyed: a 10 MB key keeps memory bounded", "[apps][flow-keyed]") {
  auto path = temp_file("a 1\n" + std::string(10'000'000, 'k') + " 2\n");
  auto res = run_program(prog, {"--input", path});
  std::remove(path.c_str());
  INFO("peak RSS " << res.max_rss_kib << " KiB");
  CHECK(res.rc == 2);
  CHECK(res.max_rss_kib < 64 * 1024);
}

// -- --keys: generated keyed data -------------------------------------------------

namespace {

/// Sum, count, min and max of one key, computed here.
struct key_ref {
  flow::int128 sum = 0;
  std::uint64_t count = 0;
  std::int64_t min = INT64_MAX;
  std::int64_t max = INT64_MIN;
};

/// Issue 17's formula, written out independently of the program: element i
/// is z = seed + (i + 1) * 0x9E3779B97F4A7C15 mixed as SplitMix64 does; key
/// z mod K, value (z >> 32) mod 10001.
std::map<std::int64_t, key_ref> keys_reference(std::uint64_t keys,
                                               std::uint64_t elements,
                                               std::uint64_t seed) {
  std::map<std::int64_t, key_ref> ref;
  for (std::uint64_t i = 0; i < elements; ++i) {
    std::uint64_t z = seed + (i + 1) * 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    z = z ^ (z >> 31);
    auto& r = ref[static_cast<std::int64_t>(z % keys)];
    auto v = static_cast<std::int64_t>((z >> 32) % 10001);
    r.sum += v;
    ++r.count;
    r.min = std::min(r.min, v);
    r.max = std::max(r.max, v);
  }
  return ref;
}

/// The summary's checksum of a reference: over keys, (key * 1000003 + (sum
/// mod 2^64)) mod 2^64, added mod 2^64.
std::string checksum_of(const std::map<std::int64_t, key_ref>& ref) {
  std::uint64_t c = 0;
  for (auto& [k, r] : ref)
    c += static_cast<std::uint64_t>(k) * 1000003u
         + static_cast<std::uint64_t>(r.sum);
  return std::to_string(c);
}

/// Checks a --summary --json line against reference `ref` of `elements`
/// values: checksum, keys, elements, and verified and ok both true.
void check_summary(const std::string& line,
                   const std::map<std::int64_t, key_ref>& ref,
                   std::uint64_t elements) {
  INFO("line: " << line);
  CHECK(json_field(line, "checksum") == checksum_of(ref));
  CHECK(json_field(line, "keys") == std::to_string(ref.size()));
  CHECK(json_field(line, "elements") == std::to_string(elements));
  CHECK(json_field(line, "verified") == "true");
  CHECK(json_field(line, "ok") == "true");
}

/// Runs flow-keyed with `args` and returns its one summary line (checked to
/// be the only line, exit code 0).
std::string summary_line(const std::vector<std::string>& args) {
  auto res = run_program(prog, args);
  INFO("args: " << [&] {
    std::string s;
    for (auto& a : args)
      s += a + " ";
    return s;
  }() << "stderr: " << res.err);
  CHECK(res.rc == 0);
  auto lines = lines_of(res.out);
  REQUIRE(lines.size() == 1);
  return lines[0];
}

} // namespace

TEST_CASE("flow-keyed: --keys --summary gives the checksum of issue 17's "
          "formula computed independently",
          "[apps][flow-keyed][keys]") {
  for (std::uint64_t seed : {42u, 5u}) {
    INFO("seed " << seed);
    auto ref = keys_reference(7, 1000, seed);
    std::vector<std::string> args{"--keys", "7", "--elements", "1000",
                                  "--summary", "--json"};
    if (seed != 42) // 42 is the default seed
      args.insert(args.end(), {"--seed", std::to_string(seed)});
    auto line = summary_line(args);
    check_summary(line, ref, 1000);
    INFO("line: " << line);
    CHECK(!json_field(line, "libflow_s").empty());
  }
  // The two seeds give different data, so the check above can tell them apart.
  CHECK(checksum_of(keys_reference(7, 1000, 42))
        != checksum_of(keys_reference(7, 1000, 5)));
}

TEST_CASE("flow-keyed: --keys gives the same summary for any --reducers, "
          "--batch and --credits",
          "[apps][flow-keyed][keys]") {
  auto expected = checksum_of(keys_reference(13, 3000, 9));
  for (auto reducers : {"1", "2", "5"}) {
    for (auto batch : {"1", "7", "4096"}) {
      INFO("--reducers " << reducers << " --batch " << batch);
      auto line = summary_line({"--keys", "13", "--elements", "3000", "--seed",
                                "9", "--reducers", reducers, "--batch", batch,
                                "--summary", "--json"});
      INFO("line: " << line);
      CHECK(json_field(line, "checksum") == expected);
      CHECK(json_field(line, "keys") == "13");
      CHECK(json_field(line, "elements") == "3000");
      CHECK(json_field(line, "ok") == "true");
    }
  }
  // --credits: 2 by default here, any other count gives the same.
  for (auto credits : {"1", "2", "9"}) {
    INFO("--credits " << credits);
    auto line = summary_line({"--keys", "13", "--elements", "3000", "--seed",
                              "9", "--batch", "7", "--credits", credits,
                              "--summary", "--json"});
    CHECK(json_field(line, "checksum") == expected);
    CHECK(json_field(line, "batches") == "429");
  }
}

TEST_CASE("flow-keyed: --keys prints the same keys and summary for any "
          "--shards",
          "[apps][flow-keyed][keys][shards]") {
  // 200,000 elements: more than a job folded on the calling thread, so the
  // engine and its manager shards run.
  auto ref = keys_reference(5000, 200000, 3);
  std::string want;
  for (auto shards : {"1", "0", "2", "7"}) {
    INFO("--shards " << shards);
    auto res = run_program(prog, {"--keys", "5000", "--elements", "200000",
                                  "--seed", "3", "--shards", shards});
    INFO("stderr: " << res.err);
    REQUIRE(res.rc == 0);
    // Every line but the timings.
    std::string keys_out;
    for (auto& line : lines_of(res.out))
      if (line.rfind("sequential C++", 0) != 0)
        keys_out += line + "\n";
    CHECK(lines_of(keys_out).size() >= ref.size());
    if (want.empty())
      want = keys_out;
    else
      CHECK(keys_out == want);
    auto line = summary_line({"--keys", "5000", "--elements", "200000",
                              "--seed", "3", "--shards", shards, "--summary",
                              "--json"});
    INFO("line: " << line);
    CHECK(json_field(line, "checksum") == checksum_of(ref));
    CHECK(json_field(line, "keys") == std::to_string(ref.size()));
    CHECK(json_field(line, "ok") == "true");
  }
}

TEST_CASE("flow-keyed: batches whose keys hardly repeat (sealed partials) "
          "give the reference's sums for any --shards, --batch and --reducers",
          "[apps][flow-keyed][keys][shards][seal]") {
  // With 10^6 keys and more, a batch of tens of thousands of values has
  // nearly one key per value: a reducer's partial then seals its index
  // (partial::add, docs/architecture.md "Sealed partial tables"), and a key
  // that comes again makes a second entry that the manager (or a shard)
  // merges. Nothing of that may show in the result.
  struct run {
    const char* keys;
    const char* batch;
    const char* shards;
    const char* reducers;
  };
  for (auto r : {run{"1000000", "65536", "1", "2"},
                 run{"1000000", "65536", "2", "2"},
                 run{"3000000", "131072", "3", "3"},
                 run{"500000", "100000", "0", "1"}}) {
    INFO("--keys " << r.keys << " --batch " << r.batch << " --shards "
                   << r.shards << " --reducers " << r.reducers);
    auto ref = keys_reference(std::stoull(r.keys), 500000, 11);
    auto line = summary_line({"--keys", r.keys, "--elements", "500000",
                              "--seed", "11", "--batch", r.batch, "--shards",
                              r.shards, "--reducers", r.reducers, "--summary",
                              "--json"});
    check_summary(line, ref, 500000);
  }
  // Per key, with the count, min and max that the checksum leaves out:
  // three batches of 20,000 over two shards.
  auto ref = keys_reference(1000000, 60000, 5);
  auto res = run_program(prog, {"--keys", "1000000", "--elements", "60000",
                                "--seed", "5", "--batch", "20000", "--shards",
                                "2", "--json"});
  INFO("stderr: " << res.err);
  REQUIRE(res.rc == 0);
  auto lines = lines_of(res.out);
  REQUIRE(lines.size() == ref.size());
  std::size_t mismatched = 0;
  std::string first_bad;
  for (auto& l : lines) {
    auto k = std::stoll(json_field(l, "key"));
    auto i = ref.find(k);
    bool good = i != ref.end()
                && json_field(l, "sum")
                     == std::to_string(static_cast<long long>(i->second.sum))
                && json_field(l, "elements")
                     == std::to_string(i->second.count)
                && json_field(l, "min") == std::to_string(i->second.min)
                && json_field(l, "max") == std::to_string(i->second.max)
                && json_field(l, "ok") == "true";
    if (!good && mismatched++ == 0)
      first_bad = l;
    if (i != ref.end())
      ref.erase(i);
  }
  INFO("first mismatch: " << first_bad);
  CHECK(mismatched == 0);
  // Every key once: none left over, none printed twice.
  CHECK(ref.empty());
}

TEST_CASE("flow-keyed: --keys 3 --elements 20 prints the formula's sums per "
          "key, as JSON and as a table",
          "[apps][flow-keyed][keys]") {
  auto ref = keys_reference(3, 20, 42);
  REQUIRE(ref.size() == 3); // all three keys occur in these 20 elements
  SECTION("JSON") {
    auto res = run_program(prog, {"--keys", "3", "--elements", "20", "--json"});
    INFO("stderr: " << res.err);
    REQUIRE(res.rc == 0);
    auto lines = lines_of(res.out);
    REQUIRE(lines.size() == 3);
    auto it = ref.begin();
    for (auto& line : lines) {
      INFO("line: " << line);
      auto& [k, r] = *it++;
      CHECK(json_field(line, "set") == "\"keys\"");
      CHECK(json_field(line, "key") == std::to_string(k));
      CHECK(json_field(line, "sum") == flow::to_string(r.sum));
      CHECK(json_field(line, "reference_sum") == flow::to_string(r.sum));
      CHECK(json_field(line, "elements") == std::to_string(r.count));
      CHECK(json_field(line, "min") == std::to_string(r.min));
      CHECK(json_field(line, "max") == std::to_string(r.max));
      CHECK(json_field(line, "ok") == "true");
    }
  }
  SECTION("table") {
    auto res = run_program(prog, {"--keys", "3", "--elements", "20"});
    INFO("stdout: " << res.out << "stderr: " << res.err);
    REQUIRE(res.rc == 0);
    auto lines = lines_of(res.out);
    REQUIRE(lines.size() >= 5);
    CHECK(lines[0] == "keys");
    auto it = ref.begin();
    for (std::size_t i = 2; i < 5; ++i) {
      auto& [k, r] = *it++;
      char expected[128];
      std::snprintf(expected, sizeof expected, "%14lld %6d %12llu %16s %4s",
                    static_cast<long long>(k), 0,
                    static_cast<unsigned long long>(r.count),
                    flow::to_string(r.sum).c_str(), "yes");
      CHECK(lines[i] == expected);
    }
    CHECK(lines[5].find("sequential C++") == 0);
  }
}

TEST_CASE("flow-keyed: --no-verify prints ok and the same checksum",
          "[apps][flow-keyed][keys]") {
  auto expected = checksum_of(keys_reference(7, 1000, 42));
  auto line = summary_line({"--keys", "7", "--elements", "1000", "--summary",
                            "--json", "--no-verify"});
  INFO("line: " << line);
  CHECK(json_field(line, "checksum") == expected);
  CHECK(json_field(line, "verified") == "false");
  CHECK(json_field(line, "ok") == "true");
  SECTION("per key") {
    auto res = run_program(prog, {"--keys", "3", "--elements", "20", "--json",
                                  "--no-verify"});
    REQUIRE(res.rc == 0);
    auto ref = keys_reference(3, 20, 42);
    auto lines = lines_of(res.out);
    REQUIRE(lines.size() == ref.size());
    for (auto& line : lines)
      CHECK(json_field(line, "sum")
            == flow::to_string(
              ref[std::stoll(json_field(line, "key"))].sum));
  }
}

TEST_CASE("flow-keyed: --keys works with --agg, per key and in the summary",
          "[apps][flow-keyed][keys]") {
  auto ref = keys_reference(7, 1000, 42);
  auto line = summary_line({"--keys", "7", "--elements", "1000", "--agg",
                            "sum,count,p50,count_distinct", "--summary",
                            "--json"});
  INFO("line: " << line);
  CHECK(json_field(line, "checksum") == checksum_of(ref));
  CHECK(json_field(line, "ok") == "true");
  auto res = run_program(prog, {"--keys", "7", "--elements", "1000", "--agg",
                                "count,max", "--json"});
  INFO("stderr: " << res.err);
  REQUIRE(res.rc == 0);
  auto lines = lines_of(res.out);
  REQUIRE(lines.size() == ref.size());
  for (auto& l : lines) {
    INFO("line: " << l);
    auto& r = ref[std::stoll(json_field(l, "key"))];
    CHECK(json_field(l, "count") == std::to_string(r.count));
    CHECK(json_field(l, "max") == std::to_string(r.max));
    CHECK(json_field(l, "ok") == "true");
  }
}

TEST_CASE("flow-keyed: --keys with 0 elements prints no keys and is ok",
          "[apps][flow-keyed][keys]") {
  auto line = summary_line({"--keys", "5", "--elements", "0", "--summary",
                            "--json"});
  INFO("line: " << line);
  CHECK(json_field(line, "keys") == "0");
  CHECK(json_field(line, "checksum") == "0");
  CHECK(json_field(line, "ok") == "true");
}

TEST_CASE("flow-keyed: bad --keys usage is a one-line error with exit code 2",
          "[apps][flow-keyed][keys]") {
  struct bad_case {
    std::vector<std::string> args;
    std::string fragment;
  };
  auto c = GENERATE(values<bad_case>({
    {{"--keys", "0", "--elements", "10"}, "--keys: '0' is outside the range"},
    {{"--keys", "5"}, "--keys needs --elements"},
    {{"--elements", "5"}, "--elements needs --keys"},
    {{"--keys", "5", "--elements", "10", "--preset", "1"}, "exclude"},
    {{"--keys", "5", "--elements", "10", "--input", "-"}, "exclude"},
    {{"--keys", "five", "--elements", "10"}, "--keys: 'five'"},
    {{"--keys", "5", "--elements", "1e6"}, "--elements: '1e6'"},
    {{"--keys", "5", "--elements", "-3"}, "--elements"},
    {{"--keys", "-5", "--elements", "3"}, "--keys"},
    {{"--keys", "5", "--elements", "3", "--seed", "x"}, "--seed: 'x'"},
    {{"--summary"}, "--summary needs --keys and --elements"},
    {{"--keys", "5", "--elements", "3", "--shards", "257"},
     "--shards: '257' is outside the range"},
    {{"--keys", "5", "--elements", "3", "--shards", "two"},
     "--shards: 'two'"},
    {{"--keys", "5", "--elements", "3", "--shards", "-1"}, "--shards"},
    {{"--sizes", "5", "--no-verify"}, "--no-verify needs --keys"},
    {{"--keys", "5", "--elements", "3", "--max-memory", "12X"},
     "--max-memory: '12X' has an unknown unit"},
    {{"--keys", "5", "--elements", "3", "--max-memory", "MiB"},
     "--max-memory: 'MiB' is not a number of bytes"},
    {{"--keys", "5", "--elements", "3", "--max-memory", "-1"},
     "--max-memory: '-1' is not a number of bytes"},
    {{"--keys", "5", "--elements", "3", "--max-memory",
      "99999999999999999999"},
     "is too large"},
    {{"--keys", "5", "--elements", "3", "--max-memory", "17179869184T"},
     "is too large"},
    {{"--keys", "5", "--elements", "3", "--spill-dir", "/tmp"},
     "--spill-dir needs --max-memory"},
    {{"--keys", "5", "--elements", "3", "--max-memory", "1M", "--spill-dir",
      "/nonexistent/flow-spill"},
     "--spill-dir: '/nonexistent/flow-spill' cannot hold a file: No such "
     "file or directory"},
  }));
  auto res = run_program(prog, c.args);
  INFO("stderr: " << res.err);
  CHECK(res.rc == 2);
  CHECK(res.out.empty());
  auto lines = lines_of(res.err);
  REQUIRE(lines.size() == 1);
  CHECK(lines[0].find(c.fragment) != std::string::npos);
}

namespace {

/// A fresh empty directory for spilled runs, removed at the end.
struct spill_dir {
  std::string path;
  spill_dir() {
    std::string tmpl = "/tmp/flow-keyed-spill-XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr)
      throw std::runtime_error("mkdtemp failed");
    // Canonical: /proc shows open files by their resolved paths.
    path = std::filesystem::canonical(tmpl).string();
  }
  ~spill_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  std::size_t entries() const {
    std::size_t n = 0;
    for ([[maybe_unused]] auto& e : std::filesystem::directory_iterator{path})
      ++n;
    return n;
  }
};

} // namespace

TEST_CASE("flow-keyed: --max-memory spills runs and every key is still "
          "verified, in the summary and per key",
          "[apps][flow-keyed][keys][spill]") {
  spill_dir dir;
  // The least bound (1024 keys) with 300,000 keys: hundreds of runs,
  // merged 16 at a time as they pile up.
  auto res = run_program(prog, {"--keys", "300000", "--elements", "1000000",
                                "--summary", "--json", "--max-memory", "1",
                                "--spill-dir", dir.path, "--log-level",
                                "info"});
  INFO("stderr: " << res.err.substr(0, 2000));
  REQUIRE(res.rc == 0);
  auto lines = lines_of(res.out);
  REQUIRE(lines.size() == 1);
  auto ref = keys_reference(300000, 1000000, 42);
  CHECK(json_field(lines[0], "verified") == "true");
  CHECK(json_field(lines[0], "ok") == "true");
  CHECK(json_field(lines[0], "keys") == std::to_string(ref.size()));
  CHECK(json_field(lines[0], "checksum") == checksum_of(ref));
  CHECK(res.err.find("spilled 1024 keys as run") != std::string::npos);
  CHECK(dir.entries() == 0);
  // Per key: the result collected (not streamed) from the runs. Several
  // batches, so that the engine runs the job (one small batch would be
  // folded on the calling thread).
  auto per_key = run_program(prog, {"--keys", "5000", "--elements", "200000",
                                    "--batch", "4096", "--json",
                                    "--max-memory", "1", "--spill-dir",
                                    dir.path, "--log-level", "info"});
  INFO("stderr: " << per_key.err.substr(0, 2000));
  REQUIRE(per_key.rc == 0);
  CHECK(per_key.err.find("spilled 1024 keys as run") != std::string::npos);
  auto small = keys_reference(5000, 200000, 42);
  auto keyed = lines_of(per_key.out);
  REQUIRE(keyed.size() == small.size());
  for (auto& l : keyed) {
    auto& r = small[std::stoll(json_field(l, "key"))];
    CHECK(json_field(l, "sum") == flow::to_string(r.sum));
    CHECK(json_field(l, "ok") == "true");
  }
  CHECK(dir.entries() == 0);
}

TEST_CASE("flow-keyed: --max-memory leaves no file after SIGKILL or SIGINT",
          "[apps][flow-keyed][keys][spill][interrupt]") {
  spill_dir dir;
  // Started in the background; once it logged a spill, the script counts
  // the spill files it holds open (unlinked: shown as deleted), sends the
  // signal, and prints the count, the exit code and the directory's files.
  auto script = [&](const std::string& sig) {
    return "set -u; e=$(mktemp); '" + prog
           + "' --keys 2000000 --elements 400000000 --summary --json "
             "--no-verify --max-memory 1M --spill-dir "
           + dir.path + " --log-level info 2>$e & pid=$!; "
           + "for i in $(seq 1 600); do grep -q spilled $e && break; "
             "sleep 0.05; done; "
             "open=$(ls -l /proc/$pid/fd | grep -c '" + dir.path
           + "/.*(deleted)'); kill -" + sig
           + " $pid; wait $pid; rc=$?; rm -f $e; echo open $open rc $rc "
             "left $(ls -A "
           + dir.path + " | wc -l)";
  };
  SECTION("SIGKILL") {
    auto r = run_program("/bin/sh", {"-c", script("KILL")});
    INFO(r.out << r.err);
    auto lines = lines_of(r.out);
    REQUIRE_FALSE(lines.empty());
    auto last = lines.back();
    CHECK(last.find("open 0 ") == std::string::npos);
    CHECK(last.find(" rc 137 ") != std::string::npos);
    CHECK(last.find("left 0") != std::string::npos);
  }
  SECTION("SIGINT") {
    auto r = run_program("/bin/sh", {"-c", script("INT")});
    INFO(r.out << r.err);
    auto lines = lines_of(r.out);
    REQUIRE(lines.size() == 2);
    // The partial summary, merged from the runs and the keys held.
    CHECK(json_field(lines[0], "partial") == "true");
    CHECK(std::stoull(json_field(lines[0], "keys")) > 0);
    CHECK(lines[1].find("open 0 ") == std::string::npos);
    CHECK(lines[1].find(" rc 130 ") != std::string::npos);
    CHECK(lines[1].find("left 0") != std::string::npos);
  }
}

TEST_CASE("flow-keyed: a spill that cannot be written fails the job with "
          "spill_failed and exit 1",
          "[apps][flow-keyed][keys][spill]") {
  spill_dir dir;
  // Files of at most 100 blocks of 512 bytes (SIGXFSZ ignored: the write
  // fails with EFBIG instead), and runs of about 21,000 keys (1 MiB).
  auto r = run_program(
    "/bin/sh", {"-c", "ulimit -f 100; trap '' XFSZ; exec '" + prog
                        + "' --keys 1000000 --elements 2000000 --summary "
                          "--no-verify --max-memory 1M --spill-dir "
                        + dir.path});
  INFO("stdout: " << r.out << "stderr: " << r.err);
  CHECK(r.rc == 1);
  CHECK(r.out.empty());
  auto lines = lines_of(r.err);
  REQUIRE(lines.size() == 1);
  CHECK(lines[0].find("flow-keyed: error: spill_failed: cannot write a run "
                      "of ")
        != std::string::npos);
  CHECK(lines[0].find(dir.path + "': File too large") != std::string::npos);
  CHECK(dir.entries() == 0);
}

// Named so that the sanitizer run, whose shadow memory cannot live under
// ulimit -v, leaves it out.
TEST_CASE("flow-keyed: under ulimit -v, keyed state that cannot grow fails "
          "with out_of_memory and exit 1, and --max-memory keeps memory "
          "bounded",
          "[apps][flow-keyed][keys][spill]") {
  // One manager shard: the manager's one table is then the allocation that
  // fails, which is what this checks. Split over shards, the tables grow in
  // smaller steps, and which allocation meets the limit first (a shard's
  // table, or a generator's next batch, also out_of_memory) depends on
  // timing.
  const std::string keys = "--keys 4000000 --elements 8000000 --summary "
                           "--json --no-verify --reducers 2 --shards 1";
  // About 200 MB of address space, with the threads' stacks (one
  // scheduler thread per core) and malloc's arenas kept small so that the
  // limit does not depend on the core count: the 3.5 million keys' table
  // needs more (unbounded, the run peaks at about 250 MB of RSS; under the
  // limit it fails at about a sixth of the input), 32 MiB of keyed state
  // fits (measured: it runs under 150 MB of address space).
  auto limited = [&](const std::string& extra) {
    return run_program("/bin/sh", {"-c", "ulimit -s 1024; ulimit -v 200000; "
                                         "MALLOC_ARENA_MAX=2 exec '"
                                           + prog + "' " + keys + extra});
  };
  auto reference = run_program("/bin/sh", {"-c", "exec '" + prog + "' "
                                                   + keys});
  INFO("reference: " << reference.err);
  REQUIRE(reference.rc == 0);
  auto unbounded = limited("");
  INFO("unbounded: " << unbounded.out << unbounded.err);
  CHECK(unbounded.rc == 1);
  CHECK(unbounded.out.empty());
  auto lines = lines_of(unbounded.err);
  REQUIRE(lines.size() == 1);
  CHECK(lines[0].find("flow-keyed: error: out_of_memory: ")
        != std::string::npos);
  spill_dir dir;
  auto bounded = limited(" --max-memory 32M --spill-dir " + dir.path);
  INFO("bounded: " << bounded.out << bounded.err);
  CHECK(bounded.rc == 0);
  CHECK(json_field(bounded.out, "ok") == "true");
  CHECK(json_field(bounded.out, "checksum")
        == json_field(reference.out, "checksum"));
  CHECK(json_field(bounded.out, "keys") == json_field(reference.out, "keys"));
  CHECK(dir.entries() == 0);
}
