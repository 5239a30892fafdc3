#include "common/keyed_aggs.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>
#include <memory>

#include "common/cli.hpp"
#include "flow/error.hpp"
#include "flow/parse.hpp"
#include "flow/source.hpp"

namespace flow::apps {

namespace {

/// The quantile a name such as "p95" asks for, or nothing.
std::optional<double> quantile_of(const std::string& name) {
  if (name == "p50")
    return 0.5;
  if (name == "p90")
    return 0.9;
  if (name == "p95")
    return 0.95;
  if (name == "p99")
    return 0.99;
  return std::nullopt;
}

bool is_moment(const std::string& name) {
  return name == "sum" || name == "count" || name == "min" || name == "max"
         || name == "mean" || name == "stddev";
}

/// The double nearest to a decimal (its text read by from_chars, which
/// rounds correctly).
double to_double(const decimal& x) {
  auto text = to_string(x);
  double result = 0;
  std::from_chars(text.data(), text.data() + text.size(), result);
  return result;
}

/// A decimal's value without trailing zeros, so 1.5 and 1.50 count as one
/// distinct value.
std::string canonical_text(const decimal& x) {
  auto text = to_string(x);
  if (text.find('.') == std::string::npos)
    return text;
  while (text.back() == '0')
    text.pop_back();
  if (text.back() == '.')
    text.pop_back();
  return text == "-0" ? "0" : text;
}

bool same_bits(double x, double y) {
  return std::memcmp(&x, &y, sizeof(double)) == 0;
}

std::string decimal_json(const std::optional<decimal>& x) {
  return x ? to_string(*x) : "null";
}

/// The mean of an exact 128-bit sum: the quotient in long double (64-bit
/// mantissa) rounded to double, within 1 ulp of the exact mean.
double int_mean(const aggregate& a) {
  if (a.count == 0)
    return std::nan("");
  return static_cast<double>(static_cast<long double>(a.sum)
                             / static_cast<long double>(a.count));
}

} // namespace

value_type read_value_type(const std::string& text) {
  if (text == "int")
    return value_type::int64;
  if (text == "double")
    return value_type::f64;
  if (text == "decimal")
    return value_type::decimal;
  throw usage_error("--values: " + quote_token(text)
                    + " is not int, double or decimal");
}

const char* name_of(value_type x) {
  switch (x) {
    case value_type::int64:
      return "int";
    case value_type::f64:
      return "double";
    default:
      return "decimal";
  }
}

std::optional<decimal> parse_decimal_token(std::string_view token,
                                           std::string& why) {
  auto x = parse_decimal(token);
  if (x)
    return *x;
  // describe() gives "bad_input: <reason>"; the reason follows the token.
  auto text = describe(x.error());
  auto pos = text.find(": ");
  why = "is not an exact decimal ("
        + (pos == std::string::npos ? text : text.substr(pos + 2)) + ")";
  return std::nullopt;
}

source<keyed<decimal>> keyed_decimals_from_text_file(std::string path) {
  return keyed_from_text_file_as<decimal>(std::move(path),
                                          &parse_decimal_token);
}

source<decimal> decimals_from_text_file(std::string path) {
  return from_text_file_as<decimal>(std::move(path), &parse_decimal_token);
}

// -- agg_list -------------------------------------------------------------------

bool agg_list::has(const std::string& name) const {
  return std::find(names.begin(), names.end(), name) != names.end();
}

std::string agg_list::str() const {
  std::string result;
  for (auto& n : names) {
    if (!result.empty())
      result += ',';
    result += n;
  }
  return result;
}

const std::vector<std::string>& known_aggs() {
  static const std::vector<std::string> names
    = {"sum",   "count",          "min",             "max", "mean",
       "stddev", "count_distinct", "approx_distinct", "p50", "p90",
       "p95",   "p99"};
  return names;
}

const char* default_aggs() {
  return "sum,count,min,max";
}

agg_list parse_agg_list(const std::string& text) {
  agg_list result;
  std::size_t pos = 0;
  for (;;) {
    auto end = text.find(',', pos);
    auto name = text.substr(pos, end == std::string::npos ? std::string::npos
                                                           : end - pos);
    // Tolerate spaces around names ("sum, p95").
    auto first = name.find_first_not_of(' ');
    auto last = name.find_last_not_of(' ');
    name = first == std::string::npos ? std::string{}
                                      : name.substr(first, last - first + 1);
    if (name.empty())
      throw usage_error("--agg: empty name in " + quote_token(text));
    auto& known = known_aggs();
    if (std::find(known.begin(), known.end(), name) == known.end()) {
      std::string list;
      for (auto& k : known)
        list += (list.empty() ? "" : ", ") + k;
      throw usage_error("--agg: " + quote_token(name)
                        + " is not an aggregate (known: " + list + ")");
    }
    if (result.has(name))
      throw usage_error("--agg: " + quote_token(name) + " is given twice");
    result.names.push_back(name);
    if (end == std::string::npos)
      break;
    pos = end + 1;
  }
  return result;
}

// -- keyed_aggs -----------------------------------------------------------------

keyed_aggs::keyed_aggs(value_type values, agg_list list)
  : values_(values), list_(std::move(list)) {
  bool moments = false;
  for (auto& n : list_.names)
    moments = moments || is_moment(n);
  switch (values_) {
    case value_type::int64:
      // sum, count, min, max and mean come from the built-in aggregate.
      if (list_.has("stddev"))
        int_moments_ = aggs_.add("stddev", int_moments{});
      break;
    case value_type::f64:
      if (moments)
        dstats_ = aggs_.add("double_stats", double_stats{});
      break;
    case value_type::decimal:
      if (moments)
        dsum_ = aggs_.add("decimal_sum", decimal_sum{});
      if (list_.has("stddev"))
        moments_ = aggs_.add("stddev", exact_moments{});
      break;
  }
  if (list_.has("count_distinct"))
    distinct_ = aggs_.add("count_distinct", distinct_count{});
  if (list_.has("approx_distinct"))
    approx_ = aggs_.add("approx_distinct", hll{});
  for (auto& n : list_.names)
    if (quantile_of(n) && !quantiles_)
      quantiles_ = aggs_.add("quantiles", kll{});
}

std::string keyed_aggs::reducer_name(bool labelled) const {
  return std::string{"flow-keyed/"} + name_of(values_) + "/"
         + (labelled ? "label" : "key") + "/" + list_.str();
}

std::optional<keyed_aggs> keyed_aggs::from_reducer_name(const std::string& name,
                                                        bool& labelled) {
  const std::string prefix = "flow-keyed/";
  if (name.compare(0, prefix.size(), prefix) != 0)
    return std::nullopt;
  auto rest = name.substr(prefix.size());
  auto a = rest.find('/');
  if (a == std::string::npos)
    return std::nullopt;
  auto b = rest.find('/', a + 1);
  if (b == std::string::npos)
    return std::nullopt;
  auto values = rest.substr(0, a);
  auto mode = rest.substr(a + 1, b - a - 1);
  if (mode != "label" && mode != "key")
    return std::nullopt;
  try {
    labelled = mode == "label";
    return keyed_aggs{read_value_type(values), parse_agg_list(rest.substr(b + 1))};
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

void keyed_aggs::add(aggregate& row, std::int64_t x) const {
  row.add(x);
  if (int_moments_)
    int_moments_->at(row).add(x);
  if (distinct_)
    distinct_->at(row).add(x);
  if (approx_)
    approx_->at(row).add(x);
  if (quantiles_)
    quantiles_->at(row).add(x);
}

void keyed_aggs::add(aggregate& row, const std::int64_t* xs,
                     std::size_t n) const {
  if (!row.merge(aggregate::of(xs, n)))
    throw std::overflow_error("a 128-bit sum left its range");
  if (int_moments_)
    int_moments_->at(row).add(xs, n);
  if (distinct_)
    distinct_->at(row).add(xs, n);
  if (approx_)
    approx_->at(row).add(xs, n);
  if (quantiles_) {
    auto& q = quantiles_->at(row);
    for (std::size_t i = 0; i < n; ++i)
      q.add(xs[i]);
  }
}

void keyed_aggs::add(aggregate& row, double x) const {
  if (dstats_)
    dstats_->at(row).add(x);
  if (distinct_)
    distinct_->at(row).add(x);
  if (approx_)
    approx_->at(row).add(x);
  if (quantiles_)
    quantiles_->at(row).add(x);
}

void keyed_aggs::add(aggregate& row, const decimal& x) const {
  if (dsum_)
    dsum_->at(row).add(x);
  double d = (moments_ || quantiles_) ? to_double(x) : 0.0;
  if (moments_)
    moments_->at(row).add(d);
  if (distinct_ || approx_) {
    auto text = canonical_text(x);
    if (distinct_)
      distinct_->at(row).add(text);
    if (approx_)
      approx_->at(row).add(text);
  }
  if (quantiles_)
    quantiles_->at(row).add(d);
}

reducer<std::int64_t> keyed_aggs::label_reducer() const {
  auto self = std::make_shared<const keyed_aggs>(*this);
  return [self](const batch_ref<std::int64_t>& b, partial& out) {
    self->add(out.row(b.label), b.items.data(), b.items.size());
  };
}

reducer<keyed_value> keyed_aggs::int_reducer() const {
  auto self = std::make_shared<const keyed_aggs>(*this);
  return [self](const batch_ref<keyed_value>& b, partial& out) {
    for (auto& x : b.items)
      self->add(out.row(x.key), x.value);
  };
}

reducer<keyed<double>> keyed_aggs::double_reducer() const {
  auto self = std::make_shared<const keyed_aggs>(*this);
  return [self](const batch_ref<keyed<double>>& b, partial& out) {
    for (auto& x : b.items)
      self->add(out.row(x.key), x.value);
  };
}

reducer<keyed<decimal>> keyed_aggs::decimal_reducer() const {
  auto self = std::make_shared<const keyed_aggs>(*this);
  return [self](const batch_ref<keyed<decimal>>& b, partial& out) {
    for (auto& x : b.items)
      self->add(out.row(x.key), x.value);
  };
}

std::uint64_t keyed_aggs::count(const aggregate& row) const {
  switch (values_) {
    case value_type::int64:
      return row.count;
    case value_type::f64:
      if (dstats_)
        return dstats_->of(row).count();
      break;
    case value_type::decimal:
      if (dsum_)
        return dsum_->of(row).count();
      break;
  }
  if (quantiles_)
    return quantiles_->of(row).count() + quantiles_->of(row).nan_count();
  return 0;
}

bool keyed_aggs::same(const aggregate& got, const aggregate& ref,
                      std::string& why) const {
  if (values_ == value_type::int64
      && (got.sum != ref.sum || got.count != ref.count
          || (got.count > 0 && (got.min != ref.min || got.max != ref.max)))) {
    why = "sum, count, min or max";
    return false;
  }
  if (int_moments_ && !(int_moments_->of(got) == int_moments_->of(ref))) {
    why = "stddev";
    return false;
  }
  if (moments_ && !(moments_->of(got) == moments_->of(ref))) {
    why = "stddev";
    return false;
  }
  if (dstats_ && !(dstats_->of(got) == dstats_->of(ref))) {
    why = "the exact double sums";
    return false;
  }
  if (dsum_ && !(dsum_->of(got) == dsum_->of(ref))) {
    why = "the exact decimal sums";
    return false;
  }
  if (distinct_ && !(distinct_->of(got) == distinct_->of(ref))) {
    why = "count_distinct";
    return false;
  }
  if (approx_
      && !same_bits(approx_->of(got).estimate(), approx_->of(ref).estimate())) {
    why = "approx_distinct";
    return false;
  }
  if (quantiles_) {
    auto& q = quantiles_->of(got);
    auto& r = quantiles_->of(ref);
    if (q.count() != r.count() || q.nan_count() != r.nan_count()) {
      why = "the quantile sketch's count";
      return false;
    }
    for (auto& n : list_.names) {
      auto p = quantile_of(n);
      if (!p || q.count() == 0)
        continue;
      // Both sketches err by at most ~1 % of n in rank: the parallel one's
      // answer must sit within twice that of q in the reference's ranks.
      auto v = q.quantile(*p);
      auto below = r.rank(std::nextafter(v, -HUGE_VAL));
      auto upto = r.rank(v);
      if (upto < *p - 0.02 || below > *p + 0.02) {
        why = n;
        return false;
      }
    }
  }
  return true;
}

std::string keyed_aggs::json_value(const std::string& name,
                                   const aggregate& row) const {
  auto exact = [](double x) {
    return std::isfinite(x) ? shortest(x) : json_string(shortest(x));
  };
  if (auto p = quantile_of(name)) {
    auto& q = quantiles_->of(row);
    return q.count() == 0 ? "null" : exact(q.quantile(*p));
  }
  if (name == "count_distinct")
    return std::to_string(distinct_->of(row).count());
  if (name == "approx_distinct")
    return std::to_string(
      static_cast<std::uint64_t>(std::llround(approx_->of(row).estimate())));
  if (name == "count")
    return std::to_string(count(row));
  switch (values_) {
    case value_type::int64:
      if (name == "sum")
        return to_string(row.sum);
      if (row.count == 0)
        return "null";
      if (name == "min")
        return std::to_string(row.min);
      if (name == "max")
        return std::to_string(row.max);
      if (name == "mean")
        return exact(int_mean(row));
      if (name == "stddev")
        return exact(int_moments_->of(row).stddev());
      break;
    case value_type::f64: {
      auto& s = dstats_->of(row);
      if (name == "sum")
        return exact(s.sum());
      if (s.count() == 0)
        return "null";
      if (name == "min")
        return exact(s.min());
      if (name == "max")
        return exact(s.max());
      if (name == "mean")
        return exact(s.mean());
      if (name == "stddev")
        return exact(s.stddev());
      break;
    }
    case value_type::decimal: {
      if (name == "stddev") {
        auto& m = moments_->of(row);
        return m.count() == 0 ? "null" : exact(m.stddev_sample());
      }
      auto& s = dsum_->of(row);
      if (name == "sum")
        return decimal_json(s.sum());
      if (name == "min")
        return decimal_json(s.min());
      if (name == "max")
        return decimal_json(s.max());
      if (name == "mean")
        return decimal_json(s.mean());
      break;
    }
  }
  return "null";
}

void keyed_aggs::add_json(json_object& obj, const aggregate& row,
                          bool legacy_int) const {
  for (auto& n : list_.names) {
    if (legacy_int && (n == "sum" || n == "min" || n == "max"))
      continue;
    obj.add_raw(n, json_value(n, row));
  }
}

std::vector<std::string> keyed_aggs::cells(const aggregate& row) const {
  std::vector<std::string> result;
  for (auto& n : list_.names) {
    auto text = json_value(n, row);
    // Strings ("inf", "nan") without their quotes; null as NULL.
    if (text.size() >= 2 && text.front() == '"')
      text = text.substr(1, text.size() - 2);
    else if (text == "null")
      text = "NULL";
    result.push_back(std::move(text));
  }
  return result;
}

} // namespace flow::apps
