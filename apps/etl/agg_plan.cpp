#include "etl/agg_plan.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>
#include <map>
#include <optional>
#include <stdexcept>
#include <system_error>

#include <caf/actor_system.hpp>

#include "common/cli.hpp"
#include "common/test_hooks.hpp"
#include "etl/node_error.hpp"
#include "flow/distinct.hpp"
#include "flow/exact_sum.hpp"
#include "flow/flow.hpp"
#include "flow/pg/read.hpp"
#include "flow/quantiles.hpp"
#include "flow/stats.hpp"

namespace flow::apps {

namespace {

template <class S, class Add>
void add_slot(job_plan& plan, state_kind kind, int col, Add add_fn,
              S prototype = S{}) {
  auto name = "s" + std::to_string(plan.slots.size());
  auto c = plan.layout.add(name, std::move(prototype));
  slot s;
  s.kind = kind;
  s.col = col;
  s.add = [c, add_fn](aggregate& row, const cell& x) { add_fn(c.at(row), x); };
  s.get = [c](const aggregate& agg) -> const void* { return c.find(agg); };
  plan.slots.push_back(std::move(s));
}

std::size_t slot_for(job_plan& plan, state_kind kind, int col,
                     col_class cls) {
  for (std::size_t i = 0; i < plan.slots.size(); ++i)
    if (plan.slots[i].kind == kind && plan.slots[i].col == col)
      return i;
  switch (kind) {
    case state_kind::istats:
      add_slot<int_stats>(plan, kind, col,
                          [](int_stats& s, const cell& x) { s.add(x.i); });
      break;
    case state_kind::dsum:
      if (cls == col_class::integer)
        add_slot<decimal_sum>(plan, kind, col, [](decimal_sum& s,
                                                   const cell& x) {
          s.add(decimal::of(x.i));
        });
      else
        add_slot<decimal_sum>(plan, kind, col,
                              [](decimal_sum& s, const cell& x) {
                                s.add(x.n);
                              });
      break;
    case state_kind::imoments:
      add_slot<int_moments>(plan, kind, col,
                            [](int_moments& s, const cell& x) { s.add(x.i); });
      break;
    case state_kind::fmoments:
      add_slot<exact_moments>(plan, kind, col,
                              [](exact_moments& s, const cell& x) {
                                s.add(x.d);
                              });
      break;
    case state_kind::fsum:
      add_slot<exact_fsum>(plan, kind, col,
                           [](exact_fsum& s, const cell& x) { s.add(x.d); });
      break;
    case state_kind::psum:
    case state_kind::isum:
    case state_kind::nsum:
    case state_kind::dmin:
    case state_kind::dmax:
      // Push-down only (plan_pushdown makes these slots itself).
      throw std::logic_error("slot_for: a push-down state");
    case state_kind::frange:
      add_slot<double_range>(plan, kind, col,
                             [](double_range& s, const cell& x) {
                               s.add(x.d);
                             });
      break;
    case state_kind::irange:
      add_slot<int_range>(plan, kind, col,
                          [](int_range& s, const cell& x) { s.add(x.i); });
      break;
    case state_kind::srange:
      add_slot<text_range>(plan, kind, col,
                           [](text_range& s, const cell& x) { s.add(x.s); });
      break;
    case state_kind::count:
      add_slot<row_count>(plan, kind, col,
                          [](row_count& s, const cell&) { s.add(); });
      break;
    case state_kind::distinct:
    case state_kind::hll: {
      auto feed = [cls](auto& s, const cell& x) {
        switch (cls) {
          case col_class::integer:
          case col_class::boolean:
          case col_class::date:
          case col_class::timestamp:
          case col_class::timestamptz:
            s.add(x.i);
            break;
          case col_class::floating:
            s.add(x.d);
            break;
          case col_class::numeric:
            // Equal values count once whatever their scale.
            s.add(key_part_of(cls, x).as_string());
            break;
          default:
            s.add(x.s);
        }
      };
      if (kind == state_kind::distinct)
        add_slot<distinct_count>(plan, kind, col, feed);
      else
        add_slot<hll>(plan, kind, col, feed);
      break;
    }
    case state_kind::kll:
      add_slot<kll>(plan, kind, col, [cls](kll& s, const cell& x) {
        s.add(cls == col_class::integer ? static_cast<double>(x.i) : x.d);
      });
      break;
  }
  return plan.slots.size() - 1;
}

state_kind kind_for(agg_func f, col_class cls) {
  bool exact = cls == col_class::integer || cls == col_class::numeric;
  switch (f) {
    case agg_func::sum:
    case agg_func::avg:
      if (cls == col_class::integer)
        return state_kind::istats;
      return exact ? state_kind::dsum : state_kind::fsum;
    case agg_func::stddev:
      return cls == col_class::integer ? state_kind::imoments
                                       : state_kind::fmoments;
    case agg_func::min:
    case agg_func::max:
      if (cls == col_class::integer)
        return state_kind::istats;
      if (exact)
        return state_kind::dsum;
      if (cls == col_class::floating)
        return state_kind::frange;
      if (cls == col_class::text)
        return state_kind::srange;
      return state_kind::irange;
    case agg_func::count_rows:
    case agg_func::count:
      return state_kind::count;
    case agg_func::count_distinct:
      return state_kind::distinct;
    case agg_func::approx_count_distinct:
      return state_kind::hll;
    case agg_func::quantile:
      return state_kind::kll;
  }
  return state_kind::count;
}

} // namespace

std::optional<job_plan> plan_pushdown(const job_plan& rows,
                                      std::string& why_not) {
  job_plan pp;
  pp.job = rows.job;
  pp.pushdown = true;
  pp.expected_groups = rows.expected_groups;
  for (auto g : rows.group_cols) {
    pp.read.push_back(rows.read[g]);
    pp.group_cols.push_back(pp.read.size() - 1);
  }
  std::map<std::string, std::size_t> fields;
  std::map<std::size_t, std::size_t> slots;
  // A column's range slot by (column, made for min): its max may share it.
  std::map<std::pair<std::string, bool>, std::optional<std::size_t>> ranges;
  auto field = [&](const std::string& expr, col_class cls,
                   const std::string& type) {
    auto i = fields.find(expr);
    if (i != fields.end())
      return i->second;
    pp.read.push_back({expr, type, cls});
    pp.push_exprs.push_back(expr);
    return fields[expr] = pp.read.size() - 1;
  };
  // One slot per field (a column's min and max fields may share a range,
  // below): a partial count, sum, min or max merges into the same kind of
  // state the rows would have fed.
  auto slot = [&](std::size_t f, state_kind kind) {
    auto i = slots.find(f);
    if (i != slots.end())
      return i->second;
    auto col = static_cast<int>(f);
    auto cls = pp.read[f].cls;
    switch (kind) {
      case state_kind::count:
        add_slot<row_count>(pp, kind, col, [](row_count& s, const cell& x) {
          s.n += static_cast<std::uint64_t>(x.i);
        });
        break;
      case state_kind::dsum:
        if (cls == col_class::integer)
          add_slot<decimal_sum>(pp, kind, col,
                                [](decimal_sum& s, const cell& x) {
                                  s.add(decimal::of(x.i));
                                });
        else
          add_slot<decimal_sum>(pp, kind, col,
                                [](decimal_sum& s, const cell& x) {
                                  s.add(x.n);
                                });
        break;
      case state_kind::isum:
        add_slot<int_sum>(pp, kind, col,
                          [](int_sum& s, const cell& x) { s.add(x.n); });
        break;
      case state_kind::nsum:
        add_slot<dec_sum>(pp, kind, col,
                          [](dec_sum& s, const cell& x) { s.add(x.n); });
        break;
      case state_kind::dmin:
        add_slot<decimal_extreme<false>>(
          pp, kind, col,
          [](decimal_extreme<false>& s, const cell& x) { s.add(x.n); });
        break;
      case state_kind::dmax:
        add_slot<decimal_extreme<true>>(
          pp, kind, col,
          [](decimal_extreme<true>& s, const cell& x) { s.add(x.n); });
        break;
      case state_kind::frange:
        add_slot<double_range>(pp, kind, col,
                               [](double_range& s, const cell& x) {
                                 s.add(x.d);
                               });
        break;
      case state_kind::irange:
        add_slot<int_range>(pp, kind, col,
                            [](int_range& s, const cell& x) { s.add(x.i); });
        break;
      case state_kind::srange:
        add_slot<text_range>(pp, kind, col,
                             [](text_range& s, const cell& x) {
                               s.add(x.s);
                             });
        break;
      default:
        break;
    }
    return slots[f] = pp.slots.size() - 1;
  };
  pp.rows_slot = slot(field("count(*)", col_class::integer, "bigint"),
                      state_kind::count);
  for (auto& p : rows.aggs) {
    auto q = p;
    auto c = p.expr.column.empty() ? std::string{}
                                   : pg::quote_ident(p.expr.column);
    bool exact = p.cls == col_class::integer || p.cls == col_class::numeric;
    switch (p.expr.func) {
      case agg_func::count_rows:
        q.slot = pp.rows_slot;
        break;
      case agg_func::count:
        q.slot = slot(field("count(" + c + ")", col_class::integer, "bigint"),
                      state_kind::count);
        break;
      case agg_func::sum:
      case agg_func::avg:
        if (p.cls == col_class::floating && p.source_type == "double precision") {
          // Exact in integers: per exponent bucket as planned here, in
          // limbs once the values' range is known (aggregate.cpp,
          // push_float_sums). The count, as for decimals, is avg's divisor
          // and says whether any value was seen.
          auto b = float_sum_bucket(c);
          if (std::find(pp.push_groups.begin(), pp.push_groups.end(), b)
              == pp.push_groups.end())
            pp.push_groups.push_back(b);
          auto f = field(float_sum_field(c), col_class::text, "text");
          auto i = slots.find(f);
          if (i != slots.end()) {
            q.slot = i->second;
          } else {
            // The field's position among the server's expressions.
            pp.push_floats.push_back(
              {c, p.expr.column, f - pp.group_cols.size(), b});
            add_slot<part_fsum>(pp, state_kind::psum, static_cast<int>(f),
                                [](part_fsum& s, const cell& x) {
                                  s.add_field(x.s);
                                });
            q.slot = slots[f] = pp.slots.size() - 1;
          }
          q.slot2 = slot(field("count(" + c + ")", col_class::integer,
                               "bigint"),
                         state_kind::count);
          break;
        }
        if (!exact) {
          why_not = p.expr.text;
          return std::nullopt;
        }
        // sum of integers is numeric on the server too: exact. Integers'
        // partial sums in an int128 (32 bytes a group), decimals' in an
        // int128 at the largest scale of the partial sums (32 bytes, not a
        // decimal_sum's 112).
        q.slot = slot(field("sum(" + c + ")", col_class::numeric, "numeric"),
                      p.cls == col_class::integer ? state_kind::isum
                                                  : state_kind::nsum);
        q.slot2 = slot(field("count(" + c + ")", col_class::integer, "bigint"),
                       state_kind::count);
        break;
      case agg_func::min:
      case agg_func::max: {
        auto f = std::string{func_name(p.expr.func)} + "(" + c
                 + (p.cls == col_class::text ? " COLLATE \"C\")" : ")");
        // An integer column's partial min or max is an integer: 24 bytes
        // of int_range per group rather than a decimal_sum's 112 (10^6
        // groups pushed down held about 2 KiB of states each); a numeric
        // one's a decimal_extreme, 48 bytes.
        auto is_min = p.expr.func == agg_func::min;
        auto kind = p.cls == col_class::integer    ? state_kind::irange
                    : exact && is_min              ? state_kind::dmin
                    : exact                        ? state_kind::dmax
                    : p.cls == col_class::floating ? state_kind::frange
                    : p.cls == col_class::text     ? state_kind::srange
                                                   : state_kind::irange;
        auto fi = field(f, p.cls, p.source_type);
        if (auto i = slots.find(fi); i != slots.end()) {
          q.slot = i->second;
          break;
        }
        // A range keeps both ends: the column's partial min and max (two
        // fields of the server's) feed one state, each field adding its
        // value (the min of the partial mins and maxes is the min, as the
        // max of them is the max; the state's count only says whether any
        // value was seen).
        auto range = kind == state_kind::irange || kind == state_kind::frange
                     || kind == state_kind::srange;
        auto& other = ranges[{p.expr.column, !is_min}];
        if (range && other.has_value()) {
          auto& s = pp.slots[*other];
          if (s.col2 < 0 && s.kind == kind) {
            s.col2 = static_cast<int>(fi);
            q.slot = slots[fi] = *other;
            break;
          }
        }
        q.slot = slot(fi, kind);
        if (range)
          ranges[{p.expr.column, is_min}] = q.slot;
        break;
      }
      default:
        why_not = p.expr.text;
        return std::nullopt;
    }
    pp.aggs.push_back(std::move(q));
  }
  pp.numeric_double.assign(pp.read.size(), false);
  return pp;
}

std::string float_sum_bucket(const std::string& col) {
  // ln's error (a few ulps, over |log2| <= 1075) moves floor(log2 |x|) by at
  // most one, only next to a power of two: with e the true exponent, the
  // estimate minus one lies in [e - 2, e], so the multiple of 8 below it is
  // at most e (x * 2^(52 - B) is an integer) and above e - 10 (below 2^62).
  // greatest() keeps ln off zero (zeros and NULLs land in bucket -1080, the
  // subnormals'); NaN gives NaN and the infinities Infinity.
  return "8 * floor((floor(ln(greatest(abs(" + col
         + "), '4.9e-324'::float8)) / 0.6931471805599453) - 1) / 8)";
}

std::string float_sum_field(const std::string& col) {
  auto b = "(" + float_sum_bucket(col) + ")";
  // 2^(52 - B) as two equal factors (B is a multiple of 8): alone it
  // overflows a double for the subnormals (B down to -1080). Each product is
  // exact, and the last is an integer below 2^62, so the cast to bigint is
  // too. Non-finite values count: 1 for NaN and +inf, 2^40 for -inf.
  auto p = "power(2::float8, 26 - " + b + " / 2)";
  return b + "::text || ':' || sum(CASE WHEN abs(" + col
         + ") <= '1.7976931348623157e308'::float8 THEN (" + col + " * " + p
         + " * " + p + ")::bigint WHEN " + col + " < 0 THEN 1099511627776 WHEN "
         + col + " > 0 THEN 1 END)::text";
}

namespace {

/// 2^n as a float8 literal (the shortest decimal that reads back as it).
std::string pow2_literal(int n) {
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), std::ldexp(1.0, n));
  (void) ec;
  return "'" + std::string{buf, end} + "'::float8";
}

} // namespace

