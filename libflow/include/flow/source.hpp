#pragma once

/// @file
/// Sources: what a generator actor pulls its elements from.

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "flow/error.hpp"
#include "flow/keyed_value.hpp"
#include "flow/parse.hpp"
#include "flow/random.hpp"
#include "flow/slice.hpp"
#include "flow/task_stats.hpp"

namespace flow {

/// Writes the elements [first, first + n) of an index-addressable source to
/// `out` (see `source_impl::elements_by_index`).
template <class T>
using index_fn = std::function<void(std::uint64_t first, std::size_t n,
                                    T* out)>;

/// The interface of a source of elements of type T. A generator actor owns one
/// source and calls `next` only when it holds credit, so a source never needs
/// to buffer more than one batch. Implement it for your own inputs.
template <class T>
class source_impl {
public:
  virtual ~source_impl() = default;

  /// Produces up to `max` further elements (`max` > 0). An empty slice means
  /// the end of the input. May throw `input_error` (bad input) or any other
  /// exception (source failure); the generator turns either into an error.
  virtual slice<T> next(std::size_t max) = 0;

  /// True once the source knows that `next` will return no more elements.
  virtual bool exhausted() const = 0;

  /// True when `next` may block (files, pipes, databases); the generator then
  /// runs on a thread of its own instead of the shared scheduler.
  virtual bool blocking() const {
    return false;
  }

  /// Names the source for logs and error messages, e.g. "file 'x.txt'".
  virtual std::string name() const = 0;

  /// How many elements the source emits in all, when it knows (in-memory
  /// data, ranges, seeded streams): progress and ETA (flow/job_stats.hpp).
  /// Default: unknown.
  virtual std::optional<std::uint64_t> size_hint() const {
    return std::nullopt;
  }

  /// True when `size_hint` is an estimate that the source may fall short of
  /// or exceed (e.g. the PostgreSQL planner's row estimate of a partition).
  /// Default: false (an exact total, or none).
  virtual bool size_is_estimate() const {
    return false;
  }

  /// For a source whose work is a task that reads rows elsewhere (a
  /// database partition a worker node reads, see flow::net::task_source):
  /// the task's rows and whereabouts, which the job's statistics copy (its
  /// elements are the task's keyed results, not the rows). Asked once, when
  /// the job starts. Default: none.
  virtual std::shared_ptr<const task_monitor> task() const {
    return nullptr;
  }

  /// For sources whose element i is a pure function of i (ranges, seeded
  /// random streams): a thread-safe function that writes elements
  /// [first, first + n) to `out`. The generator then sends batches as such
  /// recipes and the reducer that folds a batch materialises it into a buffer
  /// it reuses, so generation runs in parallel on every reducer and allocates
  /// nothing. Sources that return one must implement `skip`. Default: none.
  virtual std::shared_ptr<const index_fn<T>> elements_by_index() const {
    return nullptr;
  }

  /// With `elements_by_index`: moves past up to `max` elements without
  /// producing them and returns the index of the first one skipped and how
  /// many were skipped (0 at the end).
  virtual std::pair<std::uint64_t, std::size_t> skip(std::size_t max) {
    (void) max;
    return {0, 0};
  }
};

/// An owned source of elements of type T.
template <class T>
using source = std::unique_ptr<source_impl<T>>;

/// Thrown by sources on input that does not parse; carries the error code.
class input_error : public std::runtime_error {
public:
  /// An error with code `errc::bad_input` and the given message.
  explicit input_error(const std::string& what, errc code = errc::bad_input)
    : std::runtime_error(what), code_(code) {
    // nop
  }

  /// The error code to report.
  errc code() const noexcept {
    return code_;
  }

private:
  errc code_;
};

namespace detail {

/// Serves views of consecutive parts of one shared vector.
template <class T>
class shared_vector_source : public source_impl<T> {
public:
  explicit shared_vector_source(std::shared_ptr<const std::vector<T>> xs)
    : all_(slice<T>::of(std::move(xs))) {
    // nop
  }

  slice<T> next(std::size_t max) override {
    auto n = std::min(max, all_.size() - pos_);
    auto result = all_.sub(pos_, n);
    pos_ += n;
    return result;
  }

  bool exhausted() const override {
    return pos_ == all_.size();
  }

  std::string name() const override {
    return "container of " + std::to_string(all_.size()) + " elements";
  }

