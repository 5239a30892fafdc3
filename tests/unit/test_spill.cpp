// Bounded keyed state (options::max_memory): the manager's integer keys
// spilled as sorted runs to unlinked temporary files, merged for results.

#include "support.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <unistd.h>

using flow::key;
using namespace std::chrono_literals;

namespace {

namespace fs = std::filesystem;

/// A fresh empty directory, removed with its contents at the end.
struct temp_dir {
  fs::path path;
  temp_dir() {
    std::string tmpl = (fs::temp_directory_path() / "flow-spill-test-XXXXXX")
                         .string();
    if (::mkdtemp(tmpl.data()) == nullptr)
      throw std::runtime_error("mkdtemp failed");
    // Canonical: /proc shows open files by their resolved paths.
    path = fs::canonical(tmpl);
  }
  ~temp_dir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  /// Entries the directory holds.
  std::size_t entries() const {
    std::size_t n = 0;
    for ([[maybe_unused]] auto& e : fs::directory_iterator{path})
      ++n;
    return n;
  }
};

/// This process's open descriptors on spill files of `dir` (unlinked, so
/// /proc shows them as "... (deleted)").
std::size_t open_spill_files(const fs::path& dir) {
  std::size_t n = 0;
  // Made without a name (O_TMPFILE), a file shows as "<dir>/#<inode>";
  // named and unlinked (the fallback), as "<dir>/flow-spill-...".
  auto prefix = dir.string() + "/";
  std::error_code ec;
  for (auto& e : fs::directory_iterator{"/proc/self/fd", ec}) {
    auto target = fs::read_symlink(e.path(), ec);
    if (ec)
      continue;
    auto t = target.string();
    if (t.rfind(prefix, 0) == 0 && t.find("(deleted)") != std::string::npos)
      ++n;
  }
  return n;
}

/// Options that bound the keyed state to the least (1024 keys), spilling
/// to `dir`, with the engine (not the calling thread) running the job.
flow::options bounded(const fs::path& dir) {
  flow::options opts;
  opts.max_memory = 1;
  opts.spill_dir = dir.string();
  opts.inline_elements = 0;
  return opts;
}

/// sum_by_key, calling `hook(seq)` first on every batch.
template <class Hook>
flow::reducer<flow::keyed_value> hooked_sum(Hook hook) {
  return [hook](const flow::batch_ref<flow::keyed_value>& b,
                flow::partial& out) {
    hook(b.seq);
    for (auto& x : b.items)
      out.add(x.key, x.value);
  };
}

void check_same_keys(const std::vector<flow::key_result>& got,
                     const std::vector<flow::key_result>& want) {
  REQUIRE(got.size() == want.size());
  for (std::size_t i = 0; i < got.size(); ++i) {
    REQUIRE(got[i].key == want[i].key);
    CHECK(got[i].agg == want[i].agg);
  }
}

/// The result's keys are those of `ref`, in order, with its sums.
void check_sums(const flow::job_result& res,
                const std::map<key, flow::int128>& ref) {
  REQUIRE(res.keys.size() == ref.size());
  std::size_t i = 0;
  for (auto& [k, sum] : ref) {
    REQUIRE(res.keys[i].key == k);
    CHECK(res.keys[i].agg.sum == sum);
    ++i;
  }
}

} // namespace