std::optional<double> finite_magnitude(std::string_view text) {
  double x = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), x);
  if (ec != std::errc{} || end != text.data() + text.size()
      || !std::isfinite(x) || x < 0)
    return std::nullopt;
  return x;
}

namespace {

/// The window of values in `r` with `top` binades of margin above the
/// largest magnitude and `low` below the smallest non-zero one's lowest bit;
/// `guess`: a sample, which must hold a non-zero finite value.
std::optional<limb_window> window_of(const float_range& r, int top, int low,
                                     bool guess) {
  // Only NULLs and zeros: any window holds them.
  limb_window w{1, 1};
  int lo = 1 - 53;
  if (!r.max_abs.empty()) {
    auto mx = finite_magnitude(r.max_abs);
    if (!mx)
      return std::nullopt;
    if (*mx > 0) {
      if (r.min_abs.empty())
        return std::nullopt;
      auto mn = finite_magnitude(r.min_abs);
      if (!mn || *mn <= 0 || *mn > *mx)
        return std::nullopt;
      // |x| <= max < 2^e.
      int e = 0;
      (void) std::frexp(*mx, &e);
      w.top = e + top;
      // The lowest bit of a value at least min: 2^(ilogb(min) - 52), or
      // 2^-1074 for the subnormals.
      lo = std::max(std::ilogb(*mn) - 52 - low, -1074);
    } else if (guess) {
      return std::nullopt;
    }
  } else if (guess) {
    return std::nullopt;
  }
  w.limbs = std::max((w.top - lo + 52) / 53, 1);
  // The scales 2^(53k - E) must be doubles; beyond max_limbs the buckets
  // cost less than the limbs' arithmetic.
  if (w.limbs > max_limbs || 53 * w.limbs - w.top > 1000
      || 53 - w.top < -1000)
    return std::nullopt;
  return w;
}

} // namespace