  std::optional<std::uint64_t> size_hint() const override {
    return all_.size();
  }

private:
  slice<T> all_;
  std::size_t pos_ = 0;
};

/// Calls a callable for each element until it returns an empty optional.
template <class T, class F>
class callable_source : public source_impl<T> {
public:
  callable_source(F f, bool blocking) : f_(std::move(f)), blocking_(blocking) {
    // nop
  }

  slice<T> next(std::size_t max) override {
    std::vector<T> xs;
    while (!done_ && xs.size() < max) {
      if (auto x = f_())
        xs.emplace_back(std::move(*x));
      else
        done_ = true;
    }
    return slice<T>::owning(std::move(xs));
  }

  bool exhausted() const override {
    return done_;
  }

  bool blocking() const override {
    return blocking_;
  }

  std::string name() const override {
    return "generator callable";
  }

private:
  F f_;
  bool blocking_;
  bool done_ = false;
};

/// Wraps a source and shows every produced slice to an observer.
template <class T>
class tapped_source : public source_impl<T> {
public:
  tapped_source(source<T> inner, std::function<void(const slice<T>&)> fn)
    : inner_(std::move(inner)), fn_(std::move(fn)) {
    // nop
  }

  slice<T> next(std::size_t max) override {
    auto xs = inner_->next(max);
    if (!xs.empty())
      fn_(xs);
    return xs;
  }

  bool exhausted() const override {
    return inner_->exhausted();
  }

  bool blocking() const override {
    return inner_->blocking();
  }

  std::string name() const override {
    return inner_->name();
  }

  std::optional<std::uint64_t> size_hint() const override {
    return inner_->size_hint();
  }

  bool size_is_estimate() const override {
    return inner_->size_is_estimate();
  }

  std::shared_ptr<const task_monitor> task() const override {
    return inner_->task();
  }

private:
  source<T> inner_;
  std::function<void(const slice<T>&)> fn_;
};

/// The tokens of a text file or standard input, read in large blocks with
/// line numbers (what the text sources share); defined in the library.
class text_tokens {
public:
  /// Reads `path` ("-": standard input) on first use.
  explicit text_tokens(std::string path);
  ~text_tokens();
  text_tokens(const text_tokens&) = delete;
  text_tokens& operator=(const text_tokens&) = delete;

  /// The next whitespace-separated token; false at the end.
  bool next(std::string& tok);

  /// The next `key value` line (blank lines skipped; the key printable
  /// UTF-8, exactly two tokens); false at the end. Throws input_error naming
  /// the line otherwise.
  bool next_pair(std::string& key, std::string& value);

  /// Throws an input_error naming the input and the current line.
  [[noreturn]] void fail(const std::string& what) const;

  /// "file 'x'" or "standard input".
  std::string name() const;

private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

/// Parses a token into a V, or returns nothing and sets `why` ("is not a
/// number").
template <class V>
using token_parser = std::function<std::optional<V>(std::string_view,
                                                    std::string&)>;

/// Whitespace-separated values parsed by a token_parser.
template <class V>
class parsed_text_source final : public source_impl<V> {
public:
  parsed_text_source(std::string path, token_parser<V> parse)
    : in_(std::move(path)), parse_(std::move(parse)) {
    // nop
  }

