// The aggregator concept (flow/aggregator.hpp): user-defined states in the
// per-key row, next to the built-in int64 aggregate, compared with sequential
// references for several reducer counts, batch sizes and merge orders.

#include "support.hpp"

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <map>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/binary_deserializer.hpp>
#include <caf/binary_serializer.hpp>

#include "flow/detail/messages.hpp"

namespace {

// A user-defined state: the longest title seen (ties: the smallest title),
// so the result does not depend on the order of the elements.
struct longest_title {
  std::string title;
  std::uint64_t seen = 0;

  static std::string state_name() {
    return "test.longest_title";
  }

  void add(const std::string& t) {
    ++seen;
    if (t.size() > title.size() || (t.size() == title.size() && t < title))
      title = t;
  }

  bool merge(const longest_title& other) {
    if (other.seen == 0)
      return true;
    auto s = seen;
    if (seen == 0) {
      *this = other;
    } else {
      add(other.title);
      seen = s + other.seen;
    }
    return true;
  }

  friend bool operator==(const longest_title& x, const longest_title& y) {
    return x.title == y.title && x.seen == y.seen;
  }

  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f,
                                                 longest_title& x) {
    return f(caf::meta::type_name("test.longest_title"), x.title, x.seen);
  }
};

// A state without an inspect function: fine locally, refused for
// distribution.
struct local_only {
  std::uint64_t n = 0;
  static std::string state_name() {
    return "test.local_only";
  }
  void add(std::int64_t) {
    ++n;
  }
  void merge(const local_only& other) {
    n += other.n;
  }
};

// A state whose additions can overflow: a bounded counter.
struct bounded_count {
  std::uint8_t n = 0;
  bool overflow = false;
  static std::string state_name() {
    return "test.bounded_count";
  }
  void add() {
    if (n == 255)
      overflow = true;
    else
      ++n;
  }
  bool ok() const {
    return !overflow;
  }
  bool merge(const bounded_count& other) {
    if (overflow || other.overflow || n + other.n > 255)
      return false;
    n = static_cast<std::uint8_t>(n + other.n);
    return true;
  }
  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f,
                                                 bounded_count& x) {
    return f(caf::meta::type_name("test.bounded_count"), x.n, x.overflow);
  }
};

// A state whose merge or ok() throws (mode 1: a std::exception from merge,
// 2: an int from merge, 3: an int from ok()), which the concept forbids:
// the job must fail with a clear error, never take the manager down.
struct throwing_state {
  std::uint64_t n = 0;
  int mode = 0;
  static std::string state_name() {
    return "test.throwing_state";
  }
  void add() {
    ++n;
  }
  bool ok() const {
    if (mode == 3)
      throw 7;
    return true;
  }
  bool merge(const throwing_state& other) {
    if (mode == 1)
      throw std::runtime_error("merge refused");
    if (mode == 2)
      throw 42;
    n += other.n;
    return true;
  }
};

struct sale {
  std::string city;
  std::string title;
  double dollars = 0;
  std::int64_t cents = 0;
};

std::vector<sale> make_sales(std::size_t n, std::uint64_t seed) {
  std::mt19937_64 gen{seed};
  const char* cities[] = {"Berlin", "Lyon", "Zürich", "Porto", "Oslo"};
  std::vector<sale> xs;
  for (std::size_t i = 0; i < n; ++i) {
    sale s;
    s.city = cities[gen() % 5];
    s.title = std::string(1 + gen() % 40, static_cast<char>('a' + gen() % 26));
    // Magnitudes from 1e-300 to 1e300 with both signs: a plain double sum
    // of these depends on the order.
    auto e = static_cast<int>(gen() % 601) - 300;
    s.dollars = (gen() % 2 ? 1.0 : -1.0) * std::ldexp(1.0 + (gen() % 1000) / 1000.0, e);
    s.cents = static_cast<std::int64_t>(gen() % 2000001) - 1000000;
    xs.push_back(std::move(s));
  }
  return xs;
}

struct reference {
  longest_title longest;
  flow::exact_moments moments;
  flow::aggregate ints;
};

std::map<std::string, reference> sequential(const std::vector<sale>& xs) {
  std::map<std::string, reference> result;
  for (auto& s : xs) {
    auto& r = result[s.city];
    r.longest.add(s.title);
    r.moments.add(s.dollars);
    r.ints.add(s.cents);
  }
  return result;
}

