#include "spill.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <utility>

#include <fcntl.h>
#include <unistd.h>

#include "flow/options.hpp"

namespace flow::detail {

namespace {

/// Closes a descriptor unless released (an allocation that throws between
/// making a file and keeping it must not leak it).
struct fd_guard {
  int fd;
  explicit fd_guard(int x) noexcept : fd(x) {
  }
  fd_guard(const fd_guard&) = delete;
  fd_guard& operator=(const fd_guard&) = delete;
  ~fd_guard() {
    if (fd >= 0)
      ::close(fd);
  }
  int release() noexcept {
    auto x = fd;
    fd = -1;
    return x;
  }
};

/// Makes an unlinked temporary file in `dir`: its descriptor, or -1 with
/// `code` set to the system's error.
int open_unlinked(const std::string& dir, int& code) {
  // A file that never has a name (O_TMPFILE): nothing can be left behind,
  // whenever the process dies. A name unlinked at once (below) leaves one
  // if a SIGKILL falls between the two calls, which a loaded machine made
  // happen in tests.
  int tmp = ::open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (tmp >= 0)
    return tmp;
  if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL) {
    code = errno;
    return -1;
  }
  // A file system (or kernel) without O_TMPFILE.
  std::string path = dir + "/flow-spill-XXXXXX";
  fd_guard fd{::mkostemp(path.data(), O_CLOEXEC)};
  if (fd.fd < 0) {
    code = errno;
    return -1;
  }
  // Unlinked at once: the storage goes with the descriptor, so nothing is
  // left behind by a failed job, a signal or a SIGKILL.
  if (::unlink(path.c_str()) != 0) {
    code = errno;
    return -1;
  }
  return fd.release();
}

/// open_unlinked with the error as a sentence naming `dir`.
int make_unlinked(const std::string& dir, std::string& err) {
  int code = 0;
  int fd = open_unlinked(dir, code);
  if (fd < 0)
    err = "cannot make a temporary file in '" + dir
          + "': " + std::strerror(code);
  return fd;
}

/// Reads one run in blocks of entries.
class cursor {
public:
  // 48 KiB: the final merge holds a block of every run open (at most
  // fan_in per level).
  static constexpr std::size_t block = 1024;

  cursor(int fd, std::uint64_t size) : fd_(fd), size_(size) {
  }

  /// Loads the next block when the current one is used up; false at the
  /// end or (with `err` set) on a read error.
  bool fill(std::string& err) {
    if (pos_ < buf_.size())
      return true;
    if (read_ == size_)
      return false;
    auto n = static_cast<std::size_t>(
      std::min<std::uint64_t>(block, size_ - read_));
    buf_.resize(n);
    auto* p = reinterpret_cast<char*>(buf_.data());
    std::size_t want = n * sizeof(int_entry);
    auto off = static_cast<off_t>(read_ * sizeof(int_entry));
    std::size_t got = 0;
    while (got < want) {
      auto r = ::pread(fd_, p + got, want - got,
                       off + static_cast<off_t>(got));
      if (r < 0 && errno == EINTR)
        continue;
      if (r <= 0) {
        err = std::string{"cannot read a spilled run back: "}
              + (r < 0 ? std::strerror(errno) : "the file is shorter");
        return false;
      }
      got += static_cast<std::size_t>(r);
    }
    read_ += n;
    pos_ = 0;
    return true;
  }

  const int_entry& front() const noexcept {
    return buf_[pos_];
  }

  void pop() noexcept {
    ++pos_;
  }

private:
  int fd_;
  std::uint64_t size_;
  std::uint64_t read_ = 0;
  std::vector<int_entry> buf_;
  std::size_t pos_ = 0;
};

} // namespace

int_runs::int_runs(std::string dir) : dir_(std::move(dir)) {
}

int_runs::~int_runs() {
  for (auto& r : runs_)
    ::close(r.fd);
}

std::string int_runs::write(const int_entry* xs, std::size_t n,
                            bool& overflow) {
  runs_.reserve(runs_.size() + 1); // push_back below cannot throw
  std::string err;
  fd_guard fd{make_unlinked(dir_, err)};
  if (fd.fd < 0)
    return err;
  auto* p = reinterpret_cast<const char*>(xs);
  std::size_t want = n * sizeof(int_entry);
  std::size_t done = 0;
  while (done < want) {
    auto w = ::write(fd.fd, p + done, want - done);
    if (w < 0 && errno == EINTR)
      continue;
    if (w < 0)
      return "cannot write a run of " + std::to_string(n) + " keys to '"
             + dir_ + "': " + std::strerror(errno);
    done += static_cast<std::size_t>(w);
  }
  runs_.push_back({fd.release(), n, 0});
  entries_ += n;
  return compact(overflow);
}

