#include "flow/source.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>
#include <optional>
#include <string_view>

#include <unistd.h>

#include "flow/aggregate.hpp"
#include "flow/parse.hpp"

namespace flow {

// -- ranges -------------------------------------------------------------------

namespace {

/// uniform_ints::fill with eight lanes at once on CPUs with AVX-512DQ (whose
/// 64-bit multiplies the mixer needs): about six times the scalar speed.
/// Computes exactly what uniform_ints::operator() computes.
__attribute__((target("avx512f,avx512dq"))) void
fill_uniform_avx512(const uniform_ints& gen, std::uint64_t first,
                    std::size_t n, std::int64_t* out) noexcept {
  using v8 = std::uint64_t __attribute__((vector_size(64)));
  constexpr std::uint64_t golden = 0x9e3779b97f4a7c15ULL;
  const v8 lane = {1, 2, 3, 4, 5, 6, 7, 8};
  const auto seed = gen.seed();
  const auto lo = static_cast<std::uint64_t>(gen.lo());
  const auto span = gen.span();
  std::size_t k = 0;
  for (; k + 8 <= n; k += 8) {
    v8 z = seed + (first + k + lane) * golden;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    z = z ^ (z >> 31);
    v8 x = lo + (((z >> 32) * span) >> 32);
    __builtin_memcpy(out + k, &x, sizeof(x));
  }
  for (; k < n; ++k)
    out[k] = gen(first + k);
}

void fill_uniform(const uniform_ints& gen, std::uint64_t first, std::size_t n,
                  std::int64_t* out) noexcept {
  static const bool avx512 = __builtin_cpu_supports("avx512dq");
  auto span = gen.span();
  if (avx512 && span != 0 && span <= (std::uint64_t{1} << 32)) {
    fill_uniform_avx512(gen, first, n, out);
    return;
  }
  for (std::size_t k = 0; k < n; ++k)
    out[k] = gen(first + k);
}

class range_source final : public source_impl<std::int64_t> {
public:
  range_source(std::int64_t first, std::int64_t last, std::int64_t step)
    : origin_(first), next_(first), step_(step) {
    // Count the elements up front in 128 bits: no overflow near the limits.
    int128 span = static_cast<int128>(last) - first;
    if ((step > 0 && span > 0) || (step < 0 && span < 0))
      remaining_ = static_cast<std::uint64_t>((span + step - (step > 0 ? 1 : -1))
                                              / step);
  }

  slice<std::int64_t> next(std::size_t max) override {
    auto n = static_cast<std::size_t>(
      std::min<std::uint64_t>(max, remaining_));
    std::vector<std::int64_t> xs(n);
    int128 x = next_;
    for (auto& y : xs) {
      y = static_cast<std::int64_t>(x);
      x += step_;
    }
    remaining_ -= n;
    index_ += n;
    if (remaining_ > 0)
      next_ = static_cast<std::int64_t>(x);
    return slice<std::int64_t>::owning(std::move(xs));
  }

  bool exhausted() const override {
    return remaining_ == 0;
  }

  std::optional<std::uint64_t> size_hint() const override {
    return index_ + remaining_;
  }

  std::string name() const override {
    return "range";
  }

  std::shared_ptr<const index_fn<std::int64_t>>
  elements_by_index() const override {
    auto origin = origin_;
    auto step = step_;
    return std::make_shared<const index_fn<std::int64_t>>(
      [origin, step](std::uint64_t first, std::size_t n, std::int64_t* out) {
        int128 x = static_cast<int128>(origin)
                   + static_cast<int128>(step) * static_cast<int128>(first);
        for (std::size_t i = 0; i < n; ++i, x += step)
          out[i] = static_cast<std::int64_t>(x);
      });
  }

  std::pair<std::uint64_t, std::size_t> skip(std::size_t max) override {
    auto n = static_cast<std::size_t>(std::min<std::uint64_t>(max, remaining_));
    std::pair<std::uint64_t, std::size_t> result{index_, n};
    index_ += n;
    remaining_ -= n;
    return result;
  }

private:
  std::int64_t origin_ = 0;
  std::int64_t next_;
  std::int64_t step_;
  std::uint64_t remaining_ = 0;
  std::uint64_t index_ = 0;
};

class random_source final : public source_impl<std::int64_t> {
public:
  random_source(std::uint64_t n, std::uint64_t seed, std::int64_t lo,
                std::int64_t hi)
    : gen_(seed, lo, hi), n_(n) {
    // nop
  }

  slice<std::int64_t> next(std::size_t max) override {
    auto n = static_cast<std::size_t>(std::min<std::uint64_t>(max, n_ - pos_));
    std::vector<std::int64_t> xs(n);
    fill_uniform(gen_, pos_, n, xs.data());
    pos_ += n;
    return slice<std::int64_t>::owning(std::move(xs));
  }

