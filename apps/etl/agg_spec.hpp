#pragma once

// What `flow-etl aggregate` and job files say a job computes, parsed from
// text: the --agg list ("sum(cents), count(*), quantile(ms, 0.95) AS p95"),
// the --group-by list and the column types read from the catalog. Pure
// parsing, no database: the app tests check it directly.

#include <cstddef>
#include <string>
#include <vector>

namespace flow::apps {

/// The aggregate functions of `flow-etl aggregate`.
enum class agg_func {
  /// sum(col): exact (integers and numeric: numeric; floats: correctly
  /// rounded double).
  sum,
  /// count(*): rows.
  count_rows,
  /// count(col): non-NULL values.
  count,
  /// count(distinct col): exact number of distinct non-NULL values.
  count_distinct,
  /// approx_count_distinct(col): HyperLogLog estimate (flow::hll).
  approx_count_distinct,
  /// avg(col).
  avg,
  /// min(col).
  min,
  /// max(col).
  max,
  /// stddev(col): sample standard deviation, as PostgreSQL's stddev.
  stddev,
  /// quantile(col, q): KLL sketch estimate (flow::kll).
  quantile,
};

/// The function's name as written in --agg ("count_distinct" for
/// count(distinct ...)).
const char* func_name(agg_func f);

/// One aggregate of the --agg list.
struct agg_expr {
  /// The function.
  agg_func func = agg_func::count_rows;
  /// The column (exactly as the catalog spells it); empty for count(*).
  std::string column;
  /// quantile's q, in [0, 1].
  double q = 0;
  /// q as written (for the default output name).
  std::string q_text;
  /// The output name: the alias, or the default (see `default_name`).
  std::string name;
  /// The expression as written, for messages.
  std::string text;
};

/// The default output name of `e`: "count" for count(*), else FUNC_COL
/// ("sum_cents", "count_distinct_user_id", "quantile_latency_0.95").
std::string default_name(const agg_expr& e);

/// Parses a comma-separated list of aggregates, each optionally followed by
/// `AS alias` (function names and AS in any case; column names and aliases
/// bare or double-quoted, "" for a quote inside). Throws usage_error naming
/// the offending expression and what is wrong; also on duplicate output
/// names and an empty list. `what` names the source ("--agg").
std::vector<agg_expr> parse_agg_list(const std::string& text,
                                     const std::string& what = "--agg");

/// Parses a comma-separated list of column names (bare, or double-quoted
/// with "" for a quote); an empty text is an empty list. Names are taken
/// exactly as written (no case folding), as --table takes a table name.
/// Throws usage_error on an empty name, an unterminated quote or a name
/// given twice.
std::vector<std::string> parse_name_list(const std::string& text,
                                         const std::string& what
                                         = "--group-by");

/// How the program reads and aggregates a column of some SQL type.
enum class col_class {
  /// smallint, integer, bigint.
  integer,
  /// numeric, with or without precision and scale.
  numeric,
  /// real, double precision.
  floating,
  /// text, varchar, char.
  text,
  /// boolean.
  boolean,
  /// date.
  date,
  /// timestamp without time zone.
  timestamp,
  /// timestamp with time zone.
  timestamptz,
  /// Any other type: a group key (by its text) and count/count(distinct)
  /// only.
  other,
};

/// The class of the PostgreSQL type named `typname` (pg_type.typname, e.g.
/// "int8", "numeric", "float8", "varchar", "timestamptz").
col_class class_of_type(const std::string& typname);

/// A column of the source as the catalog describes it.
struct column_info {
  /// Its name.
  std::string name;
  /// Its type as format_type prints it ("numeric(12,2)"), for output tables.
  std::string type;
  /// How it is read.
  col_class cls = col_class::other;
};

/// Checks that `e` applies to a column of class `cls` (type name `type`);
/// returns an empty string when it does, else why not ("sum() needs a
/// numeric column; \"city\" is text").
std::string check_applicable(const agg_expr& e, col_class cls,
                             const std::string& type);

/// The SQL type of `e`'s output for a column of class `cls` and type
/// `type`: "bigint" for counts, "numeric" for exact sums and averages of
/// integers and decimals, "double precision" for floating-point results,
/// the source type for min and max.
std::string output_type(const agg_expr& e, col_class cls,
                        const std::string& type);

} // namespace flow::apps
