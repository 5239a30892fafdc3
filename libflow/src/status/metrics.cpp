// The Prometheus text exposition format (0.0.4) of the jobs' statistics, and
// the secret scrubbing every served string goes through.

#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <stdexcept>

#include "flow/status_render.hpp"

namespace flow {

// -- secrets --------------------------------------------------------------------

namespace {

bool iequals_at(const std::string& text, std::size_t pos,
                const std::string& word) {
  if (pos + word.size() > text.size())
    return false;
  for (std::size_t i = 0; i < word.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(text[pos + i])) != word[i])
      return false;
  return true;
}

bool is_word_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_';
}

/// Where the value after `key` `=` starts at `pos` (the key matched there),
/// or npos when no `=` follows.
std::size_t value_start(const std::string& text, std::size_t pos) {
  while (pos < text.size() && text[pos] == ' ')
    ++pos;
  if (pos >= text.size() || text[pos] != '=')
    return std::string::npos;
  ++pos;
  while (pos < text.size() && text[pos] == ' ')
    ++pos;
  return pos;
}

/// Where a key=value value starting at `pos` ends: a quoted value (libpq's
/// '...' with backslash escapes) at its closing quote, else at a space, `&`,
/// `;`, `,` or a quote of another string.
std::size_t value_end(const std::string& text, std::size_t pos) {
  if (pos < text.size() && text[pos] == '\'') {
    ++pos;
    while (pos < text.size() && text[pos] != '\'') {
      if (text[pos] == '\\')
        ++pos;
      ++pos;
    }
    return std::min(pos + 1, text.size());
  }
  while (pos < text.size() && text[pos] != ' ' && text[pos] != '&'
         && text[pos] != ';' && text[pos] != ',' && text[pos] != '"'
         && text[pos] != '\n' && text[pos] != '\t')
    ++pos;
  return pos;
}

/// password=... and sslpassword=... (any case) become password=***.
std::string scrub_pairs(const std::string& text) {
  std::string out;
  std::size_t i = 0;
  while (i < text.size()) {
    std::size_t key_len = 0;
    if (iequals_at(text, i, "sslpassword"))
      key_len = 11;
    else if (iequals_at(text, i, "password"))
      key_len = 8;
    if (key_len > 0 && (i == 0 || !is_word_char(text[i - 1]))) {
      auto start = value_start(text, i + key_len);
      if (start != std::string::npos) {
        out.append(text, i, start - i);
        out += "***";
        i = value_end(text, start);
        continue;
      }
    }
    out += text[i++];
  }
  return out;
}

/// scheme://user:secret@host becomes scheme://user:***@host.
std::string scrub_uris(const std::string& text) {
  std::string out;
  std::size_t i = 0;
  while (i < text.size()) {
    auto scheme_end = text.find("://", i);
    if (scheme_end == std::string::npos) {
      out.append(text, i, std::string::npos);
      break;
    }
    auto auth = scheme_end + 3;
    out.append(text, i, auth - i);
    auto end = auth;
    while (end < text.size() && text[end] != '/' && text[end] != '?'
           && text[end] != ' ' && text[end] != '"' && text[end] != '\n')
      ++end;
    auto at = text.rfind('@', end == 0 ? 0 : end - 1);
    if (at != std::string::npos && at >= auth && at < end) {
      auto colon = text.find(':', auth);
      if (colon != std::string::npos && colon < at) {
        out.append(text, auth, colon + 1 - auth);
        out += "***";
        out.append(text, at, end - at);
      } else {
        out.append(text, auth, end - auth);
      }
    } else {
      out.append(text, auth, end - auth);
    }
    i = end;
  }
  return out;
}

} // namespace

std::string scrub_secrets(const std::string& text) {
  return scrub_pairs(scrub_uris(text));
}

// -- prometheus_writer ------------------------------------------------------------

