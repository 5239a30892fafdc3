#pragma once

// Type erasure for a job: sources, reducers, sinks and elements with their
// types erased, and the job_spec that carries them from the typed pipeline
// builder to the compiled engine (libflow/src/engine/), so the actors are
// compiled once inside libflow instead of in every translation unit that
// builds a pipeline. It holds no engine code.

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <typeinfo>
#include <vector>

#include "flow/key.hpp"
#include "flow/keyed_value.hpp"
#include "flow/options.hpp"
#include "flow/partial.hpp"
#include "flow/reducer.hpp"
#include "flow/result.hpp"
#include "flow/sink.hpp"
#include "flow/source.hpp"

namespace flow::detail {

/// Tags element types whose batches can be serialised (to cross processes).
enum class element_kind : std::uint8_t {
  opaque = 0,
  int64 = 1,
  keyed = 2,
};

template <class T>
struct element_traits {
  static constexpr element_kind kind = element_kind::opaque;
};

template <>
struct element_traits<std::int64_t> {
  static constexpr element_kind kind = element_kind::int64;
};

template <>
struct element_traits<keyed_value> {
  static constexpr element_kind kind = element_kind::keyed;
};

/// Materialises a recipe: writes `n` elements starting at index `first` to
/// `out`, which has room for them.
using materialize_fn = void (*)(const void* recipe, std::uint64_t first,
                                std::size_t n, void* out);

/// A slice with its element type erased. Either `data` views `size`
/// elements kept alive by `owner`, or `data` is null and `owner` is a recipe
/// that `materialize` turns into the elements [first, first + size).
struct erased_slice {
  std::shared_ptr<const void> owner;
  const void* data = nullptr;
  std::size_t size = 0;
  element_kind kind = element_kind::opaque;
  /// Set for recipes only.
  materialize_fn materialize = nullptr;
  /// Index of the recipe's first element.
  std::uint64_t first = 0;
  /// sizeof(T), for buffers that hold a materialised recipe.
  std::uint32_t elem_size = 0;

  /// True when this slice is a recipe rather than data.
  bool deferred() const noexcept {
    return data == nullptr && materialize != nullptr && size > 0;
  }
};

template <class T>
void materialize_with(const void* recipe, std::uint64_t first, std::size_t n,
                      void* out) {
  (*static_cast<const index_fn<T>*>(recipe))(first, n, static_cast<T*>(out));
}

/// A source with its element type erased.
class any_source {
public:
  virtual ~any_source() = default;
  virtual erased_slice next(std::size_t max) = 0;
  virtual bool exhausted() const = 0;
  virtual bool blocking() const = 0;
  virtual std::string name() const = 0;
  virtual std::optional<std::uint64_t> size_hint() const = 0;
};

template <class T>
class source_adapter final : public any_source {
public:
  explicit source_adapter(source<T> src) : src_(std::move(src)) {
    // nop
  }

  erased_slice next(std::size_t max) override {
    if constexpr (std::is_trivially_copyable<T>::value) {
      if (!checked_) {
        fn_ = src_->elements_by_index();
        checked_ = true;
      }
      if (fn_) {
        auto [first, n] = src_->skip(max);
        erased_slice result;
        result.owner = fn_;
        result.size = n;
        result.kind = element_traits<T>::kind;
        result.materialize = &materialize_with<T>;
        result.first = first;
        result.elem_size = sizeof(T);
        return result;
      }
    }
    auto xs = src_->next(max);
    erased_slice result;
    result.owner = xs.owner();
    result.data = xs.data();
    result.size = xs.size();
    result.kind = element_traits<T>::kind;
    result.elem_size = sizeof(T);
    return result;
  }

  bool exhausted() const override {
    return src_->exhausted();
  }

  bool blocking() const override {
    return src_->blocking();
  }

  std::string name() const override {
    return src_->name();
  }