  bool exhausted() const override {
    return pos_ == n_;
  }

  std::optional<std::uint64_t> size_hint() const override {
    return n_;
  }

  std::string name() const override {
    return "random";
  }

  std::shared_ptr<const index_fn<std::int64_t>>
  elements_by_index() const override {
    auto gen = gen_;
    return std::make_shared<const index_fn<std::int64_t>>(
      [gen](std::uint64_t first, std::size_t n, std::int64_t* out) {
        fill_uniform(gen, first, n, out);
      });
  }

  std::pair<std::uint64_t, std::size_t> skip(std::size_t max) override {
    auto n = static_cast<std::size_t>(std::min<std::uint64_t>(max, n_ - pos_));
    std::pair<std::uint64_t, std::size_t> result{pos_, n};
    pos_ += n;
    return result;
  }

private:
  uniform_ints gen_;
  std::uint64_t n_;
  std::uint64_t pos_ = 0;
};

/// Keyed integers made from their index (see from_keyed_random). Keyed
/// values hold a flow::key, which is not trivially copyable, so they cannot
/// travel as recipes: the generator makes each batch as it sends it.
class keyed_random_source final : public source_impl<keyed_value> {
public:
  keyed_random_source(std::uint64_t n, std::uint64_t keys, std::uint64_t seed,
                      std::uint64_t values)
    : n_(n), keys_(keys), seed_(seed), values_(values) {
    // nop
  }

  slice<keyed_value> next(std::size_t max) override {
    auto n = static_cast<std::size_t>(std::min<std::uint64_t>(max, n_ - pos_));
    std::vector<keyed_value> xs(n);
    for (std::size_t k = 0; k < n; ++k) {
      auto z = mix64(seed_ + (pos_ + k + 1) * 0x9e3779b97f4a7c15ULL);
      xs[k].key = flow::key{static_cast<std::int64_t>(z % keys_)};
      xs[k].value = static_cast<std::int64_t>((z >> 32) % values_);
    }
    pos_ += n;
    return slice<keyed_value>::owning(std::move(xs));
  }

  bool exhausted() const override {
    return pos_ == n_;
  }

  std::optional<std::uint64_t> size_hint() const override {
    return n_;
  }

  std::string name() const override {
    return "keyed random";
  }

private:
  std::uint64_t n_;
  std::uint64_t keys_;
  std::uint64_t seed_;
  std::uint64_t values_;
  std::uint64_t pos_ = 0;
};

} // namespace

source<std::int64_t> from_range(std::int64_t first, std::int64_t last,
                                std::int64_t step) {
  if (step == 0)
    throw std::invalid_argument("flow::from_range: step must not be 0");
  return std::make_unique<range_source>(first, last, step);
}

source<std::int64_t> from_random(std::uint64_t n, std::uint64_t seed,
                                 std::int64_t lo, std::int64_t hi) {
  if (lo > hi)
    throw std::invalid_argument("flow::from_random: lo > hi");
  return std::make_unique<random_source>(n, seed, lo, hi);
}

source<keyed_value> from_keyed_random(std::uint64_t n, std::uint64_t keys,
                                      std::uint64_t seed,
                                      std::uint64_t values) {
  // Keys must be int64 keys; values at most 2^32 because z >> 32 has 32 bits.
  if (keys == 0
      || keys > static_cast<std::uint64_t>(
           std::numeric_limits<std::int64_t>::max()))
    throw std::invalid_argument(
      "flow::from_keyed_random: keys must be in 1..INT64_MAX");
  if (values == 0 || values > (std::uint64_t{1} << 32))
    throw std::invalid_argument(
      "flow::from_keyed_random: values must be in 1..2^32");
  return std::make_unique<keyed_random_source>(n, keys, seed, values);
}

// -- text input ---------------------------------------------------------------

namespace {

/// Reads a file (or standard input) in large blocks and hands out tokens and
/// line numbers. Memory: one block plus the longest token or line.
class text_reader {
public:
  explicit text_reader(std::string path) : path_(std::move(path)) {
    // nop
  }

  ~text_reader() {
    if (file_ && file_ != stdin)
      std::fclose(file_);
  }

  text_reader(const text_reader&) = delete;
  text_reader& operator=(const text_reader&) = delete;

  std::string name() const {
    return path_ == "-" ? std::string{"standard input"}
                        : "file " + quote_token(path_);
  }

  bool at_eof() const {
    return eof_ && pos_ == buf_.size();
  }

  std::uint64_t line() const {
    return line_;
  }

