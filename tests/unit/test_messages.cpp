// The protocol's messages serialise by value (so any actor may be remote),
// while a batch of a user element type refuses to.

#include <catch2/catch.hpp>

#include <caf/binary_deserializer.hpp>
#include <caf/binary_serializer.hpp>

#include <caf/actor_system_config.hpp>

#include "flow/detail/messages.hpp"
#include "flow/types.hpp"
#include "support.hpp"

using namespace flow;
using namespace flow::detail;

namespace {

template <class T>
std::vector<char> save(T& x, caf::error& err) {
  std::vector<char> buf;
  caf::binary_serializer sink{nullptr, buf};
  err = sink(x);
  return buf;
}

template <class T>
T load(const std::vector<char>& buf) {
  T result;
  caf::binary_deserializer source{nullptr, buf};
  auto err = source(result);
  REQUIRE(!err);
  return result;
}

} // namespace

TEST_CASE("messages: an int64 batch travels by value and keeps its elements",
          "[messages][serialization]") {
  auto xs = std::make_shared<const std::vector<std::int64_t>>(
    std::vector<std::int64_t>{0, -1, INT64_MAX, INT64_MIN, 42});
  batch b{3, 7, 700, flow::key{10000}, {xs, xs->data() + 1, 4,
                                        element_kind::int64}};
  caf::error err;
  auto buf = save(b, err);
  REQUIRE(!err);
  auto copy = load<batch>(buf);
  CHECK(copy.source == 3);
  CHECK(copy.seq == 7);
  CHECK(copy.first == 700);
  CHECK(copy.label == flow::key{10000});
  REQUIRE(copy.items.size == 4);
  CHECK(copy.items.kind == element_kind::int64);
  // A remote copy owns fresh storage: it must not point into ours.
  CHECK(copy.items.data != static_cast<const void*>(xs->data() + 1));
  auto p = static_cast<const std::int64_t*>(copy.items.data);
  CHECK(std::vector<std::int64_t>(p, p + 4)
        == std::vector<std::int64_t>{-1, INT64_MAX, INT64_MIN, 42});
}

TEST_CASE("messages: a keyed batch with string keys travels by value",
          "[messages][serialization]") {
  auto xs = std::make_shared<const std::vector<keyed_value>>(
    std::vector<keyed_value>{{flow::key{"apple"}, 3}, {flow::key{5}, -7}});
  batch b{0, 0, 0, flow::key{}, {xs, xs->data(), 2, element_kind::keyed}};
  caf::error err;
  auto buf = save(b, err);
  REQUIRE(!err);
  auto copy = load<batch>(buf);
  REQUIRE(copy.items.size == 2);
  auto p = static_cast<const keyed_value*>(copy.items.data);
  CHECK(p[0] == keyed_value{flow::key{"apple"}, 3});
  CHECK(p[1] == keyed_value{flow::key{5}, -7});
}

TEST_CASE("messages: a batch of a user element type refuses to serialise",
          "[messages][serialization]") {
  struct point {
    int x, y;
  };
  auto xs = std::make_shared<const std::vector<point>>(
    std::vector<point>{{1, 2}});
  batch b{0, 0, 0, flow::key{}, {xs, xs->data(), 1, element_kind::opaque}};
  caf::error err;
  save(b, err);
  REQUIRE(err);
  CHECK(code_of(err) == errc::not_serializable);
}

TEST_CASE("messages: a partial aggregate round-trips with its rejections",
          "[messages][serialization]") {
  partial_msg p;
  p.source = 2;
  p.seq = 9;
  p.size = 100;
  p.rejected = 3;
  aggregate a;
  a.add(INT64_MAX);
  a.add(INT64_MAX);
  p.entries.emplace_back(flow::key{"x"}, a);
  p.reasons.emplace_back("bad price", 3);
  caf::error err;
  auto buf = save(p, err);
  REQUIRE(!err);
  auto copy = load<partial_msg>(buf);
  CHECK(copy.source == 2);
  CHECK(copy.seq == 9);
  CHECK(copy.size == 100);
  CHECK(copy.rejected == 3);
  REQUIRE(copy.entries.size() == 1);
  CHECK(copy.entries[0].first == flow::key{"x"});
  CHECK(copy.entries[0].second == a);
  REQUIRE(copy.reasons.size() == 1);
  CHECK(copy.reasons[0].second == 3);
}

TEST_CASE("messages: every message type registers with an actor system "
          "configuration",
          "[messages]") {
  caf::actor_system_config cfg;
  flow::add_message_types(cfg);
  for (auto name : {"flow.batch", "flow.partial", "flow.demand",
                    "flow.source_done", "flow.source_failed",
                    "flow.batch_failed", "flow.job_result", "flow.key",
                    "flow.aggregate", "flow.int64_vector",
                    "flow.keyed_vector"}) {
    INFO(name);
    CHECK(cfg.value_factories_by_name.count(name) == 1);
  }
  CHECK(cfg.type_names_by_rtti.count(typeid(batch)) == 1);
}

TEST_CASE("messages: int64 elements travel as one raw block, a truncated "
          "message is refused",
          "[messages][serialization]") {
  // A recipe (random source) is materialised into the block.
  source_adapter<std::int64_t> src{from_random(1000, 3)};
  batch b;
  b.items = src.next(1000);
  REQUIRE(b.items.deferred());
  caf::error err;
  auto buf = save(b, err);
  REQUIRE(!err);
  // The block is the elements' bytes plus a small header, not 8 bytes of
  // framing per element.
  CHECK(buf.size() < 1000 * sizeof(std::int64_t) + 64);
  auto copy = load<batch>(buf);
  REQUIRE(copy.items.size == 1000);
  std::vector<std::int64_t> expected(1000);
  b.items.materialize(b.items.owner.get(), b.items.first, 1000,
                      expected.data());
  auto p = static_cast<const std::int64_t*>(copy.items.data);
  CHECK(std::vector<std::int64_t>(p, p + 1000) == expected);
  // Cut the message short.
  auto cut = buf;
  cut.pop_back();
  batch broken;
  caf::binary_deserializer source{nullptr, cut};
  CHECK(source(broken));
}

TEST_CASE("messages: a job result travels without key_count, which loading "
          "sets from its keys, so results stored earlier still load",
          "[messages][serialization]") {
  job_result r;
  r.keys.push_back({flow::key{1}, aggregate{}, 0});
  r.keys.push_back({flow::key{"b"}, aggregate{}, 2});
  r.key_count = 99;
  r.emitted = 7;
  r.abandoned = 1;
  caf::error err;
  auto buf = save(r, err);
  REQUIRE(!err);
  auto copy = load<job_result>(buf);
  CHECK(copy.keys.size() == 2);
  CHECK(copy.key_count == 2);
  CHECK(copy.emitted == 7);
  CHECK(copy.abandoned == 1);
  // The bytes end with `abandoned` (CAF writes integers in network byte
  // order), as before key_count existed.
  REQUIRE(buf.size() >= 8);
  std::uint64_t last = 0;
  for (std::size_t i = buf.size() - 8; i < buf.size(); ++i)
    last = (last << 8) | static_cast<unsigned char>(buf[i]);
  CHECK(last == 1);
}