template <class T>
std::vector<char> to_bytes(T& x) {
  std::vector<char> buf;
  caf::binary_serializer sink{nullptr, buf};
  REQUIRE(!sink(x));
  return buf;
}

template <class T>
caf::error from_bytes(const std::vector<char>& buf, T& x) {
  caf::binary_deserializer source{nullptr, buf};
  return source(x);
}

} // namespace

TEST_CASE("aggregators: several states per key equal a sequential reference "
          "for any reducer count and batch size",
          "[aggregators][pipeline]") {
  auto sales = make_sales(20000, 7);
  auto ref = sequential(sales);
  auto data = std::make_shared<const std::vector<sale>>(sales);
  for (std::size_t reducers : {1, 2, 7}) {
    for (std::size_t batch : {1, 7, 65536}) {
      INFO("reducers " << reducers << ", batch " << batch);
      flow::aggregators aggs;
      auto longest = aggs.add("longest", longest_title{});
      auto dollars = aggs.add("dollars", flow::exact_moments{});
      auto res = test::ok(
        flow::pipeline<sale>{}
          .add(flow::from_shared(data))
          .aggregate_with(aggs)
          .reducers(reducers)
          .batch_size(batch)
          .reduce(flow::per_element<sale>([=](const sale& s,
                                              flow::partial& out) {
            out.add(s.city, longest, s.title);
            out.add(s.city, dollars, s.dollars);
            out.add(s.city, s.cents);
          }))
          .run());
      REQUIRE(res.balanced());
      REQUIRE(res.keys.size() == ref.size());
      for (auto& k : res.keys) {
        auto& r = ref.at(k.key.as_string());
        CHECK(longest.of(k) == r.longest);
        CHECK(dollars.of(k) == r.moments);
        auto mean = dollars.of(k).mean();
        auto ref_mean = r.moments.mean();
        CHECK(std::memcmp(&mean, &ref_mean, sizeof(double)) == 0);
        CHECK(k.agg.sum == r.ints.sum);
        CHECK(k.agg.count == r.ints.count);
        CHECK(k.agg.min == r.ints.min);
        CHECK(k.agg.max == r.ints.max);
      }
    }
  }
}

TEST_CASE("aggregators: rows merged in random orders give the same states",
          "[aggregators][merge]") {
  auto sales = make_sales(5000, 11);
  flow::aggregators aggs;
  auto longest = aggs.add("longest", longest_title{});
  auto dollars = aggs.add("dollars", flow::exact_moments{});
  // One partial row per element, then merged along random trees.
  std::vector<flow::aggregate> rows;
  for (auto& s : sales) {
    if (s.city != "Lyon")
      continue;
    flow::partial p;
    p.add(s.city, longest, s.title);
    p.add(s.city, dollars, s.dollars);
    rows.push_back(p.entries().front().second);
  }
  flow::aggregate expected;
  for (auto& r : rows)
    REQUIRE(expected.merge(r));
  std::mt19937_64 gen{3};
  for (int round = 0; round < 20; ++round) {
    auto xs = rows;
    std::shuffle(xs.begin(), xs.end(), gen);
    while (xs.size() > 1) {
      auto i = gen() % (xs.size() - 1);
      REQUIRE(xs[i].merge(xs[i + 1]));
      xs.erase(xs.begin() + static_cast<std::ptrdiff_t>(i) + 1);
    }
    CHECK(xs.front() == expected);
    CHECK(longest.of(xs.front()) == longest.of(expected));
  }
}

TEST_CASE("aggregators: a row survives serialisation and an unknown state type "
          "is refused",
          "[aggregators][serialization]") {
  flow::aggregators aggs;
  auto longest = aggs.add("longest", longest_title{});
  auto dollars = aggs.add("dollars", flow::exact_moments{});
  flow::partial p;
  p.add("k", longest, std::string{"abc"});
  p.add("k", dollars, 0.1);
  p.add("k", std::int64_t{5});
  auto row = p.entries().front().second;
  auto buf = to_bytes(row);
  flow::aggregate back;
  REQUIRE(!from_bytes(buf, back));
  CHECK(back == row);
  CHECK(longest.of(back).title == "abc");
  CHECK(dollars.of(back).sum().value() == 0.1);
  // Rename the state in the bytes: no such type is registered.
  auto pos = std::search(buf.begin(), buf.end(), std::begin("test.longest"),
                         std::end("test.longest") - 1);
  REQUIRE(pos != buf.end());
  *pos = 'X';
  flow::aggregate bad;
  auto e = from_bytes(buf, bad);
  REQUIRE(e);
  CHECK(flow::code_of(e) == flow::errc::not_serializable);
  CHECK_THAT(flow::describe(e), Catch::Contains("Xest.longest_title"));
}

