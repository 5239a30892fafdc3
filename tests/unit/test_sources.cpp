// Sources: ranges, containers (zero-copy), callables, text files and keyed
// text files, and tap.

#include "support.hpp"

#include <cstdint>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

constexpr auto i64_max = std::numeric_limits<std::int64_t>::max();
constexpr auto i64_min = std::numeric_limits<std::int64_t>::min();

// The elements first, first + step, ... before last, by a 128-bit loop.
std::vector<std::int64_t> range_ref(std::int64_t first, std::int64_t last,
                                    std::int64_t step) {
  std::vector<std::int64_t> xs;
  for (flow::int128 x = first; step > 0 ? x < last : x > last; x += step)
    xs.push_back(static_cast<std::int64_t>(x));
  return xs;
}

// Runs `src` through a pipeline that records the elements (with the batch's
// first index) and returns them in source order.
std::vector<std::int64_t> through_pipeline(flow::source<std::int64_t> src,
                                           std::size_t batch) {
  std::mutex mtx;
  std::map<std::uint64_t, std::vector<std::int64_t>> parts;
  auto res = test::ok(flow::pipeline<std::int64_t>{}
                        .add(std::move(src))
                        .batch_size(batch)
                        .reducers(2)
                        .reduce([&](const flow::batch_ref<std::int64_t>& b,
                                    flow::partial& out) {
                          {
                            std::lock_guard<std::mutex> guard{mtx};
                            parts[b.first].assign(b.items.begin(),
                                                  b.items.end());
                          }
                          for (auto x : b.items)
                            out.add(b.label, x);
                        })
                        .run());
  std::vector<std::int64_t> xs;
  for (auto& [first, part] : parts) {
    CHECK(first == xs.size());
    xs.insert(xs.end(), part.begin(), part.end());
  }
  CHECK(res.emitted == xs.size());
  return xs;
}

} // namespace

// -- ranges ------------------------------------------------------------------------

TEST_CASE("from_range: yields first, first+step, ... before last", "[sources][range]") {
  struct range_case {
    std::int64_t first, last, step;
  };
  auto c = GENERATE(values<range_case>({
    {0, 10, 1},
    {0, 10, 3},
    {10, 0, -3},
    {-5, 5, 2},
    {5, 5, 1},      // empty
    {5, 0, 1},      // empty: wrong direction
    {0, 5, -1},     // empty: wrong direction
    {i64_max - 3, i64_max, 1},
    {i64_min, i64_min + 5, 2},
    {i64_max, i64_min, -(i64_max / 2)},
    {i64_min, i64_max, i64_max},
  }));
  INFO("range(" << c.first << ", " << c.last << ", " << c.step << ")");
  auto ref = range_ref(c.first, c.last, c.step);
  for (std::size_t max : {std::size_t{1}, std::size_t{2}, std::size_t{1000}}) {
    auto src = flow::from_range(c.first, c.last, c.step);
    CHECK(test::drain(*src, max) == ref);
    CHECK(src->exhausted());
  }
}

TEST_CASE("from_range: an empty range is exhausted from the start",
          "[sources][range]") {
  auto src = flow::from_range(3, 3);
  CHECK(src->exhausted());
  CHECK(src->next(5).empty());
}

TEST_CASE("from_range: step 0 is rejected at setup", "[sources][range]") {
  CHECK_THROWS_AS(flow::from_range(0, 10, 0), std::invalid_argument);
}

// -- containers --------------------------------------------------------------------

// -- keyed random ----------------------------------------------------------------

TEST_CASE("from_keyed_random: element i follows the SplitMix64 formula for any "
          "batch size",
          "[sources][keyed_random]") {
  // The formula written out here, apart from the library's mix64.
  std::vector<flow::keyed_value> ref;
  for (std::uint64_t i = 0; i < 1000; ++i) {
    std::uint64_t z = 5 + (i + 1) * 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    z = z ^ (z >> 31);
    ref.push_back({flow::key{static_cast<std::int64_t>(z % 7)},
                   static_cast<std::int64_t>((z >> 32) % 10001)});
  }
  for (std::size_t max : {std::size_t{1}, std::size_t{7}, std::size_t{4096}}) {
    INFO("max " << max);
    auto src = flow::from_keyed_random(1000, 7, 5);
    CHECK(src->size_hint() == std::optional<std::uint64_t>{1000});
    CHECK(test::drain(*src, max) == ref);
    CHECK(src->exhausted());
  }
}

