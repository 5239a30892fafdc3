#pragma once

/// @file
/// Aggregators of any kind: user-defined mergeable per-key states.
///
/// An *aggregator state* `S` is a plain copyable class that describes one
/// aggregate by its parts (Beam's CombineFn collapsed into its accumulator):
/// - **create**: a copy of a prototype state (its default constructor gives the
///   empty state with default parameters; parameters such as a sketch's
///   precision are part of the state, so they travel with it);
/// - **add**: one or more `add(...)` members for one element, and optionally a
///   batch overload such as `add(const double* xs, std::size_t n)` (the fast
///   path a reducer may call with a whole batch);
/// - **merge**: `bool merge(const S& other)` (or `void merge(...)` when it
///   cannot fail); associative; false, and this state unchanged, when the two
///   states cannot be merged (different parameters) or the result cannot be
///   represented (overflow) -- the job then fails with `errc::overflow`
///   instead of giving a wrong answer;
/// - **extract**: whatever result accessors the type offers (`value()`,
///   `estimate()`, `quantile(q)`, ...);
/// - `static std::string state_name()`: the unique name it is registered
///   under (worker nodes and the manager find the type by it);
/// - optionally `bool ok() const`: false when the state cannot represent its
///   result (a decimal sum beyond 38 digits); checked on the final states, so
///   the job fails with `errc::overflow` exactly when the data's result does
///   not fit, whatever the split;
/// - a CAF `inspect` function, so the state travels to and from worker nodes
///   and into sinks. A state type without one works in local jobs and refuses
///   distribution (`pipeline::distribute_as`) with `errc::not_serializable`.
///
/// A job's per-key row is laid out by an `aggregators` object: each `add`
/// returns a typed `column<S>` handle that reducers use to reach the key's
/// state and that reads the state back from the result:
///
/// @code
/// flow::aggregators aggs;
/// auto price = aggs.add("price", flow::exact_moments{});
/// auto res = flow::pipeline<sale>{}
///              .add(flow::from_container(sales))
///              .aggregate_with(aggs)
///              .reduce(flow::per_element<sale>([=](const sale& s,
///                                                   flow::partial& out) {
///                out.add(s.city, price, s.dollars);
///              }))
///              .run();
/// for (auto& k : res->keys)
///   std::cout << flow::to_string(k.key) << ' ' << price.of(k).mean() << '\n';
/// @endcode
///
/// The manager holds `key -> row` through type erasure compiled once per state
/// type (`state_ops`); the engine itself stays compiled once, and the built-in
/// int64 aggregate (`aggregate::sum`, `count`, `min`, `max`) keeps its own
/// vectorised path beside the row. See docs/aggregates.md.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <typeinfo>
#include <utility>
#include <vector>

#include <caf/deserializer.hpp>
#include <caf/detail/type_traits.hpp>
#include <caf/error.hpp>
#include <caf/serializer.hpp>

#include "flow/aggregate.hpp"
#include "flow/result.hpp"

