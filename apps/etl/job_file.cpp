#include "etl/job_file.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include <toml.hpp>

#include "common/cli.hpp"
#include "flow/error.hpp"
#include "flow/source.hpp"
#include "flow/parse.hpp"

namespace flow::apps {

namespace {

// -- messages -----------------------------------------------------------------

/// Where a message points: the file, and the table the key is in ("" for
/// the top level, "[defaults]", "job \"NAME\"" or "job 2" before the name is
/// known).
struct place {
  const std::string& path;
  std::string table;

  /// "PATH:LINE: TABLE: key 'KEY'", the prefix of every message about a key;
  /// parse_agg_list puts its own text after it.
  std::string at(std::size_t line, const std::string& key = {}) const {
    auto result = path + ":" + std::to_string(line);
    if (!table.empty())
      result += ": " + table;
    if (!key.empty())
      result += ": key " + quote_token(key);
    return result;
  }

  [[noreturn]] void fail(std::size_t line, const std::string& key,
                         const std::string& what) const {
    throw usage_error(at(line, key) + ": " + what);
  }

  [[noreturn]] void fail(const toml::value& v, const std::string& key,
                         const std::string& what) const {
    fail(v.location().line(), key, what);
  }
};

const char* type_text(const toml::value& v) {
  switch (v.type()) {
    case toml::value_t::boolean:
      return "a boolean";
    case toml::value_t::integer:
      return "an integer";
    case toml::value_t::floating:
      return "a float";
    case toml::value_t::string:
      return "a string";
    case toml::value_t::array:
      return "an array";
    case toml::value_t::table:
      return "a table";
    case toml::value_t::empty:
      return "nothing";
    default:
      return "a date or time";
  }
}

/// toml11 reports a syntax error over several lines (the headline, then the
/// offending line with a caret and a note); the programs' errors are one
/// line, so keep the headline without toml11's function name, and the note.
std::string one_line(const std::string& what) {
  std::istringstream in{what};
  std::string line;
  std::string headline;
  std::string note;
  while (std::getline(in, line)) {
    if (headline.empty()) {
      headline = line;
      continue;
    }
    auto bar = line.find('|');
    if (bar == std::string::npos)
      continue;
    auto mark = line.find_first_not_of(' ', bar + 1);
    if (mark == std::string::npos || (line[mark] != '^' && line[mark] != '~'))
      continue;
    auto text = line.find_first_not_of("^~- ", mark);
    if (text != std::string::npos)
      note = line.substr(text);
  }
  if (headline.rfind("[error] ", 0) == 0)
    headline.erase(0, 8);
  if (headline.rfind("toml::", 0) == 0) {
    auto colon = headline.find(": ");
    if (colon != std::string::npos)
      headline.erase(0, colon + 2);
  }
  if (!note.empty() && note != headline)
    headline += " (" + note + ")";
  // Keep it one printable line whatever the file holds.
  for (auto& c : headline)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
      c = ' ';
  return headline;
}

/// The edit distance of two short keys, for "did you mean".
std::size_t distance(const std::string& a, const std::string& b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j)
    row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    auto diag = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      auto up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1,
                         diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

// -- the keys of each table ---------------------------------------------------

const std::vector<std::string> top_keys = {"atomic", "defaults", "job"};
const std::vector<std::string> default_keys = {"partitions", "by", "verify",
                                               "json", "schema"};
const std::vector<std::string> job_keys
  = {"name",       "table",  "query",        "schema",
     "where",      "group_by", "aggregates", "output",
     "output_schema"};

/// Refuses a key `table` does not know; of several, the first in the file.
/// A typo of a known key is named, and a key that belongs to another table
/// says where it goes: TOML puts every key after a `[table]` header into that
/// table, so `atomic = true` written below `[defaults]` lands there.
void check_keys(const toml::value& table, const std::vector<std::string>& known,
                const place& where, const std::string& which) {
  const std::pair<const std::string, toml::value>* first = nullptr;
  for (auto& kv : table.as_table())
    if (std::find(known.begin(), known.end(), kv.first) == known.end()
        && (first == nullptr
            || kv.second.location().line() < first->second.location().line()))
      first = &kv;
  if (first == nullptr)
    return;
  auto& key = first->first;
  std::string hint;
  for (auto& k : known)
    if (distance(key, k) <= 2 && key.size() > 2) {
      hint = " (did you mean '" + k + "'?)";
      break;
    }
  auto belongs = [&](const std::vector<std::string>& keys) {
    return std::find(keys.begin(), keys.end(), key) != keys.end();
  };
  if (hint.empty()) {
    if (which == "job" && belongs(default_keys))
      hint = " (a run-wide option: set it in [defaults] or on the command "
             "line)";
    else if (which != "top" && key == "atomic")
      hint = " (atomic is a top-level key: write it above the first table)";
    else if (which != "job" && belongs(job_keys))
      hint = " (a key of a [[job]])";
  }
  std::string list;
  for (auto& k : known)
    list += (list.empty() ? "" : ", ") + k;
  where.fail(first->second, key,
             "unknown key" + hint + "; " + which
               + (which == "top" ? "-level keys: " : " keys: ") + list);
}

const toml::value* lookup(const toml::value& table, const std::string& key) {
  auto& t = table.as_table();
  auto i = t.find(key);
  return i == t.end() ? nullptr : &i->second;
}

std::string get_string(const toml::value& v, const place& where,
                       const std::string& key) {
  if (!v.is_string())
    where.fail(v, key, std::string{"expected a string, got "} + type_text(v));
  return v.as_string().str;
}

/// A string that prints as itself: names and aggregates appear in messages
/// and must keep them one line.
std::string get_printable(const toml::value& v, const place& where,
                          const std::string& key) {
  auto s = get_string(v, where, key);
  std::string why;
  if (!check_printable(s, why))
    where.fail(v, key, quote_token(s) + " " + why);
  return s;
}

/// A table, schema or column name: any text PostgreSQL accepts as a quoted
/// identifier, taken exactly as written.
std::string get_identifier(const toml::value& v, const place& where,
                           const std::string& key) {
  auto s = get_string(v, where, key);
  try {
    pg::check_identifier(s, where.at(v.location().line(), key));
  } catch (const input_error& e) {
    throw usage_error(e.what());
  }
  return s;
}

/// SQL text of the user's (a query, a filter): not empty, any characters.
std::string get_sql(const toml::value& v, const place& where,
                    const std::string& key) {
  auto s = get_string(v, where, key);
  if (s.find_first_not_of(" \t\r\n") == std::string::npos)
    where.fail(v, key, "empty SQL text");
  return s;
}

bool get_bool(const toml::value& v, const place& where,
              const std::string& key) {
  if (!v.is_boolean())
    where.fail(v, key,
               std::string{"expected true or false, got "} + type_text(v));
  return v.as_boolean();
}

std::uint64_t get_uint(const toml::value& v, const place& where,
                       const std::string& key, std::uint64_t hi) {
  if (!v.is_integer())
    where.fail(v, key, std::string{"expected an integer, got "} + type_text(v));
  auto x = v.as_integer();
  if (x < 0 || static_cast<std::uint64_t>(x) > hi)
    where.fail(v, key, std::to_string(x) + " is outside the range 0.."
                         + std::to_string(hi));
  return static_cast<std::uint64_t>(x);
}

// -- the tables -----------------------------------------------------------------

job_defaults read_defaults(const toml::value& v, const std::string& path) {
  if (!v.is_table())
    place{path, ""}.fail(v, "defaults",
                         std::string{"expected a table ([defaults]), got "}
                           + type_text(v));
  place where{path, "[defaults]"};
  check_keys(v, default_keys, where, "[defaults]");
  job_defaults d;
  // The same limit as --partitions.
  if (auto x = lookup(v, "partitions"))
    d.partitions = get_uint(*x, where, "partitions", 1024);
  if (auto x = lookup(v, "by"))
    d.by = get_identifier(*x, where, "by");
  if (auto x = lookup(v, "verify"))
    d.verify = get_bool(*x, where, "verify");
  if (auto x = lookup(v, "json"))
    d.json = get_bool(*x, where, "json");
  if (auto x = lookup(v, "schema"))
    d.schema = get_identifier(*x, where, "schema");
  return d;
}

std::vector<std::string> read_group_by(const toml::value& v,
                                       const place& where) {
  // An array only: "region, day" in one string would be one column of that
  // name, found missing much later; the array says which is meant.
  if (!v.is_array())
    where.fail(v, "group_by",
               std::string{"expected an array of column names (group_by = "
                           "[\"region\", \"day\"]), got "}
                 + type_text(v));
  std::vector<std::string> result;
  for (auto& x : v.as_array()) {
    auto name = get_identifier(x, where, "group_by");
    if (std::find(result.begin(), result.end(), name) != result.end())
      where.fail(x, "group_by", "column " + quote_token(name)
                                  + " is given twice");
    result.push_back(std::move(name));
  }
  return result;
}

/// Each string is an --agg list of its own, parsed with parse_agg_list so
/// that its errors point at the string's own line; names must be unique over
/// all of them and differ from the group columns (both are columns of the
/// output table).
std::vector<agg_expr> read_aggregates(const toml::value& v, const place& where,
                                      const std::vector<std::string>& groups) {
  std::vector<const toml::value*> items;
  if (v.is_string()) {
    items.push_back(&v);
  } else if (v.is_array()) {
    for (auto& x : v.as_array())
      items.push_back(&x);
  } else {
    where.fail(v, "aggregates",
               std::string{"expected an array of strings (aggregates = "
                           "[\"sum(cents)\", \"count(*)\"]), got "}
                 + type_text(v));
  }
  if (items.empty())
    where.fail(v, "aggregates",
               "no aggregate given (e.g. aggregates = [\"count(*)\"])");
  std::vector<agg_expr> result;
  std::map<std::string, std::string> names; // output name -> aggregate
  for (auto* x : items) {
    auto text = get_printable(*x, where, "aggregates");
    auto line = x->location().line();
    for (auto& e : parse_agg_list(text, where.at(line, "aggregates"))) {
      if (std::find(groups.begin(), groups.end(), e.name) != groups.end())
        where.fail(line, "aggregates",
                   "'" + e.text + "' is named like the group column '"
                     + e.name + "' (give it another name with AS)");
      auto [it, fresh] = names.emplace(e.name, e.text);
      if (!fresh)
        where.fail(line, "aggregates",
                   "'" + e.text + "' and '" + it->second + "' are both named '"
                     + e.name + "' (give one another name with AS)");
      result.push_back(std::move(e));
    }
  }
  return result;
}

/// The table a job reads: exactly one of `table` and `query`.
void read_source(const toml::value& v, const place& where, file_job& fj) {
  auto table = lookup(v, "table");
  auto query = lookup(v, "query");
  if (table == nullptr && query == nullptr)
    where.fail(fj.line, "",
               "no source: give 'table' (a table name) or 'query' (a SELECT)");
  if (table != nullptr && query != nullptr)
    where.fail(*query, "query",
               "give either 'table' or 'query', not both (line "
                 + std::to_string(table->location().line())
                 + " gives 'table')");
  if (table != nullptr) {
    fj.job.table.table = get_identifier(*table, where, "table");
    fj.job.table.schema.clear();
  } else {
    fj.job.query = get_sql(*query, where, "query");
  }
}

file_job read_job(const toml::value& v, const std::string& path,
                  std::size_t index) {
  place where{path, "job " + std::to_string(index)};
  if (!v.is_table())
    where.fail(v, "job",
               std::string{"expected a table ([[job]]), got "} + type_text(v));
  file_job fj;
  fj.line = v.location().line();
  // The name first: every other message about the job names it.
  auto name = lookup(v, "name");
  if (name == nullptr)
    where.fail(fj.line, "",
               "no 'name' (every job has a name, for messages and results)");
  fj.job.name = get_printable(*name, where, "name");
  if (fj.job.name.empty())
    where.fail(*name, "name", "empty name");
  where.table = "job \"" + fj.job.name + "\"";
  check_keys(v, job_keys, where, "job");
  for (auto& [key, x] : v.as_table())
    fj.lines[key] = x.location().line();
  read_source(v, where, fj);
  if (auto x = lookup(v, "schema"))
    fj.schema = get_identifier(*x, where, "schema");
  if (auto x = lookup(v, "where"))
    fj.job.where = get_sql(*x, where, "where");
  if (auto x = lookup(v, "group_by"))
    fj.job.group_by = read_group_by(*x, where);
  auto aggs = lookup(v, "aggregates");
  if (aggs == nullptr)
    where.fail(fj.line, "",
               "no 'aggregates' (e.g. aggregates = [\"count(*)\"])");
  fj.job.aggs = read_aggregates(*aggs, where, fj.job.group_by);
  if (auto x = lookup(v, "output"))
    fj.job.output = get_identifier(*x, where, "output");
  if (auto x = lookup(v, "output_schema")) {
    fj.output_schema = get_identifier(*x, where, "output_schema");
    if (fj.job.output.empty())
      where.fail(*x, "output_schema", "given without 'output'");
  }
  return fj;
}

toml::value parse_file(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::is_directory(path, ec))
    throw usage_error(path + ": is a directory, not a job file");
  std::ifstream in{path, std::ios::binary};
  if (!in)
    throw usage_error(path + ": cannot read the job file: "
                      + std::strerror(errno));
  try {
    return toml::parse(in, path);
  } catch (const toml::exception& e) {
    throw usage_error(path + ":" + std::to_string(e.location().line()) + ": "
                      + one_line(e.what()));
  } catch (const std::exception& e) {
    throw usage_error(path + ": " + one_line(e.what()));
  }
}

} // namespace

