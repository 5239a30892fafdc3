// Fuzzes flow-etl aggregate's --agg and --group-by grammar
// (flow::apps::parse_agg_list, parse_name_list): the input's first byte
// picks the parser, the rest is the text as a user typed it.
//
// Properties: a list either parses or is refused with usage_error (nothing
// else escapes); a parsed aggregate has a function, a column unless it is
// count(*), q in [0, 1] for quantile, and an output name of 1 to 63 bytes,
// unique in the list; a parsed name list has no empty and no repeated name.
// Written back in canonical form (every name double-quoted, "" for a quote,
// AS for every output name), either list parses to the same thing again.

#include <cstddef>
#include <cstdint>
#include <set>
#include <string>

#include "common/cli.hpp"
#include "etl/agg_spec.hpp"
#include "reference.hpp"

namespace {

using flow::apps::agg_expr;
using flow::apps::agg_func;
using flow::apps::usage_error;

std::string quoted(const std::string& name) {
  std::string out = "\"";
  for (auto c : name) {
    if (c == '"')
      out += '"';
    out += c;
  }
  return out + '"';
}

std::string canonical(const agg_expr& e) {
  std::string fn = e.func == agg_func::count_distinct ? "count"
                                                      : func_name(e.func);
  std::string out = fn + "(";
  if (e.func == agg_func::count_rows)
    out += "*";
  else if (e.func == agg_func::count_distinct)
    out += "distinct " + quoted(e.column);
  else
    out += quoted(e.column);
  if (e.func == agg_func::quantile)
    out += ", " + e.q_text;
  return out + ") AS " + quoted(e.name);
}

bool same(const agg_expr& x, const agg_expr& y) {
  return x.func == y.func && x.column == y.column && x.name == y.name
         && (x.func != agg_func::quantile || x.q == y.q);
}

void check_aggs(const std::string& text) {
  std::vector<agg_expr> aggs;
  try {
    aggs = flow::apps::parse_agg_list(text);
  } catch (const usage_error&) {
    return;
  }
  FLOW_FUZZ_CHECK(!aggs.empty());
  std::set<std::string> names;
  std::string again;
  for (auto& e : aggs) {
    FLOW_FUZZ_CHECK(!e.name.empty() && e.name.size() <= 63);
    FLOW_FUZZ_CHECK(names.insert(e.name).second);
    FLOW_FUZZ_CHECK((e.func == agg_func::count_rows) == e.column.empty());
    if (e.func == agg_func::quantile)
      FLOW_FUZZ_CHECK(e.q >= 0 && e.q <= 1);
    again += (again.empty() ? "" : ", ") + canonical(e);
  }
  auto back = flow::apps::parse_agg_list(again);
  FLOW_FUZZ_CHECK(back.size() == aggs.size());
  for (std::size_t i = 0; i < back.size(); ++i)
    FLOW_FUZZ_CHECK(same(back[i], aggs[i]));
}

void check_names(const std::string& text) {
  std::vector<std::string> names;
  try {
    names = flow::apps::parse_name_list(text);
  } catch (const usage_error&) {
    return;
  }
  std::set<std::string> seen;
  std::string again;
  for (auto& n : names) {
    FLOW_FUZZ_CHECK(!n.empty() && n.size() <= 63);
    FLOW_FUZZ_CHECK(seen.insert(n).second);
    again += (again.empty() ? "" : ",") + quoted(n);
  }
  FLOW_FUZZ_CHECK(flow::apps::parse_name_list(again) == names);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data,
                                      std::size_t size) {
  if (size == 0)
    return 0;
  std::string text(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (data[0] % 2 == 0)
    check_aggs(text);
  else
    check_names(text);
  return 0;
}