std::optional<limb_window> float_limbs_window(const float_range& r) {
  // One bit of margin on each side: a server that prints fewer digits
  // (extra_float_digits below 1) moves a value by less than an ulp, never
  // by two binades.
  return window_of(r, 1, 1, false);
}

std::optional<limb_window> float_guess_window(const float_range& sample) {
  return window_of(sample, 1 + guess_top_margin, 1 + guess_low_margin, true);
}

std::string float_limbs_sql(const std::string& col, limb_window w) {
  // R_k = rint(col * 2^(53k - E)), computed by the server's own rint (the
  // cast to bigint rounds with rint, as round(float8) does), so that every
  // limb agrees with the next one's correction. Fewer calls per row than a
  // floor on both sides: the first limb is one multiplication and the
  // cast, and the last one's col * 2^(53K - E) needs no rounding because it
  // is an integer already (the window says so, or the check does).
  auto two53 = pow2_literal(53);
  auto scaled = [&](int k) {
    return col + " * " + pow2_literal(53 * k - w.top);
  };
  std::string out;
  for (int k = 1; k <= w.limbs; ++k) {
    std::string limb;
    if (k == 1)
      limb = "(" + scaled(1) + ")";
    else
      limb = "(" + (k == w.limbs ? scaled(k) : "round(" + scaled(k) + ")")
             + " - round(" + scaled(k - 1) + ") * " + two53 + ")";
    // Part k adds S * 2^(E - 53k), that is S * 2^(B - 52).
    auto b = w.top - 53 * k + 52;
    out += (k > 1 ? " || ';" : "'") + std::to_string(b) + ":' || sum(" + limb
           + "::bigint)::text";
  }
  return out;
}