  std::optional<std::uint64_t> size_hint() const override {
    return src_->size_hint();
  }

private:
  source<T> src_;
  std::shared_ptr<const index_fn<T>> fn_;
  bool checked_ = false;
};

/// What a reducer sees of a batch, type-erased.
struct batch_header {
  const flow::key* label;
  std::uint32_t source;
  std::uint64_t seq;
  std::uint64_t first;
};

/// A reducer with its element type erased.
using erased_reducer
  = std::function<void(const batch_header&, const erased_slice&, partial&)>;

/// Erases the element type of a reducer: the engine (and a worker node's
/// registry) hand it untyped slices.
template <class T>
erased_reducer erase_reducer(reducer<T> fn) {
  return [fn = std::move(fn)](const batch_header& hdr, const erased_slice& xs,
                              partial& out) {
    batch_ref<T> ref{slice<T>{xs.owner, static_cast<const T*>(xs.data),
                              xs.size},
                     *hdr.label, hdr.source, hdr.seq, hdr.first};
    fn(ref, out);
  };
}

/// A sink with its row type erased.
class any_sink {
public:
  virtual ~any_sink() = default;
  virtual void open() = 0;
  /// Writes a `std::vector<O>` given as `rows` (null: no rows).
  virtual void write_batch(const batch_info& b, const void* rows) = 0;
  virtual bool wants_every_batch() const = 0;
  virtual void write_dead_letters(const std::vector<dead_letter>& xs) = 0;
  virtual void commit(const job_result& result) = 0;
  virtual void abort() noexcept = 0;
  virtual bool blocking() const = 0;
  virtual std::string name() const = 0;
  /// typeid(O).
  virtual const std::type_info& row_type() const noexcept = 0;
};

template <class O>
class sink_adapter final : public any_sink {
public:
  explicit sink_adapter(sink<O> snk) : snk_(std::move(snk)) {
    // nop
  }

  void open() override {
    snk_->open();
  }

  void write_batch(const batch_info& b, const void* rows) override {
    static const std::vector<O> none;
    snk_->write_batch(b, rows != nullptr
                           ? *static_cast<const std::vector<O>*>(rows)
                           : none);
  }

  bool wants_every_batch() const override {
    return snk_->wants_every_batch();
  }

  void write_dead_letters(const std::vector<dead_letter>& xs) override {
    snk_->write_dead_letters(xs);
  }

  void commit(const job_result& result) override {
    snk_->commit(result);
  }

  void abort() noexcept override {
    snk_->abort();
  }

  bool blocking() const override {
    return snk_->blocking();
  }

  std::string name() const override {
    return snk_->name();
  }

  const std::type_info& row_type() const noexcept override {
    return typeid(O);
  }

private:
  sink<O> snk_;
};

/// One generator: its source and its label.
struct source_entry {
  std::shared_ptr<any_source> src;
  flow::key label;
  /// False when the source was added without a label.
  bool labeled = false;
};

/// Renders one element (given by address) as text for a dead letter.
using erased_formatter = std::function<std::string(const void*)>;

/// The default rendering of an element type: numbers and keyed values as
/// text, other types not at all (a pipeline may set its own).
template <class T>
erased_formatter default_formatter() {
  if constexpr (std::is_same<T, std::int64_t>::value) {
    return [](const void* p) {
      return std::to_string(*static_cast<const std::int64_t*>(p));
    };
  } else if constexpr (std::is_same<T, keyed_value>::value) {
    return [](const void* p) {
      auto& x = *static_cast<const keyed_value*>(p);
      return to_string(x.key) + " " + std::to_string(x.value);
    };
  } else {
    return nullptr;
  }
}

/// Everything the engine needs to run one job.
struct job_spec {
  std::vector<source_entry> sources;
  erased_reducer reduce;
  /// Renders failing elements for dead letters (may be empty).
  erased_formatter format;
  /// The name remote worker nodes know the reducer by (see flow::net);
  /// empty: the job runs on local reducers only.
  std::string reducer_name;
  /// What the elements are (remote reducers need serialisable ones).
  element_kind kind = element_kind::opaque;
  options opts;
  /// Where emitted rows go; null when the job has no sink.
  std::shared_ptr<any_sink> sink;
};

} // namespace flow::detail
