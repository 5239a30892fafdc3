#pragma once

// flow-keyed's --values and --agg: which aggregator columns a job's per-key
// row holds, how one element feeds them (reducers and the sequential
// reference share that code), how a result is verified against the
// reference, and how each aggregate is printed. Worker nodes rebuild the same
// columns from the reducer's name (see register_keyed_agg_factory).

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/json.hpp"
#include "flow/aggregator.hpp"
#include "flow/decimal.hpp"
#include "flow/distinct.hpp"
#include "flow/exact_sum.hpp"
#include "flow/keyed_value.hpp"
#include "flow/quantiles.hpp"
#include "flow/reducer.hpp"
#include "flow/source.hpp"
#include "flow/stats.hpp"

namespace flow::apps {

/// What --values reads.
enum class value_type { int64, f64, decimal };

/// Reads --values: int, double or decimal. Throws usage_error otherwise.
value_type read_value_type(const std::string& text);

/// "int", "double" or "decimal".
const char* name_of(value_type x);

/// Parses a decimal token for the text sources ("is not a decimal number",
/// "has more than 38 significant digits", ...).
std::optional<decimal> parse_decimal_token(std::string_view token,
                                           std::string& why);

/// Lines of `key value` with an exact decimal value.
source<keyed<decimal>> keyed_decimals_from_text_file(std::string path);

/// Whitespace-separated exact decimals.
source<decimal> decimals_from_text_file(std::string path);

/// The aggregates --agg names, in the order given.
struct agg_list {
  std::vector<std::string> names;

  /// True when `name` was asked for.
  bool has(const std::string& name) const;

  /// The names joined by commas.
  std::string str() const;
};

/// Every name --agg knows, in documentation order.
const std::vector<std::string>& known_aggs();

/// The default --agg: today's sum,count,min,max.
const char* default_aggs();

/// Parses --agg. Throws usage_error on an empty list, an unknown name (naming
/// it and the known ones) or a name given twice.
agg_list parse_agg_list(const std::string& text);

/// The columns of one job's per-key row and the code that fills and prints
/// them.
class keyed_aggs {
public:
  /// The columns for `values` and `list`.
  keyed_aggs(value_type values, agg_list list);

  /// The columns, for pipeline::aggregate_with.
  const aggregators& columns() const noexcept {
    return aggs_;
  }

  /// What the values are.
  value_type values() const noexcept {
    return values_;
  }

  /// The aggregates asked for.
  const agg_list& list() const noexcept {
    return list_;
  }

  /// The name worker nodes know the reducer by: it spells out the columns,
  /// so a node rebuilds them (`labelled`: int64 batches keyed by their
  /// source's label, as in the tutorial's sets; else keyed elements).
  std::string reducer_name(bool labelled) const;

  /// The plan a reducer name stands for, or nothing.
  static std::optional<keyed_aggs> from_reducer_name(const std::string& name,
                                                     bool& labelled);

  /// Adds one element to a key's row (reducers use partial::row).
  void add(aggregate& row, std::int64_t x) const;
  /// Adds a batch of int64 values to one key's row.
  void add(aggregate& row, const std::int64_t* xs, std::size_t n) const;
  /// Adds one double.
  void add(aggregate& row, double x) const;
  /// Adds one decimal.
  void add(aggregate& row, const decimal& x) const;

  /// The reducer over int64 batches keyed by their label.
  reducer<std::int64_t> label_reducer() const;
  /// The reducer over `key value` elements with int64 values.
  reducer<keyed_value> int_reducer() const;
  /// The reducer over `key value` elements with double values.
  reducer<keyed<double>> double_reducer() const;
  /// The reducer over `key value` elements with decimal values.
  reducer<keyed<decimal>> decimal_reducer() const;

  /// Number of elements the row holds.
  std::uint64_t count(const aggregate& row) const;

  /// Compares a result row with the sequential reference: exact aggregates
  /// exactly (bit for bit for doubles), the distinct-count sketch by its
  /// estimate (merging registers is exact), quantiles by their rank in the
  /// reference sketch (within twice the sketch's rank error). Sets `why`.
  bool same(const aggregate& got, const aggregate& ref,
            std::string& why) const;

  /// Adds a JSON field per aggregate asked for, named as in --agg. With
  /// `legacy_int`, the int fields flow-keyed always printed (sum, min, max)
  /// are left to the caller.
  void add_json(json_object& obj, const aggregate& row, bool legacy_int) const;

  /// One table cell per aggregate asked for, in --agg order.
  std::vector<std::string> cells(const aggregate& row) const;

  /// The value of one aggregate as JSON text ("null" when it has none).
  std::string json_value(const std::string& name, const aggregate& row) const;

private:
  value_type values_;
  agg_list list_;
  aggregators aggs_;
  std::optional<column<int_moments>> int_moments_;
  std::optional<column<exact_moments>> moments_;
  std::optional<column<double_stats>> dstats_;
  std::optional<column<decimal_sum>> dsum_;
  std::optional<column<distinct_count>> distinct_;
  std::optional<column<hll>> approx_;
  std::optional<column<kll>> quantiles_;
};

/// Lets a worker node build flow-keyed's --agg reducers from their names
/// (flow-node calls it; without flow::net it does nothing).
void register_keyed_agg_factory();

} // namespace flow::apps