TEST_CASE("from_keyed_random: no elements, and bad key or value counts at "
          "setup",
          "[sources][keyed_random]") {
  auto src = flow::from_keyed_random(0, 3, 42);
  CHECK(src->exhausted());
  CHECK(src->next(5).empty());
  CHECK_THROWS_AS(flow::from_keyed_random(10, 0, 42), std::invalid_argument);
  CHECK_THROWS_AS(flow::from_keyed_random(10, std::uint64_t{1} << 63, 42),
                  std::invalid_argument);
  CHECK_THROWS_AS(flow::from_keyed_random(10, 3, 42, 0),
                  std::invalid_argument);
  CHECK_NOTHROW(flow::from_keyed_random(10, i64_max, 42));
}

TEST_CASE("from_container: batches are views into the original vector's storage",
          "[sources][zero-copy]") {
  std::vector<std::int64_t> xs(1000);
  for (std::size_t i = 0; i < xs.size(); ++i)
    xs[i] = static_cast<std::int64_t>(i) - 300;
  auto expected = xs;
  const std::int64_t* storage = xs.data();
  auto src = flow::from_container(std::move(xs));
  std::vector<std::int64_t> seen;
  for (std::size_t k = 0;; ++k) {
    auto s = src->next(64);
    if (s.empty())
      break;
    // Each batch points into the moved-in buffer at its own offset.
    CHECK(s.data() == storage + 64 * k);
    seen.insert(seen.end(), s.begin(), s.end());
    if (src->exhausted())
      break;
  }
  CHECK(seen == expected);
}

