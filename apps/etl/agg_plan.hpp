#pragma once

// flow-etl aggregate's plan: which columns a job reads, which aggregator
// state each aggregate feeds, how a row is decoded and reduced. Shared by the
// program (aggregate.cpp) and by worker nodes, which rebuild the same plan
// from a task's payload and return the partition's partial states.

#include <atomic>
#include <cstddef>
#include <functional>
#include <memory>
#include <new>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <caf/expected.hpp>

#include "etl/agg_spec.hpp"
#include "etl/agg_values.hpp"
#include "etl/aggregate.hpp"
#include "flow/aggregate.hpp"
#include "flow/aggregator.hpp"
#include "flow/pg/row.hpp"
#include "flow/reducer.hpp"
#include "flow/result.hpp"

namespace caf {
class actor_system;
} // namespace caf

namespace flow {
class exact_fsum;
} // namespace flow

namespace flow::apps {

/// The source's columns by name, in the catalog's order.
struct source_columns {
  /// The columns.
  std::vector<column_info> columns;

  /// The column named `name`, or nullptr.
  const column_info* find(const std::string& name) const {
    for (auto& c : columns)
      if (c.name == name)
        return &c;
    return nullptr;
  }
};

/// The state kinds a value column may feed (one state per column and kind,
/// shared by the aggregates that read it).
enum class state_kind {
  istats,    // int_stats: sum, avg, min, max of integers
  dsum,      // decimal_sum: sum, avg, min, max of decimals
  imoments,  // int_moments: stddev of integers
  fsum,      // exact_fsum: sum, avg of floats
  psum,      // part_fsum: sum, avg of floats pushed down
  isum,      // int_sum: sum, avg of integers pushed down
  nsum,      // dec_sum: sum, avg of decimals pushed down
  dmin,      // decimal_extreme<false>: min of decimals pushed down
  dmax,      // decimal_extreme<true>: max of decimals pushed down
  fmoments,  // exact_moments: stddev of floats and decimals
  frange,    // double_range: min, max of floats
  irange,    // int_range: min, max of dates and timestamps
  srange,    // text_range: min, max of text
  count,     // row_count: count(col), count(*)
  distinct,  // distinct_count
  hll,       // hll
  kll,       // kll
};

/// One state of the per-group row.
struct slot {
  /// What the state is.
  state_kind kind;
  /// Index into the read columns; -1: every row (count(*)).
  int col = -1;
  /// A second read column that feeds the same state, or -1: pushed down, a
  /// column's partial min and max go into one range (one state and one
  /// column of a group's row instead of two).
  int col2 = -1;
  /// Adds a row's cell to the group's row.
  std::function<void(aggregate&, const cell&)> add;
  /// Reads the state back: a type-erased pointer to it, or null.
  std::function<const void*(const aggregate&)> get;
};

/// One aggregate as planned.
struct planned_agg {
  /// The expression.
  agg_expr expr;
  /// Index into the read columns; -1 for count(*).
  int col = -1;
  /// The column's class, SQL type and the output's SQL type.
  col_class cls = col_class::other;
  /// The column's SQL type.
  std::string source_type;
  /// The output column's SQL type.
  std::string out_type;
  /// The slot it reads.
  std::size_t slot = 0;
  /// Pushed down, avg's second slot: the count of its column.
  std::size_t slot2 = 0;
};

/// A job, planned against the catalog.
struct job_plan {
  /// The job.
  agg_job job;
  /// The columns read, in order: the group columns, then the value columns
  /// that are not group columns.
  std::vector<column_info> read;
  /// Per group column, its index in `read`.
  std::vector<std::size_t> group_cols;
  /// The aggregates in output order.
  std::vector<planned_agg> aggs;
  /// The states of a group's row.
  std::vector<slot> slots;
  /// The server's estimate of the groups (EXPLAIN of the job's GROUP BY),
  /// 0 when there is none: a hint for the manager (options::expected_keys),
  /// never a limit.
  std::size_t expected_groups = 0;
  /// The row's layout for the job.
  aggregators layout;
  /// Per read column: a numeric whose value is also needed as a double
  /// (stddev, quantile).
  std::vector<bool> numeric_double;
  /// True when the server computes partial aggregates per partition
  /// (`plan_pushdown`): `read` then holds the group columns followed by the
  /// server's expressions (`push_exprs`), each a field of the partitions'
  /// GROUP BY.
  bool pushdown = false;
  /// Pushed down: the server's expressions, in field order after the group
  /// columns.
  std::vector<std::string> push_exprs;
  /// Pushed down: expressions the partitions also group by, after the group
  /// columns, and that are not fields themselves (the buckets of exact float
  /// sums, `float_sum_bucket`).
  std::vector<std::string> push_groups;
  /// Pushed down: one exact float sum of a `double precision` column.
  struct float_push {
    /// The column, quoted.
    std::string column;
    /// The column's name as in the catalog (for its statistics).
    std::string name;
    /// Its field in `push_exprs` (the bucket form, `float_sum_field`).
    std::size_t expr = 0;
    /// Its bucket expression in `push_groups` (`float_sum_bucket`).
    std::string bucket;
  };
  /// Pushed down: the exact float sums, which `push_float_sums` may compute
  /// in fixed limbs instead of per exponent bucket once the values' range
  /// is known.
  std::vector<float_push> push_floats;
  /// Pushed down: the slot counting the rows behind each group (count(*)).
  std::size_t rows_slot = 0;
};

/// What the source is, for messages: the table, or "--query".
std::string source_name(const agg_job& job);

/// Plans `job` against the source's columns; throws usage_error naming the
/// first problem (a missing column, an aggregate that does not fit its
/// column's type, an output name given twice).
job_plan plan_job(const agg_job& job, const source_columns& src);

/// The push-down form of `rows` (a plan over rows): the server computes
/// count, sum of integers and decimals, min and max per partition and group
/// (all exact), and sums of `double precision` exactly in integers (see
/// `float_sum_bucket` and `float_limbs_field`); the reducers merge those
/// partials into the same kinds of states. Nothing when an aggregate cannot
/// be computed exactly that way (sums and averages of `real`, stddev,
/// distinct counts, sketches): `why_not` then names it.
std::optional<job_plan> plan_pushdown(const job_plan& rows,
                                      std::string& why_not);

/// The server's exact partial float sum of the `double precision` column
/// `col` (quoted), pushed down: the partitions also group by this bucket
/// expression, a multiple of 8 at most the exponent of |col| and within 9
/// of it (from `ln`, whose error moves it by at most one); NaN for NaN,
/// Infinity for both infinities, -1080 for zeros and NULLs.
std::string float_sum_bucket(const std::string& col);

/// The field, per bucket, of `float_sum_bucket`: "B:S", S the server's exact
/// integer sum of col * 2^(52 - B) (exact in float8: a power-of-two scaling
/// to an integer below 2^62); in the non-finite buckets, the number of NaN,
/// or of +inf plus 2^40 times that of -inf.
std::string float_sum_field(const std::string& col);

/// At most this many limbs (212 bits of range: values down to about
/// 10^-47 of the largest, with all their bits) before the buckets are
/// cheaper.
constexpr int max_limbs = 4;

/// The range of a `double precision` column's values in a read: the
/// largest magnitude and the smallest non-zero one (as the server returns
/// them: shortest round-trip text, "NaN" or "Infinity"; empty when the
/// column holds only NULLs or zeros).
struct float_range {
  /// max(abs(col)), or empty.
  std::string max_abs;
  /// min(abs(col)) of the non-zero values, or empty.
  std::string min_abs;
};

/// A magnitude the server printed (from_chars: no locale), or nothing when
/// it is not a finite number at least 0 (NaN, Infinity, anything else).
std::optional<double> finite_magnitude(std::string_view text);

/// The window of an exact float sum in limbs: every |value| < 2^top, and
/// the lowest bit of every value at least 2^(top - 53 * limbs).
struct limb_window {
  /// E: every |value| is below 2^E.
  int top = 1;
  /// K: the number of 53-bit limbs.
  int limbs = 1;
};

/// The window of `float_limbs_field` for values in `r`, or nothing (see
/// there).
std::optional<limb_window> float_limbs_window(const float_range& r);

/// The field of `float_limbs_field` for window `w`.
std::string float_limbs_sql(const std::string& col, limb_window w);

/// Binades of margin above the largest magnitude of a guessed window
/// (`float_guess_window`): values up to 2^8 times the sample's largest fit
/// the window, and up to 2^18 times still fit the first limb's bigint.
constexpr int guess_top_margin = 8;

/// Binades of margin below the smallest non-zero magnitude of a guessed
/// window: values down to 2^-16 times the sample's smallest keep all their
/// bits in the window (the last limb's spare bits add more).
constexpr int guess_low_margin = 16;

/// A limbs window guessed from a sample of the values (the planner's
/// statistics: histogram bounds and most common values), with the margins
/// above; nothing when the sample holds no non-zero finite value, or
/// anything not a finite number, or the window would not fit `max_limbs`.
/// Values outside it are caught by `float_limbs_checked_sql`, never summed
/// wrongly.
std::optional<limb_window> float_guess_window(const float_range& sample);

/// What a field of `float_limbs_checked_sql` holds for a group with a value
/// whose low bits fall below the window.
inline constexpr std::string_view float_outside_field = "outside";

/// The field of `float_limbs_sql`, checked for values the window may not
/// hold: `float_outside_field` for a group with a value whose lowest bit is
/// below 2^(E - 53K) (bool_and of col * 2^(53K - E) = floor of it, over the
/// values below 2^(52 - 53K + E) in magnitude: larger ones are integers
/// once scaled, so cannot fail it). A value
/// of 2^E or more is still summed exactly (its first limb is then larger
/// than 2^53, the others 0) as long as the first limb fits a bigint; beyond
/// (2^(E + 10)), NaN and the infinities, the server fails the query with
/// SQLSTATE 22003 (bigint out of range).
std::string float_limbs_checked_sql(const std::string& col, limb_window w);

/// The limbs of an exact float sum over values known to lie in `r`: with
/// R_k = rint(col * 2^(53k - E)), the server sums, per group, L_1 = R_1 and
/// L_k = R_k - 2^53 * R_(k-1) for k = 2..K, where R_K is col * 2^(53K - E)
/// itself (an integer in the window). Each L_k is an integer of at most
/// 2^53 in magnitude and exact in float8 (a power-of-two scaling, its rint,
/// and a difference that is itself representable), with every |col| < 2^E
/// and the lowest bit of every value at least 2^(E - 53K); the sum of L_k *
/// 2^(E - 53k) telescopes to col. No
/// grouping by a bucket, so the server keeps its parallel hash aggregate.
/// Empty (use the buckets) when `r` holds NaN or an infinity, or the values
/// span more than `max_limbs` * 53 bits, or a scale 2^(53k - E) would not
/// be a double (53K - E above 1000: magnitudes below about 10^-280).
std::optional<std::string> float_limbs_field(const std::string& col,
                                             const float_range& r);


/// The read columns' values of one row: up to `inline_cells` inside the
/// row, more on the heap. Rows are made on the reading thread and freed on
/// a reducer's, so a heap block per row also made the two threads contend
/// for glibc's arena locks (a third of the row path's time in malloc and
/// free, measured with perf). Six inline: the benchmark reads five
/// columns, and a row of six cells inside (608 bytes) is smaller than four
/// inside plus five on the heap.
class cell_list {
public:
  /// Cells held without a heap allocation.
  static constexpr std::size_t inline_cells = 6;

