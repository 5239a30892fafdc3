#pragma once

/// @file
/// The exact running aggregate kept per key: sum (128-bit), count, min, max,
/// plus the states of the job's other aggregators (see flow/aggregator.hpp).

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include <caf/error.hpp>
#include <caf/fwd.hpp>
#include <caf/meta/load_callback.hpp>
#include <caf/meta/type_name.hpp>

namespace flow {

struct state_ops;

/// The room a job's full row of states takes (the columns of its
/// `aggregators`, flow/aggregator.hpp): a row is allocated at this size when
/// its first state is made, so that a key's states cost one allocation.
struct row_shape {
  /// Number of columns.
  std::size_t columns = 0;
  /// Bytes of the states placed in the row's own block (see `state_row`).
  std::size_t bytes = 0;
};

/// The type-erased aggregator states of one key: column i holds the state of
/// the job's i-th aggregator column (flow/aggregator.hpp), or nothing while
/// no element reached it. Empty rows cost one null pointer, so keys that use
/// only the built-in int64 aggregate pay nothing for it. A row keeps its
/// column table and its states in one heap block (states that are larger
/// than 4 KiB, aligned beyond 16 bytes or not nothrow-movable are allocated
/// on their own): with millions of keys, one allocation per key instead of
/// one per state and a table sized to the row rather than rounded up. A
/// block that must grow moves the states in it: a state's address holds
/// until another column of the row is created (rows made with the job's
/// `row_shape` never grow while their columns are fed).
class state_row {
public:
  /// An empty row.
  state_row() noexcept = default;

  /// Deep copy: every state is copied into a block of exactly their size.
  state_row(const state_row& other);

  /// Move (no state is copied).
  state_row(state_row&& other) noexcept : block_(other.block_) {
    other.block_ = nullptr;
  }

  /// Deep copy.
  state_row& operator=(const state_row& other);

  /// Move: destroys this row's states first.
  state_row& operator=(state_row&& other) noexcept;

  /// Destroys every state.
  ~state_row();

  /// True when no column holds a state.
  bool empty() const noexcept;

  /// Asks the processor to bring the row's column table into the cache: a
  /// hint for loops over millions of keys, which otherwise wait for each
  /// row's block in turn. Changes nothing.
  void prefetch() const noexcept {
    if (block_) {
      __builtin_prefetch(block_);
      __builtin_prefetch(reinterpret_cast<const char*>(block_) + 64);
    }
  }

  /// Number of columns (some may be empty).
  std::size_t size() const noexcept {
    return block_ ? block_->size : 0;
  }

  /// The state in column `i`, or nullptr when it has none. Throws
  /// std::logic_error when the column holds a state of another type.
  const void* get(std::size_t i, const state_ops& ops) const;

  /// The state in column `i`, created as a copy of `prototype` when absent.
  /// Throws std::logic_error when the column holds a state of another type.
  /// `shape`, when given, is the room of the whole row (the job's columns):
  /// the row's first state allocates all of it.
  void* get_or_create(std::size_t i, const state_ops& ops,
                      const void* prototype, const row_shape* shape = nullptr);

  /// Merges every state of `other` into the state of the same column
  /// (copying it where this row has none). Returns false when two states of
  /// one column have different types, or a state's merge fails (overflow,
  /// incompatible parameters); states of earlier columns may then have been
  /// merged already (the engine fails the job on false).
  [[nodiscard]] bool merge(const state_row& other);

  /// False when some state reports that an addition could not be
  /// represented (see `state_ops::ok`). Not noexcept: it calls the states'
  /// own ok(), user code the engine guards.
  bool ok() const;

  /// The registered names of the states per column ("" for none).
  std::vector<std::string> names() const;

  /// Equal when every column holds equal states (or none in both).
  bool equals(const state_row& other) const;

  /// Writes the row: per column, the state's registered name and its fields.
  caf::error save(caf::serializer& sink) const;

  /// Reads a row written by `save`, creating each state through the registry
  /// by name; an unknown name is an `errc::not_serializable` error.
  caf::error load(caf::deserializer& source);

  /// Bytes of the row's heap block (0 when it has none), for tests and
  /// memory estimates; states allocated on their own are not counted.
  std::size_t block_bytes() const noexcept;

  /// Inspection: binary (de)serialisers go through `save`/`load`; other
  /// inspectors (to_string) see the state names.
  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f, state_row& x) {
    if constexpr (std::is_same<Inspector, caf::serializer>::value) {
      return x.save(f);
    } else if constexpr (std::is_same<Inspector, caf::deserializer>::value) {
      return x.load(f);
    } else {
      auto names = x.names();
      return f(caf::meta::type_name("flow.states"), names);
    }
  }

private:
  // A column: its state's type (`state_ops::index`, 0: no state) and the
  // state's offset in the block's storage. 8 bytes, not two pointers: with
  // millions of keys and a dozen columns, the boxes were a third of a row.
  // With `heap` set in `at`, the storage there holds a pointer to a state
  // allocated on its own.
  struct box {
    std::uint32_t type;
    std::uint32_t at;
  };

