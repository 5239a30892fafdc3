// A local reducer's partials reuse the `ints` storage that the manager or a
// shard sends back (int_storage) instead of allocating a fresh vector per
// batch; once told the input has ended (spares_atom) it keeps none. The
// test plays the manager of one reducer and watches the storage it answers
// with; the jobs check that recycling leaves results unchanged.

#include "support.hpp"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/exit_reason.hpp>
#include <caf/send.hpp>
#include <caf/scoped_actor.hpp>

#include "engine/engine.hpp"
#include "flow/detail/messages.hpp"

using namespace flow;
using namespace std::chrono_literals;

namespace {

/// A batch of `n` distinct keys (`first` .. `first + n - 1`, each its own
/// value) from source 0, sequence `seq`.
detail::batch int_batch(std::uint64_t seq, std::int64_t first,
                        std::size_t n) {
  auto xs = std::make_shared<std::vector<std::int64_t>>();
  for (std::size_t i = 0; i < n; ++i)
    xs->push_back(first + static_cast<std::int64_t>(i));
  detail::batch b;
  b.seq = seq;
  b.first = static_cast<std::uint64_t>(first);
  b.label = key{"x"};
  b.items.data = xs->data();
  b.items.size = xs->size();
  b.items.kind = detail::element_kind::int64;
  b.items.elem_size = sizeof(std::int64_t);
  b.items.owner = std::move(xs);
  return b;
}

/// The reducer's answer to `b`: its partial, whose keys must be `b`'s.
detail::partial_msg answer(caf::scoped_actor& self, const caf::actor& r,
                           const detail::batch& b) {
  self->send(r, b);
  detail::partial_msg out;
  bool got = false;
  self->receive([&](detail::partial_msg& p) { out = std::move(p); got = true; },
                caf::after(30s) >> [] {});
  REQUIRE(got);
  REQUIRE(out.seq == b.seq);
  REQUIRE(out.ints.size() == b.items.size);
  auto first = static_cast<std::int64_t>(b.first);
  for (std::size_t i = 0; i < out.ints.size(); ++i) {
    CHECK(out.ints[i].key == first + static_cast<std::int64_t>(i));
    CHECK(out.ints[i].count == 1);
    CHECK(out.ints[i].sum == out.ints[i].key);
  }
  return out;
}

/// The result's keys are `expected`'s, in order, with the same aggregates.
void check_keys(const job_result& res,
                const std::map<std::int64_t, aggregate>& expected) {
  REQUIRE(res.keys.size() == expected.size());
  std::size_t i = 0;
  for (auto& [k, agg] : expected) {
    CHECK(res.keys[i].key == key{k});
    CHECK(res.keys[i].agg.sum == agg.sum);
    CHECK(res.keys[i].agg.count == agg.count);
    CHECK(res.keys[i].agg.min == agg.min);
    CHECK(res.keys[i].agg.max == agg.max);
    ++i;
  }
}

/// Storage of `n` entries' capacity holding stale entries, as it comes back.
std::vector<detail::int_entry> storage(std::size_t n) {
  std::vector<detail::int_entry> xs(n / 2);
  for (auto& e : xs)
    e.key = -1;
  xs.reserve(n);
  return xs;
}

/// The reducer under test: each element its own key, summed.
std::shared_ptr<const detail::erased_reducer> each_its_own_key() {
  return std::make_shared<const detail::erased_reducer>(
    detail::erase_reducer<std::int64_t>(
      per_element<std::int64_t>([](const std::int64_t& x, partial& out) {
        out.add(key{x}, x);
      })));
}

} // namespace