std::string float_limbs_checked_sql(const std::string& col, limb_window w) {
  // IS NOT FALSE: a group of NULLs, or of values that need no check, has no
  // value outside. A double of magnitude 2^52 or more is an integer, so
  // only values below 2^(52 - 53K + E) can have bits below the window: the
  // FILTER spares the others the check (NaN and the infinities pass it by
  // and fail the cast to bigint instead).
  auto scaled = col + " * " + pow2_literal(53 * w.limbs - w.top);
  return "CASE WHEN bool_and(" + scaled + " = floor(" + scaled
         + ")) FILTER (WHERE abs(" + col + ") < "
         + pow2_literal(52 - 53 * w.limbs + w.top) + ") IS NOT FALSE THEN "
         + float_limbs_sql(col, w) + " ELSE '"
         + std::string{float_outside_field} + "' END";
}

std::optional<std::string> float_limbs_field(const std::string& col,
                                             const float_range& r) {
  auto w = float_limbs_window(r);
  if (!w)
    return std::nullopt;
  return float_limbs_sql(col, *w);
}

std::size_t default_batch_rows(std::size_t cells) {
  constexpr std::size_t rows = 16384;
  constexpr std::size_t fewest = 1024;
  if (cells <= cell_list::inline_cells)
    return rows;
  // The cells of a wide row are on the heap, besides its inline room.
  auto wide = sizeof(agg_row) + cells * sizeof(cell);
  return std::max(fewest, rows * sizeof(agg_row) / wide);
}

