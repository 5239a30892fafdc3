// Text sources and partial aggregates under ThreadSanitizer: file sources read
// on their own threads (as blocking generators are) hand batches to other
// threads, which fold them into partials that move on to a merging thread.

#include <catch2/catch.hpp>

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include <unistd.h>

#include "flow/aggregate.hpp"
#include "flow/key.hpp"
#include "flow/keyed_value.hpp"
#include "flow/partial.hpp"
#include "flow/source.hpp"
#include "threads.hpp"

using namespace flow;
using namespace flow::test;

namespace {

/// A temporary file that is removed with this object.
class temp_text {
public:
  explicit temp_text(const std::string& text) {
    char tmpl[] = "/tmp/flow-tsan-test-XXXXXX";
    int fd = mkstemp(tmpl);
    REQUIRE(fd >= 0);
    close(fd);
    path_ = tmpl;
    std::ofstream out{path_, std::ios::binary};
    out << text;
  }

  ~temp_text() {
    std::remove(path_.c_str());
  }

  const std::string& path() const {
    return path_;
  }

private:
  std::string path_;
};

/// The integers 0..n-1 times `scale`, with assorted white space and CRLF
/// line ends.
std::string int_lines(std::int64_t n, std::int64_t scale) {
  std::string text;
  for (std::int64_t i = 0; i < n; ++i) {
    text += std::to_string(i * scale);
    text += i % 5 == 4 ? "\r\n" : (i % 3 == 0 ? "\t" : " ");
  }
  return text;
}

/// Keys of the keyed test data: ASCII and multi-byte UTF-8.
const std::vector<std::string> test_keys{"alpha", "beta", "gamma",
                                         "\xd0\xba\xd0\xbb\xd1\x8e\xd1\x87",
                                         "\xf0\x9f\x8d\x8e"};

} // namespace

TEST_CASE("from_text_file: two files read on their own threads hand their "
          "batches to consumer threads and every number is summed once",
          "[tsan][source][text]") {
  constexpr std::int64_t n = 100000;
  constexpr std::size_t consumers = 3;
  temp_text a{int_lines(n, 1)};
  temp_text b{int_lines(n, -3)};
  auto src_a = from_text_file(a.path());
  auto src_b = from_text_file(b.path());
  blocking_queue<slice<std::int64_t>> queue;
  std::vector<int128> sums(consumers);
  std::vector<std::uint64_t> counts(consumers);
  std::mutex done_mtx;
  int producers_left = 2;
  auto produce = [&](source<std::int64_t>& src) {
    while (!src->exhausted()) {
      auto xs = src->next(1000);
      if (!xs.empty())
        queue.push(std::move(xs));
    }
    src.reset();
    std::lock_guard<std::mutex> guard{done_mtx};
    if (--producers_left == 0)
      queue.close();
  };
  run_together(consumers + 2, [&](std::size_t t) {
    if (t == consumers) {
      produce(src_a);
    } else if (t == consumers + 1) {
      produce(src_b);
    } else {
      while (auto xs = queue.pop()) {
        counts[t] += xs->size();
        sums[t] += exact_sum(xs->data(), xs->size());
      }
    }
  });
  int128 sum = 0;
  std::uint64_t count = 0;
  for (std::size_t t = 0; t < consumers; ++t) {
    sum += sums[t];
    count += counts[t];
  }
  // 0 + 1 + ... + (n-1), once with factor 1 and once with factor -3.
  int128 expected = int128{n} * (n - 1) / 2 * (1 - 3);
  CHECK(count == 2 * n);
  CHECK(to_string(sum) == to_string(expected));
}

TEST_CASE("keyed_from_text_file: partials folded on several threads and "
          "merged on another give the exact per-key aggregates",
          "[tsan][source][text][partial]") {
  constexpr std::int64_t lines = 60000;
  constexpr std::size_t reducers = 4;
  std::string text;
  std::map<std::string, aggregate> expected;
  for (std::int64_t i = 0; i < lines; ++i) {
    auto& k = test_keys[static_cast<std::size_t>(i) % test_keys.size()];
    auto v = (i * 7919) % 20011 - 10000;
    text += k + (i % 2 ? " " : "\t") + std::to_string(v)
            + (i % 4 == 3 ? "\r\n" : "\n");
    expected[k].add(v);
  }
  temp_text file{text};
  auto src = keyed_from_text_file(file.path());
  blocking_queue<slice<keyed_value>> batches;
  blocking_queue<partial> partials;
  std::map<std::string, aggregate> merged;
  std::uint64_t rows = 0;
  int128 row_sum = 0;
  bool overflow = false;
  std::mutex left_mtx;
  std::size_t reducers_left = reducers;
  run_together(reducers + 2, [&](std::size_t t) {
    if (t == reducers) {
      // The generator.
      while (!src->exhausted()) {
        auto xs = src->next(777);
        if (!xs.empty())
          batches.push(std::move(xs));
      }
      src.reset();
      batches.close();
    } else if (t == reducers + 1) {
      // The manager: merges partials built on other threads.
      while (auto p = partials.pop()) {
        for (auto& [k, agg] : p->entries())
          if (!merged[k.as_string()].merge(agg))
            overflow = true;
        if (auto out = p->take_rows()) {
          auto& xs = *static_cast<std::vector<std::int64_t>*>(out.get());
          rows += xs.size();
          for (auto x : xs)
            row_sum += x;
        }
      }
    } else {
      // A reducer: one partial per batch, moved to the manager.
      while (auto xs = batches.pop()) {
        partial out;
        for (auto& x : *xs) {
          out.add(x.key, x.value);
          out.emit(x.value);
        }
        partials.push(std::move(out));
      }
      std::lock_guard<std::mutex> guard{left_mtx};
      if (--reducers_left == 0)
        partials.close();
    }
  });
  CHECK_FALSE(overflow);
  REQUIRE(merged.size() == expected.size());
  int128 total = 0;
  for (auto& [k, agg] : expected) {
    INFO("key " << k);
    auto& got = merged[k];
    CHECK(got.count == agg.count);
    CHECK(to_string(got.sum) == to_string(agg.sum));
    CHECK(got.min == agg.min);
    CHECK(got.max == agg.max);
    total += agg.sum;
  }
  CHECK(rows == static_cast<std::uint64_t>(lines));
  CHECK(to_string(row_sum) == to_string(total));
}