TEST_CASE("recycle: a reducer answers with the ints storage sent back to it "
          "and keeps none once the input has ended",
          "[recycle][reducer]") {
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  caf::scoped_actor self{sys};
  auto fn = *each_its_own_key();
  auto r = detail::spawn_reducer(sys, caf::actor{self}, fn, {});
  // Without storage sent back: a vector of just the batch's size.
  auto p1 = answer(self, r, int_batch(1, 0, 2000));
  CHECK(p1.ints.capacity() < 5000);
  // Sent back: the next partial fills it (its stale entries dropped).
  self->send(r, detail::int_storage{storage(5000)});
  auto p2 = answer(self, r, int_batch(2, 10'000, 3000));
  CHECK(p2.ints.capacity() == 5000);
  // Storage of `caps` sent back, then one batch more than that: the
  // capacities the partials came in (the last sent back taken first).
  std::uint64_t seq = 3;
  auto capacities_after = [&](std::vector<std::size_t> caps) {
    for (auto c : caps)
      self->send(r, detail::int_storage{storage(c)});
    std::vector<std::size_t> got;
    for (std::size_t i = 0; i <= caps.size(); ++i) {
      auto p = answer(self, r, int_batch(seq, 100'000 * seq, 100));
      ++seq;
      got.push_back(p.ints.capacity() < 5000 ? 0 : p.ints.capacity());
    }
    return got;
  };
  // Two spares for two batches; a third batch gets fresh storage (0).
  CHECK(capacities_after({6000, 7000}) == std::vector<std::size_t>{7000, 6000, 0});
  // At most two spares: the third is freed.
  CHECK(capacities_after({6100, 6200, 6300})
        == std::vector<std::size_t>{6200, 6100, 0, 0});
  // The input has ended: spares are freed and storage sent back is not
  // kept.
  self->send(r, detail::int_storage{storage(8000)});
  self->send(r, detail::spares_atom::value);
  self->send(r, detail::int_storage{storage(9000)});
  auto p9 = answer(self, r, int_batch(seq, 100'000 * seq, 100));
  CHECK(p9.ints.capacity() < 5000);
  self->send_exit(r, caf::exit_reason::user_shutdown);
}

TEST_CASE("recycle: jobs whose partials come back to their reducers give the "
          "result of one sequential fold, with and without shards",
          "[recycle][shards]") {
  // 20 batches of 4096 elements over 50,000 keys: every partial is large
  // enough to be sent back.
  std::vector<std::int64_t> xs(81'920);
  for (std::size_t i = 0; i < xs.size(); ++i)
    xs[i] = static_cast<std::int64_t>((i * 7919) % 50'000) - 25'000;
  std::map<std::int64_t, aggregate> expected;
  for (auto x : xs)
    expected[x / 3].add(x);
  for (std::size_t shards : {1, 2}) {
    INFO("shards " << shards);
    options opts;
    opts.manager_shards = shards;
    opts.inline_elements = 0;
    opts.reducers = 2;
    auto res = test::ok(
      pipeline<std::int64_t>{}
        .add(from_shared(std::make_shared<const std::vector<std::int64_t>>(xs)))
        .batch_size(4096)
        .reduce(per_element<std::int64_t>(
          [](const std::int64_t& x, partial& out) { out.add(key{x / 3}, x); }))
        .with(opts)
        .run());
    CHECK(res.emitted == xs.size());
    CHECK(res.aggregated == xs.size());
    check_keys(res, expected);
  }
}

TEST_CASE("recycle: a reducer of a job with shards answers with its integer "
          "keys grouped by the shard the manager would send them to",
          "[recycle][shards][reducer]") {
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  caf::scoped_actor self{sys};
  auto fn = each_its_own_key();
  for (std::size_t n : {0, 1, 3}) {
    INFO("shards " << n);
    auto r = detail::spawn_reducer(self.ptr(), caf::actor{self}, fn, {}, {},
                                   1, std::chrono::milliseconds{100}, n);
    self->send(r, int_batch(1, -1000, 2000));
    detail::partial_msg p;
    self->receive([&](detail::partial_msg& x) { p = std::move(x); },
                  caf::after(30s) >> [] { FAIL("no partial"); });
    REQUIRE(p.ints.size() == 2000);
    if (n < 2) {
      CHECK(p.int_ends.empty());
    } else {
      REQUIRE(p.int_ends.size() == n);
      CHECK(p.int_ends.back() == p.ints.size());
      std::size_t at = 0;
      for (std::size_t g = 0; g < n; ++g) {
        CHECK(p.int_ends[g] > at);
        for (; at < p.int_ends[g]; ++at)
          CHECK(detail::int_shard_of(p.ints[at].key, n) == g);
      }
    }
    self->send_exit(r, caf::exit_reason::user_shutdown);
  }
}

namespace {

/// How a rogue local reducer misreports its partials' shard groups.
enum class bad_ends { too_many, decreasing, short_of_the_entries };

/// Answers each batch with a correct partial (key x mod 1000, summed) whose
/// `int_ends` are wrong as `lie` says; counts its answers in `answered`. It
/// has no handler for int_storage and f_spares (CAF prints them as
/// unexpected): the manager must survive sending them.
caf::behavior lying_reducer(caf::event_based_actor* self, caf::actor manager,
                            bad_ends lie,
                            std::shared_ptr<std::atomic<int>> answered) {
  return {
    [=](const detail::batch& b) {
      std::map<std::int64_t, detail::int_entry> folded;
      auto xs = static_cast<const std::int64_t*>(b.items.data);
      for (std::size_t i = 0; i < b.items.size; ++i) {
        auto& e = folded[xs[i] % 1000];
        e.key = xs[i] % 1000;
        e.add(xs[i]);
      }
      detail::partial_msg msg;
      msg.source = b.source;
      msg.seq = b.seq;
      msg.size = b.items.size;
      for (auto& [k, e] : folded)
        msg.ints.push_back(e);
      auto n = static_cast<std::uint32_t>(msg.ints.size());
      switch (lie) {
        case bad_ends::too_many:
          msg.int_ends = {n / 3, n / 2, n};
          break;
        case bad_ends::decreasing:
          msg.int_ends = {n / 2 + 1, n / 2};
          break;
        case bad_ends::short_of_the_entries:
          msg.int_ends = {n / 4, n / 2};
          break;
      }
      ++*answered;
      self->send(manager, std::move(msg));
    },
  };
}

} // namespace

TEST_CASE("recycle: shard groups that a local reducer gets wrong are not "
          "trusted: the manager groups those keys itself",
          "[recycle][shards][errors]") {
  auto data = std::make_shared<std::vector<std::int64_t>>();
  for (std::int64_t i = 0; i < 20'000; ++i)
    data->push_back((i * 7919) % 100'000);
  std::map<std::int64_t, aggregate> expected;
  for (auto x : *data)
    expected[x % 1000].add(x);
  for (auto lie : {bad_ends::too_many, bad_ends::decreasing,
                   bad_ends::short_of_the_entries}) {
    INFO("lie " << static_cast<int>(lie));
    caf::actor_system_config cfg;
    caf::actor_system sys{cfg};
    options opts;
    opts.manager_shards = 2;
    opts.reducers = 1;
    opts.inline_elements = 0;
    auto p = pipeline<std::int64_t>{}
               .add(from_shared(std::shared_ptr<const std::vector<std::int64_t>>(
                 data)))
               .with(opts)
               .batch_size(100)
               .distribute_as("test.lying_ends")
               .reduce([](const batch_ref<std::int64_t>& b, partial& out) {
                 // Slow, so that the lying reducer answers many batches.
                 std::this_thread::sleep_for(std::chrono::milliseconds(1));
                 for (auto x : b.items)
                   out.add(key{x % 1000}, x);
               });
    auto j = p.start(sys);
    REQUIRE(j);
    auto answered = std::make_shared<std::atomic<int>>(0);
    auto liar = sys.spawn(lying_reducer, j->state()->manager, lie, answered);
    caf::anon_send(j->state()->manager, detail::join_atom::value, liar,
                   std::string{"liar"});
    REQUIRE(j->wait_for(std::chrono::seconds(60)));
    auto res = test::ok(j->wait());
    caf::anon_send_exit(liar, caf::exit_reason::user_shutdown);
    CHECK(*answered > 0);
    CHECK(res.aggregated == data->size());
    check_keys(res, expected);
  }
}