std::string source_name(const agg_job& job) {
  return job.query.empty() ? job.table.display() : std::string{"--query"};
}

/// Plans `job` against the source's columns; throws usage_error naming the
/// first problem.
job_plan plan_job(const agg_job& job, const source_columns& src) {
  job_plan plan;
  plan.job = job;
  auto prefix = "job '" + job.name + "': ";
  if (job.name == "aggregate")
    prefix.clear();
  auto missing = [&](const std::string& col) {
    std::string names;
    for (auto& c : src.columns)
      names += (names.empty() ? "" : ", ") + c.name;
    return usage_error(prefix + "no column \"" + col + "\" in "
                       + source_name(job) + " (its columns: " + names + ")");
  };
  auto index_of = [&](const std::string& name) -> int {
    for (std::size_t i = 0; i < plan.read.size(); ++i)
      if (plan.read[i].name == name)
        return static_cast<int>(i);
    auto c = src.find(name);
    if (c == nullptr)
      throw missing(name);
    plan.read.push_back(*c);
    return static_cast<int>(plan.read.size() - 1);
  };
  std::set<std::string> out_names;
  for (auto& g : job.group_by) {
    plan.group_cols.push_back(static_cast<std::size_t>(index_of(g)));
    out_names.insert(g);
  }
  if (job.aggs.empty())
    throw usage_error(prefix + "no aggregate (--agg)");
  for (auto& e : job.aggs) {
    planned_agg p;
    p.expr = e;
    if (!out_names.insert(e.name).second)
      throw usage_error(prefix + "the output name '" + e.name
                        + "' of " + e.text
                        + " is also a group column (rename it with AS)");
    if (e.func != agg_func::count_rows) {
      p.col = index_of(e.column);
      auto& c = plan.read[static_cast<std::size_t>(p.col)];
      p.cls = c.cls;
      p.source_type = c.type;
      auto why = check_applicable(e, c.cls, c.type);
      if (!why.empty())
        throw usage_error(prefix + e.text + ": " + why);
    }
    p.out_type = output_type(e, p.cls, p.source_type);
    p.slot = slot_for(plan, kind_for(e.func, p.cls), p.col, p.cls);
    plan.aggs.push_back(std::move(p));
  }
  if (plan.read.empty()) {
    // count(*) alone reads no column; COPY still needs one.
    if (src.columns.empty())
      throw usage_error(prefix + source_name(job) + " has no columns");
    plan.read.push_back(src.columns.front());
  }
  plan.numeric_double.assign(plan.read.size(), false);
  for (auto& p : plan.aggs)
    if (p.col >= 0 && p.cls == col_class::numeric
        && (p.expr.func == agg_func::stddev
            || p.expr.func == agg_func::quantile))
      plan.numeric_double[static_cast<std::size_t>(p.col)] = true;
  return plan;
}


