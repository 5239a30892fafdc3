#pragma once

/// @file
/// Batches of elements as views into shared immutable storage.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

namespace flow {

/// A read-only view of `size()` contiguous elements that keeps its storage
/// alive. Copying a slice copies a pointer, never the elements: this is how
/// in-memory data travels from a generator to the reducers without copies.
template <class T>
class slice {
public:
  /// Element type.
  using value_type = T;
  /// Iterator type.
  using const_iterator = const T*;

  /// An empty slice.
  slice() noexcept = default;

  /// A view of `n` elements at `data`, kept alive by `owner`.
  slice(std::shared_ptr<const void> owner, const T* data,
        std::size_t n) noexcept
    : owner_(std::move(owner)), data_(data), size_(n) {
    // nop
  }

  /// Takes ownership of `xs` and views all of it.
  static slice owning(std::vector<T> xs) {
    auto ptr = std::make_shared<const std::vector<T>>(std::move(xs));
    auto data = ptr->data();
    auto n = ptr->size();
    return slice{std::move(ptr), data, n};
  }

  /// Views all of a shared vector without copying it.
  static slice of(std::shared_ptr<const std::vector<T>> xs) noexcept {
    auto data = xs->data();
    auto n = xs->size();
    return slice{std::move(xs), data, n};
  }

  /// A view of `n` elements starting at `offset`, sharing this storage.
  slice sub(std::size_t offset, std::size_t n) const noexcept {
    return slice{owner_, data_ + offset, n};
  }

  /// Number of elements.
  std::size_t size() const noexcept {
    return size_;
  }

  /// True when the slice has no elements.
  bool empty() const noexcept {
    return size_ == 0;
  }

  /// Pointer to the first element.
  const T* data() const noexcept {
    return data_;
  }

  /// Iterator to the first element.
  const T* begin() const noexcept {
    return data_;
  }

  /// Iterator past the last element.
  const T* end() const noexcept {
    return data_ + size_;
  }

  /// The element at `i` (unchecked).
  const T& operator[](std::size_t i) const noexcept {
    return data_[i];
  }

  /// The object that keeps the storage alive.
  const std::shared_ptr<const void>& owner() const noexcept {
    return owner_;
  }

private:
  std::shared_ptr<const void> owner_;
  const T* data_ = nullptr;
  std::size_t size_ = 0;
};

} // namespace flow
