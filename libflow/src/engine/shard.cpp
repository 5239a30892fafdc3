// A manager shard (options::manager_shards): one part of a job's keyed
// state, the keys whose hash falls to it. The manager keeps everything else
// -- batches, accounting, the exactly-once check, sinks, statistics -- and
// routes each merged partial's keys here, so that the merging itself, the
// manager's serial bottleneck with many keys, runs on every core. See
// docs/architecture.md, "Manager shards", and docs/protocol.md (the shard
// messages, "Shards and credit", "Shards and results").

#include <algorithm>
#include <exception>
#include <new>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <caf/event_based_actor.hpp>
#include <caf/stateful_actor.hpp>

#include "engine.hpp"
#include "key_map.hpp"
#include "flow/detail/int_table.hpp"
#include "flow/detail/messages.hpp"

namespace flow::detail {

namespace {

/// The keyed state of one shard: integer keys of the built-in aggregate in
/// the compact table until a key is not one (then every key of this shard
/// moves to the general map; other shards decide for themselves).
struct shard_state {
  caf::actor manager;
  std::uint32_t index = 0;
  int_table ints;
  key_map aggregates;
  bool general = false;
  /// A merge failed: the job fails, later merges change nothing.
  bool failed = false;
  static inline const char* name = "flow.shard";
};

using shard_actor_t = caf::stateful_actor<shard_state>;

/// Moves the compact table's keys to the general map.
void go_general(shard_state& st) {
  st.aggregates.reserve(st.ints.size());
  for (auto& e : st.ints)
    *st.aggregates.try_emplace(flow::key{e.key}).first = e.to_aggregate();
  st.ints = int_table{};
  st.general = true;
}

/// Merges `m` into the shard's keys; the reason it failed, or an empty
/// string.
std::string merge(shard_state& st, shard_merge& m) {
  auto overflow = [&](const flow::key& k) {
    return "the aggregate of key '" + to_string(k)
           + "' left the exact 128-bit range while merging " + m.what;
  };
  if (!st.general)
    for (auto& [k, agg] : m.entries)
      if (!k.is_int() || !agg.states.empty()) {
        go_general(st);
        break;
      }
  auto* ints = m.ints();
  auto n = m.int_count();
  if (!st.general) {
    auto bad = st.ints.merge_all(ints, n);
    if (bad != n)
      return overflow(flow::key{ints[bad].key});
    for (auto& [k, agg] : m.entries)
      if (!st.ints[k.as_int()].merge(agg.sum, agg.count, agg.min, agg.max))
        return overflow(k);
    return {};
  }
  for (std::size_t i = 0; i < n; ++i)
    if (!st.aggregates[flow::key{ints[i].key}].merge(ints[i].to_aggregate()))
      return overflow(flow::key{ints[i].key});
  for (auto& [k, agg] : m.entries) {
    // The key moves in when new (the message is this handler's own); a
    // key found stays in the message, for the error below.
    auto [pos, fresh] = st.aggregates.try_emplace(std::move(k));
    if (fresh) {
      // A key this shard has not seen: the partial's aggregate is the
      // running one.
      *pos = std::move(agg);
      continue;
    }
    if (!pos->merge(agg)) {
      // Which part failed: the int64 sum, or an aggregator state.
      auto probe = *pos;
      probe.states = state_row{};
      auto theirs = agg;
      theirs.states = state_row{};
      if (!probe.merge(theirs))
        return overflow(k);
      return "the aggregate of key '" + to_string(k)
             + "' could not be merged exactly while merging " + m.what
             + " (an aggregator state overflowed or has other parameters)";
    }
  }
  return {};
}

void on_merge(shard_actor_t* self, shard_merge& m) {
  auto& st = self->state;
  if (st.failed) {
    self->send(st.manager, shard_done_atom::value);
    return;
  }
  caf::error err;
  try {
    if (auto what = merge(st, m); !what.empty())
      err = make_error(errc::overflow, std::move(what));
  } catch (const std::exception& e) {
    // Memory, or a table's length limit; anything else came from user code
    // (an aggregator state's merge that threw).
    bool memory = dynamic_cast<const std::bad_alloc*>(&e) != nullptr
                  || dynamic_cast<const std::length_error*>(&e) != nullptr;
    err = make_error(memory ? errc::out_of_memory : errc::reducer_failed,
                     (memory ? "the keyed state could not grow while merging "
                             : "an aggregator state's merge threw while "
                               "merging ")
                       + m.what + ": " + e.what());
  } catch (...) {
    err = make_error(errc::reducer_failed,
                     "an aggregator state's merge threw while merging "
                       + m.what + ": unknown exception");
  }
  if (err) {
    st.failed = true;
    self->send(st.manager, shard_failed{st.index, std::move(err)});
  }
  self->send(st.manager, shard_done_atom::value);
}

/// The shard's keys for a result, sorted; an error when the final states
/// are out of their exact range (`c.check`) or memory ran out.
caf::result<shard_keys> on_collect(shard_actor_t* self, shard_collect c) {
  auto& st = self->state;
  shard_keys out;
  try {
    if (!st.general) {
      auto t = std::make_shared<int_table>();
      if (c.consume) {
        // The last result: the table itself goes, sorted (no second copy
        // of every key).
        st.ints.sort();
        *t = std::move(st.ints);
      } else {
        t->reserve(st.ints.size());
        for (auto& e : st.ints)
          (*t)[e.key] = e;
        t->sort();
      }
      out.ints = std::move(t);
      return out;
    }
    if (c.check)
      for (auto& [k, agg, unused] : st.aggregates) {
        bool ok = false;
        try {
          ok = agg.states.ok();
        } catch (...) {
          return make_error(errc::reducer_failed,
                            "an aggregator state's ok() threw on the final "
                            "state of key '"
                              + to_string(k) + "'");
        }
        if (!ok)
          return make_error(errc::overflow,
                            "the aggregate of key '" + to_string(k)
                              + "' left the exact range of an aggregator "
                                "state (for example a decimal sum beyond 38 "
                                "digits)");
      }
    // The map's entries are key_results already (sources 0).
    // (Not `?:`: with a const operand its result is const, and copied.)
    if (c.consume)
      out.keys = st.aggregates.take();
    else
      out.keys = st.aggregates.entries();
    std::sort(out.keys.begin(), out.keys.end(),
              [](const key_result& x, const key_result& y) {
                return x.key < y.key;
              });
  } catch (const std::exception& e) {
    return make_error(errc::out_of_memory,
                      std::string{"the result could not be built: "}
                        + e.what());
  }
  return out;
}

caf::behavior shard_actor(shard_actor_t* self, caf::actor manager,
                          std::uint32_t index) {
  self->state.manager = std::move(manager);
  self->state.index = index;
  self->set_default_handler(caf::drop);
  return {
    [=](shard_merge& m) { on_merge(self, m); },
    [=](shard_collect c) -> caf::result<shard_keys> {
      return on_collect(self, c);
    },
    [=](shard_count_atom) -> std::uint64_t {
      auto& st = self->state;
      return st.ints.size() + st.aggregates.size();
    },
  };
}

} // namespace

caf::actor spawn_shard(caf::local_actor* parent, caf::actor manager,
                       std::uint32_t index) {
  return parent->spawn(shard_actor, std::move(manager), index);
}

} // namespace flow::detail