agg_row row_decoder::operator()(const pg::row_view& r) const {
  agg_row out;
  (*this)(r, out);
  return out;
}

void row_decoder::operator()(const pg::row_view& r, agg_row& out) const {
  auto& read = plan->read;
  out.cells.resize(read.size());
  for (std::size_t i = 0; i < read.size(); ++i) {
    if (read[i].cls == col_class::integer) {
      // An integer's text has no COPY escapes: parsed where it lies (the
      // escape scan of opt_text was a sixth of the row path's time).
      auto x = r.raw(i);
      if (x.data() == nullptr)
        continue;
      auto& c = out.cells[i];
      auto [p, ec] = std::from_chars(x.data(), x.data() + x.size(), c.i);
      if (ec != std::errc{} || p != x.data() + x.size())
        throw pg::decode_error(i, "column \"" + read[i].name
                                    + "\": is not an integer");
      c.null = false;
      continue;
    }
    auto t = r.opt_text(i);
    if (!t)
      continue;
    auto why = decode_cell(read[i].cls, *t, out.cells[i],
                           plan->numeric_double[i]);
    if (!why.empty())
      throw pg::decode_error(i, "column \"" + read[i].name + "\": " + why);
  }
  if (outside)
    for (auto& f : plan->push_floats) {
      auto i = plan->group_cols.size() + f.expr;
      auto& c = out.cells[i];
      if (!c.null && c.s == float_outside_field) {
        outside->store(true);
        throw pg::decode_error(i, "the sum of " + f.column
                                    + ": a value outside the window guessed "
                                      "from the statistics");
      }
    }
}