TEST_CASE("max_memory: a job that spills many runs gives the unbounded "
          "job's result, collected and streamed, and leaves no file",
          "[pipeline][spill]") {
  temp_dir dir;
  // 150,000 draws of 40,000 keys in batches of 2048: every batch brings
  // more new keys than the 1024 the bound allows, so the manager spills on
  // almost every merge, and merges runs 16 at a time as they pile up.
  auto make = [](const flow::options& opts, std::atomic<std::size_t>* seen,
                 const fs::path* where) {
    return flow::pipeline<flow::keyed_value>{}
      .with(opts)
      .add(flow::from_keyed_random(150'000, 40'000, 11, 1000))
      .batch_size(2048)
      .reducers(2)
      .reduce(hooked_sum([=](std::uint64_t seq) {
        // By batch 20, batches 0..15 are merged (4 credits): spilled.
        if (seen != nullptr && seq == 20)
          *seen = open_spill_files(*where);
      }));
  };
  flow::options plain;
  plain.inline_elements = 0;
  auto want = test::ok(make(plain, nullptr, nullptr).run());
  REQUIRE(want.keys.size() > 30'000);
  std::atomic<std::size_t> seen{0};
  auto got = test::ok(make(bounded(dir.path), &seen, &dir.path).run());
  INFO("spill files open at batch 20: " << seen.load());
  CHECK(seen.load() > 0);
  CHECK(got.balanced());
  CHECK(got.aggregated == 150'000);
  CHECK(got.key_count == want.keys.size());
  check_same_keys(got.keys, want.keys);
  std::vector<flow::key_result> streamed;
  auto res = test::ok(make(bounded(dir.path), nullptr, nullptr)
                        .on_result_key([&](const flow::key_result& k) {
                          streamed.push_back(k);
                        })
                        .run());
  CHECK(res.keys.empty());
  CHECK(res.key_count == want.keys.size());
  check_same_keys(streamed, want.keys);
  // Unlinked when made: nothing in the directory, nothing left open.
  CHECK(dir.entries() == 0);
  CHECK(open_spill_files(dir.path) == 0);
}

TEST_CASE("max_memory: a bound that holds every key spills nothing and "
          "changes nothing",
          "[pipeline][spill]") {
  temp_dir dir;
  std::atomic<std::size_t> most{0};
  auto opts = bounded(dir.path);
  opts.max_memory = 64 << 20;
  auto res = test::ok(flow::pipeline<flow::keyed_value>{}
                        .with(opts)
                        .add(flow::from_keyed_random(100'000, 5'000, 2, 100))
                        .batch_size(4096)
                        .reducers(2)
                        .reduce(hooked_sum([&](std::uint64_t) {
                          auto n = open_spill_files(dir.path);
                          if (n > most)
                            most = n;
                        }))
                        .run());
  CHECK(most.load() == 0);
  CHECK(res.keys.size() == res.key_count);
  CHECK(res.key_count > 4'900);
  CHECK(res.aggregated == 100'000);
}

TEST_CASE("max_memory: a snapshot while runs are spilled merges them and "
          "accounts for what it holds",
          "[pipeline][spill][job]") {
  temp_dir dir;
  caf::actor_system_config cfg;
  // The reducer below waits on one scheduler thread: the manager needs
  // another whatever the machine.
  cfg.set("scheduler.max-threads", std::size_t{4});
  caf::actor_system sys{cfg};
  std::atomic<bool> reached{false};
  std::atomic<bool> taken{false};
  auto j = flow::pipeline<flow::keyed_value>{}
             .with(bounded(dir.path))
             .add(flow::from_keyed_random(200'000, 30'000, 5, 1000))
             .batch_size(2048)
             .reducers(2)
             .reduce(hooked_sum([&](std::uint64_t seq) {
               if (seq != 40)
                 return;
               reached = true;
               // Bounded: a failing test must not hang the suite.
               for (int i = 0; i < 2000 && !taken; ++i)
                 std::this_thread::sleep_for(10ms);
             }))
             .start(sys);
  REQUIRE(j);
  for (int i = 0; i < 3000 && !reached; ++i)
    std::this_thread::sleep_for(10ms);
  REQUIRE(reached);
  auto snap = test::ok(j->snapshot());
  taken = true;
  auto fin = test::ok(j->wait());
  CHECK_FALSE(snap.final);
  // Batches 0..35 at least are merged by then, so runs exist.
  CHECK(snap.aggregated >= 36 * 2048);
  CHECK(snap.aggregated < 200'000);
  CHECK(snap.key_count == snap.keys.size());
  std::uint64_t counted = 0;
  std::map<key, flow::aggregate> last;
  for (auto& k : fin.keys)
    last.emplace(k.key, k.agg);
  for (std::size_t i = 0; i < snap.keys.size(); ++i) {
    if (i > 0)
      REQUIRE(snap.keys[i - 1].key < snap.keys[i].key);
    counted += snap.keys[i].agg.count;
    auto f = last.find(snap.keys[i].key);
    REQUIRE(f != last.end());
    CHECK(snap.keys[i].agg.count <= f->second.count);
  }
  CHECK(counted == snap.aggregated);
  CHECK(fin.aggregated == 200'000);
  CHECK(dir.entries() == 0);
}

TEST_CASE("max_memory: a job that fails after spilling leaves no file open "
          "or behind",
          "[pipeline][spill]") {
  temp_dir dir;
  auto opts = bounded(dir.path);
  opts.on_failure = flow::failure_policy::fail_fast;
  std::atomic<std::size_t> seen{0};
  auto res = flow::pipeline<flow::keyed_value>{}
               .with(opts)
               .add(flow::from_keyed_random(200'000, 40'000, 3, 10))
               .batch_size(2048)
               .reducers(2)
               .reduce(hooked_sum([&](std::uint64_t seq) {
                 if (seq == 30) {
                   seen = open_spill_files(dir.path);
                   throw std::runtime_error("boom");
                 }
               }))
               .run();
  auto e = test::err(res);
  CHECK(flow::code_of(e) == flow::errc::reducer_failed);
  CHECK(seen.load() > 0);
  CHECK(open_spill_files(dir.path) == 0);
  CHECK(dir.entries() == 0);
}

TEST_CASE("max_memory: a spill directory that cannot hold a file fails the "
          "job at its start with invalid_config",
          "[pipeline][spill]") {
  temp_dir dir;
  auto opts = bounded(dir.path / "missing");
  auto res = flow::pipeline<flow::keyed_value>{}
               .with(opts)
               .add(flow::from_keyed_random(1'000, 10, 3, 10))
               .reduce(flow::sum_by_key())
               .run();
  auto e = test::err(res);
  CHECK(flow::code_of(e) == flow::errc::invalid_config);
  CHECK_THAT(flow::describe(e), Catch::Contains((dir.path / "missing")
                                                  .string()));
  CHECK_THAT(flow::describe(e), Catch::Contains("spill_dir"));
}

TEST_CASE("max_memory: string keys are not spilled and still add up",
          "[pipeline][spill]") {
  temp_dir dir;
  std::vector<flow::keyed_value> xs;
  std::map<key, flow::int128> ref;
  for (std::int64_t i = 0; i < 20'000; ++i) {
    key k{"k" + std::to_string(i % 3'000)};
    xs.push_back({k, i});
    ref[k] += i;
  }
  auto res = test::ok(flow::pipeline<flow::keyed_value>{}
                        .with(bounded(dir.path))
                        .add(flow::from_container(xs))
                        .batch_size(500)
                        .reducers(2)
                        .reduce(flow::sum_by_key())
                        .run());
  check_sums(res, ref);
}

TEST_CASE("max_memory: a string key after integer keys were spilled fails "
          "with spill_failed",
          "[pipeline][spill]") {
  temp_dir dir;
  std::vector<flow::keyed_value> xs;
  for (std::int64_t i = 0; i < 20'000; ++i)
    xs.push_back({key{i}, 1});
  xs.push_back({key{"late"}, 1});
  auto res = flow::pipeline<flow::keyed_value>{}
               .with(bounded(dir.path))
               .add(flow::from_container(xs))
               .batch_size(2'000)
               .reducers(1)
               .reduce(flow::sum_by_key())
               .run();
  auto e = test::err(res);
  CHECK(flow::code_of(e) == flow::errc::spill_failed);
  CHECK_THAT(flow::describe(e), Catch::Contains("not an integer"));
  CHECK(dir.entries() == 0);
}

TEST_CASE("int_table: keys_within is the largest table that stays within "
          "its bytes",
          "[int_table][spill]") {
  using flow::detail::int_table;
  for (std::size_t bytes : {std::size_t{1} << 16, std::size_t{1} << 20,
                            std::size_t{100'000'000}, std::size_t{1} << 28}) {
    auto n = int_table::keys_within(bytes);
    INFO(bytes << " bytes: " << n << " keys");
    CHECK(int_table::bytes_for(n) <= bytes);
    CHECK(int_table::bytes_for(n + 1) > bytes);
    // 48 bytes an entry and about 7.5 to 15 of index.
    CHECK(n * 64 > bytes * 3 / 4);
  }
  int_table t;
  t.reserve(3'000);
  CHECK(t.capacity() == 3'000);
  auto before = t.bytes();
  for (std::int64_t k = 0; k < 3'000; ++k)
    t.add(k * 7919, k);
  // Reserved: filling it did not grow it.
  CHECK(t.bytes() == before);
  std::vector<std::int64_t> order;
  t.drain_sorted([&](const flow::detail::int_entry* xs, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i)
      order.push_back(xs[i].key);
    return 0;
  });
  CHECK(t.empty());
  CHECK(t.capacity() == 3'000);
  REQUIRE(order.size() == 3'000);
  CHECK(std::is_sorted(order.begin(), order.end()));
  // The emptied table takes keys again.
  t.add(5, 1);
  t.add(5, 2);
  REQUIRE(t.find(5) != nullptr);
  CHECK(t.find(5)->sum == 3);
  CHECK(t.size() == 1);
}

TEST_CASE("max_memory: a string key in the first partial, among integer "
          "keys, moves the job to the general map before anything spills",
          "[pipeline][spill]") {
  temp_dir dir;
  std::vector<flow::keyed_value> xs;
  std::map<key, flow::int128> ref;
  for (std::int64_t i = 0; i < 30'000; ++i) {
    // One string key in the first batch, after more integer keys than the
    // bound's 1024: the partial lists them first.
    key k = i == 2'500 ? key{"late"} : key{i % 7'000};
    xs.push_back({k, i});
    ref[k] += i;
  }
  auto res = test::ok(flow::pipeline<flow::keyed_value>{}
                        .with(bounded(dir.path))
                        .add(flow::from_container(xs))
                        .batch_size(3'000)
                        .reducers(1)
                        .reduce(flow::sum_by_key())
                        .run());
  check_sums(res, ref);
}

TEST_CASE("spill_dir_error: names what keeps a directory from holding a "
          "file and leaves nothing behind",
          "[spill]") {
  temp_dir dir;
  flow::options opts;
  opts.spill_dir = dir.path.string();
  CHECK(flow::spill_directory(opts) == dir.path.string());
  CHECK(flow::spill_dir_error(opts).empty());
  CHECK(dir.entries() == 0);
  CHECK(open_spill_files(dir.path) == 0);
  opts.spill_dir = (dir.path / "missing").string();
  CHECK(flow::spill_dir_error(opts) == "No such file or directory");
  // A file where the directory should be.
  auto file = dir.path / "file";
  { std::ofstream{file} << "x"; }
  opts.spill_dir = file.string();
  CHECK(flow::spill_dir_error(opts) == "Not a directory");
}

TEST_CASE("spill_directory: spill_dir, else TMPDIR, else /tmp", "[spill]") {
  temp_dir dir;
  const char* old = std::getenv("TMPDIR");
  std::string saved = old != nullptr ? old : "";
  flow::options opts;
  ::setenv("TMPDIR", dir.path.c_str(), 1);
  CHECK(flow::spill_directory(opts) == dir.path.string());
  ::setenv("TMPDIR", "", 1);
  CHECK(flow::spill_directory(opts) == "/tmp");
  ::unsetenv("TMPDIR");
  CHECK(flow::spill_directory(opts) == "/tmp");
  opts.spill_dir = "/somewhere";
  CHECK(flow::spill_directory(opts) == "/somewhere");
  if (old != nullptr)
    ::setenv("TMPDIR", saved.c_str(), 1);
}
