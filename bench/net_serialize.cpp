// The cost of sending a batch to a remote reducer: serialising the batch
// message (as CAF's middleman does) and deserialising it on the other side,
// per batch and per element, for int64 views, int64 recipes (materialised on
// the way) and keyed values. Also the partial aggregate that comes back.
//
//   build/bench/bench/flow-net-serialize [REPEATS]

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <vector>

#include <caf/binary_deserializer.hpp>
#include <caf/binary_serializer.hpp>

#include "flow/detail/messages.hpp"
#include "flow/flow.hpp"

using namespace flow;
using namespace flow::detail;

namespace {

template <class T>
double round_trip_us(T& msg, int repeats, std::size_t& bytes) {
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < repeats; ++i) {
    std::vector<char> buf;
    caf::binary_serializer sink{nullptr, buf};
    if (auto err = sink(msg)) {
      std::fprintf(stderr, "serialising failed\n");
      std::exit(1);
    }
    bytes = buf.size();
    T copy;
    caf::binary_deserializer source{nullptr, buf};
    if (auto err = source(copy)) {
      std::fprintf(stderr, "deserialising failed\n");
      std::exit(1);
    }
  }
  auto t1 = std::chrono::steady_clock::now();
  return std::chrono::duration<double, std::micro>(t1 - t0).count() / repeats;
}

batch int64_view(std::size_t n) {
  auto xs = std::make_shared<std::vector<std::int64_t>>(n);
  for (std::size_t i = 0; i < n; ++i)
    (*xs)[i] = static_cast<std::int64_t>(i * 7919 % 10001);
  batch b;
  b.label = flow::key{std::int64_t{42}};
  b.items.owner = xs;
  b.items.data = xs->data();
  b.items.size = n;
  b.items.kind = element_kind::int64;
  b.items.elem_size = sizeof(std::int64_t);
  return b;
}

batch int64_recipe(std::size_t n) {
  source_adapter<std::int64_t> src{from_random(n, 7)};
  batch b;
  b.label = flow::key{std::int64_t{42}};
  b.items = src.next(n);
  return b;
}

batch keyed(std::size_t n) {
  auto xs = std::make_shared<std::vector<keyed_value>>();
  for (std::size_t i = 0; i < n; ++i)
    xs->push_back({flow::key{"k" + std::to_string(i % 100)},
                   static_cast<std::int64_t>(i)});
  batch b;
  b.items.owner = xs;
  b.items.data = xs->data();
  b.items.size = n;
  b.items.kind = element_kind::keyed;
  b.items.elem_size = sizeof(keyed_value);
  return b;
}

} // namespace

int main(int argc, char** argv) {
  int repeats = argc > 1 ? std::atoi(argv[1]) : 50;
  std::printf("%-22s %9s %12s %14s %10s\n", "message", "elements", "bytes",
              "us/batch", "ns/elem");
  for (std::size_t n : {16384u, 65536u, 262144u}) {
    std::size_t bytes = 0;
    auto b1 = int64_view(n);
    auto t1 = round_trip_us(b1, repeats, bytes);
    std::printf("%-22s %9zu %12zu %14.1f %10.2f\n", "batch int64 (view)", n,
                bytes, t1, 1000.0 * t1 / static_cast<double>(n));
    auto b2 = int64_recipe(n);
    auto t2 = round_trip_us(b2, repeats, bytes);
    std::printf("%-22s %9zu %12zu %14.1f %10.2f\n", "batch int64 (recipe)", n,
                bytes, t2, 1000.0 * t2 / static_cast<double>(n));
    auto b3 = keyed(n);
    auto t3 = round_trip_us(b3, repeats, bytes);
    std::printf("%-22s %9zu %12zu %14.1f %10.2f\n", "batch keyed (100 keys)",
                n, bytes, t3, 1000.0 * t3 / static_cast<double>(n));
  }
  partial_msg p;
  p.size = 262144;
  for (int i = 0; i < 100; ++i) {
    aggregate a;
    a.add(i);
    p.entries.emplace_back(flow::key{"k" + std::to_string(i)}, a);
  }
  std::size_t bytes = 0;
  auto tp = round_trip_us(p, repeats * 10, bytes);
  std::printf("%-22s %9s %12zu %14.1f %10s\n", "partial (100 keys)", "-",
              bytes, tp, "-");
  return 0;
}
