#pragma once

// Type erasure for a job: sources, reducers, sinks and elements with their
// types erased, and the job_spec that carries them from the typed pipeline
// builder to the compiled engine (libflow/src/engine/), so the actors are
// compiled once inside libflow instead of in every translation unit that
// builds a pipeline. It holds no engine code.

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <typeinfo>
#include <utility>
#include <vector>

#include "flow/aggregator.hpp"
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
  /// Any other type CAF can serialise (doubles, decimals, user structs with
  /// an inspect function): sent with the name of its `element_ops`.
  packed = 3,
};

struct erased_slice;

/// How batches of one serialisable element type cross processes, compiled
/// once per type and registered by name (the mangled type name: worker nodes
/// run the same build).
struct element_ops {
  /// The registered name.
  std::string name;
  /// Writes `x`'s elements (materialising a recipe first).
  caf::error (*save)(caf::serializer&, const erased_slice& x) = nullptr;
  /// Reads elements written by `save` into storage `x` owns.
  caf::error (*load)(caf::deserializer&, erased_slice& x) = nullptr;
};

/// Registers `ops` (idempotent for one type).
void register_element_ops(const element_ops& ops);

/// The registered element operations named `name`, or nullptr.
const element_ops* find_element_ops(const std::string& name);

template <class T>
const element_ops& element_ops_of();

template <class T>
struct element_traits {
  static constexpr element_kind kind
    = caf::detail::is_serializable<T>::value ? element_kind::packed
                                             : element_kind::opaque;
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
  /// For element_kind::packed: how the elements cross processes.
  const element_ops* packer = nullptr;

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

/// How elements of type T are written to the wire. CAF 0.17 writes a double
/// through its IEEE 754 packing, which loops forever on an infinity and loses
/// -0.0, NaN and subnormals: doubles (alone or as keyed values) travel as
/// their bit patterns instead.
template <class T>
struct wire_element {
  using type = T;
  static type to(const T& x) {
    return x;
  }
  static T from(type x) {
    return x;
  }
};

template <>
struct wire_element<double> {
  using type = std::uint64_t;
  static type to(double x) {
    std::uint64_t u;
    std::memcpy(&u, &x, sizeof u);
    return u;
  }
  static double from(type u) {
    double x;
    std::memcpy(&x, &u, sizeof x);
    return x;
  }
};

template <>
struct wire_element<keyed<double>> {
  using type = std::pair<flow::key, std::uint64_t>;
  static type to(const keyed<double>& x) {
    return {x.key, wire_element<double>::to(x.value)};
  }
  static keyed<double> from(type x) {
    return {std::move(x.first), wire_element<double>::from(x.second)};
  }
};

template <class T>
const element_ops& element_ops_of() {
  static const element_ops ops = [] {
    using wire = wire_element<T>;
    element_ops result;
    result.name = typeid(T).name();
    result.save = [](caf::serializer& f, const erased_slice& x) -> caf::error {
      std::vector<T> xs;
      if (x.deferred()) {
        xs.resize(x.size);
        x.materialize(x.owner.get(), x.first, x.size, xs.data());
      } else if (x.size > 0) {
        auto p = static_cast<const T*>(x.data);
        xs.assign(p, p + x.size);
      }
      if constexpr (std::is_same<typename wire::type, T>::value) {
        return f(xs);
      } else {
        std::vector<typename wire::type> ys;
        ys.reserve(xs.size());
        for (auto& v : xs)
          ys.push_back(wire::to(v));
        return f(ys);
      }
    };
    result.load = [](caf::deserializer& f, erased_slice& x) -> caf::error {
      auto xs = std::make_shared<std::vector<T>>();
      if constexpr (std::is_same<typename wire::type, T>::value) {
        if (auto err = f(*xs))
          return err;
      } else {
        std::vector<typename wire::type> ys;
        if (auto err = f(ys))
          return err;
        xs->reserve(ys.size());
        for (auto& y : ys)
          xs->push_back(wire::from(std::move(y)));
      }
      x.data = xs->data();
      x.size = xs->size();
      x.owner = std::move(xs);
      x.materialize = nullptr;
      x.first = 0;
      x.elem_size = sizeof(T);
      return caf::error{};
    };
    register_element_ops(result);
    return result;
  }();
  return ops;
}

/// The element operations of T when it can cross processes, else nullptr.
template <class T>
const element_ops* packer_of() {
  if constexpr (element_traits<T>::kind == element_kind::packed)
    return &element_ops_of<T>();
  else
    return nullptr;
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
  virtual bool size_is_estimate() const = 0;
  virtual std::shared_ptr<const task_monitor> task() const = 0;
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
        result.packer = packer_of<T>();
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
    result.packer = packer_of<T>();
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

  bool size_is_estimate() const override {
    return src_->size_is_estimate();
  }

  std::shared_ptr<const task_monitor> task() const override {
    return src_->task();
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
  // A worker node reads batches of T through the registry: register T.
  packer_of<T>();
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
  virtual std::vector<output_rows> outputs_written() const = 0;
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

  std::vector<output_rows> outputs_written() const override {
    return snk_->outputs_written();
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
  /// The aggregator columns of the per-key row (pipeline::aggregate_with).
  std::vector<aggregators::info> columns;
  /// Set when a small job folded on the calling thread went to the engine
  /// because the user function threw: the source whose first batch it threw
  /// on, and what it said (that try counts as the batch's first).
  std::vector<std::pair<std::uint32_t, std::string>> inline_failures;
};

} // namespace flow::detail