  /// True when another token follows on the current line. Reads no further
  /// than the line break, so a line is complete as soon as it has arrived
  /// (the next line may not have been written yet).
  bool line_has_more() {
    for (;;) {
      if (pos_ == buf_.size() && !refill())
        return false;
      auto c = buf_[pos_];
      if (c == '\n')
        return false;
      if (!is_space(c))
        return true;
      ++pos_;
    }
  }

  /// Reads the next whitespace-separated token into `tok`; returns false at
  /// the end of the input. Sets `newline_before` when a line break precedes it.
  bool next_token(std::string& tok, bool& newline_before) {
    tok.clear();
    newline_before = false;
    for (;;) {
      if (pos_ == buf_.size() && !refill())
        return !tok.empty();
      auto c = buf_[pos_];
      if (is_space(c)) {
        if (!tok.empty())
          return true;
        if (c == '\n') {
          ++line_;
          newline_before = true;
        }
        ++pos_;
        continue;
      }
      // Grab the rest of the token inside this block in one go.
      auto start = pos_;
      while (pos_ < buf_.size() && !is_space(buf_[pos_]))
        ++pos_;
      if (tok.size() + (pos_ - start) > max_token)
        fail_too_long(tok + buf_.substr(start, pos_ - start));
      tok.append(buf_, start, pos_ - start);
    }
  }

  /// Throws an input_error that names the input and the current line.
  [[noreturn]] void fail(const std::string& what) const {
    throw input_error(name() + ", line " + std::to_string(line_) + ": "
                      + what);
  }

private:
  // Longer than any int64 and any sensible key; stops a runaway token from
  // eating memory.
  static constexpr std::size_t max_token = 4096;

  /// Fails on a runaway token of which `seen` is the part read so far: its
  /// real length is unknown, so the message shows only how it starts.
  [[noreturn]] void fail_too_long(std::string_view seen) const {
    auto n = std::min<std::size_t>(seen.size(), 32);
    // Cut at a character boundary: before the continuation bytes of a
    // character (at most three).
    for (int k = 0; k < 3 && n > 1 && n < seen.size()
                    && (static_cast<unsigned char>(seen[n]) & 0xc0) == 0x80;
         ++k)
      --n;
    fail("token starting " + quote_token(seen.substr(0, n))
         + " is too long (more than " + std::to_string(max_token)
         + " bytes)");
  }
#ifdef FLOW_TEXT_BLOCK_BYTES
  // The fuzz build (tests/fuzz) reads in tiny blocks, so that tokens and line
  // breaks straddle refills and a run is not spent clearing 1 MiB buffers.
  static constexpr std::size_t block = FLOW_TEXT_BLOCK_BYTES;
#else
  static constexpr std::size_t block = 1 << 20;
#endif

  static bool is_space(char c) {
    return c == ' ' || c == '\n' || c == '\t' || c == '\r' || c == '\v'
           || c == '\f';
  }

  bool refill() {
    if (eof_)
      return false;
    if (!file_)
      open();
    buf_.resize(block);
    // read(2), not fread: on a pipe or a terminal it returns what has
    // arrived instead of waiting for a full block, so batches flow (and a
    // stopped job accounts for them) while the writer is still writing.
    ssize_t n = 0;
    do {
      n = ::read(fileno(file_), buf_.data(), block);
    } while (n < 0 && errno == EINTR);
    if (n < 0)
      throw input_error(name() + ": read error: " + std::strerror(errno));
    if (n == 0)
      eof_ = true;
    buf_.resize(static_cast<std::size_t>(n));
    pos_ = 0;
    return n > 0;
  }

  void open() {
    if (path_ == "-") {
      file_ = stdin;
      return;
    }
    file_ = std::fopen(path_.c_str(), "rb");
    if (!file_)
      throw input_error("cannot open " + name() + ": " + std::strerror(errno));
  }

  std::string path_;
  std::FILE* file_ = nullptr;
  std::string buf_;
  std::size_t pos_ = 0;
  bool eof_ = false;
  std::uint64_t line_ = 1;
};

/// How a text source turns a token into a value: the value, or nothing and
/// `why` set.
template <class V>
using token_parser = std::optional<V> (*)(std::string_view, std::string&);

/// Whitespace-separated values of type V.
template <class V>
class value_text_source final : public source_impl<V> {
public:
  value_text_source(std::string path, token_parser<V> parse)
    : in_(std::move(path)), parse_(parse) {
    // nop
  }