namespace {

bool valid_metric_name(const std::string& name) {
  if (name.empty())
    return false;
  for (std::size_t i = 0; i < name.size(); ++i) {
    auto c = name[i];
    bool ok = std::isalpha(static_cast<unsigned char>(c)) != 0 || c == '_'
              || c == ':'
              || (i > 0 && std::isdigit(static_cast<unsigned char>(c)) != 0);
    if (!ok)
      return false;
  }
  return true;
}

} // namespace

void prometheus_writer::family(const std::string& name,
                               const std::string& type,
                               const std::string& help) {
  if (!valid_metric_name(name))
    throw std::logic_error("invalid metric name: " + name);
  if (!seen_.emplace(name, true).second)
    throw std::logic_error("metric family emitted twice: " + name);
  current_ = name;
  out_ += "# HELP " + name + ' ' + escape_help(help) + '\n';
  out_ += "# TYPE " + name + ' ' + type + '\n';
}

void prometheus_writer::sample(const std::vector<label>& labels, double value,
                               const std::string& suffix) {
  if (current_.empty())
    throw std::logic_error("a metric sample before its family");
  out_ += current_;
  out_ += suffix;
  if (!labels.empty()) {
    out_ += '{';
    bool first = true;
    for (auto& [k, v] : labels) {
      if (!first)
        out_ += ',';
      first = false;
      out_ += k;
      out_ += "=\"";
      out_ += escape_label(v);
      out_ += '"';
    }
    out_ += '}';
  }
  out_ += ' ';
  out_ += format_value(value);
  out_ += '\n';
}

std::string prometheus_writer::escape_label(const std::string& value) {
  std::string out;
  out.reserve(value.size());
  for (auto c : value) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '"')
      out += "\\\"";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  return out;
}

std::string prometheus_writer::escape_help(const std::string& text) {
  std::string out;
  for (auto c : text) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  return out;
}

std::string prometheus_writer::format_value(double value) {
  if (std::isnan(value))
    return "NaN";
  if (std::isinf(value))
    return value > 0 ? "+Inf" : "-Inf";
  char buf[64];
  if (value == std::floor(value) && std::fabs(value) < 1e15) {
    std::snprintf(buf, sizeof(buf), "%.0f", value);
    return buf;
  }
  // The shortest text that reads back as the same double.
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), value);
  return ec == std::errc{} ? std::string(buf, end) : std::string{"NaN"};
}

// -- the metrics ------------------------------------------------------------------