TEST_CASE("aggregators: a state without inspect refuses distribution",
          "[aggregators][errors]") {
  flow::aggregators aggs;
  auto n = aggs.add("n", local_only{});
  CHECK(aggs.first_not_serializable() != nullptr);
  // Locally it works.
  auto res = test::ok(flow::pipeline<std::int64_t>{}
                        .add(flow::from_range(0, 100))
                        .aggregate_with(aggs)
                        .reduce(flow::per_element<std::int64_t>(
                          [=](std::int64_t x, flow::partial& out) {
                            out.add(x % 2, n, x);
                          }))
                        .run());
  REQUIRE(res.keys.size() == 2);
  CHECK(n.of(res.keys[0]).n == 50);
  // Distributed, it is refused before anything runs.
  auto e = test::err(flow::pipeline<std::int64_t>{}
                       .add(flow::from_range(0, 100))
                       .aggregate_with(aggs)
                       .distribute_as("test.local_only")
                       .reduce(flow::per_element<std::int64_t>(
                         [=](std::int64_t x, flow::partial& out) {
                           out.add(x % 2, n, x);
                         }))
                       .run());
  CHECK(flow::code_of(e) == flow::errc::not_serializable);
  CHECK_THAT(flow::describe(e), Catch::Contains("'n'"));
}

TEST_CASE("aggregators: a state that cannot represent its input fails the job "
          "with overflow",
          "[aggregators][errors][overflow]") {
  flow::aggregators aggs;
  auto c = aggs.add("c", bounded_count{});
  for (std::size_t batch : {1000, 100}) {
    INFO("batch " << batch);
    // 1000 elements under one key: within one batch of 1000 the state's add
    // overflows; across batches of 100 the manager's merge does.
    auto e = test::err(flow::pipeline<std::int64_t>{}
                         .add(flow::from_range(0, 1000))
                         .aggregate_with(aggs)
                         .batch_size(batch)
                         .reduce(flow::per_element<std::int64_t>(
                           [=](std::int64_t, flow::partial& out) {
                             out.state(0, c).add();
                           }))
                         .run());
    CHECK(flow::code_of(e) == flow::errc::overflow);
  }
}

TEST_CASE("aggregators: a state whose merge or ok() throws fails the job "
          "with reducer_failed instead of taking the manager down",
          "[aggregators][errors]") {
  const char* expected[] = {"", "merge threw", "merge threw", "ok() threw"};
  const char* detail[] = {"", "merge refused", "unknown exception", "key"};
  for (int mode : {1, 2, 3}) {
    INFO("mode " << mode);
    flow::aggregators aggs;
    auto c = aggs.add("c", throwing_state{0, mode});
    // Ten batches under one key: the manager merges the second into the
    // first (and checks ok() on the final state).
    auto p = flow::pipeline<std::int64_t>{}
               .add(flow::from_range(0, 1000))
               .aggregate_with(aggs)
               .batch_size(100)
               .reduce(flow::per_element<std::int64_t>(
                 [=](std::int64_t, flow::partial& out) {
                   out.state(0, c).add();
                 }));
    caf::actor_system_config cfg;
    caf::actor_system sys{cfg};
    auto j = p.start(sys);
    REQUIRE(j);
    // Bounded: a manager taken down by the exception used to leave wait()
    // blocked.
    REQUIRE(j->wait_for(std::chrono::seconds(60)));
    auto e = test::err(j->wait());
    CHECK(flow::code_of(e) == flow::errc::reducer_failed);
    CHECK_THAT(flow::describe(e), Catch::Contains(expected[mode]));
    CHECK_THAT(flow::describe(e), Catch::Contains(detail[mode]));
  }
}