job_file read_job_file(const std::string& path) {
  auto root = parse_file(path);
  place top{path, ""};
  check_keys(root, top_keys, top, "top");
  job_file file;
  file.path = path;
  if (auto x = lookup(root, "atomic"))
    file.atomic = get_bool(*x, top, "atomic");
  if (auto x = lookup(root, "defaults"))
    file.defaults = read_defaults(*x, path);
  auto jobs = lookup(root, "job");
  if (jobs == nullptr)
    throw usage_error(path + ": no job (a job file has one [[job]] table or "
                             "more; see docs/etl.md)");
  if (!jobs->is_array())
    top.fail(*jobs, "job",
             std::string{"expected an array of tables ([[job]]), got "}
               + type_text(*jobs) + (jobs->is_table() ? " ([job])" : ""));
  std::map<std::string, std::size_t> names; // name -> line
  for (auto& v : jobs->as_array()) {
    auto fj = read_job(v, path, file.jobs.size() + 1);
    auto [it, fresh] = names.emplace(fj.job.name, fj.line);
    if (!fresh)
      place{path, "job \"" + fj.job.name + "\""}.fail(
        fj.lines.at("name"), "name",
        "another job (line " + std::to_string(it->second)
          + ") has this name");
    file.jobs.push_back(std::move(fj));
  }
  return file;
}

