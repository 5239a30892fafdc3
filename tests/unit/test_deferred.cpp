// Index-addressable sources (ranges, seeded random streams) send batches as
// recipes that the reducers materialise; the data must be exactly what the
// source's own next() produces, and a slice a reducer keeps must stay valid.

#include <catch2/catch.hpp>

#include <mutex>

#include <caf/binary_deserializer.hpp>
#include <caf/binary_serializer.hpp>

#include "flow/detail/messages.hpp"
#include "support.hpp"

using namespace flow;

namespace {

/// Runs `src` through a pipeline that records every element per index.
std::vector<std::int64_t> collect(source<std::int64_t> src, std::uint64_t n,
                                  std::size_t batch, std::size_t workers) {
  auto seen = std::make_shared<std::vector<std::int64_t>>(n, -1);
  auto res = pipeline<std::int64_t>{}
               .add(std::move(src), "x")
               .reduce([seen](const batch_ref<std::int64_t>& b, partial& out) {
                 // Each batch covers its own index range: no two reducers
                 // write the same element.
                 for (std::size_t i = 0; i < b.items.size(); ++i)
                   (*seen)[b.first + i] = b.items[i];
                 out.add(b.label, aggregate::of(b.items.data(),
                                                b.items.size()));
               })
               .reducers(workers)
               .batch_size(batch)
               .run();
  REQUIRE(res);
  CHECK(res->aggregated == n);
  return *seen;
}

/// Drains `src` through its own next(), sequentially.
std::vector<std::int64_t> drain(source<std::int64_t> src, std::size_t batch) {
  std::vector<std::int64_t> result;
  for (;;) {
    auto xs = src->next(batch);
    if (xs.empty())
      break;
    result.insert(result.end(), xs.begin(), xs.end());
  }
  return result;
}

} // namespace

TEST_CASE("deferred: a random source's recipes materialise to exactly its "
          "elements",
          "[sources][deferred]") {
  const std::uint64_t n = 100'003;
  REQUIRE(from_random(n, 5)->elements_by_index() != nullptr);
  auto expected = drain(from_random(n, 5, -1000, 1000), 4096);
  REQUIRE(expected.size() == n);
  for (std::size_t batch : {1u, 999u, 65536u})
    for (std::size_t workers : {1u, 3u})
      CHECK(collect(from_random(n, 5, -1000, 1000), n, batch, workers)
            == expected);
}

TEST_CASE("deferred: a range's recipes materialise to exactly its elements, "
          "also near the int64 limits",
          "[sources][deferred]") {
  auto check = [](std::int64_t first, std::int64_t last, std::int64_t step) {
    auto expected = drain(from_range(first, last, step), 1000);
    auto got = collect(from_range(first, last, step), expected.size(), 333, 2);
    CHECK(got == expected);
    return expected.size();
  };
  CHECK(check(0, 10'000, 1) == 10'000);
  CHECK(check(-5, 50'000, 7) == 7144);
  CHECK(check(100, -100, -3) == 67);
  CHECK(check(INT64_MAX - 5000, INT64_MAX, 1) == 5000);
  CHECK(check(INT64_MIN, INT64_MIN + 6000, 2) == 3000);
}

TEST_CASE("deferred: a tapped source is materialised by its generator, and "
          "the tap sees every element",
          "[sources][deferred]") {
  const std::uint64_t n = 50'000;
  auto tapped = std::make_shared<flow::int128>(0);
  auto res = pipeline<std::int64_t>{}
               .add(tap(from_random(n, 11),
                        [tapped](const slice<std::int64_t>& xs) {
                          for (auto x : xs)
                            *tapped += x;
                        }),
                    "x")
               .reduce(sum_by_label())
               .batch_size(1000)
               .run();
  REQUIRE(res);
  auto direct = pipeline<std::int64_t>{}
                  .add(from_random(n, 11), "x")
                  .reduce(sum_by_label())
                  .batch_size(777)
                  .run();
  REQUIRE(direct);
  CHECK(res->keys.at(0).agg.sum == *tapped);
  CHECK(direct->keys.at(0).agg.sum == *tapped);
  CHECK(*tapped == test::naive_sum(test::random_values(n, 11)));
}

TEST_CASE("deferred: a slice a reducer keeps is not overwritten by later "
          "batches",
          "[sources][deferred]") {
  std::mutex mtx;
  std::vector<std::pair<std::uint64_t, slice<std::int64_t>>> kept;
  auto res = pipeline<std::int64_t>{}
               .add(from_range(0, 20'000), "x")
               .reduce([&](const batch_ref<std::int64_t>& b, partial& out) {
                 {
                   std::lock_guard<std::mutex> guard{mtx};
                   kept.emplace_back(b.first, b.items);
                 }
                 out.add(b.label, aggregate::of(b.items.data(),
                                                b.items.size()));
               })
               .reducers(1)
               .batch_size(1000)
               .run();
  REQUIRE(res);
  REQUIRE(kept.size() == 20);
  for (auto& [first, xs] : kept) {
    REQUIRE(xs.size() == 1000);
    CHECK(xs[0] == static_cast<std::int64_t>(first));
    CHECK(xs[999] == static_cast<std::int64_t>(first + 999));
  }
}

TEST_CASE("deferred: a recipe batch serialises as the elements it stands for",
          "[sources][deferred][serialization]") {
  auto src = from_random(1000, 3);
  auto fn = src->elements_by_index();
  REQUIRE(fn);
  detail::erased_slice items;
  items.owner = fn;
  items.size = 10;
  items.first = 990;
  items.kind = detail::element_kind::int64;
  items.materialize = &detail::materialize_with<std::int64_t>;
  items.elem_size = sizeof(std::int64_t);
  REQUIRE(items.deferred());
  detail::batch b{0, 99, 990, flow::key{"x"}, items};
  std::vector<char> buf;
  caf::binary_serializer sink{nullptr, buf};
  REQUIRE(!sink(b));
  detail::batch copy;
  caf::binary_deserializer source{nullptr, buf};
  REQUIRE(!source(copy));
  REQUIRE_FALSE(copy.items.deferred());
  REQUIRE(copy.items.size == 10);
  auto all = test::random_values(1000, 3);
  auto p = static_cast<const std::int64_t*>(copy.items.data);
  CHECK(std::vector<std::int64_t>(p, p + 10)
        == std::vector<std::int64_t>(all.begin() + 990, all.end()));
}