namespace flow {

/// The operations on one aggregator state type, compiled once per type and
/// registered by name (see `state_ops_of`).
struct state_ops {
  /// The registered name (`S::state_name()`).
  std::string name;
  /// The state type.
  const std::type_info* type = nullptr;
  /// True when the state has an `inspect` function (it may cross processes).
  bool serializable = false;
  /// A default-constructed state (to load into).
  void* (*create)() = nullptr;
  /// A copy of the state at the address.
  void* (*clone)(const void*) = nullptr;
  /// Deletes a state made by `create` or `clone`.
  void (*destroy)(void*) noexcept = nullptr;
  /// Merges the second state into the first; false on failure.
  bool (*merge)(void*, const void*) = nullptr;
  /// Compares two states.
  bool (*equal)(const void*, const void*) = nullptr;
  /// False when the state could not represent an addition (null: always ok).
  bool (*ok)(const void*) = nullptr;
  /// Writes the state (null when not serialisable).
  caf::error (*save)(caf::serializer&, void*) = nullptr;
  /// Reads the state (null when not serialisable).
  caf::error (*load)(caf::deserializer&, void*) = nullptr;
  /// sizeof and alignof the state: a `state_row` constructs states in its
  /// own block with the four functions below (0: allocated on its own).
  std::size_t size = 0;
  /// alignof the state.
  std::size_t align = 0;
  /// Default-constructs a state at the address (raw storage).
  void (*create_at)(void*) = nullptr;
  /// Copy-constructs a state at the first address from the second.
  void (*copy_at)(void*, const void*) = nullptr;
  /// Move-constructs a state at the first address from the second, then
  /// destroys the second (null: the state is not nothrow-movable).
  void (*relocate)(void*, void*) noexcept = nullptr;
  /// Destroys a state made by the three above (the storage is not freed).
  void (*destruct)(void*) noexcept = nullptr;
  /// The type's place in the process's registry (1, 2, ...; 0 until
  /// registered): a `state_row` keeps this 4-byte index per column instead
  /// of a pointer to these operations.
  std::uint32_t index = 0;
};

namespace detail {

/// Bound of `state_ops::index` (exclusive).
constexpr std::size_t max_state_types = 65536;

/// Adds `ops` to the process-wide registry of state types and returns the
/// registry's copy, which lives as long as the process and carries its
/// `index`; the same type registered again (another instantiation of
/// `state_ops_of`) gets the first copy. The registry is libflow's: a
/// process links one libflow (rows carry indexes into it). Throws
/// std::logic_error when another type is registered under the same name,
/// or when 65535 types are registered.
const state_ops& register_state(state_ops ops);

/// The registered operations of index `index` (`state_ops::index`); the
/// index must come from a registered type.
const state_ops& state_ops_at(std::uint32_t index) noexcept;

template <class S, class = void>
struct has_ok : std::false_type {};

template <class S>
struct has_ok<S, std::void_t<decltype(std::declval<const S&>().ok())>>
  : std::true_type {};

template <class S, class = void>
struct has_equal : std::false_type {};

template <class S>
struct has_equal<S, std::void_t<decltype(std::declval<const S&>()
                                         == std::declval<const S&>())>>
  : std::true_type {};

template <class S>
bool merge_state(S& x, const S& y) {
  using result = decltype(x.merge(y));
  if constexpr (std::is_same<result, bool>::value) {
    return x.merge(y);
  } else {
    x.merge(y);
    return true;
  }
}

template <class S>
state_ops make_state_ops() {
  static_assert(std::is_default_constructible<S>::value,
                "an aggregator state needs a default constructor");
  static_assert(std::is_copy_constructible<S>::value,
                "an aggregator state must be copyable");
  state_ops ops;
  ops.name = S::state_name();
  ops.type = &typeid(S);
  ops.create = []() -> void* { return new S(); };
  ops.clone = [](const void* p) -> void* {
    return new S(*static_cast<const S*>(p));
  };
  ops.destroy = [](void* p) noexcept { delete static_cast<S*>(p); };
  ops.merge = [](void* x, const void* y) {
    return merge_state(*static_cast<S*>(x), *static_cast<const S*>(y));
  };
  if constexpr (std::is_nothrow_move_constructible<S>::value
                && std::is_nothrow_destructible<S>::value) {
    ops.size = sizeof(S);
    ops.align = alignof(S);
    ops.create_at = [](void* p) { new (p) S(); };
    ops.copy_at = [](void* p, const void* x) {
      new (p) S(*static_cast<const S*>(x));
    };
    ops.relocate = [](void* p, void* x) noexcept {
      new (p) S(std::move(*static_cast<S*>(x)));
      static_cast<S*>(x)->~S();
    };
    ops.destruct = [](void* p) noexcept { static_cast<S*>(p)->~S(); };
  }
  if constexpr (has_equal<S>::value)
    ops.equal = [](const void* x, const void* y) {
      return static_cast<bool>(*static_cast<const S*>(x)
                               == *static_cast<const S*>(y));
    };
  else
    ops.equal = [](const void* x, const void* y) { return x == y; };
  if constexpr (has_ok<S>::value)
    ops.ok = [](const void* x) {
      return static_cast<bool>(static_cast<const S*>(x)->ok());
    };
  if constexpr (caf::detail::is_inspectable<caf::serializer, S>::value) {
    ops.serializable = true;
    ops.save = [](caf::serializer& f, void* p) -> caf::error {
      return f(*static_cast<S*>(p));
    };
    ops.load = [](caf::deserializer& f, void* p) -> caf::error {
      return f(*static_cast<S*>(p));
    };
  }
  return ops;
}

} // namespace detail

/// The operations of state type `S`, registered under `S::state_name()` on
/// first use.
template <class S>
const state_ops& state_ops_of() {
  static const state_ops& ops
    = detail::register_state(detail::make_state_ops<S>());
  return ops;
}

/// The registered operations named `name`, or nullptr.
const state_ops* find_state_ops(const std::string& name);

/// A typed handle on one column of a job's per-key row: reducers reach a
/// key's state through it (`partial::state`, `partial::add`) and it reads
/// the state back from results. Cheap to copy; capture it in reducers.
template <class S>
class column {
public:
  /// The state type.
  using state_type = S;