TEST_CASE("aggregators: misuse is refused at setup",
          "[aggregators][errors]") {
  flow::aggregators aggs;
  aggs.add("x", longest_title{});
  CHECK_THROWS_AS(aggs.add("x", longest_title{}), std::invalid_argument);
  // Two different types under one name.
  struct impostor : longest_title {};
  CHECK_THROWS_AS(aggs.add("y", impostor{}), std::logic_error);
}

TEST_CASE("aggregators: batches of doubles and of user structs cross processes "
          "by value",
          "[aggregators][serialization][messages]") {
  using flow::detail::erased_slice;
  // Infinities, NaN, -0.0 and subnormals too: CAF 0.17's own encoding of
  // doubles would hang or lose them.
  auto xs = std::make_shared<const std::vector<double>>(std::vector<double>{
    1e308, 1.0, -1e308, 0.1, HUGE_VAL, -HUGE_VAL, -0.0, 4.9e-324,
    std::nan("")});
  flow::source<double> src = flow::from_shared(xs);
  flow::detail::source_adapter<double> adapter{std::move(src)};
  auto s = adapter.next(10);
  REQUIRE(s.kind == flow::detail::element_kind::packed);
  auto buf = to_bytes(s);
  erased_slice back;
  REQUIRE(!from_bytes(buf, back));
  REQUIRE(back.size == xs->size());
  auto p = static_cast<const double*>(back.data);
  CHECK(std::memcmp(p, xs->data(), xs->size() * sizeof(double)) == 0);
  // Keyed doubles likewise.
  auto ks = std::make_shared<const std::vector<flow::keyed<double>>>(
    std::vector<flow::keyed<double>>{{"a", -0.0}, {"b", HUGE_VAL}});
  flow::detail::source_adapter<flow::keyed<double>> kadapter{
    flow::from_shared(ks)};
  auto kslice = kadapter.next(10);
  auto kbuf = to_bytes(kslice);
  erased_slice kback;
  REQUIRE(!from_bytes(kbuf, kback));
  REQUIRE(kback.size == 2);
  auto kp = static_cast<const flow::keyed<double>*>(kback.data);
  CHECK(kp[0].key == flow::key{"a"});
  CHECK(std::signbit(kp[0].value));
  CHECK(kp[1].value == HUGE_VAL);
}

TEST_CASE("aggregators: composite keys group like GROUP BY over several "
          "columns with NULLs, in a deterministic order",
          "[aggregators][composite][pipeline]") {
  struct row {
    std::optional<std::string> region;
    std::int64_t day;
    bool paid;
    std::int64_t cents;
  };
  std::vector<row> rows;
  std::mt19937_64 gen{5};
  const char* regions[] = {"Nord", "Süd", "Ost"};
  std::map<flow::key, flow::aggregate> ref;
  for (int i = 0; i < 30000; ++i) {
    row r;
    if (gen() % 5 != 0)
      r.region = regions[gen() % 3];
    r.day = static_cast<std::int64_t>(gen() % 4);
    r.paid = gen() % 2 == 0;
    r.cents = static_cast<std::int64_t>(gen() % 100000);
    auto k = flow::key::composite(
      {r.region ? flow::key_part{*r.region} : flow::key_part{}, r.day,
       r.paid});
    ref[k].add(r.cents);
    rows.push_back(r);
  }
  auto data = std::make_shared<const std::vector<row>>(rows);
  for (std::size_t reducers : {1, 2, 7}) {
    for (std::size_t batch : {1, 7, 65536}) {
      INFO("reducers " << reducers << ", batch " << batch);
      auto res = test::ok(
        flow::pipeline<row>{}
          .add(flow::from_shared(data))
          .reducers(reducers)
          .batch_size(batch)
          .reduce(flow::per_element<row>([](const row& r, flow::partial& out) {
            out.add(flow::key::composite(
                      {r.region ? flow::key_part{*r.region} : flow::key_part{},
                       r.day, r.paid}),
                    r.cents);
          }))
          .run());
      REQUIRE(res.keys.size() == ref.size());
      auto i = ref.begin();
      for (auto& k : res.keys) {
        // Same keys in the same (sorted) order as the std::map.
        CHECK(k.key == i->first);
        CHECK(k.agg == i->second);
        ++i;
      }
      // NULL regions sort first within the tuple order.
      CHECK(res.keys.front().key.parts().front().is_null());
    }
  }
}