  slice<V> next(std::size_t max) override {
    std::vector<V> xs;
    xs.reserve(std::min<std::size_t>(max, 1 << 16));
    bool newline = false;
    std::string why;
    while (xs.size() < max && in_.next_token(tok_, newline)) {
      if (auto x = parse_(tok_, why))
        xs.push_back(std::move(*x));
      else
        in_.fail("token " + quote_token(tok_) + " " + why);
    }
    if (xs.size() < max)
      done_ = true;
    return slice<V>::owning(std::move(xs));
  }

  bool exhausted() const override {
    return done_;
  }

  bool blocking() const override {
    return true;
  }

  std::string name() const override {
    return in_.name();
  }

private:
  text_reader in_;
  token_parser<V> parse_;
  std::string tok_;
  bool done_ = false;
};

/// Lines of `key value`, the value of type V, as elements E (keyed_value for
/// int64, keyed<V> otherwise).
template <class E, class V>
class keyed_text_source final : public source_impl<E> {
public:
  keyed_text_source(std::string path, token_parser<V> parse)
    : in_(std::move(path)), parse_(parse) {
    // nop
  }

  slice<E> next(std::size_t max) override {
    std::vector<E> xs;
    xs.reserve(std::min<std::size_t>(max, 1 << 14));
    bool newline = false;
    std::string why;
    while (xs.size() < max) {
      if (pending_.empty() && !in_.next_token(pending_, newline))
        break;
      auto key_line = in_.line();
      // Keys end up in tables and JSON on terminals: only printable text.
      if (!check_printable(pending_, why))
        in_.fail("key " + quote_token(pending_) + " " + why);
      std::string value_tok;
      if (!in_.next_token(value_tok, newline) || newline) {
        // Report the line of the lonely key, not the line after it.
        throw input_error(in_.name() + ", line " + std::to_string(key_line)
                          + ": expected 'key value', found only "
                          + quote_token(pending_));
      }
      auto value = parse_(value_tok, why);
      if (!value)
        in_.fail("value " + quote_token(value_tok) + " " + why);
      // The line must end after the value; look no further than its end.
      if (in_.line_has_more()) {
        std::string extra;
        in_.next_token(extra, newline);
        in_.fail("expected 'key value', found a third token "
                 + quote_token(extra));
      }
      xs.push_back(E{flow::key{std::move(pending_)}, std::move(*value)});
      pending_.clear();
    }
    if (xs.size() < max)
      done_ = true;
    return slice<E>::owning(std::move(xs));
  }

  bool exhausted() const override {
    return done_;
  }

  bool blocking() const override {
    return true;
  }

  std::string name() const override {
    return in_.name();
  }

private:
  text_reader in_;
  token_parser<V> parse_;
  // The key of the line being read.
  std::string pending_;
  bool done_ = false;
};

} // namespace

namespace detail {

struct text_tokens::impl {
  explicit impl(std::string path) : in(std::move(path)) {
    // nop
  }
  text_reader in;
};

text_tokens::text_tokens(std::string path)
  : impl_(std::make_unique<impl>(std::move(path))) {
  // nop
}

text_tokens::~text_tokens() = default;

bool text_tokens::next(std::string& tok) {
  bool newline = false;
  return impl_->in.next_token(tok, newline);
}

bool text_tokens::next_pair(std::string& key, std::string& value) {
  auto& in = impl_->in;
  bool newline = false;
  std::string why;
  if (!in.next_token(key, newline))
    return false;
  auto key_line = in.line();
  if (!check_printable(key, why))
    in.fail("key " + quote_token(key) + " " + why);
  if (!in.next_token(value, newline) || newline)
    throw input_error(in.name() + ", line " + std::to_string(key_line)
                      + ": expected 'key value', found only "
                      + quote_token(key));
  if (in.line_has_more()) {
    std::string extra;
    in.next_token(extra, newline);
    in.fail("expected 'key value', found a third token "
            + quote_token(extra));
  }
  return true;
}

void text_tokens::fail(const std::string& what) const {
  impl_->in.fail(what);
}

std::string text_tokens::name() const {
  return impl_->in.name();
}

} // namespace detail

source<std::int64_t> from_text_file(std::string path) {
  return std::make_unique<value_text_source<std::int64_t>>(std::move(path),
                                                           &parse_int64);
}

source<double> doubles_from_text_file(std::string path) {
  return std::make_unique<value_text_source<double>>(std::move(path),
                                                     &parse_double);
}

source<keyed_value> keyed_from_text_file(std::string path) {
  return std::make_unique<keyed_text_source<keyed_value, std::int64_t>>(
    std::move(path), &parse_int64);
}

source<keyed<double>> keyed_doubles_from_text_file(std::string path) {
  return std::make_unique<keyed_text_source<keyed<double>, double>>(
    std::move(path), &parse_double);
}

} // namespace flow