namespace {

bool same_table(const pg::table_name& x, const pg::table_name& y) {
  return x.schema == y.schema && x.table == y.table;
}

pg::table_name output_of(const agg_job& job) {
  return {job.output_schema, job.output};
}

} // namespace

std::vector<agg_job> resolve_jobs(const job_file& file,
                                  const std::string& schema) {
  std::vector<agg_job> result;
  for (auto& fj : file.jobs) {
    auto job = fj.job;
    auto own = fj.schema.value_or(schema);
    if (job.query.empty())
      job.table.schema = own;
    // Spelled out for a query too, so that `schema` places its output.
    if (!job.output.empty())
      job.output_schema = fj.output_schema.value_or(own);
    place where{file.path, "job \"" + job.name + "\""};
    for (auto& earlier : result) {
      if (!job.output.empty() && !earlier.output.empty()
          && same_table(output_of(job), output_of(earlier)))
        where.fail(fj.lines.at("output"), "output",
                   "job \"" + earlier.name + "\" writes "
                     + output_of(job).display() + " too");
      if (job.query.empty() && !earlier.output.empty()
          && same_table(job.table, output_of(earlier)))
        where.fail(fj.lines.at("table"), "table",
                   "job \"" + earlier.name + "\" writes "
                     + job.table.display()
                     + ", and every job reads one snapshot taken before "
                       "the first: this job would read the table as it was "
                       "before the run");
    }
    result.push_back(std::move(job));
  }
  return result;
}

std::size_t reads_output_of(const std::vector<agg_job>& jobs, std::size_t i) {
  auto& job = jobs.at(i);
  if (!job.query.empty())
    return i;
  for (std::size_t k = 0; k < i; ++k)
    if (!jobs[k].output.empty() && same_table(job.table, output_of(jobs[k])))
      return k;
  return i;
}

} // namespace flow::apps