namespace {

// Counts its live instances: rows must destroy every state they own, also
// when a row is overwritten by a move (vector::erase, sorting results).
struct counted {
  static inline int live = 0;
  std::int64_t n = 0;
  counted() {
    ++live;
  }
  counted(const counted& other) : n(other.n) {
    ++live;
  }
  ~counted() {
    --live;
  }
  static std::string state_name() {
    return "test.counted";
  }
  void add(std::int64_t x) {
    n += x;
  }
  void merge(const counted& other) {
    n += other.n;
  }
};

} // namespace

TEST_CASE("aggregators: rows destroy their states when copied over, moved "
          "over and erased",
          "[aggregators][memory]") {
  flow::aggregators aggs;
  auto c = aggs.add("c", counted{});
  auto before = counted::live;
  {
    std::vector<flow::aggregate> rows(10);
    for (std::size_t i = 0; i < rows.size(); ++i)
      c.at(rows[i]).add(static_cast<std::int64_t>(i));
    CHECK(counted::live == before + 10);
    rows.erase(rows.begin() + 3); // move-assigns rows 4.. over 3..
    CHECK(counted::live == before + 9);
    rows[0] = rows[1]; // copy-assigns over a row with a state
    CHECK(counted::live == before + 9);
    rows[2] = flow::aggregate{}; // move-assigns an empty row
    CHECK(counted::live == before + 8);
    std::reverse(rows.begin(), rows.end()); // swaps: moves
    CHECK(counted::live == before + 8);
  }
  CHECK(counted::live == before);
}

namespace {

// A state kept in a row's block (nothrow-movable), with heap memory of its
// own (a relocation that copied bytes instead of moving would free it twice
// under the sanitizers) and a count of live instances.
struct tagged {
  static inline int live = 0;
  // Copies throw while this is set.
  static inline bool fail_copies = false;
  std::string tag;
  std::int64_t n = 0;
  tagged() {
    ++live;
  }
  tagged(const tagged& other) : tag(other.tag), n(other.n) {
    if (fail_copies)
      throw std::runtime_error("tagged: copy refused");
    ++live;
  }
  tagged(tagged&& other) noexcept : tag(std::move(other.tag)), n(other.n) {
    ++live;
  }
  ~tagged() {
    --live;
  }
  static std::string state_name() {
    return "test.tagged";
  }
  void add(std::int64_t x) {
    n += x;
    tag = "tag of " + std::to_string(n) + " with some length to it";
  }
  void merge(const tagged& other) {
    add(other.n);
  }
  friend bool operator==(const tagged& x, const tagged& y) {
    return x.tag == y.tag && x.n == y.n;
  }
  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f, tagged& x) {
    return f(caf::meta::type_name("test.tagged"), x.tag, x.n);
  }
};

// Too large for a row's block: allocated on its own.
struct big_state {
  std::array<std::int64_t, 600> xs{};
  static std::string state_name() {
    return "test.big_state";
  }
  void add(std::int64_t x) {
    xs[static_cast<std::size_t>(x) % xs.size()] += x;
  }
  void merge(const big_state& other) {
    for (std::size_t i = 0; i < xs.size(); ++i)
      xs[i] += other.xs[i];
  }
  friend bool operator==(const big_state& x, const big_state& y) {
    return x.xs == y.xs;
  }
  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f, big_state& x) {
    return f(caf::meta::type_name("test.big_state"), x.xs);
  }
};

// The smallest state: 8 bytes in the row's block.
struct tiny_count {
  std::int64_t n = 0;
  static std::string state_name() {
    return "test.tiny_count";
  }
  void add(std::int64_t x) {
    n += x;
  }
  void merge(const tiny_count& other) {
    n += other.n;
  }
  friend bool operator==(const tiny_count& x, const tiny_count& y) {
    return x.n == y.n;
  }
  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f, tiny_count& x) {
    return f(caf::meta::type_name("test.tiny_count"), x.n);
  }
};

// Over-aligned: allocated on its own.
struct alignas(32) wide_state {
  std::int64_t n = 0;
  static std::string state_name() {
    return "test.wide_state";
  }
  void add(std::int64_t x) {
    n += x;
  }
  void merge(const wide_state& other) {
    n += other.n;
  }
  friend bool operator==(const wide_state& x, const wide_state& y) {
    return x.n == y.n;
  }
  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f, wide_state& x) {
    return f(caf::meta::type_name("test.wide_state"), x.n);
  }
};