namespace {

using labels = std::vector<prometheus_writer::label>;

double num(std::uint64_t x) {
  return static_cast<double>(x);
}

/// One family with one sample per source of every job.
template <class F>
void per_source(prometheus_writer& w, const std::vector<status_entry>& jobs,
                const std::string& name, const std::string& type,
                const std::string& help, F value) {
  w.family(name, type, help);
  for (auto& j : jobs)
    for (auto& src : j.stats.sources)
      if (auto x = value(src); x >= 0)
        w.sample({{"job", scrub_secrets(j.name)},
                  {"source", scrub_secrets(src.name)}},
                 x);
}

/// One family with one sample per job.
template <class F>
void per_job(prometheus_writer& w, const std::vector<status_entry>& jobs,
             const std::string& name, const std::string& type,
             const std::string& help, F value) {
  w.family(name, type, help);
  for (auto& j : jobs)
    w.sample({{"job", scrub_secrets(j.name)}}, value(j.stats));
}

/// Rows written, labelled by the output table: one series per output of a
/// sink with several, else one labelled by the sink's name when the job has
/// a sink.
void rows_written(prometheus_writer& w, const std::vector<status_entry>& jobs) {
  w.family("flow_rows_written_total", "counter",
           "Rows the sink confirmed written, per output table.");
  for (auto& j : jobs) {
    if (!j.stats.outputs.empty()) {
      for (auto& [name, rows] : j.stats.outputs)
        w.sample({{"job", scrub_secrets(j.name)},
                  {"table", scrub_secrets(name)}},
                 num(rows));
      continue;
    }
    labels ls{{"job", scrub_secrets(j.name)}};
    if (!j.stats.sink.empty())
      ls.push_back({"table", scrub_secrets(j.stats.sink)});
    w.sample(ls, num(j.stats.written));
  }
}

/// One family with one sample per worker node of every job.
template <class F>
void per_node(prometheus_writer& w, const std::vector<status_entry>& jobs,
              const std::string& name, const std::string& type,
              const std::string& help, F value) {
  w.family(name, type, help);
  for (auto& j : jobs)
    for (auto& n : j.stats.nodes)
      w.sample({{"job", scrub_secrets(j.name)},
                {"node", scrub_secrets(n.name)}},
               value(n));
}

void source_metrics(prometheus_writer& w,
                    const std::vector<status_entry>& jobs) {
  per_source(w, jobs, "flow_elements_emitted_total", "counter",
             "Elements the source emitted (received by the manager).",
             [](const source_stats& s) { return num(s.emitted); });
  per_source(w, jobs, "flow_elements_aggregated_total", "counter",
             "Elements merged into the aggregates.",
             [](const source_stats& s) { return num(s.aggregated); });
  per_source(w, jobs, "flow_elements_rejected_total", "counter",
             "Elements the reducer rejected (see "
             "flow_rejections_total for the reasons).",
             [](const source_stats& s) { return num(s.rejected); });
  per_source(w, jobs, "flow_elements_dead_lettered_total", "counter",
             "Elements the reducer failed on after every retry.",
             [](const source_stats& s) { return num(s.dead_lettered); });
  per_source(w, jobs, "flow_source_batches_total", "counter",
             "Batches the source emitted.",
             [](const source_stats& s) { return num(s.batches); });
  per_source(w, jobs, "flow_source_batches_merged_total", "counter",
             "Batches of the source merged.",
             [](const source_stats& s) { return num(s.merged); });
  per_source(w, jobs, "flow_source_elements_expected", "gauge",
             "Elements the source emits in all, when it knows.",
             [](const source_stats& s) {
               return s.total ? num(*s.total) : -1.0;
             });
  per_source(w, jobs, "flow_source_elements_expected_estimated", "gauge",
             "1 when flow_source_elements_expected is an estimate (the "
             "PostgreSQL planner's rows of a partition), 0 when exact.",
             [](const source_stats& s) {
               return s.total ? (s.total_is_estimate ? 1.0 : 0.0) : -1.0;
             });
  per_source(w, jobs, "flow_source_batches_in_flight", "gauge",
             "Batches of the source received and not yet merged.",
             [](const source_stats& s) { return num(s.in_flight); });
  per_source(w, jobs, "flow_source_credit_limit", "gauge",
             "The credit bound: batches the source may have unconfirmed.",
             [](const source_stats& s) { return num(s.credit); });
  per_source(w, jobs, "flow_source_credit_wait_seconds_total", "counter",
             "Seconds the source had all its credit in use "
             "(backpressure).",
             [](const source_stats& s) { return s.credit_wait_seconds; });
  per_source(w, jobs, "flow_source_waiting_for_credit", "gauge",
             "1 while the source has all its credit in use.",
             [](const source_stats& s) { return s.waiting ? 1.0 : 0.0; });
  per_source(w, jobs, "flow_source_done", "gauge",
             "1 once the source reached its end.",
             [](const source_stats& s) { return s.done ? 1.0 : 0.0; });
}

/// One family with one sample per task source of every job (sources whose
/// work is a task a worker node runs); a negative value leaves it out.
template <class F>
void per_task(prometheus_writer& w, const std::vector<status_entry>& jobs,
              const std::string& name, const std::string& type,
              const std::string& help, F value) {
  per_source(w, jobs, name, type, help, [&](const source_stats& s) {
    return s.task ? value(*s.task) : -1.0;
  });
}

/// The rows behind task sources: their elements are keyed results, so the
/// element families cannot show how far a distributed database job is.
void task_metrics(prometheus_writer& w,
                  const std::vector<status_entry>& jobs) {
  per_task(w, jobs, "flow_task_rows_expected", "gauge",
           "Rows the task reads in all, when known before it runs (the "
           "PostgreSQL planner's estimate of its partition).",
           [](const task_stats& t) {
             return t.rows_total ? num(*t.rows_total) : -1.0;
           });
  per_task(w, jobs, "flow_task_rows_expected_estimated", "gauge",
           "1 when flow_task_rows_expected is an estimate, 0 when exact.",
           [](const task_stats& t) {
             return t.rows_total ? (t.rows_total_is_estimate ? 1.0 : 0.0)
                                 : -1.0;
           });
  per_task(w, jobs, "flow_task_rows_read_total", "counter",
           "Rows the task read (0 until it is done: its node reports them "
           "with its result).",
           [](const task_stats& t) { return num(t.rows_read); });
  per_task(w, jobs, "flow_task_rows_aggregated_total", "counter",
           "Rows the task aggregated (0 until it is done).",
           [](const task_stats& t) { return num(t.rows_aggregated); });
  per_task(w, jobs, "flow_task_rows_rejected_total", "counter",
           "Rows the task rejected (0 until it is done).",
           [](const task_stats& t) { return num(t.rows_rejected); });
  per_task(w, jobs, "flow_task_rows_dead_lettered_total", "counter",
           "Rows the task dead-lettered (0 until it is done).",
           [](const task_stats& t) { return num(t.rows_dead_lettered); });
  w.family("flow_task_state", "gauge",
           "1 for the state the task is in (queued, running, done, "
           "failed), 0 for the others.");
  for (auto& j : jobs)
    for (auto& src : j.stats.sources)
      if (src.task)
        for (auto x : {task_state::queued, task_state::running,
                       task_state::done, task_state::failed})
          w.sample({{"job", scrub_secrets(j.name)},
                    {"source", scrub_secrets(src.name)},
                    {"state", to_string(x)}},
                   src.task->state == x ? 1.0 : 0.0);
  w.family("flow_task_node", "gauge",
           "1 for the worker node the task went to (absent while queued and "
           "when it runs in the manager's process).");
  for (auto& j : jobs)
    for (auto& src : j.stats.sources)
      if (src.task && !src.task->node.empty())
        w.sample({{"job", scrub_secrets(j.name)},
                  {"source", scrub_secrets(src.name)},
                  {"node", scrub_secrets(src.task->node)}},
                 1.0);
}

void job_metrics(prometheus_writer& w,
                 const std::vector<status_entry>& jobs) {
  w.family("flow_job_state", "gauge",
           "1 for the state the job is in (running, draining, done, "
           "failed), 0 for the others.");
  for (auto& j : jobs)
    for (auto s : {job_state::running, job_state::draining, job_state::done,
                   job_state::failed})
      w.sample({{"job", scrub_secrets(j.name)}, {"state", to_string(s)}},
               j.stats.state == s ? 1.0 : 0.0);
  per_job(w, jobs, "flow_job_start_time_seconds", "gauge",
          "When the job started, seconds since the Unix epoch.",
          [](const job_stats& s) {
            return std::chrono::duration<double>(
                     s.started.time_since_epoch())
              .count();
          });
  per_job(w, jobs, "flow_job_elapsed_seconds", "gauge",
          "Seconds since the job started (its duration once ended).",
          [](const job_stats& s) { return s.elapsed_seconds; });
  per_job(w, jobs, "flow_elements_in_flight", "gauge",
          "Elements emitted and not yet aggregated, rejected or "
          "dead-lettered.",
          [](const job_stats& s) { return num(s.elements_in_flight()); });
  w.family("flow_rejections_total", "counter",
           "Elements the reducer rejected, by reason.");
  for (auto& j : jobs)
    for (auto& [reason, n] : j.stats.rejections)
      w.sample({{"job", scrub_secrets(j.name)},
                {"reason", scrub_secrets(reason)}},
               num(n));
  per_job(w, jobs, "flow_batches_dispatched_total", "counter",
          "Batches handed to reducers (a retried batch counts again).",
          [](const job_stats& s) { return num(s.batches_dispatched); });
  per_job(w, jobs, "flow_batches_merged_total", "counter",
          "Batches merged by the manager.",
          [](const job_stats& s) { return num(s.batches_merged()); });
  per_job(w, jobs, "flow_batches_retried_total", "counter",
          "Batches whose reducer call threw and that were dispatched "
          "again.",
          [](const job_stats& s) { return num(s.batches_retried); });
  per_job(w, jobs, "flow_batches_redispatched_total", "counter",
          "Batches a lost reducer held that went to another reducer.",
          [](const job_stats& s) { return num(s.batches_redispatched); });
  per_job(w, jobs, "flow_batches_speculated_total", "counter",
          "Batches dispatched a second time because their reducer held "
          "them too long.",
          [](const job_stats& s) { return num(s.batches_speculated); });
  per_job(w, jobs, "flow_speculation_won_total", "counter",
          "Second attempts of batches that answered before the first.",
          [](const job_stats& s) { return num(s.speculation_won); });
  per_job(w, jobs, "flow_reducers", "gauge",
          "Reducers in the pool, local and lent by worker nodes.",
          [](const job_stats& s) { return num(s.reducers); });
  per_job(w, jobs, "flow_reducers_busy", "gauge",
          "Reducers holding at least one batch.",
          [](const job_stats& s) { return num(s.reducers_busy); });
  per_job(w, jobs, "flow_reducers_replaced_total", "counter",
          "Local reducers that died and were replaced.",
          [](const job_stats& s) { return num(s.reducers_replaced); });
  per_job(w, jobs, "flow_worker_nodes_connected", "gauge",
          "Worker nodes with at least one reducer connected to the job.",
          [](const job_stats& s) {
            std::uint64_t n = 0;
            for (auto& x : s.nodes)
              n += x.reducers > 0 ? 1 : 0;
            return num(n);
          });
  per_node(w, jobs, "flow_worker_node_reducers", "gauge",
           "Reducers the worker node lent that are connected.",
           [](const node_stats& n) { return num(n.reducers); });
  per_node(w, jobs, "flow_worker_node_batches_held", "gauge",
           "Batches the worker node's reducers hold now.",
           [](const node_stats& n) { return num(n.batches_held); });
  per_node(w, jobs, "flow_worker_node_batches_merged_total", "counter",
           "Batches merged from the worker node's reducers.",
           [](const node_stats& n) { return num(n.batches_merged); });
  per_job(w, jobs, "flow_keys_held", "gauge",
          "Keys the manager holds running aggregates for.",
          [](const job_stats& s) { return num(s.keys); });
  per_job(w, jobs, "flow_manager_shards", "gauge",
          "Manager shards holding the job's keys (0: the manager holds "
          "them).",
          [](const job_stats& s) { return num(s.manager_shards); });
  rows_written(w, jobs);
}

void histogram(prometheus_writer& w, const std::vector<status_entry>& jobs) {
  w.family("flow_batch_reduce_seconds", "histogram",
           "Seconds from handing a batch to a reducer to merging its "
           "partial aggregate.");
  for (auto& j : jobs) {
    auto name = scrub_secrets(j.name);
    std::uint64_t cumulative = 0;
    auto& counts = j.stats.reduce_counts;
    for (std::size_t i = 0; i < job_stats::reduce_buckets; ++i) {
      cumulative += i < counts.size() ? counts[i] : 0;
      w.sample({{"job", name},
                {"le", prometheus_writer::format_value(
                         job_stats::reduce_bounds[i])}},
               num(cumulative), "_bucket");
    }
    if (counts.size() > job_stats::reduce_buckets)
      cumulative += counts[job_stats::reduce_buckets];
    w.sample({{"job", name}, {"le", "+Inf"}}, num(cumulative), "_bucket");
    w.sample({{"job", name}}, j.stats.reduce_seconds, "_sum");
    w.sample({{"job", name}}, num(cumulative), "_count");
  }
}

} // namespace

std::string render_metrics(const std::vector<status_entry>& jobs) {
  prometheus_writer w;
  source_metrics(w, jobs);
  task_metrics(w, jobs);
  job_metrics(w, jobs);
  histogram(w, jobs);
  return w.str();
}

} // namespace flow
