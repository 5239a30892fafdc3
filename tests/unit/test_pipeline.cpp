// End-to-end jobs: sources -> reducer pool -> manager, compared with plain
// sequential references.

#include "support.hpp"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <limits>
#include <map>
#include <mutex>
#include <new>
#include <optional>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/binary_deserializer.hpp>
#include <caf/binary_serializer.hpp>

using flow::key;

namespace {

constexpr auto i64_max = std::numeric_limits<std::int64_t>::max();
constexpr auto i64_min = std::numeric_limits<std::int64_t>::min();

// The sequential reference of one key.
struct ref_agg {
  flow::int128 sum = 0;
  std::uint64_t count = 0;
  std::int64_t min = i64_max;
  std::int64_t max = i64_min;

  void add(std::int64_t x) {
    sum += x;
    ++count;
    min = std::min(min, x);
    max = std::max(max, x);
  }
};

void check_key(const flow::key_result& kr, const ref_agg& ref) {
  INFO("key " << Catch::StringMaker<flow::key>::convert(kr.key));
  CHECK(kr.agg.sum == ref.sum);
  CHECK(kr.agg.count == ref.count);
  CHECK(kr.agg.min == ref.min);
  CHECK(kr.agg.max == ref.max);
}

ref_agg ref_of(const std::vector<std::int64_t>& xs) {
  ref_agg r;
  for (auto x : xs)
    r.add(x);
  return r;
}

// A job over one in-memory list labelled with its size, summed by label.
flow::job_result sum_list(std::vector<std::int64_t> xs, std::size_t batch,
                          std::size_t workers = 2) {
  auto n = static_cast<std::int64_t>(xs.size());
  return test::ok(flow::pipeline<std::int64_t>{}
                    .add(flow::from_container(std::move(xs)), n)
                    .batch_size(batch)
                    .reducers(workers)
                    .reduce(flow::sum_by_label())
                    .run());
}

} // namespace

// -- basic sums -------------------------------------------------------------------

TEST_CASE("pipeline: zeros and negative values are summed, not treated as the end",
          "[pipeline]") {
  std::vector<std::int64_t> xs{5, 0, 7, -3, 0};
  auto ref = ref_of(xs);
  REQUIRE(ref.sum == 9);
  auto batch = GENERATE(1, 2, 5, 100);
  auto res = sum_list(xs, batch);
  REQUIRE(res.keys.size() == 1);
  CHECK(res.keys[0].key == key{5});
  check_key(res.keys[0], ref);
  CHECK(res.keys[0].sources == 1);
  CHECK(res.emitted == 5);
  CHECK(res.aggregated == 5);
  CHECK(res.rejected == 0);
  CHECK(res.batches == test::ceil_div(5, batch));
  CHECK(res.sources == 1);
  CHECK(res.final);
  CHECK(res.balanced());
}

TEST_CASE("pipeline: a source with no elements completes with nothing emitted",
          "[pipeline][empty]") {
  auto kind = GENERATE(as<std::string>{}, "container", "range", "callable",
                       "random");
  INFO("source kind: " << kind);
  flow::source<std::int64_t> src;
  if (kind == "container")
    src = flow::from_container(std::vector<std::int64_t>{});
  else if (kind == "range")
    src = flow::from_range(10, 10);
  else if (kind == "callable")
    src = flow::from_callable(
      []() -> std::optional<std::int64_t> { return std::nullopt; });
  else
    src = flow::from_random(0, 42);
  auto res = test::ok(flow::pipeline<std::int64_t>{}
                        .add(std::move(src), 0)
                        .batch_size(8)
                        .reduce(flow::sum_by_label())
                        .run());
  CHECK(res.final);
  CHECK(res.emitted == 0);
  CHECK(res.aggregated == 0);
  CHECK(res.batches == 0);
  CHECK(res.keys.empty());
  CHECK(res.sources == 1);
  CHECK(res.balanced());
}

