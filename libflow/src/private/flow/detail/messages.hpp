#pragma once

// The message protocol between generators, reducers and the manager. Every
// message is a plain struct with an `inspect` overload; see docs/protocol.md.
// Private to libflow and not installed: no public header needs it, and it
// pulls in CAF headers. It lives under libflow/src/private/ so that libflow's
// own sources (flow::flow, flow::net) and the tests that check the protocol
// include it by the same name as before, "flow/detail/messages.hpp".

#include <cstdint>
#include <cstring>
#include <memory>
#include <typeinfo>
#include <type_traits>
#include <string>
#include <utility>
#include <vector>

#include <caf/atom.hpp>
#include <caf/error.hpp>
#include <caf/meta/load_callback.hpp>
#include <caf/meta/type_name.hpp>
#include <caf/sec.hpp>

#include "flow/aggregate.hpp"
#include "flow/detail/int_table.hpp"
#include "flow/detail/job_spec.hpp"
#include "flow/error.hpp"
#include "flow/key.hpp"
#include "flow/keyed_value.hpp"
#include "flow/partial.hpp"
#include "flow/result.hpp"

namespace flow::detail {

// -- atoms --------------------------------------------------------------------

using start_atom = caf::atom_constant<caf::atom("f_start")>;
using snapshot_atom = caf::atom_constant<caf::atom("f_snap")>;
using cancel_atom = caf::atom_constant<caf::atom("f_cancel")>;
using commit_atom = caf::atom_constant<caf::atom("f_commit")>;
using committed_atom = caf::atom_constant<caf::atom("f_commitd")>;
using abort_atom = caf::atom_constant<caf::atom("f_abort")>;
using stop_atom = caf::atom_constant<caf::atom("f_stop")>;
using quit_atom = caf::atom_constant<caf::atom("f_quit")>;
/// manager -> combining reducer (with 0), or a reducer's own timer (with
/// the hold's number): answer now for the batches held
/// (options::combine_batches).
using flush_atom = caf::atom_constant<caf::atom("f_flush")>;
using linger_atom = caf::atom_constant<caf::atom("f_linger")>;
/// worker node -> manager: (join_atom, reducer, node name) adds a reducer.
using join_atom = caf::atom_constant<caf::atom("f_join")>;
using drain_timeout_atom = caf::atom_constant<caf::atom("f_draint")>;
/// manager -> itself: publish the job's statistics (options::stats_interval).
using stats_atom = caf::atom_constant<caf::atom("f_stats")>;
/// manager -> itself: look for batches held too long (options::speculation).
using speculate_atom = caf::atom_constant<caf::atom("f_spec")>;
/// manager -> local reducer: the input has ended; free the spare `ints`
/// storage (int_storage) and keep no more, so that it does not add to the
/// job's peak while the keys are gathered.
using spares_atom = caf::atom_constant<caf::atom("f_spares")>;
/// manager -> manager shard (a request): how many keys it holds.
using shard_count_atom = caf::atom_constant<caf::atom("f_shardn")>;
/// manager shard -> manager: one shard_merge is merged (flow control).
using shard_done_atom = caf::atom_constant<caf::atom("f_shardd")>;

// -- messages -----------------------------------------------------------------

/// manager -> generator: credit for `n` more batches.
struct demand {
  std::uint32_t n = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, demand& x) {
  return f(caf::meta::type_name("flow.demand"), x.n);
}

/// generator -> manager -> reducer: one batch of elements.
struct batch {
  /// Index of the emitting source.
  std::uint32_t source = 0;
  /// Sequence number within the source: (source, seq) is the batch id.
  std::uint64_t seq = 0;
  /// Index of the first element within the source.
  std::uint64_t first = 0;
  /// The source's label.
  flow::key label;
  /// The elements: a view into shared storage locally, by value remotely.
  erased_slice items;
  /// 0: fold the batch; 1: the batch failed every retry, so fold it in
  /// halves down to the failing elements and report those as dead letters;
  /// 2 (`fold_alone`): fold it and answer for it alone, never combined with
  /// other batches (a speculative second attempt: its answer must be its
  /// own, so that the first answer of either attempt can be merged).
  std::uint8_t bisect = 0;
};

/// batch::bisect's value for a batch a reducer must answer for alone.
constexpr std::uint8_t fold_alone = 2;

/// The wire tag of an int64 batch sent as one block of little-endian bytes.
constexpr std::uint8_t raw_int64_le = 0x81;

/// True on little-endian hosts (all the machines CAF 0.17 targets here).
constexpr bool little_endian() noexcept {
  return __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__;
}

/// Writes a slice by value, for inspect() below.
template <class Inspector>
typename Inspector::result_type save_slice(Inspector& f, erased_slice& x) {
  auto kind = static_cast<std::uint8_t>(x.kind);
  using result_type = typename Inspector::result_type;
  switch (x.kind) {
    case element_kind::int64: {
      constexpr bool text = std::is_same<result_type, void>::value;
      if constexpr (!text && little_endian()) {
        // One block of raw bytes: CAF copies a byte sequence at once,
        // while a vector of int64 goes through a virtual call per element
        // (about 10x slower). Tagged, so a big-endian peer would refuse.
        std::vector<char> bytes(x.size * sizeof(std::int64_t));
        if (x.deferred())
          x.materialize(x.owner.get(), x.first, x.size, bytes.data());
        else if (x.size > 0)
          std::memcpy(bytes.data(), x.data, bytes.size());
        auto raw = raw_int64_le;
        return f(raw, bytes);
      } else {
        std::vector<std::int64_t> xs;
        if (x.deferred()) {
          // A recipe crosses the network as the elements it stands for.
          xs.resize(x.size);
          x.materialize(x.owner.get(), x.first, x.size, xs.data());
        } else {
          auto p = static_cast<const std::int64_t*>(x.data);
          xs.assign(p, p + x.size);
        }
        return f(kind, xs);
      }
    }
    case element_kind::keyed: {
      auto p = static_cast<const keyed_value*>(x.data);
      std::vector<keyed_value> xs(p, p + x.size);
      return f(kind, xs);
    }
    case element_kind::packed:
      if constexpr (std::is_same<Inspector, caf::serializer>::value) {
        if (x.packer == nullptr)
          return make_error(errc::not_serializable,
                            "a batch of packed elements without a packer");
        auto name = x.packer->name;
        if (auto err = f(kind, name))
          return err;
        return x.packer->save(f, x);
      }
      [[fallthrough]];
    default: {
      if constexpr (std::is_same<result_type, void>::value) {
        // Rendering as text (deep_to_string) cannot fail: show the size.
        auto size = static_cast<std::uint64_t>(x.size);
        return f(kind, size);
      } else {
        return make_error(errc::not_serializable,
                          "a batch of elements of a user type cannot be "
                          "serialised; use int64 or keyed_value elements "
                          "to cross processes");
      }
    }
  }
}

/// Reads a slice written by save_slice into storage of its own, for inspect()
/// below.
template <class Inspector>
typename Inspector::result_type load_slice(Inspector& f, erased_slice& x) {
  auto kind = static_cast<std::uint8_t>(x.kind);
  using result_type = typename Inspector::result_type;
  if (auto res = f(kind); res != result_type{})
    return res;
  if (kind == raw_int64_le) {
    if constexpr (!little_endian()) {
      return make_error(errc::not_serializable,
                        "a batch of little-endian int64 cannot be read on "
                        "this big-endian host");
    } else {
      std::vector<char> bytes;
      if (auto res = f(bytes); res != result_type{})
        return res;
      if (bytes.size() % sizeof(std::int64_t) != 0)
        return caf::make_error(caf::sec::invalid_argument);
      auto xs = std::make_shared<std::vector<std::int64_t>>(
        bytes.size() / sizeof(std::int64_t));
      if (!bytes.empty())
        std::memcpy(xs->data(), bytes.data(), bytes.size());
      x.data = xs->data();
      x.size = xs->size();
      x.owner = std::move(xs);
      x.kind = element_kind::int64;
      x.materialize = nullptr;
      x.first = 0;
      x.elem_size = sizeof(std::int64_t);
      return result_type{};
    }
  }
  auto load = [&](auto proto) -> result_type {
    using value_type = decltype(proto);
    auto xs = std::make_shared<std::vector<value_type>>();
    if (auto res = f(*xs); res != result_type{})
      return res;
    x.data = xs->data();
    x.size = xs->size();
    x.owner = std::move(xs);
    x.kind = static_cast<element_kind>(kind);
    x.materialize = nullptr;
    x.first = 0;
    x.elem_size = sizeof(value_type);
    return result_type{};
  };
  if (static_cast<element_kind>(kind) == element_kind::packed) {
    if constexpr (std::is_same<Inspector, caf::deserializer>::value) {
      std::string name;
      if (auto err = f(name))
        return err;
      auto ops = find_element_ops(name);
      if (ops == nullptr)
        return make_error(errc::not_serializable,
                          "a batch of elements of type '" + name
                            + "', which this process does not know (no "
                              "reducer over them is registered)");
      x.kind = element_kind::packed;
      x.packer = ops;
      return ops->load(f, x);
    } else {
      return caf::make_error(caf::sec::unknown_type);
    }
  }
  switch (static_cast<element_kind>(kind)) {
    case element_kind::int64:
      return load(std::int64_t{});
    case element_kind::keyed:
      return load(keyed_value{});
    default:
      return caf::make_error(caf::sec::unknown_type);
  }
}

/// Serialises a slice by value (a remote reducer cannot share our memory);
/// locally CAF never serialises, so views stay zero-copy.
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, erased_slice& x) {
  if constexpr (Inspector::reads_state)
    return save_slice(f, x);
  else
    return load_slice(f, x);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, batch& x) {
  return f(caf::meta::type_name("flow.batch"), x.source, x.seq, x.first,
           x.label, x.items, x.bisect);
}