  /// A column at `index` whose states start as copies of `prototype`;
  /// `shape`, when given, is the room of the whole row (see
  /// `aggregators::add`).
  column(std::uint32_t index, std::string name, S prototype,
         std::shared_ptr<const row_shape> shape = nullptr)
    : index_(index),
      name_(std::make_shared<const std::string>(std::move(name))),
      prototype_(std::make_shared<const S>(std::move(prototype))),
      ops_(&state_ops_of<S>()),
      shape_(std::move(shape)) {
    // nop
  }

  /// Position in the row.
  std::uint32_t index() const noexcept {
    return index_;
  }

  /// The column's name (for output).
  const std::string& name() const noexcept {
    return *name_;
  }

  /// The state every key starts from.
  const S& prototype() const noexcept {
    return *prototype_;
  }

  /// The type's operations.
  const state_ops& ops() const noexcept {
    return *ops_;
  }

  /// The room of the layout's whole row, or nullptr for a column made on
  /// its own.
  const row_shape* shape() const noexcept {
    return shape_.get();
  }

  /// The key's state in `agg`, or nullptr when no element reached it.
  const S* find(const aggregate& agg) const {
    return static_cast<const S*>(agg.states.get(index_, *ops_));
  }

  /// The key's state in `agg`; the (empty) prototype when no element
  /// reached it.
  const S& of(const aggregate& agg) const {
    auto p = find(agg);
    return p ? *p : *prototype_;
  }

  /// The key's state in `row`, created from the prototype when absent (for
  /// reducers working on `partial::row`, and for sequential references).
  /// Creating a state may move the row's other states (see `state_row`):
  /// take references to them after the last column is created.
  S& at(aggregate& row) const {
    return *static_cast<S*>(row.states.get_or_create(
      index_, *ops_, prototype_.get(), shape_.get()));
  }

  /// The state of a result's key (see `of(const aggregate&)`).
  const S& of(const key_result& k) const {
    return of(k.agg);
  }

private:
  std::uint32_t index_;
  std::shared_ptr<const std::string> name_;
  std::shared_ptr<const S> prototype_;
  const state_ops* ops_;
  // The layout's row, shared by its columns (complete once the job is set
  // up, before any reducer runs).
  std::shared_ptr<const row_shape> shape_;
};

/// The layout of a job's per-key row: which aggregator states each key
/// holds besides the built-in int64 aggregate. Pass it to
/// `pipeline::aggregate_with` so the job knows its states (to check that
/// they can be distributed, and to name them in output).
class aggregators {
public:
  /// What the job knows of one column.
  struct info {
    /// The column's name.
    std::string name;
    /// The state type's operations.
    const state_ops* ops;
  };

  /// Adds a column whose states start as copies of `prototype` and returns
  /// its handle. Throws std::invalid_argument on a duplicate name.
  template <class S>
  column<S> add(std::string name, S prototype = S{}) {
    check_name(name);
    if (columns_.size() >= 65536)
      throw std::invalid_argument("flow::aggregators::add: more than 65536 "
                                  "columns");
    if (!shape_) // moved from
      shape_ = std::make_shared<row_shape>();
    auto index = static_cast<std::uint32_t>(columns_.size());
    column<S> result{index, name, std::move(prototype), shape_};
    columns_.push_back({std::move(name), &result.ops()});
    grow_shape(result.ops());
    return result;
  }

  /// An empty layout.
  aggregators() = default;

  /// A copy with a row shape of its own (columns added to the copy do not
  /// grow the original's rows).
  aggregators(const aggregators& other)
    : columns_(other.columns_),
      shape_(std::make_shared<row_shape>(other.shape())) {
    // nop
  }

  /// Move.
  aggregators(aggregators&&) noexcept = default;

  /// Copy (see the copy constructor).
  aggregators& operator=(const aggregators& other) {
    if (this != &other) {
      columns_ = other.columns_;
      shape_ = std::make_shared<row_shape>(other.shape());
    }
    return *this;
  }

  /// Move.
  aggregators& operator=(aggregators&&) noexcept = default;

  /// The room of a full row of this layout's states.
  const row_shape& shape() const noexcept {
    static const row_shape none;
    return shape_ ? *shape_ : none;
  }

  /// The columns in order.
  const std::vector<info>& columns() const noexcept {
    return columns_;
  }

  /// Number of columns.
  std::size_t size() const noexcept {
    return columns_.size();
  }

  /// The first column whose state type cannot be serialised, or nullptr.
  const info* first_not_serializable() const noexcept {
    for (auto& c : columns_)
      if (!c.ops->serializable)
        return &c;
    return nullptr;
  }

private:
  void check_name(const std::string& name) const;

  // Adds a column of `ops` to the shape its columns share.
  void grow_shape(const state_ops& ops);

  std::vector<info> columns_;
  std::shared_ptr<row_shape> shape_ = std::make_shared<row_shape>();
};

} // namespace flow