// Its move may throw: allocated on its own, never relocated.
struct pinned_state {
  static inline int live = 0;
  std::int64_t n = 0;
  pinned_state() {
    ++live;
  }
  pinned_state(const pinned_state& other) : n(other.n) {
    ++live;
  }
  pinned_state(pinned_state&& other) noexcept(false) : n(other.n) {
    ++live;
  }
  ~pinned_state() {
    --live;
  }
  static std::string state_name() {
    return "test.pinned_state";
  }
  void add(std::int64_t x) {
    n += x;
  }
  void merge(const pinned_state& other) {
    n += other.n;
  }
  friend bool operator==(const pinned_state& x, const pinned_state& y) {
    return x.n == y.n;
  }
  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f,
                                                 pinned_state& x) {
    return f(caf::meta::type_name("test.pinned_state"), x.n);
  }
};

// The value column `i` gets in the tests below.
std::int64_t value_of_column(std::size_t i) {
  return static_cast<std::int64_t>(i * 7 + 1);
}

} // namespace

TEST_CASE("aggregators: a row's states live in one block sized to the job's "
          "columns",
          "[aggregators][memory]") {
  flow::aggregators aggs;
  auto a = aggs.add("a", tagged{});
  auto b = aggs.add("b", flow::exact_moments{});
  auto c = aggs.add("c", tagged{});
  auto big = aggs.add("big", big_state{});
  auto wide = aggs.add("wide", wide_state{});
  auto d = aggs.add("d", pinned_state{});
  CHECK(aggs.shape().columns == 6);
  // Every column's state made one after the other: the first one allocated
  // the whole row, no later one moves it.
  auto live = tagged::live;
  flow::aggregate row;
  c.at(row).add(3);
  auto bytes = row.states.block_bytes();
  CHECK(bytes > 0);
  a.at(row).add(1);
  b.at(row).add(0.25);
  big.at(row).add(5);
  wide.at(row).add(7);
  d.at(row).add(9);
  CHECK(row.states.block_bytes() == bytes);
  // prefetch is a hint to the processor: no block for an empty row, and a
  // row's block, states and values stay where and as they are.
  flow::aggregate{}.states.prefetch();
  auto* where = &a.of(row);
  row.states.prefetch();
  CHECK(row.states.block_bytes() == bytes);
  CHECK(&a.of(row) == where);
  CHECK(tagged::live == live + 2);
  CHECK(a.of(row).n == 1);
  CHECK(c.of(row).tag == "tag of 3 with some length to it");
  CHECK(b.of(row).sum().value() == 0.25);
  CHECK(big.of(row).xs[5] == 5);
  CHECK(wide.of(row).n == 7);
  CHECK(reinterpret_cast<std::uintptr_t>(&wide.of(row)) % 32 == 0);
  CHECK(d.of(row).n == 9);
  // A copy holds exactly its states (no more than the original's block).
  flow::aggregate copy = row;
  CHECK(copy.states.block_bytes() <= bytes);
  CHECK(copy == row);
  c.at(copy).add(1);
  CHECK(c.of(row).n == 3);
  CHECK(c.of(copy).n == 4);
  CHECK(tagged::live == live + 4);
  // Serialised and read back: equal, and without slack.
  flow::aggregate back;
  REQUIRE(!from_bytes(to_bytes(row), back));
  CHECK(back == row);
  CHECK(back.states.block_bytes() == flow::aggregate{row}.states.block_bytes());
  copy = flow::aggregate{};
  back = flow::aggregate{};
  row = flow::aggregate{};
  CHECK(tagged::live == live);
}