/// One more batch a partial covers (options::combine_batches): a reducer
/// that found batches waiting in its mailbox folded them into one partial.
struct batch_part {
  std::uint32_t source = 0;
  std::uint64_t seq = 0;
  /// Number of elements of that batch the reducer consumed.
  std::uint64_t size = 0;
  /// Of those, rejected.
  std::uint64_t rejected = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, batch_part& x) {
  return f(caf::meta::type_name("flow.batch_part"), x.source, x.seq, x.size,
           x.rejected);
}

/// reducer -> manager: the partial aggregate of one batch, or of several
/// (`more`: a combining local reducer, options::combine_batches).
struct partial_msg {
  std::uint32_t source = 0;
  std::uint64_t seq = 0;
  /// Number of elements the reducer consumed (must equal the batch size).
  std::uint64_t size = 0;
  /// Elements rejected; the rest of `size` was aggregated.
  std::uint64_t rejected = 0;
  /// Integer keys with the built-in aggregate only (compact).
  std::vector<int_entry> ints;
  /// Empty, or `ints` grouped by manager shard (a local reducer of a job
  /// with shards): group g ends at `int_ends[g]`, so that the manager need
  /// not group them itself. Never crosses processes.
  std::vector<std::uint32_t> int_ends;
  /// The other keys.
  std::vector<partial::entry> entries;
  std::vector<std::pair<std::string, std::uint64_t>> reasons;
  /// Set when folding pre-aggregated values overflowed inside the reducer.
  bool overflow = false;
  /// Rows emitted for the sink: a std::vector<O> (local only), or null.
  /// Elements the reducer function failed on (bisect mode only).
  std::vector<dead_letter> dead;
  std::shared_ptr<void> rows;
  /// typeid(O) of `rows`.
  const std::type_info* row_type = nullptr;
  /// Number of rows in `rows`.
  std::uint64_t row_count = 0;
  /// The other batches folded into this partial, after (source, seq), in
  /// the order folded; their elements' keys are in `ints` and `entries`,
  /// their rejections in `reasons`. Never with rows or dead letters.
  std::vector<batch_part> more;
};