TEST_CASE("pipeline: a job without sources completes with an empty result",
          "[pipeline][empty]") {
  auto res = test::ok(
    flow::pipeline<std::int64_t>{}.reduce(flow::sum_by_label()).run());
  CHECK(res.final);
  CHECK(res.sources == 0);
  CHECK(res.emitted == 0);
  CHECK(res.batches == 0);
  CHECK(res.keys.empty());
  CHECK(res.balanced());
}

TEST_CASE("pipeline: sizes around the batch size give ceil(n/batch) batches and "
          "the exact sum",
          "[pipeline][batches]") {
  constexpr std::size_t batch = 8;
  auto n = GENERATE(0, 1, 7, 8, 9, 15, 16, 17, 1000, 1001);
  auto xs = test::random_values(n, 100 + n, -50, 50);
  auto ref = ref_of(xs);
  INFO("n = " << n);
  auto res = sum_list(xs, batch);
  CHECK(res.emitted == static_cast<std::uint64_t>(n));
  CHECK(res.aggregated == static_cast<std::uint64_t>(n));
  CHECK(res.batches == test::ceil_div(n, batch));
  if (n == 0) {
    CHECK(res.keys.empty());
  } else {
    REQUIRE(res.keys.size() == 1);
    CHECK(res.keys[0].key == key{n});
    check_key(res.keys[0], ref);
  }
}

// -- exactness near the int64 limits ---------------------------------------------

TEST_CASE("pipeline: 1000 copies of int64 max and of int64 min sum exactly",
          "[pipeline][exact]") {
  auto batch = GENERATE(1, 7, 1000);
  std::vector<std::int64_t> maxes(1000, i64_max);
  std::vector<std::int64_t> mins(1000, i64_min);
  auto res = test::ok(flow::pipeline<std::int64_t>{}
                        .add(flow::from_container(maxes), "max")
                        .add(flow::from_container(mins), "min")
                        .add(flow::from_container(maxes), "mixed")
                        .add(flow::from_container(mins), "mixed")
                        .batch_size(batch)
                        .reducers(2)
                        .reduce(flow::sum_by_label())
                        .run());
  REQUIRE(res.keys.size() == 3);
  auto kmax = res.find(key{"max"});
  auto kmin = res.find(key{"min"});
  auto kmixed = res.find(key{"mixed"});
  REQUIRE(kmax);
  REQUIRE(kmin);
  REQUIRE(kmixed);
  check_key(*kmax, ref_of(maxes));
  check_key(*kmin, ref_of(mins));
  CHECK(kmax->agg.sum == test::naive_sum(maxes));
  CHECK(kmin->agg.sum == test::naive_sum(mins));
  CHECK(flow::to_string(kmax->agg.sum) == "9223372036854775807000");
  CHECK(flow::to_string(kmin->agg.sum) == "-9223372036854775808000");
  CHECK(kmixed->agg.sum == test::naive_sum(maxes) + test::naive_sum(mins));
  CHECK(kmixed->agg.sum == -1000);
  CHECK(kmixed->agg.count == 2000);
  CHECK(kmixed->sources == 2);
  CHECK(res.emitted == 4000);
}