  slice<V> next(std::size_t max) override {
    std::vector<V> xs;
    std::string why;
    while (xs.size() < max && in_.next(tok_)) {
      auto x = parse_(tok_, why);
      if (!x)
        in_.fail("token " + quote_token(tok_) + " " + why);
      xs.push_back(std::move(*x));
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
  text_tokens in_;
  token_parser<V> parse_;
  std::string tok_;
  bool done_ = false;
};

/// Lines of `key value` whose value a token_parser reads, as keyed<V>.
template <class V>
class parsed_keyed_text_source final : public source_impl<keyed<V>> {
public:
  parsed_keyed_text_source(std::string path, token_parser<V> parse)
    : in_(std::move(path)), parse_(std::move(parse)) {
    // nop
  }

  slice<keyed<V>> next(std::size_t max) override {
    std::vector<keyed<V>> xs;
    std::string why;
    std::string k;
    std::string v;
    while (xs.size() < max && in_.next_pair(k, v)) {
      auto x = parse_(v, why);
      if (!x)
        in_.fail("value " + quote_token(v) + " " + why);
      xs.push_back(keyed<V>{flow::key{std::move(k)}, std::move(*x)});
    }
    if (xs.size() < max)
      done_ = true;
    return slice<keyed<V>>::owning(std::move(xs));
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
  text_tokens in_;
  token_parser<V> parse_;
  bool done_ = false;
};

} // namespace detail

/// Whitespace-separated values of any type from the file at `path` ("-"
/// reads standard input), each token read by `parse`, which returns the
/// value or nothing with `why` set; errors name the file, the line and the
/// token, as for the built-in text sources.
template <class V>
source<V> from_text_file_as(std::string path, detail::token_parser<V> parse) {
  return std::make_unique<detail::parsed_text_source<V>>(std::move(path),
                                                         std::move(parse));
}

/// Lines of `key value` whose value `parse` reads (see from_text_file_as).
template <class V>
source<keyed<V>> keyed_from_text_file_as(std::string path,
                                         detail::token_parser<V> parse) {
  return std::make_unique<detail::parsed_keyed_text_source<V>>(
    std::move(path), std::move(parse));
}

/// In-memory data, shared and never copied: every batch is a view into `xs`.
template <class T>
source<T> from_shared(std::shared_ptr<const std::vector<T>> xs) {
  if (!xs)
    throw std::invalid_argument("flow::from_shared: null vector");
  return std::make_unique<detail::shared_vector_source<T>>(std::move(xs));
}

/// In-memory data: takes ownership of `xs` (moved, not copied), then serves
/// views into it.
template <class T>
source<T> from_container(std::vector<T> xs) {
  return from_shared(
    std::make_shared<const std::vector<T>>(std::move(xs)));
}

/// The integers first, first + step, ... up to but excluding `last`.
/// Throws std::invalid_argument when step is 0.
source<std::int64_t> from_range(std::int64_t first, std::int64_t last,
                                std::int64_t step = 1);

/// `n` uniform random integers in [lo, hi], element i a pure function of
/// (seed, i): the same seed gives the same data whatever the batch size or
/// the number of workers. Defaults match the tutorial's randint(0, 10000).
/// Throws std::invalid_argument when lo > hi.
source<std::int64_t> from_random(std::uint64_t n, std::uint64_t seed,
                                 std::int64_t lo = 0, std::int64_t hi = 10000);

/// `n` keyed integers, element i a pure function of (seed, i): with z =
/// mix64(seed + (i + 1) · 0x9E3779B97F4A7C15) (SplitMix64's i-th output, the
/// same stream as `from_random`'s), the key is the integer z mod `keys` and
/// the value (z >> 32) mod `values`. The same data whatever the batch size or
/// the number of reducers; each batch is made when the generator sends it,
/// so memory does not grow with n. Throws std::invalid_argument when `keys`
/// is 0 or above INT64_MAX, or `values` is 0 or above 2^32.
source<keyed_value> from_keyed_random(std::uint64_t n, std::uint64_t keys,
                                      std::uint64_t seed,
                                      std::uint64_t values = 10001);

/// Elements produced lazily by `f`, a callable returning `std::optional<T>`;
/// an empty optional ends the source. Pass `blocking = true` when `f` may
/// block (it then runs on a thread of its own).
template <class F, class T = typename std::invoke_result_t<F&>::value_type>
source<T> from_callable(F f, bool blocking = false) {
  return std::make_unique<detail::callable_source<T, F>>(std::move(f),
                                                         blocking);
}

/// Whitespace-separated int64 values from the file at `path` ("-" reads
/// standard input), streamed: memory stays bounded whatever the length.
/// Errors name the file, the line and the token.
source<std::int64_t> from_text_file(std::string path);

/// Lines of `key value` (a key token and an int64 value, separated by
/// whitespace) from the file at `path` ("-" reads standard input). Keys are
/// strings of printable UTF-8 (a key with invalid bytes or a control
/// character is an error, like a bad value); blank lines are skipped.
source<keyed_value> keyed_from_text_file(std::string path);

/// Whitespace-separated doubles (see `parse_double`: decimal or exponent
/// notation, inf, -inf, nan) from the file at `path` ("-" reads standard
/// input), streamed. Errors name the file, the line and the token.
source<double> doubles_from_text_file(std::string path);

/// Lines of `key value` whose value is a double (see `parse_double`), as
/// `keyed_from_text_file` reads them.
source<keyed<double>> keyed_doubles_from_text_file(std::string path);

/// Shows every slice that `inner` produces to `fn` before it is sent on
/// (runs in the generator, in order): for reference computations as the input
/// is read.
template <class T, class F>
source<T> tap(source<T> inner, F fn) {
  return std::make_unique<detail::tapped_source<T>>(
    std::move(inner), std::function<void(const slice<T>&)>{std::move(fn)});
}

} // namespace flow