/// manager or shard -> local reducer: the emptied storage of a partial's
/// `ints`, for the reducer's next partial. A fresh vector of a few MiB per
/// batch faulted in new pages on the reducer and was trimmed away again by
/// the thread that freed it (docs/benchmarks.md, "Speed with many keys").
struct int_storage {
  /// Storage only: the entries are stale and overwritten by the next
  /// partial. They are kept (not cleared) so that filling the vector again
  /// does not first construct every 48-byte entry (4-5 % of the CPU of
  /// flow-keyed at 10^6 keys went to that).
  std::vector<int_entry> entries;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, int_storage& x) {
  return f(caf::meta::type_name("flow.int_storage"), x.entries);
}

/// Rows of a user type cannot cross processes: serialising a message that
/// carries some fails with errc::not_serializable.
template <class Inspector>
typename Inspector::result_type refuse_rows(Inspector& f, std::uint64_t n) {
  using result_type = typename Inspector::result_type;
  if constexpr (std::is_same<result_type, void>::value) {
    return f(n);
  } else {
    if (Inspector::reads_state && n > 0)
      return make_error(errc::not_serializable,
                        "emitted rows cannot be serialised");
    return f(n);
  }
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, partial_msg& x) {
  using result_type = typename Inspector::result_type;
  if constexpr (std::is_same<result_type, void>::value) {
    f(caf::meta::type_name("flow.partial"), x.source, x.seq, x.size,
      x.rejected, x.ints, x.entries, x.reasons, x.overflow, x.dead, x.more);
    return refuse_rows(f, x.row_count);
  } else {
    if (auto err = f(caf::meta::type_name("flow.partial"), x.source, x.seq,
                     x.size, x.rejected, x.ints, x.entries, x.reasons, x.overflow,
                     x.dead, x.more))
      return err;
    return refuse_rows(f, x.row_count);
  }
}