  /// No cells.
  cell_list() noexcept = default;

  /// A copy of `other`'s cells.
  cell_list(const cell_list& other) {
    assign(other);
  }

  /// Takes `other`'s cells; `other` is left empty.
  cell_list(cell_list&& other) noexcept {
    take(std::move(other));
  }

  /// Replaces the cells by a copy of `other`'s.
  cell_list& operator=(const cell_list& other) {
    if (this != &other) {
      clear();
      assign(other);
    }
    return *this;
  }

  /// Replaces the cells by `other`'s; `other` is left empty.
  cell_list& operator=(cell_list&& other) noexcept {
    if (this != &other) {
      clear();
      take(std::move(other));
    }
    return *this;
  }

  /// Destroys the cells.
  ~cell_list() {
    clear();
  }

  /// Makes `n` NULL cells, replacing any. Only those are constructed: a row
  /// of 3 columns does not build and destroy a fourth.
  void resize(std::size_t n) {
    clear();
    if (n > inline_cells) {
      big_.resize(n);
      n_ = n;
      return;
    }
    for (; n_ < n; ++n_) // counted as built: a throw leaves no cell behind
      new (slot(n_)) cell();
  }

  /// The number of cells.
  std::size_t size() const noexcept {
    return n_;
  }

  /// Cell `i`.
  cell& operator[](std::size_t i) noexcept {
    return n_ > inline_cells ? big_[i] : small()[i];
  }