  static constexpr std::uint32_t heap = 0x80000000u;

  // The block: this header, `capacity` boxes (padded to 16 bytes), then
  // `bytes` of storage in which states (and pointers to the states
  // allocated on their own) are placed one after the other.
  struct block {
    std::uint32_t size;
    std::uint32_t capacity;
    std::uint32_t used;
    std::uint32_t bytes;

    static std::size_t table_bytes(std::size_t capacity) noexcept {
      return (capacity * sizeof(box) + 15) / 16 * 16;
    }

    box* boxes() noexcept {
      return reinterpret_cast<box*>(this + 1);
    }

    char* storage() noexcept {
      return reinterpret_cast<char*>(this + 1) + table_bytes(capacity);
    }
  };

  const box* boxes() const noexcept {
    return block_->boxes();
  }

  /// The state of column `i` (which holds one).
  void* ptr(std::size_t i) const noexcept {
    auto& x = block_->boxes()[i];
    auto* p = block_->storage() + (x.at & ~heap);
    if ((x.at & heap) == 0)
      return p;
    void* q;
    std::memcpy(&q, p, sizeof(q));
    return q;
  }

  /// Makes room for `columns` columns and `bytes` more bytes of storage
  /// (moving the states into a new block when needed).
  void reserve(std::size_t columns, std::size_t bytes);

  /// Moves the states into a new block of `columns` columns and `bytes`
  /// more bytes than they take.
  void rebuild(std::size_t columns, std::size_t bytes);

  /// Makes a copy of `src` (or a default state when null) in column `i`,
  /// which must be empty and below the capacity (the storage grows when
  /// the state does not fit).
  void* make(std::size_t i, const state_ops& ops, const void* src);

  /// Destroys every state and frees the block.
  void clear() noexcept;

  block* block_ = nullptr;
};

/// Signed 128-bit integer: exact for the sum of up to 2^64 int64 values.
using int128 = __int128;

/// Renders a 128-bit integer in decimal.
std::string to_string(int128 x);

/// Appends to_string(x) to `out` without a string of its own: for printing
/// many values into one reused buffer.
void append_to(std::string& out, int128 x);

/// Sum, count, min and max of int64 values. Sums are exact for every input:
/// they accumulate in 128 bits and merging detects overflow instead of
/// wrapping. The mean is derived from sum and count.
struct aggregate {
  /// Exact sum of the values.
  int128 sum = 0;
  /// Number of values.
  std::uint64_t count = 0;
  /// Smallest value; `int64 max` while empty.
  std::int64_t min = std::numeric_limits<std::int64_t>::max();
  /// Largest value; `int64 min` while empty.
  std::int64_t max = std::numeric_limits<std::int64_t>::min();
  /// The states of the job's other aggregators (flow/aggregator.hpp).
  state_row states;

  /// Adds one value. Cannot overflow before 2^64 values have been added.
  void add(std::int64_t x) noexcept {
    sum += x;
    ++count;
    if (x < min)
      min = x;
    if (x > max)
      max = x;
  }

  /// Merges `other` into this aggregate. Returns false (and leaves the int64
  /// part unchanged) when the sum or the count would overflow, or when the
  /// states cannot be merged (see `state_row::merge`).
  [[nodiscard]] bool merge(const aggregate& other);

  /// True when no int64 value has been added and no other state exists.
  bool empty() const noexcept {
    return count == 0 && states.empty();
  }

  /// The mean, sum / count; 0 for an empty aggregate.
  long double mean() const noexcept;

  /// Aggregates `n` values starting at `xs` in one pass.
  static aggregate of(const std::int64_t* xs, std::size_t n) noexcept;

  /// Inspection (the 128-bit sum travels as two 64-bit halves).
  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f,
                                                 aggregate& x) {
    auto hi = static_cast<std::int64_t>(x.sum >> 64);
    auto lo = static_cast<std::uint64_t>(x.sum);
    auto join = caf::meta::load_callback([&]() -> caf::error {
      x.sum = (static_cast<int128>(hi) * (int128{1} << 64))
              + static_cast<int128>(lo);
      return caf::error{};
    });
    return f(caf::meta::type_name("flow.aggregate"), hi, lo, x.count, x.min,
             x.max, x.states, join);
  }
};

/// @relates aggregate
inline bool operator==(const aggregate& x, const aggregate& y) noexcept {
  return x.sum == y.sum && x.count == y.count && x.min == y.min
         && x.max == y.max && x.states.equals(y.states);
}

/// @relates aggregate
inline bool operator!=(const aggregate& x, const aggregate& y) noexcept {
  return !(x == y);
}

/// Exact sum of `n` int64 values in one vectorised pass (64-bit lanes per
/// block of values, 128 bits where a block could overflow).
int128 exact_sum(const std::int64_t* xs, std::size_t n) noexcept;

} // namespace flow