/// manager -> sink: the rows of one merged batch.
struct sink_write {
  std::uint32_t source = 0;
  std::uint64_t seq = 0;
  /// The batch's first element index and element count (for sinks that
  /// checkpoint how far each source got).
  std::uint64_t first = 0;
  std::uint64_t size = 0;
  /// The batch's dead letters, written with its rows.
  std::vector<dead_letter> dead;
  std::shared_ptr<void> rows;
  std::uint64_t row_count = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, sink_write& x) {
  using result_type = typename Inspector::result_type;
  if constexpr (std::is_same<result_type, void>::value) {
    f(caf::meta::type_name("flow.sink_write"), x.source, x.seq, x.first,
      x.size, x.dead);
    return refuse_rows(f, x.row_count);
  } else {
    if (auto err = f(caf::meta::type_name("flow.sink_write"), x.source,
                     x.seq, x.first, x.size, x.dead))
      return err;
    return refuse_rows(f, x.row_count);
  }
}

/// sink -> manager: the rows of a batch are written.
struct sink_written {
  std::uint32_t source = 0;
  std::uint64_t seq = 0;
  std::uint64_t row_count = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, sink_written& x) {
  return f(caf::meta::type_name("flow.sink_written"), x.source, x.seq,
           x.row_count);
}

/// sink -> manager: the rows written so far to each output of a sink with
/// several (cumulative, so a later message replaces an earlier one).
struct sink_outputs {
  std::vector<std::string> names;
  std::vector<std::uint64_t> rows;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, sink_outputs& x) {
  return f(caf::meta::type_name("flow.sink_outputs"), x.names, x.rows);
}

/// sink -> manager: writing or committing failed.
struct sink_failed {
  caf::error reason;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, sink_failed& x) {
  return f(caf::meta::type_name("flow.sink_failed"), x.reason);
}

/// reducer -> manager: the user function threw on a batch.
struct batch_failed {
  std::uint32_t source = 0;
  std::uint64_t seq = 0;
  std::uint64_t first = 0;
  std::uint64_t size = 0;
  std::string what;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, batch_failed& x) {
  return f(caf::meta::type_name("flow.batch_failed"), x.source, x.seq,
           x.first, x.size, x.what);
}

/// generator -> manager: the source ended after `batches` batches holding
/// `elements` elements in all.
struct source_done {
  std::uint32_t source = 0;
  std::uint64_t batches = 0;
  std::uint64_t elements = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, source_done& x) {
  return f(caf::meta::type_name("flow.source_done"), x.source, x.batches,
           x.elements);
}