std::string int_runs::compact(bool& overflow) {
  for (;;) {
    auto level = runs_.back().level;
    if (runs_.size() < fan_in)
      return {};
    auto first = runs_.size() - fan_in;
    for (auto i = first; i < runs_.size(); ++i)
      if (runs_[i].level != level)
        return {};
    std::string err;
    // Written in blocks as the merge produces them.
    std::vector<int_entry> buf;
    buf.reserve(cursor::block);
    fd_guard fd{make_unlinked(dir_, err)};
    if (fd.fd < 0)
      return err;
    std::uint64_t written = 0;
    auto flush = [&] {
      auto* p = reinterpret_cast<const char*>(buf.data());
      std::size_t want = buf.size() * sizeof(int_entry);
      std::size_t done = 0;
      while (done < want && err.empty()) {
        auto w = ::write(fd.fd, p + done, want - done);
        if (w < 0 && errno == EINTR)
          continue;
        if (w < 0)
          err = "cannot write a merged run to '" + dir_
                + "': " + std::strerror(errno);
        else
          done += static_cast<std::size_t>(w);
      }
      written += buf.size();
      buf.clear();
    };
    auto merr = merge_range(first, runs_.size(), nullptr, 0,
                            [&](const int_entry& e) {
                              if (!err.empty())
                                return;
                              buf.push_back(e);
                              if (buf.size() == cursor::block)
                                flush();
                            },
                            overflow);
    if (merr.empty() && err.empty() && !buf.empty())
      flush();
    if (!merr.empty() || !err.empty())
      return merr.empty() ? err : merr;
    for (auto i = first; i < runs_.size(); ++i) {
      entries_ -= runs_[i].size;
      ::close(runs_[i].fd);
    }
    runs_.resize(first);
    runs_.push_back({fd.release(), written, level + 1});
    entries_ += written;
  }
}

std::string int_runs::merge(const int_entry* mem, std::size_t n,
                            const std::function<void(const int_entry&)>& out,
                            bool& overflow) const {
  return merge_range(0, runs_.size(), mem, n, out, overflow);
}

std::string int_runs::merge_range(
  std::size_t first, std::size_t last, const int_entry* mem, std::size_t n,
  const std::function<void(const int_entry&)>& out, bool& overflow) const {
  std::string err;
  std::vector<cursor> cursors;
  cursors.reserve(last - first);
  for (auto i = first; i < last; ++i)
    cursors.emplace_back(runs_[i].fd, runs_[i].size);
  // A min-heap of the sources' next keys: index cursors.size() is `mem`.
  std::size_t mem_pos = 0;
  auto key_of = [&](std::size_t i) {
    return i == cursors.size() ? mem[mem_pos].key : cursors[i].front().key;
  };
  std::vector<std::size_t> heap;
  auto later = [&](std::size_t a, std::size_t b) {
    return key_of(a) > key_of(b);
  };
  for (std::size_t i = 0; i < cursors.size(); ++i) {
    if (cursors[i].fill(err))
      heap.push_back(i);
    else if (!err.empty())
      return err;
  }
  if (n > 0)
    heap.push_back(cursors.size());
  std::make_heap(heap.begin(), heap.end(), later);
  int_entry acc;
  bool have = false;
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), later);
    auto i = heap.back();
    const int_entry& e = i == cursors.size() ? mem[mem_pos]
                                             : cursors[i].front();
    if (have && e.key == acc.key) {
      if (!acc.merge(e.sum, e.count, e.min, e.max)) {
        overflow = true;
        return "the aggregate of key '" + std::to_string(acc.key)
               + "' left the exact 128-bit range while merging spilled runs";
      }
    } else {
      if (have)
        out(acc);
      acc = e;
      have = true;
    }
    bool more;
    if (i == cursors.size()) {
      more = ++mem_pos < n;
    } else {
      cursors[i].pop();
      more = cursors[i].fill(err);
      if (!more && !err.empty())
        return err;
    }
    if (more)
      std::push_heap(heap.begin(), heap.end(), later);
    else
      heap.pop_back();
  }
  if (have)
    out(acc);
  return {};
}

} // namespace flow::detail

namespace flow {

std::string spill_directory(const options& opts) {
  if (!opts.spill_dir.empty())
    return opts.spill_dir;
  if (auto* tmp = std::getenv("TMPDIR"); tmp != nullptr && *tmp != '\0')
    return tmp;
  return "/tmp";
}

std::string spill_dir_error(const options& opts) {
  int code = 0;
  detail::fd_guard fd{detail::open_unlinked(spill_directory(opts), code)};
  return fd.fd < 0 ? std::strerror(code) : std::string{};
}

} // namespace flow
