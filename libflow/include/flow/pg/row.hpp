#pragma once

/// @file
/// Rows of `COPY ... TO STDOUT` text output as a decoder sees them: typed
/// access to each field, NULLs as `std::optional`, and `decode_error` for a
/// value that does not fit.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "flow/aggregate.hpp"

namespace flow::pg {

/// Thrown by `row_view` (or a user decoder) when a field does not decode; the
/// row source adds the source, the row number and the column name.
class decode_error : public std::runtime_error {
public:
  /// A failure to decode column `column` of the current row.
  decode_error(std::size_t column, const std::string& what)
    : std::runtime_error(what), column_(column) {
    // nop
  }

  /// Index of the offending column.
  std::size_t column() const noexcept {
    return column_;
  }

private:
  std::size_t column_;
};

/// One row of COPY text format: tab-separated fields, `\N` for NULL,
/// backslash escapes. Valid only during the decoder call.
class row_view {
public:
  /// Splits `line` (one COPY line, without its newline) into fields.
  void assign(std::string_view line);

  /// Number of fields.
  std::size_t size() const noexcept {
    return fields_.size();
  }

  /// True when field `i` is NULL.
  bool is_null(std::size_t i) const {
    return raw(i).data() == nullptr;
  }

  /// Field `i` as text (escapes resolved); throws decode_error on NULL.
  std::string_view text(std::size_t i) const;

  /// Field `i` as text, or nothing for NULL.
  std::optional<std::string_view> opt_text(std::size_t i) const;

  /// Field `i` as a 64-bit integer; throws decode_error on NULL, on text that
  /// is not an integer and on a value outside int64.
  std::int64_t int64(std::size_t i) const;

  /// Field `i` as a 64-bit integer, or nothing for NULL.
  std::optional<std::int64_t> opt_int64(std::size_t i) const;

  /// Field `i` as a 32-bit integer (throws decode_error outside int32).
  std::int32_t int32(std::size_t i) const;

  /// Field `i` as a 32-bit integer, or nothing for NULL.
  std::optional<std::int32_t> opt_int32(std::size_t i) const;

  /// Field `i`, an integral numeric such as `sum(bigint)`, as an exact 128-bit
  /// integer (a zero fraction like "12.000" is accepted, any other is not).
  int128 int128_value(std::size_t i) const;

  /// The raw field as sent (escapes not resolved); a null data pointer for
  /// NULL. Throws decode_error when `i` is out of range.
  std::string_view raw(std::size_t i) const;

private:
  std::string_view line_;
  std::vector<std::string_view> fields_;
  mutable std::string scratch_;
};

/// Text that lives as long as a batch: a decoder copies a field into it and
/// keeps the view instead of a `std::string` per field. `row_source` gives
/// one to decoders of the form `void(const row_view&, T&, batch_text&)` and
/// makes it part of the batch, so the views in a batch's elements stay valid
/// for as long as any reducer holds the batch. One allocation per chunk
/// instead of one per field, and one free when the batch goes.
class batch_text {
public:
  /// An empty store; its first chunk is allocated by the first `keep`.
  batch_text() = default;

  /// Not copyable: views point into this store's own chunks.
  batch_text(const batch_text&) = delete;

  /// Not copyable.
  batch_text& operator=(const batch_text&) = delete;

  /// Moves a store (the views into it stay valid: chunks do not move). The
  /// moved-from store is empty and usable.
  batch_text(batch_text&& other) noexcept
    : chunks_(std::move(other.chunks_)),
      next_(std::exchange(other.next_, nullptr)),
      room_(std::exchange(other.room_, 0)),
      last_(std::exchange(other.last_, 0)),
      capacity_(std::exchange(other.capacity_, 0)) {
    other.chunks_.clear();
  }

  /// Moves a store; this store's own text goes (views into it dangle).
  batch_text& operator=(batch_text&& other) noexcept {
    if (this != &other) {
      chunks_ = std::move(other.chunks_);
      other.chunks_.clear();
      next_ = std::exchange(other.next_, nullptr);
      room_ = std::exchange(other.room_, 0);
      last_ = std::exchange(other.last_, 0);
      capacity_ = std::exchange(other.capacity_, 0);
    }
    return *this;
  }

  /// A copy of `x` that lives as long as this store.
  std::string_view keep(std::string_view x) {
    if (x.empty())
      return std::string_view{"", 0}; // never a null data pointer
    if (x.size() > room_)
      grow(x.size());
    auto* p = next_;
    std::memcpy(p, x.data(), x.size());
    next_ += x.size();
    room_ -= x.size();
    return {p, x.size()};
  }

  /// A copy of `x` that lives as long as this store.
  std::string_view keep(const std::string& x) {
    return keep(std::string_view{x});
  }

  /// A copy of `x` (a C string) that lives as long as this store.
  std::string_view keep(const char* x) {
    return keep(std::string_view{x});
  }

  /// A copy of `x` (a field that may be NULL) that lives as long as this
  /// store; nothing stays nothing.
  std::optional<std::string_view>
  keep(const std::optional<std::string_view>& x) {
    if (!x)
      return std::nullopt;
    return keep(*x);
  }

  /// Bytes held (the chunks' sizes).
  std::size_t capacity() const noexcept {
    return capacity_;
  }

private:
  // Chunks double from 16 KiB up to 1 MiB (a field larger than that gets a
  // chunk of its own size): a batch of 16384 rows of ~100 bytes takes seven
  // allocations, a batch of a few rows one small one. What is left of a
  // chunk when a field does not fit stays unused.
  void grow(std::size_t need) {
    auto size = chunks_.empty() ? std::size_t{16384}
                                : std::min(last_ * 2, std::size_t{1} << 20);
    size = std::max(size, need);
    // Not make_unique<char[]>: that would zero every byte first. Owned
    // before the vector may grow (and throw).
    std::unique_ptr<char[]> chunk{new char[size]};
    chunks_.push_back(std::move(chunk));
    next_ = chunks_.back().get();
    room_ = size;
    last_ = size;
    capacity_ += size;
  }

  std::vector<std::unique_ptr<char[]>> chunks_;
  char* next_ = nullptr;
  std::size_t room_ = 0;
  std::size_t last_ = 0;
  std::size_t capacity_ = 0;
};

/// Parses a decimal int64 ("-42"); nothing when the text is not exactly one.
std::optional<std::int64_t> parse_int64(std::string_view text) noexcept;

/// Parses a decimal integer, optionally with a zero fraction ("12", "-3.00"),
/// into an exact int128; nothing when it is not one or does not fit.
std::optional<int128> parse_int128(std::string_view text) noexcept;

} // namespace flow::pg
