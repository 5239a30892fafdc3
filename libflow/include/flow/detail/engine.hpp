#pragma once

// Type-erased job description handed from the typed pipeline builder to the
// compiled engine, so the actors are compiled once inside libflow instead of
// in every translation unit that builds a pipeline.

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "flow/key.hpp"
#include "flow/keyed_value.hpp"
#include "flow/options.hpp"
#include "flow/partial.hpp"
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

/// A slice with its element type erased.
struct erased_slice {
  std::shared_ptr<const void> owner;
  const void* data = nullptr;
  std::size_t size = 0;
  element_kind kind = element_kind::opaque;
};

/// A source with its element type erased.
class any_source {
public:
  virtual ~any_source() = default;
  virtual erased_slice next(std::size_t max) = 0;
  virtual bool exhausted() const = 0;
  virtual bool blocking() const = 0;
  virtual std::string name() const = 0;
};

template <class T>
class source_adapter final : public any_source {
public:
  explicit source_adapter(source<T> src) : src_(std::move(src)) {
    // nop
  }

  erased_slice next(std::size_t max) override {
    auto xs = src_->next(max);
    return {xs.owner(), xs.data(), xs.size(), element_traits<T>::kind};
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

private:
  source<T> src_;
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

/// One generator: its source and its label.
struct source_entry {
  std::shared_ptr<any_source> src;
  flow::key label;
  /// False when the source was added without a label.
  bool labeled = false;
};

/// Everything the engine needs to run one job.
struct job_spec {
  std::vector<source_entry> sources;
  erased_reducer reduce;
  options opts;
};

} // namespace flow::detail
