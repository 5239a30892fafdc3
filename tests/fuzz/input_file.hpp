#pragma once

// The text sources read a named file, so their fuzz targets hand each input
// over as one: an anonymous in-memory file (memfd) that the source opens by
// its /proc path. Nothing is written to disk and nothing is left behind when
// a run stops on a crash.

#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace flow::fuzz {

/// One in-memory file, rewritten for each input.
class input_file {
public:
  input_file() {
    fd_ = memfd_create("flow-fuzz-input", 0);
    if (fd_ < 0) {
      std::perror("memfd_create");
      std::abort();
    }
    path_ = "/proc/self/fd/" + std::to_string(fd_);
  }

  input_file(const input_file&) = delete;
  input_file& operator=(const input_file&) = delete;

  /// Replaces the file's contents with `data`.
  void write(const std::uint8_t* data, std::size_t size) {
    if (ftruncate(fd_, 0) != 0) {
      std::perror("ftruncate");
      std::abort();
    }
    std::size_t done = 0;
    while (done < size) {
      auto n = pwrite(fd_, data + done, size - done,
                      static_cast<off_t>(done));
      if (n <= 0) {
        std::perror("pwrite");
        std::abort();
      }
      done += static_cast<std::size_t>(n);
    }
  }

  /// The path a source opens; each open starts at the beginning.
  const std::string& path() const {
    return path_;
  }

private:
  int fd_ = -1;
  std::string path_;
};

} // namespace flow::fuzz