TEST_CASE("aggregators: a column costs a row 8 bytes besides its state",
          "[aggregators][memory]") {
  // Eleven 8-byte states (a pushed-down job of 13 aggregates has eleven
  // columns): a 16-byte header, 8 bytes a column (padded to 16), then the
  // states. With a pointer and an ops pointer per column the same row took
  // 16 + 176 + 88 bytes.
  flow::aggregators aggs;
  std::vector<flow::column<tiny_count>> cols;
  for (int i = 0; i < 11; ++i)
    cols.push_back(aggs.add("c" + std::to_string(i), tiny_count{}));
  flow::aggregate row;
  for (std::size_t i = 0; i < cols.size(); ++i)
    cols[i].at(row).add(static_cast<std::int64_t>(i));
  CHECK(row.states.block_bytes() == 16 + 96 + 88);
  for (std::size_t i = 0; i < cols.size(); ++i)
    CHECK(cols[i].of(row).n == static_cast<std::int64_t>(i));
  // A state allocated on its own takes a pointer's room in the block.
  flow::aggregators with_big;
  auto s = with_big.add("s", tiny_count{});
  auto big = with_big.add("big", big_state{});
  flow::aggregate r2;
  s.at(r2).add(4);
  big.at(r2).add(3);
  CHECK(r2.states.block_bytes() == 16 + 16 + 8 + 8);
  CHECK(big.of(r2).xs[3] == 3);
  CHECK(s.of(r2).n == 4);
}

TEST_CASE("aggregators: a state type is registered once, whatever asks",
          "[aggregators]") {
  auto& a = flow::state_ops_of<tiny_count>();
  CHECK(a.index > 0);
  CHECK(&flow::detail::state_ops_at(a.index) == &a);
  CHECK(flow::find_state_ops("test.tiny_count") == &a);
  // Registering the same type again (another library's copy of the
  // template) gives the first registration.
  auto& again = flow::detail::register_state(
    flow::detail::make_state_ops<tiny_count>());
  CHECK(&again == &a);
  // Another type under a taken name is a setup error.
  auto other = flow::detail::make_state_ops<wide_state>();
  other.name = "test.tiny_count";
  CHECK_THROWS_AS(flow::detail::register_state(other), std::logic_error);
  // Operations that were never registered cannot make a state.
  auto loose = flow::detail::make_state_ops<tiny_count>();
  flow::state_row row;
  tiny_count proto;
  CHECK_THROWS_AS(row.get_or_create(0, loose, &proto), std::logic_error);
  CHECK(row.empty());
}

TEST_CASE("aggregators: rows grown one column at a time, in any order, keep "
          "their states",
          "[aggregators][memory]") {
  auto& t = flow::state_ops_of<tagged>();
  auto& w = flow::state_ops_of<wide_state>();
  auto& k = flow::state_ops_of<pinned_state>();
  auto& m = flow::state_ops_of<flow::exact_moments>();
  tagged t0;
  wide_state w0;
  pinned_state k0;
  flow::exact_moments m0;
  // Which type column i holds, and its prototype.
  auto ops_of = [&](std::size_t i) -> const flow::state_ops& {
    switch (i % 4) {
      case 0: return t;
      case 1: return w;
      case 2: return k;
      default: return m;
    }
  };
  auto proto_of = [&](std::size_t i) -> const void* {
    switch (i % 4) {
      case 0: return &t0;
      case 1: return &w0;
      case 2: return &k0;
      default: return &m0;
    }
  };
  auto set = [&](void* p, std::size_t i) {
    auto v = value_of_column(i);
    switch (i % 4) {
      case 0: static_cast<tagged*>(p)->add(v); break;
      case 1: static_cast<wide_state*>(p)->add(v); break;
      case 2: static_cast<pinned_state*>(p)->add(v); break;
      default: static_cast<flow::exact_moments*>(p)->add(static_cast<double>(v)); break;
    }
  };
  auto check = [&](const flow::state_row& row, std::size_t i) {
    auto p = row.get(i, ops_of(i));
    REQUIRE(p != nullptr);
    auto v = value_of_column(i);
    switch (i % 4) {
      case 0: CHECK(static_cast<const tagged*>(p)->n == v); break;
      case 1: CHECK(static_cast<const wide_state*>(p)->n == v); break;
      case 2: CHECK(static_cast<const pinned_state*>(p)->n == v); break;
      default:
        CHECK(static_cast<const flow::exact_moments*>(p)->sum().value()
              == static_cast<double>(v));
        break;
    }
  };
  auto live_t = tagged::live;
  auto live_k = pinned_state::live;
  std::mt19937_64 rng{GENERATE(1u, 2u, 3u, 4u)};
  std::vector<std::size_t> order(40);
  for (std::size_t i = 0; i < order.size(); ++i)
    order[i] = i;
  std::shuffle(order.begin(), order.end(), rng);
  {
    flow::state_row row;
    std::vector<std::size_t> made;
    for (auto i : order) {
      set(row.get_or_create(i, ops_of(i), proto_of(i)), i);
      made.push_back(i);
      // Every state made so far survived the growths.
      for (auto j : made)
        check(row, j);
    }
    CHECK(row.size() == order.size());
    CHECK(tagged::live == live_t + 10);
    // A second row with every other column, merged into a copy and into an
    // empty row.
    flow::state_row half;
    for (std::size_t i = 0; i < order.size(); i += 2)
      set(half.get_or_create(i, ops_of(i), proto_of(i)), i);
    flow::state_row empty;
    REQUIRE(empty.merge(half));
    CHECK(empty.equals(half));
    flow::state_row sum = half;
    REQUIRE(sum.merge(row));
    REQUIRE(sum.merge(half));
    // Columns of `half` hold their value three times, the others once.
    for (std::size_t i = 0; i < order.size(); ++i) {
      auto p = sum.get(i, ops_of(i));
      REQUIRE(p != nullptr);
      auto v = value_of_column(i) * (i % 2 == 0 ? 3 : 1);
      if (i % 4 == 0)
        CHECK(static_cast<const tagged*>(p)->n == v);
      else if (i % 4 == 2)
        CHECK(static_cast<const pinned_state*>(p)->n == v);
    }
    // A column of another type is refused.
    CHECK_THROWS_AS(row.get(0, w), std::logic_error);
    CHECK_THROWS_AS(row.get_or_create(0, w, &w0), std::logic_error);
    // A copy that throws half-way leaves the original whole and leaks
    // nothing.
    tagged::fail_copies = true;
    CHECK_THROWS_AS(flow::state_row{row}, std::runtime_error);
    CHECK_THROWS_AS(empty.get_or_create(order.size(), t, &t0),
                    std::runtime_error);
    tagged::fail_copies = false;
    CHECK(empty.get(order.size(), t) == nullptr);
    for (std::size_t i = 0; i < order.size(); ++i)
      check(row, i);
  }
  CHECK(tagged::live == live_t);
  CHECK(pinned_state::live == live_k);
}