reducer<agg_row> agg_reducer(std::shared_ptr<const job_plan> plan) {
  // The tests' delay hook (FLOW_TEST_REDUCER_DELAY_MS) keeps a run going
  // while they cut its connections.
  return with_test_delay<agg_row>([plan](const batch_ref<agg_row>& b,
                                         partial& out) {
    // The group's key is made here, not by the decoder: one thread reads
    // and decodes a partition's COPY stream while the reducers share the
    // other cores, so work moved here leaves the reading thread (with the
    // server, the limit of a partition) sooner free (flow-etl sum: 2.5 s
    // to 2.0 s a job). The builder's buffer is reused row after row.
    key::builder kb;
    // Pushed down, a batch's rows are (nearly) all distinct groups: room
    // for them at once instead of growing the entries and their index
    // (copying every entry) as they come.
    if (plan->pushdown)
      out.reserve(b.items.size());
    for (auto& x : b.items) {
      kb.clear();
      for (auto g : plan->group_cols)
        add_key_part(kb, plan->read[g].cls, x.cells[g]);
      auto& row = out.row(kb.build());
      for (auto& s : plan->slots) {
        if (s.col < 0) {
          static const cell none;
          s.add(row, none);
          continue;
        }
        auto& c = x.cells[static_cast<std::size_t>(s.col)];
        if (!c.null)
          s.add(row, c);
        if (s.col2 >= 0) {
          auto& c2 = x.cells[static_cast<std::size_t>(s.col2)];
          if (!c2.null)
            s.add(row, c2);
        }
      }
    }
  });
}

// -- the plan on worker nodes -------------------------------------------------

namespace {

void put(std::string& out, const std::string& x) {
  out += std::to_string(x.size());
  out += ':';
  out += x;
}

bool get(const std::string& in, std::size_t& pos, std::string& x) {
  auto colon = in.find(':', pos);
  if (colon == std::string::npos || colon == pos || colon - pos > 10)
    return false;
  std::size_t n = 0;
  for (auto i = pos; i < colon; ++i) {
    if (in[i] < '0' || in[i] > '9')
      return false;
    n = n * 10 + static_cast<std::size_t>(in[i] - '0');
  }
  if (n > in.size() - colon - 1)
    return false;
  x = in.substr(colon + 1, n);
  pos = colon + 1 + n;
  return true;
}

bool get_count(const std::string& in, std::size_t& pos, std::size_t& n) {
  std::string x;
  if (!get(in, pos, x) || x.empty() || x.size() > 4)
    return false;
  n = 0;
  for (auto c : x) {
    if (c < '0' || c > '9')
      return false;
    n = n * 10 + static_cast<std::size_t>(c - '0');
  }
  return true;
}

} // namespace