  /// Cell `i`.
  const cell& operator[](std::size_t i) const noexcept {
    return n_ > inline_cells ? big_[i] : small()[i];
  }

private:
  /// Where inline cell `i` is built (no cell may live there yet).
  void* slot(std::size_t i) noexcept {
    return buf_ + i * sizeof(cell);
  }

  /// The inline cells, once built.
  cell* small() noexcept {
    return std::launder(reinterpret_cast<cell*>(buf_));
  }

  const cell* small() const noexcept {
    return std::launder(reinterpret_cast<const cell*>(buf_));
  }

  void clear() noexcept {
    if (n_ <= inline_cells)
      for (std::size_t i = 0; i < n_; ++i)
        small()[i].~cell();
    big_.clear();
    n_ = 0;
  }

  /// Copies `other`'s cells into this empty list.
  void assign(const cell_list& other) {
    if (other.n_ > inline_cells) {
      big_ = other.big_;
      n_ = other.n_;
      return;
    }
    for (; n_ < other.n_; ++n_)
      new (slot(n_)) cell(other.small()[n_]);
  }

  /// Moves `other`'s cells into this empty list.
  void take(cell_list&& other) noexcept {
    if (other.n_ > inline_cells) {
      big_ = std::move(other.big_);
      n_ = other.n_;
    } else {
      for (; n_ < other.n_; ++n_)
        new (slot(n_)) cell(std::move(other.small()[n_]));
    }
    other.clear();
  }