/// generator -> manager: the source failed; nothing more comes from it.
struct source_failed {
  std::uint32_t source = 0;
  caf::error reason;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, source_failed& x) {
  return f(caf::meta::type_name("flow.source_failed"), x.source, x.reason);
}

// -- manager shards (options::manager_shards) -----------------------------------

/// manager -> manager shard: the keys of one merged partial that hash to
/// this shard. The manager applied the batch id once before it routed them,
/// so a shard merges what it gets without a check of its own.
struct shard_merge {
  /// The batch (or batches) the keys come from, for an error message.
  std::string what;
  /// Integer keys with the built-in aggregate only: positions `begin` to
  /// `end` of `block`, the partial's own entries, grouped by shard and
  /// shared by the shards (locally nothing is copied).
  std::shared_ptr<const std::vector<int_entry>> block;
  std::uint64_t begin = 0;
  std::uint64_t end = 0;
  /// The other keys.
  std::vector<partial::entry> entries;
  /// The integer keys.
  const int_entry* ints() const noexcept {
    return block ? block->data() + begin : nullptr;
  }
  /// Number of integer keys.
  std::size_t int_count() const noexcept {
    return static_cast<std::size_t>(end - begin);
  }
};

/// Serialises the shard's range of integer keys by value (a remote shard
/// cannot share our memory).
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, shard_merge& x) {
  std::vector<int_entry> ints;
  if constexpr (Inspector::reads_state)
    if (x.block)
      ints.assign(x.ints(), x.ints() + x.int_count());
  auto publish = caf::meta::load_callback([&]() -> caf::error {
    x.begin = 0;
    x.end = ints.size();
    x.block = std::make_shared<const std::vector<int_entry>>(std::move(ints));
    return caf::error{};
  });
  return f(caf::meta::type_name("flow.shard_merge"), x.what, ints, x.entries,
           publish);
}

/// manager -> manager shard (a request, answered with shard_keys): its keys
/// for a result. `consume`: the last result, the keys move out; `check`:
/// the final result, whose aggregator states must be in their exact range.
struct shard_collect {
  bool consume = false;
  bool check = false;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, shard_collect& x) {
  return f(caf::meta::type_name("flow.shard_collect"), x.consume, x.check);
}

/// manager shard -> manager: its keys, sorted (their source counts are the
/// manager's to fill in): compact while every key of the shard is an
/// integer of the built-in aggregate (`ints`: the shard's own table, sorted,
/// handed over without a copy), else `keys`.
struct shard_keys {
  std::shared_ptr<const int_table> ints;
  std::vector<key_result> keys;
  /// The integer keys, sorted.
  const int_entry* ints_begin() const noexcept {
    return ints ? ints->begin() : nullptr;
  }
  /// Number of integer keys.
  std::size_t int_count() const noexcept {
    return ints ? ints->size() : 0;
  }
};

/// Serialises the integer keys by value.
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, shard_keys& x) {
  std::vector<int_entry> ints;
  if constexpr (Inspector::reads_state)
    ints.assign(x.ints_begin(), x.ints_begin() + x.int_count());
  auto publish = caf::meta::load_callback([&]() -> caf::error {
    // Sorted, and unique: inserted in order, the table keeps that order.
    auto t = std::make_shared<int_table>();
    t->reserve(ints.size());
    for (auto& e : ints)
      if (!t->merge(e))
        return make_error(errc::protocol_violation, "a shard's keys repeat");
    x.ints = std::move(t);
    return caf::error{};
  });
  return f(caf::meta::type_name("flow.shard_keys"), ints, x.keys, publish);
}

/// manager shard -> manager: a merge failed (overflow, memory, an
/// aggregator state's merge that threw); the job fails with `reason`.
struct shard_failed {
  std::uint32_t shard = 0;
  caf::error reason;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, shard_failed& x) {
  return f(caf::meta::type_name("flow.shard_failed"), x.shard, x.reason);
}

} // namespace flow::detail