std::string encode_plan(const job_plan& plan) {
  std::string out;
  put(out, "flow-etl.aggregate.1");
  put(out, plan.job.name);
  put(out, std::to_string(plan.job.group_by.size()));
  for (auto& g : plan.job.group_by)
    put(out, g);
  put(out, std::to_string(plan.job.aggs.size()));
  for (auto& a : plan.job.aggs)
    put(out, a.text);
  put(out, std::to_string(plan.read.size()));
  for (auto& c : plan.read) {
    put(out, c.name);
    put(out, c.type);
    put(out, std::to_string(static_cast<int>(c.cls)));
  }
  return out;
}

caf::expected<job_plan> decode_plan(const std::string& text) {
  auto bad = [](const std::string& why) {
    return make_error(errc::bad_input, "aggregate task: " + why);
  };
  std::size_t pos = 0;
  std::string x;
  if (!get(text, pos, x) || x != "flow-etl.aggregate.1")
    return bad("not an aggregate plan (or another version)");
  agg_job job;
  std::size_t n = 0;
  if (!get(text, pos, job.name) || !get_count(text, pos, n))
    return bad("malformed header");
  for (std::size_t i = 0; i < n; ++i) {
    if (!get(text, pos, x))
      return bad("malformed group columns");
    job.group_by.push_back(x);
  }
  if (!get_count(text, pos, n))
    return bad("malformed aggregates");
  try {
    for (std::size_t i = 0; i < n; ++i) {
      if (!get(text, pos, x))
        return bad("malformed aggregates");
      auto one = parse_agg_list(x, "aggregate task");
      if (one.size() != 1)
        return bad("malformed aggregate " + x);
      job.aggs.push_back(std::move(one.front()));
    }
    source_columns src;
    if (!get_count(text, pos, n))
      return bad("malformed columns");
    for (std::size_t i = 0; i < n; ++i) {
      column_info c;
      std::size_t cls = 0;
      if (!get(text, pos, c.name) || !get(text, pos, c.type)
          || !get_count(text, pos, cls)
          || cls > static_cast<std::size_t>(col_class::other))
        return bad("malformed columns");
      c.cls = static_cast<col_class>(cls);
      src.columns.push_back(std::move(c));
    }
    if (pos != text.size())
      return bad("trailing bytes");
    auto plan = plan_job(job, src);
    // The same job over the same columns reads them in the same order.
    if (plan.read.size() != src.columns.size())
      return bad("the plan does not read the columns sent");
    for (std::size_t i = 0; i < plan.read.size(); ++i)
      if (plan.read[i].name != src.columns[i].name)
        return bad("the plan does not read the columns sent");
    return plan;
  } catch (const usage_error& e) {
    return bad(e.what());
  }
}

caf::expected<job_result> run_aggregate_partition(caf::actor_system& sys,
                                                  const std::string& conninfo,
                                                  const std::string& payload) {
  auto ticket = pg::partition_ticket::decode(payload);
  if (!ticket)
    return std::move(ticket.error());
  if (ticket->extra.empty())
    return make_error(errc::bad_input, "aggregate task: no plan");
  auto decoded = decode_plan(ticket->extra.front());
  if (!decoded)
    return std::move(decoded.error());
  auto plan = std::make_shared<const job_plan>(std::move(*decoded));
  auto reader = pg::open_partition(*ticket, conninfo);
  if (!reader)
    return node_error(std::move(reader.error()));
  pipeline<agg_row> p;
  p.add(source<agg_row>{std::make_unique<pg::row_source<agg_row, row_decoder>>(
    std::move(*reader), row_decoder{plan, nullptr})});
  options opts;
  opts.batch_size = default_batch_rows(plan->read.size());
  opts.reducers = flow::default_reducers();
  // As flow-etl aggregate's default --combine: a partition's batches carry
  // many groups each.
  opts.combine_batches = 8;
  return p.aggregate_with(plan->layout)
    .reduce(agg_reducer(plan))
    .with(opts)
    .run(sys);
}

} // namespace flow::apps