  alignas(cell) unsigned char buf_[inline_cells * sizeof(cell)];
  std::vector<cell> big_;
  std::size_t n_ = 0;
};

/// A row as the reducers see it: the value cells of the read columns.
/// Its group is the composite of the plan's group columns, which the
/// reducer makes (agg_reducer).
struct agg_row {
  /// The read columns' values.
  cell_list cells;
};

/// The rows a batch holds when `--batch` is not given: 16384 rows of up to
/// `cell_list::inline_cells` cells, fewer of wider ones (at least 1024), so
/// that a batch takes about as much memory (10 MB) whatever its rows' width.
/// A push-down's partial rows carry the group columns and the partial
/// fields (2 + 13 = 15 cells for the benchmark's 13 aggregates over two
/// group columns, 2 KB a row), and the batches in flight are most of a
/// job's memory besides its groups.
std::size_t default_batch_rows(std::size_t cells);

/// Decodes rows of the plan's read columns (throws pg::decode_error naming
/// the column of a value that does not decode).
struct row_decoder {
  /// The plan.
  std::shared_ptr<const job_plan> plan;

  /// Pushed down with guessed float windows (`float_limbs_checked_sql`):
  /// set when a row's float sum field is `float_outside_field`, which then
  /// also fails the read, so that the job can run again with the exact
  /// range. Null otherwise.
  std::shared_ptr<std::atomic<bool>> outside;

  /// Decodes one row.
  agg_row operator()(const pg::row_view& r) const;

  /// Decodes one row into `out`, a default-constructed row (in place in a
  /// batch: pg::row_source prefers this form).
  void operator()(const pg::row_view& r, agg_row& out) const;
};

/// The reducer: each row's cells added to its group's states.
reducer<agg_row> agg_reducer(std::shared_ptr<const job_plan> plan);

/// The task kind of one `aggregate --listen` partition.
inline constexpr const char* aggregate_task = "etl.aggregate";

/// The plan as one string for a task's payload: the job's group columns and
/// aggregates and the read columns with their types, from which a worker
/// node rebuilds the identical plan (same columns, same states in the same
/// order) without the catalog.
std::string encode_plan(const job_plan& plan);

/// Rebuilds a plan from `encode_plan`'s output; errc::bad_input when it is
/// malformed.
caf::expected<job_plan> decode_plan(const std::string& text);

/// A worker node's task: reads the partition of `payload` (a
/// pg::partition_ticket whose first extra field is `encode_plan`'s output)
/// in the manager's snapshot through `conninfo` (empty: the ticket's) and
/// returns the partial states per group.
caf::expected<job_result> run_aggregate_partition(caf::actor_system& sys,
                                                  const std::string& conninfo,
                                                  const std::string& payload);

} // namespace flow::apps