TEST_CASE("from_shared: reducers see pointers into the shared vector, never copies",
          "[sources][zero-copy]") {
  auto data = std::make_shared<std::vector<std::int64_t>>(10'000);
  for (std::size_t i = 0; i < data->size(); ++i)
    (*data)[i] = static_cast<std::int64_t>(i * 37 % 1001) - 500;
  const std::int64_t* begin = data->data();
  const std::int64_t* end = begin + data->size();
  auto ref = test::naive_sum(*data);

  std::mutex mtx;
  std::vector<std::pair<const std::int64_t*, std::uint64_t>> seen;
  std::shared_ptr<const std::vector<std::int64_t>> shared = data;
  auto res = test::ok(
    flow::pipeline<std::int64_t>{}
      .add(flow::from_shared(shared), 1)
      .batch_size(128)
      .reducers(3)
      .reduce([&](const flow::batch_ref<std::int64_t>& b, flow::partial& out) {
        {
          std::lock_guard<std::mutex> guard{mtx};
          seen.emplace_back(b.items.data(), b.first);
        }
        out.add(b.label, flow::aggregate::of(b.items.data(), b.items.size()));
      })
      .run());
  REQUIRE(res.keys.size() == 1);
  CHECK(res.keys[0].agg.sum == ref);
  REQUIRE(seen.size() == test::ceil_div(10'000, 128));
  for (auto& [ptr, first] : seen) {
    CHECK(ptr >= begin);
    CHECK(ptr < end);
    CHECK(ptr == begin + first);
  }
  // The job is over: only our handle keeps the vector alive again.
  CHECK(shared.use_count() == 2); // `data` and `shared`
}

TEST_CASE("from_container: the pipeline reads the moved-in buffer in place",
          "[sources][zero-copy]") {
  std::vector<std::int64_t> xs(5000, 3);
  xs[17] = -9;
  auto ref = test::naive_sum(xs);
  const std::int64_t* begin = xs.data();
  std::mutex mtx;
  std::vector<const std::int64_t*> seen;
  auto res = test::ok(
    flow::pipeline<std::int64_t>{}
      .add(flow::from_container(std::move(xs)))
      .batch_size(1000)
      .reducers(2)
      .reduce([&](const flow::batch_ref<std::int64_t>& b, flow::partial& out) {
        {
          std::lock_guard<std::mutex> guard{mtx};
          seen.push_back(b.items.data());
        }
        out.add(b.label, flow::aggregate::of(b.items.data(), b.items.size()));
      })
      .run());
  REQUIRE(seen.size() == 5);
  for (auto p : seen) {
    CHECK(p >= begin);
    CHECK(p < begin + 5000);
    CHECK((p - begin) % 1000 == 0);
  }
  REQUIRE(res.keys.size() == 1);
  CHECK(res.keys[0].agg.sum == ref);
}

TEST_CASE("from_shared: a null vector is rejected at setup", "[sources]") {
  CHECK_THROWS_AS(flow::from_shared<std::int64_t>(nullptr),
                  std::invalid_argument);
}

// -- callables ---------------------------------------------------------------------

TEST_CASE("from_callable: calls until the callable returns nothing",
          "[sources][callable]") {
  auto n = GENERATE(0, 1, 5, 64, 65, 1000);
  std::int64_t i = 0;
  auto src = flow::from_callable([&]() -> std::optional<std::int64_t> {
    if (i == n)
      return std::nullopt;
    return i++ * 2 - 7;
  });
  auto xs = test::drain(*src, 64);
  REQUIRE(xs.size() == static_cast<std::size_t>(n));
  for (std::int64_t k = 0; k < n; ++k)
    CHECK(xs[k] == k * 2 - 7);
  CHECK(src->exhausted());
  CHECK_FALSE(src->blocking());
}

TEST_CASE("from_callable: the blocking flag is reported", "[sources][callable]") {
  auto src = flow::from_callable(
    []() -> std::optional<std::int64_t> { return std::nullopt; }, true);
  CHECK(src->blocking());
}

TEST_CASE("from_callable: elements flow through a pipeline in order",
          "[sources][callable]") {
  std::int64_t i = 0;
  auto src = flow::from_callable([&]() -> std::optional<std::int64_t> {
    if (i == 3000)
      return std::nullopt;
    return (i++ % 11) - 5;
  });
  auto xs = through_pipeline(std::move(src), 64);
  REQUIRE(xs.size() == 3000);
  for (std::int64_t k = 0; k < 3000; ++k)
    REQUIRE(xs[k] == (k % 11) - 5);
}

// -- text files --------------------------------------------------------------------

TEST_CASE("from_text_file: reads whitespace-separated integers of any layout",
          "[sources][text]") {
  test::temp_file f{"1 2 3\n-4\t5\r\n\n   6  \n+7\n-0\n9223372036854775807\n"
                    "-9223372036854775808"};
  auto src = flow::from_text_file(f.path());
  CHECK(src->blocking());
  auto xs = test::drain(*src, 4);
  std::vector<std::int64_t> expected{1, 2, 3, -4, 5, 6, 7, 0, i64_max, i64_min};
  CHECK(xs == expected);
  CHECK(src->name().find(f.path()) != std::string::npos);
}

TEST_CASE("from_text_file: an empty or blank file has no elements",
          "[sources][text]") {
  auto text = GENERATE(as<std::string>{}, "", "\n", "  \n\t\n  ");
  test::temp_file f{text};
  auto src = flow::from_text_file(f.path());
  CHECK(test::drain(*src, 10).empty());
  CHECK(src->exhausted());
}

TEST_CASE("from_text_file: a large file across read blocks matches the reference",
          "[sources][text]") {
  // More than one 1 MiB read block, so tokens straddle block boundaries.
  auto values = test::random_values(300'000, 8, -1'000'000'000'000,
                                    1'000'000'000'000);
  std::ostringstream text;
  for (std::size_t i = 0; i < values.size(); ++i)
    text << values[i] << (i % 10 == 9 ? '\n' : ' ');
  REQUIRE(text.str().size() > (std::size_t{1} << 21));
  test::temp_file f{text.str()};
  auto res = test::ok(flow::pipeline<std::int64_t>{}
                        .add(flow::from_text_file(f.path()), "file")
                        .batch_size(4096)
                        .reducers(2)
                        .reduce(flow::sum_by_label())
                        .run());
  REQUIRE(res.keys.size() == 1);
  CHECK(res.keys[0].agg.sum == test::naive_sum(values));
  CHECK(res.keys[0].agg.count == values.size());
  CHECK(res.emitted == values.size());
  CHECK(res.batches == test::ceil_div(values.size(), 4096));
}

TEST_CASE("from_text_file: a bad token fails with bad_input naming the line and "
          "the token",
          "[sources][text][errors]") {
  test::temp_file f{"1 2\n3 4\n5 abc 6\n7\n"};
  SECTION("read directly") {
    auto src = flow::from_text_file(f.path());
    try {
      test::drain(*src, 100);
      FAIL("no error for a bad token");
    } catch (const flow::input_error& e) {
      CHECK(e.code() == flow::errc::bad_input);
      std::string what = e.what();
      CHECK_THAT(what, Catch::Contains("line 3"));
      CHECK_THAT(what, Catch::Contains("'abc'"));
      CHECK_THAT(what, Catch::Contains(f.path()));
      CHECK_THAT(what, Catch::Contains("is not an integer"));
    }
  }
  SECTION("through a pipeline") {
    auto e = test::err(flow::pipeline<std::int64_t>{}
                         .add(flow::from_text_file(f.path()))
                         .batch_size(2)
                         .reduce(flow::sum_by_label())
                         .run());
    CHECK(flow::code_of(e) == flow::errc::bad_input);
    auto text = flow::describe(e);
    CHECK_THAT(text, Catch::StartsWith("bad_input"));
    CHECK_THAT(text, Catch::Contains("line 3"));
    CHECK_THAT(text, Catch::Contains("'abc'"));
  }
}

TEST_CASE("from_text_file: an integer beyond int64 fails as out of range",
          "[sources][text][errors]") {
  test::temp_file f{"1\n\n9223372036854775808\n"};
  auto e = test::err(flow::pipeline<std::int64_t>{}
                       .add(flow::from_text_file(f.path()))
                       .reduce(flow::sum_by_label())
                       .run());
  CHECK(flow::code_of(e) == flow::errc::bad_input);
  auto text = flow::describe(e);
  CHECK_THAT(text, Catch::Contains("line 3"));
  CHECK_THAT(text, Catch::Contains("'9223372036854775808'"));
  CHECK_THAT(text, Catch::Contains("outside the int64 range"));
}

TEST_CASE("from_text_file: line numbers stay right past the 1 MiB read block",
          "[sources][text][errors]") {
  // 600,000 lines of "1" (1.2 MB), then a bad token on line 600,001.
  std::string text;
  text.reserve(1'300'000);
  for (int i = 0; i < 600'000; ++i)
    text += "1\n";
  text += "2 3 oops 4\n5\n";
  test::temp_file f{text};
  auto e = test::err(flow::pipeline<std::int64_t>{}
                       .add(flow::from_text_file(f.path()))
                       .batch_size(10'000)
                       .reduce(flow::sum_by_label())
                       .run());
  CHECK(flow::code_of(e) == flow::errc::bad_input);
  auto what = flow::describe(e);
  CHECK_THAT(what, Catch::Contains("line 600001:"));
  CHECK_THAT(what, Catch::Contains("'oops'"));
}

TEST_CASE("from_text_file: a runaway token fails instead of eating memory",
          "[sources][text][errors]") {
  test::temp_file f{"1 2\n" + std::string(10'000, '7') + "\n"};
  auto e = test::err(flow::pipeline<std::int64_t>{}
                       .add(flow::from_text_file(f.path()))
                       .reduce(flow::sum_by_label())
                       .run());
  CHECK(flow::code_of(e) == flow::errc::bad_input);
  auto what = flow::describe(e);
  CHECK_THAT(what, Catch::Contains("line 2"));
  CHECK_THAT(what, Catch::Contains("too long"));
  CHECK(what.size() < 300); // the token is shortened in the message
}

TEST_CASE("from_text_file: a missing file fails with bad_input", "[sources][text][errors]") {
  auto e = test::err(flow::pipeline<std::int64_t>{}
                       .add(flow::from_text_file("/nonexistent/flow/input.txt"))
                       .reduce(flow::sum_by_label())
                       .run());
  CHECK(flow::code_of(e) == flow::errc::bad_input);
  CHECK_THAT(flow::describe(e), Catch::Contains("/nonexistent/flow/input.txt"));
}

// -- keyed text files --------------------------------------------------------------

TEST_CASE("keyed_from_text_file: reads 'key value' lines with string keys",
          "[sources][keyed]") {
  test::temp_file f{"a 1\nb 2\n\n  a   -3  \r\n10 5\nb 0\n"};
  auto src = flow::keyed_from_text_file(f.path());
  CHECK(src->blocking());
  auto xs = test::drain(*src, 2);
  std::vector<flow::keyed_value> expected{
    {flow::key{"a"}, 1}, {flow::key{"b"}, 2},  {flow::key{"a"}, -3},
    {flow::key{"10"}, 5}, {flow::key{"b"}, 0}};
  CHECK(xs == expected);
  // "10" is a string key, not the integer 10.
  REQUIRE(xs.size() == 5);
  CHECK(xs[3].key.is_string());
}

TEST_CASE("keyed_from_text_file: sum_by_key groups the values of each key",
          "[sources][keyed]") {
  std::ostringstream text;
  std::map<std::string, flow::int128> ref_sum;
  std::map<std::string, std::uint64_t> ref_count;
  auto values = test::random_values(20'000, 3, -1000, 1000);
  for (std::size_t i = 0; i < values.size(); ++i) {
    auto k = "key" + std::to_string(i * 31 % 97);
    text << k << ' ' << values[i] << '\n';
    ref_sum[k] += values[i];
    ++ref_count[k];
  }
  test::temp_file f{text.str()};
  auto res = test::ok(flow::pipeline<flow::keyed_value>{}
                        .add(flow::keyed_from_text_file(f.path()))
                        .batch_size(333)
                        .reducers(2)
                        .reduce(flow::sum_by_key())
                        .run());
  REQUIRE(res.keys.size() == ref_sum.size());
  for (auto& kr : res.keys) {
    REQUIRE(kr.key.is_string());
    CHECK(kr.agg.sum == ref_sum[kr.key.as_string()]);
    CHECK(kr.agg.count == ref_count[kr.key.as_string()]);
    CHECK(kr.sources == 0);
  }
  CHECK(res.emitted == values.size());
  CHECK(res.balanced());
}

TEST_CASE("keyed_from_text_file: bad lines fail with bad_input naming the line "
          "and the token",
          "[sources][keyed][errors]") {
  struct bad_case {
    const char* text;
    const char* line;
    const char* token;
  };
  auto c = GENERATE(values<bad_case>({
    {"a 1\nb 2\nc x\n", "line 3", "'x'"},                 // value not a number
    {"a 1\nb 2\nc 99999999999999999999\n", "line 3", "'99999999999999999999'"},
    {"a 1\nb\nc 3\n", "line 2", "'b'"},                   // key without value
    {"a 1\nb 2\nc 3 4\n", "line 3", "'4'"},               // third token
    {"a 1\n\nb", "line 3", "'b'"},                        // lonely key at the end
  }));
  // Small batches make the reader carry the next line's key across calls.
  auto batch = GENERATE(1, 2, 65536);
  INFO("input: " << c.text << "(batch size " << batch << ")");
  test::temp_file f{c.text};
  auto e = test::err(flow::pipeline<flow::keyed_value>{}
                       .add(flow::keyed_from_text_file(f.path()))
                       .batch_size(batch)
                       .reduce(flow::sum_by_key())
                       .run());
  CHECK(flow::code_of(e) == flow::errc::bad_input);
  auto text = flow::describe(e);
  CHECK_THAT(text, Catch::Contains(c.line));
  CHECK_THAT(text, Catch::Contains(c.token));
}

TEST_CASE("keyed_from_text_file: a key that is not printable UTF-8 fails "
          "naming the line and the escaped key",
          "[sources][keyed][errors][utf8]") {
  struct bad_case {
    std::string text;
    std::string shown;
    std::string why;
  };
  auto c = GENERATE(values<bad_case>({
    {"a 1\n\xff\xfe 2\n", "'\\xff\\xfe'", "is not valid UTF-8"},
    {"a 1\nk\xc0\xaf 2\n", "'k\\xc0\\xaf'", "is not valid UTF-8"},
    {"a 1\n\x80 2\n", "'\\x80'", "is not valid UTF-8"},
    {std::string{"a 1\nk\0y 2\n", 10}, "'k\\x00y'",
     "contains a control character"},
    {"a 1\nred\x1b[31m 2\n", "'red\\x1b[31m'",
     "contains a control character"},
  }));
  test::temp_file f{c.text};
  auto src = flow::keyed_from_text_file(f.path());
  try {
    while (!src->exhausted())
      src->next(1);
    FAIL("no error for " << flow::quote_token(c.text));
  } catch (const flow::input_error& e) {
    std::string what = e.what();
    INFO("message: " << what);
    CHECK(e.code() == flow::errc::bad_input);
    CHECK_THAT(what, Catch::Contains("line 2: key " + c.shown + " " + c.why));
    std::string why;
    CHECK(flow::check_printable(what, why));
  }
}

TEST_CASE("keyed_from_text_file: keys in any printable UTF-8 are kept byte "
          "for byte",
          "[sources][keyed][utf8]") {
  // Precomposed and combining accents are different keys.
  test::temp_file f{"caf\xc3\xa9 1\n\xf0\x9f\x8d\x8e 2\ncafe\xcc\x81 3\n"
                    "caf\xc3\xa9 4\r\n"};
  auto xs = test::drain(*flow::keyed_from_text_file(f.path()), 3);
  std::vector<flow::keyed_value> expected{
    {flow::key{"caf\xc3\xa9"}, 1}, {flow::key{"\xf0\x9f\x8d\x8e"}, 2},
    {flow::key{"cafe\xcc\x81"}, 3}, {flow::key{"caf\xc3\xa9"}, 4}};
  CHECK(xs == expected);
}

TEST_CASE("from_text_file: a runaway token's message shows how it starts, "
          "not a wrong length",
          "[sources][text][errors][utf8]") {
  // The first 32 bytes at most, cut at a character boundary, escaped where
  // they are not UTF-8.
  struct runaway_case {
    std::string start;
    std::string shown;
  };
  std::string escaped_ff;
  for (int i = 0; i < 32; ++i)
    escaped_ff += "\\xff";
  auto c = GENERATE_COPY(values<runaway_case>({
    {std::string(29, '7') + "\xe2\x82\xac", std::string(29, '7') + "\xe2\x82\xac"},
    {std::string(30, '7') + "\xe2\x82\xac", std::string(30, '7')},
    {std::string(32, '\xff'), escaped_ff},
  }));
  test::temp_file f{"1\n" + c.start + std::string(20'000, '\xff') + "\n"};
  auto src = flow::from_text_file(f.path());
  try {
    while (!src->exhausted())
      src->next(100);
    FAIL("no error");
  } catch (const flow::input_error& e) {
    std::string what = e.what();
    INFO("message: " << flow::quote_token(what));
    CHECK_THAT(what, Catch::Contains("line 2: token starting '" + c.shown
                                     + "' is too long (more than 4096 "
                                       "bytes)"));
    CHECK(what.size() < 250);
    std::string why;
    CHECK(flow::check_printable(what, why));
  }
}

// -- tap ---------------------------------------------------------------------------

TEST_CASE("tap: the observer sees every slice in order before it is sent",
          "[sources][tap]") {
  std::vector<std::int64_t> observed; // only the generator writes it
  auto src = flow::tap(flow::from_range(-50, 950),
                       std::function<void(const flow::slice<std::int64_t>&)>{
                         [&](const flow::slice<std::int64_t>& xs) {
                           observed.insert(observed.end(), xs.begin(),
                                           xs.end());
                         }});
  auto res = test::ok(flow::pipeline<std::int64_t>{}
                        .add(std::move(src), 1000)
                        .batch_size(64)
                        .reduce(flow::sum_by_label())
                        .run());
  CHECK(observed == range_ref(-50, 950, 1));
  REQUIRE(res.keys.size() == 1);
  CHECK(res.keys[0].agg.sum == test::naive_sum(observed));
}