TEST_CASE("aggregators: a row fed column by column without its shape grows "
          "to 65536 columns and stays near its size",
          "[aggregators][memory]") {
  auto& ops = flow::state_ops_of<tiny_count>();
  tiny_count proto;
  flow::state_row row;
  for (std::size_t i = 0; i < 65536; ++i)
    static_cast<tiny_count*>(row.get_or_create(i, ops, &proto))->n
      = static_cast<std::int64_t>(i);
  CHECK(row.size() == 65536);
  // Growth by half at most: no more than twice what an exact copy takes.
  flow::state_row exact{row};
  CHECK(row.block_bytes() <= 2 * exact.block_bytes());
  for (std::size_t i = 0; i < 65536; i += 4099)
    CHECK(static_cast<const tiny_count*>(row.get(i, ops))->n
          == static_cast<std::int64_t>(i));
  CHECK_THROWS_AS(row.get_or_create(65536, ops, &proto), std::length_error);
  // A row read back has no slack either.
  flow::state_row back;
  std::vector<char> buf;
  caf::binary_serializer sink{nullptr, buf};
  REQUIRE(!row.save(sink));
  caf::binary_deserializer source{nullptr, buf};
  REQUIRE(!back.load(source));
  CHECK(back.equals(row));
  CHECK(back.block_bytes() == exact.block_bytes());
}

TEST_CASE("aggregators: a layout of more than 65536 columns is refused at "
          "setup",
          "[aggregators][memory]") {
  flow::aggregators aggs;
  for (int i = 0; i < 65536; ++i)
    aggs.add("c" + std::to_string(i), tiny_count{});
  CHECK(aggs.shape().columns == 65536);
  CHECK_THROWS_AS(aggs.add("one more", tiny_count{}), std::invalid_argument);
  CHECK(aggs.size() == 65536);
  // A copy has a shape of its own: columns added to it leave the
  // original's rows as they were.
  flow::aggregators small;
  small.add("a", tiny_count{});
  auto copy = small;
  copy.add("b", tiny_count{});
  CHECK(small.shape().columns == 1);
  CHECK(copy.shape().columns == 2);
  CHECK(copy.shape().bytes == 2 * small.shape().bytes);
}