TEST_CASE("pipeline: full-range random values sum exactly", "[pipeline][exact]") {
  auto xs = test::random_values(50'000, 77, i64_min, i64_max);
  auto ref = ref_of(xs);
  auto res = sum_list(xs, 1024, 3);
  REQUIRE(res.keys.size() == 1);
  check_key(res.keys[0], ref);
}

// -- determinism across workers and batch sizes ----------------------------------

TEST_CASE("pipeline: random data give the sequential reference whatever the "
          "workers and the batch size",
          "[pipeline][random]") {
  auto workers = GENERATE(1, 2, 4);
  auto batch = GENERATE(1, 7, 65536);
  INFO("workers " << workers << ", batch " << batch);
  constexpr std::uint64_t n = 10'000;
  auto a = test::random_values(n, 1);
  auto b = test::random_values(n, 2, -10'000, 10'000);
  auto res = test::ok(flow::pipeline<std::int64_t>{}
                        .add(flow::from_random(n, 1), "a")
                        .add(flow::from_random(n, 2, -10'000, 10'000), "b")
                        .reducers(workers)
                        .batch_size(batch)
                        .reduce(flow::sum_by_label())
                        .run());
  REQUIRE(res.keys.size() == 2);
  REQUIRE(res.keys[0].key == key{"a"});
  REQUIRE(res.keys[1].key == key{"b"});
  check_key(res.keys[0], ref_of(a));
  check_key(res.keys[1], ref_of(b));
  CHECK(res.batches == 2 * test::ceil_div(n, batch));
  CHECK(res.emitted == 2 * n);
  CHECK(res.balanced());
}

// -- keys ---------------------------------------------------------------------------

TEST_CASE("manager: sums from eight generators with the same label add up under "
          "one key",
          "[pipeline][manager]") {
  // Example 2 of the tutorial: 8 lists of 10000 random numbers.
  flow::pipeline<std::int64_t> p;
  flow::int128 total = 0;
  for (std::uint64_t j = 0; j < 8; ++j) {
    auto seed = flow::derive_seed(42, j);
    total += test::naive_sum(test::random_values(10'000, seed));
    p.add(flow::from_random(10'000, seed), 10000);
  }
  auto res = test::ok(p.reducers(3).batch_size(1000).reduce(flow::sum_by_label()).run());
  REQUIRE(res.keys.size() == 1);
  CHECK(res.keys[0].key == key{10000});
  CHECK(res.keys[0].agg.count == 80'000);
  CHECK(res.keys[0].sources == 8);
  CHECK(res.keys[0].agg.sum == total);
  CHECK(res.sources == 8);
  CHECK(res.batches == 80);
}

TEST_CASE("manager: lists of different sizes are keyed by size in numeric order",
          "[pipeline][manager]") {
  // The tutorial: two lists each of 10, 100, 1000 and 10000 numbers.
  const std::int64_t sizes[] = {10000, 10, 1000, 100};
  std::map<std::int64_t, ref_agg> ref;
  flow::pipeline<std::int64_t> p;
  std::uint64_t stream = 0;
  for (auto size : sizes)
    for (int copy = 0; copy < 2; ++copy) {
      auto seed = flow::derive_seed(7, stream++);
      for (auto x : test::random_values(size, seed))
        ref[size].add(x);
      p.add(flow::from_random(size, seed), size);
    }
  auto res = test::ok(p.batch_size(64).reduce(flow::sum_by_label()).run());
  REQUIRE(res.keys.size() == 4);
  std::size_t i = 0;
  for (auto& [size, r] : ref) {
    CHECK(res.keys[i].key == key{size});
    CHECK(res.keys[i].sources == 2);
    check_key(res.keys[i], r);
    ++i;
  }
  CHECK(res.sources == 8);
}

TEST_CASE("manager: sources added without a label share key 0 and count no "
          "labelled sources",
          "[pipeline][manager]") {
  std::vector<std::int64_t> xs{1, 2, 3};
  auto res = test::ok(flow::pipeline<std::int64_t>{}
                        .add(flow::from_container(xs))
                        .add(flow::from_container(xs))
                        .reduce(flow::sum_by_label())
                        .run());
  REQUIRE(res.keys.size() == 1);
  CHECK(res.keys[0].key == key{0});
  CHECK(res.keys[0].agg.sum == 2 * test::naive_sum(xs));
  CHECK(res.keys[0].sources == 0);
  CHECK(res.sources == 2);
}

TEST_CASE("per_element: 10,000 distinct keys are each aggregated exactly",
          "[pipeline][keys]") {
  constexpr std::int64_t nkeys = 10'000;
  auto xs = test::random_values(200'000, 5, -1'000'000, 1'000'000);
  std::vector<ref_agg> ref(nkeys);
  for (std::size_t i = 0; i < xs.size(); ++i)
    ref[(xs[i] % nkeys + nkeys) % nkeys].add(xs[i]);
  auto res = test::ok(
    flow::pipeline<std::int64_t>{}
      .add(flow::from_container(xs))
      .batch_size(4096)
      .reducers(2)
      .reduce(flow::per_element<std::int64_t>(
        [](std::int64_t x, flow::partial& out) {
          out.add(key{(x % nkeys + nkeys) % nkeys}, x);
        }))
      .run());
  std::size_t expected_keys = 0;
  for (auto& r : ref)
    expected_keys += r.count > 0;
  REQUIRE(res.keys.size() == expected_keys);
  REQUIRE(expected_keys > 9900);
  for (auto& kr : res.keys) {
    REQUIRE(kr.key.is_int());
    auto k = kr.key.as_int();
    REQUIRE(k >= 0);
    REQUIRE(k < nkeys);
    check_key(kr, ref[k]);
  }
  CHECK(std::is_sorted(res.keys.begin(), res.keys.end(),
                       [](auto& x, auto& y) { return x.key < y.key; }));
  CHECK(res.aggregated == xs.size());
}

TEST_CASE("per_element: int and string keys together, ints first in numeric "
          "order",
          "[pipeline][keys]") {
  auto key_of = [](std::int64_t x) {
    if (x % 3 == 0)
      return key{((x / 3) % 25 + 25) % 25 - 12}; // -12..12
    return key{"k" + std::to_string((x % 17 + 17) % 17)};
  };
  auto xs = test::random_values(30'000, 9, -100'000, 100'000);
  std::map<key, ref_agg> ref;
  for (auto x : xs)
    ref[key_of(x)].add(x);
  auto res = test::ok(flow::pipeline<std::int64_t>{}
                        .add(flow::from_container(xs))
                        .batch_size(500)
                        .reduce(flow::per_element<std::int64_t>(
                          [&](std::int64_t x, flow::partial& out) {
                            out.add(key_of(x), x);
                          }))
                        .run());
  REQUIRE(res.keys.size() == ref.size());
  std::size_t i = 0;
  for (auto& [k, r] : ref) {
    CHECK(res.keys[i].key == k);
    check_key(res.keys[i], r);
    // find() locates every key among ints and strings.
    CHECK(res.find(k) == &res.keys[i]);
    ++i;
  }
  CHECK(res.find(key{999}) == nullptr);
  CHECK(res.find(key{"nope"}) == nullptr);
  CHECK(res.find(key{"12"}) == nullptr); // the string, not the int key 12
  // The order itself, checked without flow::key's operator<.
  auto first_string = std::find_if(res.keys.begin(), res.keys.end(),
                                   [](auto& kr) { return kr.key.is_string(); });
  REQUIRE(first_string != res.keys.begin());
  REQUIRE(first_string != res.keys.end());
  for (auto it = res.keys.begin(); it != first_string; ++it) {
    REQUIRE(it->key.is_int());
    if (it != res.keys.begin())
      CHECK(std::prev(it)->key.as_int() < it->key.as_int());
  }
  CHECK(res.keys.front().key.as_int() == -12);
  for (auto it = first_string; it != res.keys.end(); ++it) {
    REQUIRE(it->key.is_string());
    if (it != first_string)
      CHECK(std::prev(it)->key.as_string() < it->key.as_string());
  }
}

TEST_CASE("sum_by_key: groups keyed values from a container, 10,000 keys",
          "[pipeline][keys]") {
  std::vector<flow::keyed_value> xs;
  std::map<key, ref_agg> ref;
  auto values = test::random_values(100'000, 12, i64_min / 2, i64_max / 2);
  for (std::size_t i = 0; i < values.size(); ++i) {
    key k = (i % 2 == 0) ? key{static_cast<std::int64_t>(i % 10'000)}
                         : key{"s" + std::to_string(i % 10'000)};
    xs.push_back({k, values[i]});
    ref[k].add(values[i]);
  }
  auto res = test::ok(flow::pipeline<flow::keyed_value>{}
                        .add(flow::from_container(std::move(xs)))
                        .batch_size(1000)
                        .reducers(2)
                        .reduce(flow::sum_by_key())
                        .run());
  REQUIRE(res.keys.size() == ref.size());
  REQUIRE(ref.size() == 10'000);
  std::size_t i = 0;
  for (auto& [k, r] : ref) {
    REQUIRE(res.keys[i].key == k);
    check_key(res.keys[i], r);
    ++i;
  }
  CHECK(res.emitted == values.size());
}

TEST_CASE("pipeline: element types other than integers work locally",
          "[pipeline]") {
  std::vector<std::string> words{"a", "bb", "", "ccc", "dd", "e", "ffff"};
  std::map<std::int64_t, ref_agg> ref;
  for (auto& w : words)
    ref[static_cast<std::int64_t>(w.size())].add(1);
  auto res = test::ok(flow::pipeline<std::string>{}
                        .add(flow::from_container(words))
                        .batch_size(3)
                        .reduce(flow::per_element<std::string>(
                          [](const std::string& w, flow::partial& out) {
                            out.add(key{static_cast<std::int64_t>(w.size())},
                                    1);
                          }))
                        .run());
  REQUIRE(res.keys.size() == ref.size());
  for (auto& [len, r] : ref) {
    auto kr = res.find(key{len});
    REQUIRE(kr);
    check_key(*kr, r);
  }
}

// -- batch_ref ----------------------------------------------------------------------

TEST_CASE("pipeline: reducers see each batch's source, sequence number, first "
          "index and label",
          "[pipeline][batches]") {
  struct seen_batch {
    std::uint32_t source;
    std::uint64_t seq;
    std::uint64_t first;
    std::size_t size;
    key label;
    std::int64_t first_value;
  };
  std::mutex mtx;
  std::vector<seen_batch> seen;
  const std::int64_t sizes[] = {0, 5, 21, 40};
  flow::pipeline<std::int64_t> p;
  for (auto n : sizes)
    p.add(flow::from_range(0, n), key{"list" + std::to_string(n)});
  auto res = test::ok(p.batch_size(8)
                        .reducers(3)
                        .reduce([&](const flow::batch_ref<std::int64_t>& b,
                                    flow::partial& out) {
                          {
                            std::lock_guard<std::mutex> guard{mtx};
                            seen.push_back({b.source, b.seq, b.first,
                                            b.items.size(), b.label,
                                            b.items[0]});
                          }
                          out.add(b.label, flow::aggregate::of(
                                             b.items.data(), b.items.size()));
                        })
                        .run());
  std::sort(seen.begin(), seen.end(), [](auto& x, auto& y) {
    return std::tie(x.source, x.seq) < std::tie(y.source, y.seq);
  });
  std::size_t i = 0;
  for (std::uint32_t s = 0; s < 4; ++s) {
    auto n = static_cast<std::uint64_t>(sizes[s]);
    for (std::uint64_t seq = 0; seq < test::ceil_div(n, 8); ++seq, ++i) {
      REQUIRE(i < seen.size());
      INFO("source " << s << ", batch " << seq);
      CHECK(seen[i].source == s);
      CHECK(seen[i].seq == seq);
      CHECK(seen[i].first == seq * 8);
      CHECK(seen[i].size == std::min<std::uint64_t>(8, n - seq * 8));
      CHECK(seen[i].label == key{"list" + std::to_string(n)});
      CHECK(seen[i].first_value == static_cast<std::int64_t>(seq * 8));
    }
  }
  CHECK(i == seen.size());
  CHECK(res.keys.size() == 3); // the empty list has no key
}

// -- rejections ---------------------------------------------------------------------

TEST_CASE("partial::reject: rejected elements are counted per reason and the "
          "result balances",
          "[pipeline][reject]") {
  auto xs = test::random_values(20'000, 31, -5, 5);
  ref_agg kept;
  std::uint64_t negative = 0, zero = 0;
  for (auto x : xs) {
    if (x < 0)
      ++negative;
    else if (x == 0)
      ++zero;
    else
      kept.add(x);
  }
  auto res = test::ok(flow::pipeline<std::int64_t>{}
                        .add(flow::from_container(xs), "positive")
                        .batch_size(256)
                        .reducers(2)
                        .reduce(flow::per_element<std::int64_t>(
                          [](std::int64_t x, flow::partial& out) {
                            if (x < 0)
                              out.reject("negative");
                            else if (x == 0)
                              out.reject("zero");
                            else
                              out.add(key{"positive"}, x);
                          }))
                        .run());
  CHECK(res.emitted == xs.size());
  CHECK(res.rejected == negative + zero);
  CHECK(res.aggregated == xs.size() - negative - zero);
  CHECK(res.balanced());
  using reason = std::pair<std::string, std::uint64_t>;
  CHECK(res.rejections
        == std::vector<reason>{{"negative", negative}, {"zero", zero}});
  REQUIRE(res.keys.size() == 1);
  check_key(res.keys[0], kept);
}

TEST_CASE("partial::reject: a reducer that rejects more than its batch fails "
          "the accounting",
          "[pipeline][reject][errors]") {
  auto e = test::err(flow::pipeline<std::int64_t>{}
                       .add(flow::from_range(0, 100))
                       .batch_size(10)
                       .reduce([](const flow::batch_ref<std::int64_t>& b,
                                  flow::partial& out) {
                         out.reject("too many", b.items.size() + 1);
                       })
                       .run());
  CHECK(flow::code_of(e) == flow::errc::accounting_mismatch);
}

// -- failures -------------------------------------------------------------------------

TEST_CASE("reducer: under fail_fast a throwing user function fails the job "
          "with reducer_failed naming the batch, without hanging",
          "[pipeline][errors]") {
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  auto j = flow::pipeline<std::int64_t>{}
             .add(flow::from_range(0, 1000), 1)
             .add(flow::from_range(0, 1000), 2)
             .batch_size(8)
             .reducers(2)
             .on_failure(flow::failure_policy::fail_fast)
             .reduce([](const flow::batch_ref<std::int64_t>& b,
                        flow::partial& out) {
               if (b.source == 1 && b.seq == 3)
                 throw std::runtime_error("boom in the reducer");
               out.add(b.label,
                       flow::aggregate::of(b.items.data(), b.items.size()));
             })
             .start(sys);
  REQUIRE(j);
  auto ended = j->wait_for(std::chrono::seconds(30));
  if (!ended)
    j->cancel();
  REQUIRE(ended);
  auto e = test::err(j->wait());
  CHECK(flow::code_of(e) == flow::errc::reducer_failed);
  auto text = flow::describe(e);
  CHECK_THAT(text, Catch::StartsWith("reducer_failed"));
  CHECK_THAT(text, Catch::Contains("batch 3 of source 1"));
  CHECK_THAT(text, Catch::Contains("elements 24..31"));
  CHECK_THAT(text, Catch::Contains("boom in the reducer"));
  CHECK(j->done());
}

TEST_CASE("reducer: throwing something that is not an exception still fails the "
          "job cleanly under fail_fast",
          "[pipeline][errors]") {
  auto e = test::err(flow::pipeline<std::int64_t>{}
                       .add(flow::from_range(0, 50))
                       .batch_size(8)
                       .on_failure(flow::failure_policy::fail_fast)
                       .reduce([](const flow::batch_ref<std::int64_t>& b,
                                  flow::partial&) {
                         if (b.seq == 2)
                           throw 42;
                       })
                       .run());
  CHECK(flow::code_of(e) == flow::errc::reducer_failed);
  CHECK_THAT(flow::describe(e), Catch::Contains("batch 2 of source 0"));
  CHECK_THAT(flow::describe(e), Catch::Contains("unknown exception"));
}

TEST_CASE("source: a callable that throws fails the job with source_failed",
          "[pipeline][errors]") {
  int calls = 0;
  auto src = flow::from_callable([&]() -> std::optional<std::int64_t> {
    if (++calls > 5)
      throw std::runtime_error("generator broke after five");
    return calls;
  });
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  auto j = flow::pipeline<std::int64_t>{}
             .add(std::move(src))
             .add(flow::from_range(0, 100))
             .batch_size(2)
             .reduce(flow::sum_by_label())
             .start(sys);
  REQUIRE(j);
  auto ended = j->wait_for(std::chrono::seconds(30));
  if (!ended)
    j->cancel();
  REQUIRE(ended);
  auto e = test::err(j->wait());
  CHECK(flow::code_of(e) == flow::errc::source_failed);
  CHECK_THAT(flow::describe(e), Catch::Contains("generator broke after five"));
}

TEST_CASE("source: a source that runs out of memory fails the job with "
          "out_of_memory, not source_failed",
          "[pipeline][errors]") {
  int calls = 0;
  auto e = test::err(
    flow::pipeline<std::int64_t>{}
      .add(flow::from_callable([&]() -> std::optional<std::int64_t> {
        if (++calls == 3)
          throw std::bad_alloc{};
        return 1;
      }))
      .reduce(flow::sum_by_label())
      .run());
  CHECK(flow::code_of(e) == flow::errc::out_of_memory);
  CHECK_THAT(flow::describe(e),
             Catch::Contains("could not make its next batch"));
}

TEST_CASE("source: an input_error thrown by a source keeps its error code",
          "[pipeline][errors]") {
  int calls = 0;
  auto e = test::err(
    flow::pipeline<std::int64_t>{}
      .add(flow::from_callable([&]() -> std::optional<std::int64_t> {
        if (++calls == 3)
          throw flow::input_error("record 3 is malformed");
        return 1;
      }))
      .reduce(flow::sum_by_label())
      .run());
  CHECK(flow::code_of(e) == flow::errc::bad_input);
  CHECK_THAT(flow::describe(e), Catch::Contains("record 3 is malformed"));
}

TEST_CASE("manager: a key whose sum leaves the 128-bit range fails with overflow",
          "[pipeline][errors][overflow]") {
  // Each batch contributes a pre-folded aggregate of 2^126: the second merge
  // into the same key reaches 2^127, one past the maximum.
  flow::aggregate big;
  big.sum = static_cast<flow::int128>(static_cast<unsigned __int128>(1) << 126);
  big.count = 1;
  big.min = big.max = 1;
  auto e = test::err(flow::pipeline<std::int64_t>{}
                       .add(flow::from_range(0, 4))
                       .batch_size(1)
                       .reduce([big](const flow::batch_ref<std::int64_t>&,
                                     flow::partial& out) {
                         out.add(key{"huge"}, big);
                       })
                       .run());
  CHECK(flow::code_of(e) == flow::errc::overflow);
  CHECK_THAT(flow::describe(e), Catch::Contains("huge"));
}

TEST_CASE("reducer: a partial that overflows inside one batch fails with overflow",
          "[pipeline][errors][overflow]") {
  flow::aggregate big;
  big.sum = static_cast<flow::int128>(static_cast<unsigned __int128>(1) << 126);
  big.count = 1;
  big.min = big.max = 1;
  auto e = test::err(flow::pipeline<std::int64_t>{}
                       .add(flow::from_range(0, 1))
                       .reduce([big](const flow::batch_ref<std::int64_t>&,
                                     flow::partial& out) {
                         out.add(key{1}, big);
                         out.add(key{1}, big);
                       })
                       .run());
  CHECK(flow::code_of(e) == flow::errc::overflow);
}

TEST_CASE("generator: a source that returns more than it was asked for breaks "
          "the protocol",
          "[pipeline][errors]") {
  // A custom source ignoring `max`.
  struct greedy : flow::source_impl<std::int64_t> {
    bool done = false;
    flow::slice<std::int64_t> next(std::size_t max) override {
      done = true;
      return flow::slice<std::int64_t>::owning(
        std::vector<std::int64_t>(max + 1, 1));
    }
    bool exhausted() const override {
      return done;
    }
    std::string name() const override {
      return "greedy";
    }
  };
  auto e = test::err(flow::pipeline<std::int64_t>{}
                       .add(std::make_unique<greedy>())
                       .batch_size(16)
                       .reduce(flow::sum_by_label())
                       .run());
  CHECK(flow::code_of(e) == flow::errc::protocol_violation);
  CHECK_THAT(flow::describe(e), Catch::Contains("17"));
}

// -- results ------------------------------------------------------------------------

TEST_CASE("result: a job's result survives a binary round trip", "[pipeline][serialization]") {
  std::vector<std::int64_t> maxes(1000, i64_max);
  auto res = test::ok(
    flow::pipeline<std::int64_t>{}
      .add(flow::from_container(maxes), "max")
      .add(flow::from_range(-10, 10), 20)
      .reduce(flow::per_element<std::int64_t>(
        [](std::int64_t x, flow::partial& out) {
          if (x == 0)
            out.reject("zero");
          else
            out.add(x == i64_max ? key{"max"} : key{20}, x);
        }))
      .run());
  std::vector<char> buf;
  caf::binary_serializer sink{nullptr, buf};
  REQUIRE(!sink(res));
  flow::job_result back;
  caf::binary_deserializer source{nullptr, buf};
  REQUIRE(!source(back));
  REQUIRE(back.keys.size() == res.keys.size());
  for (std::size_t i = 0; i < res.keys.size(); ++i) {
    CHECK(back.keys[i].key == res.keys[i].key);
    CHECK(back.keys[i].agg == res.keys[i].agg);
    CHECK(back.keys[i].sources == res.keys[i].sources);
  }
  CHECK(back.find(key{"max"})->agg.sum == test::naive_sum(maxes));
  CHECK(back.emitted == res.emitted);
  CHECK(back.aggregated == res.aggregated);
  CHECK(back.rejected == 1);
  CHECK(back.rejections == res.rejections);
  CHECK(back.batches == res.batches);
  CHECK(back.sources == 2);
  CHECK(back.final);
}

// -- configuration ------------------------------------------------------------------

TEST_CASE("pipeline: invalid configurations are returned as invalid_config, not "
          "thrown",
          "[pipeline][config]") {
  auto which = GENERATE(as<std::string>{}, "no reducer", "batch size 0",
                        "credits 0", "reducer queue 0");
  INFO(which);
  flow::pipeline<std::int64_t> p;
  p.add(flow::from_range(0, 10));
  if (which != "no reducer")
    p.reduce(flow::sum_by_label());
  if (which == "batch size 0")
    p.batch_size(0);
  if (which == "credits 0")
    p.credits(0);
  if (which == "reducer queue 0") {
    flow::options opts;
    opts.reducer_queue = 0;
    p.with(opts);
  }
  caf::expected<flow::job_result> res{caf::error{}};
  REQUIRE_NOTHROW(res = p.run());
  auto e = test::err(std::move(res));
  CHECK(flow::code_of(e) == flow::errc::invalid_config);
  CHECK_THAT(flow::describe(e), Catch::StartsWith("invalid_config: "));
}

TEST_CASE("pipeline: zero workers means one per hardware thread", "[pipeline][config]") {
  auto xs = test::random_values(5000, 4);
  auto res = sum_list(xs, 100, 0);
  REQUIRE(res.keys.size() == 1);
  CHECK(res.keys[0].agg.sum == test::naive_sum(xs));
}

TEST_CASE("pipeline: a null source or an empty reducer function is misuse and "
          "throws at setup",
          "[pipeline][config]") {
  flow::pipeline<std::int64_t> p;
  CHECK_THROWS_AS(p.add(flow::source<std::int64_t>{}), std::invalid_argument);
  CHECK_THROWS_AS(p.add(nullptr, 5), std::invalid_argument);
  CHECK_THROWS_AS(p.reduce(flow::reducer<std::int64_t>{}),
                  std::invalid_argument);
}
