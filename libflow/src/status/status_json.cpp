// The /status JSON document (docs/observability.md documents every field).
// Written by hand: a small writer, so flow::status needs no JSON library.
// Every string goes through scrub_secrets.

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <ctime>

#include "flow/status_render.hpp"

namespace flow {

namespace {

/// Appends JSON values to a string; the caller places commas with `sep`.
class json_out {
public:
  json_out& raw(const std::string& text) {
    out_ += text;
    return *this;
  }

  json_out& str(const std::string& text) {
    auto clean = scrub_secrets(text);
    out_ += '"';
    for (auto c : clean) {
      auto u = static_cast<unsigned char>(c);
      switch (c) {
        case '"':
          out_ += "\\\"";
          break;
        case '\\':
          out_ += "\\\\";
          break;
        case '\n':
          out_ += "\\n";
          break;
        case '\r':
          out_ += "\\r";
          break;
        case '\t':
          out_ += "\\t";
          break;
        default:
          if (u < 0x20) {
            char buf[8];
            std::snprintf(buf, sizeof(buf), "\\u%04x", u);
            out_ += buf;
          } else {
            out_ += c;
          }
      }
    }
    out_ += '"';
    return *this;
  }

  json_out& num(std::uint64_t x) {
    out_ += std::to_string(x);
    return *this;
  }

  json_out& num(double x) {
    if (!std::isfinite(x)) {
      out_ += "null";
      return *this;
    }
    char buf[64];
    auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), x);
    out_.append(buf, ec == std::errc{} ? end : buf);
    return *this;
  }

  json_out& boolean(bool x) {
    out_ += x ? "true" : "false";
    return *this;
  }

  json_out& null() {
    out_ += "null";
    return *this;
  }

  /// `"name":` (after a comma unless it opens an object).
  json_out& key(const std::string& name) {
    if (!out_.empty() && out_.back() != '{' && out_.back() != '[')
      out_ += ',';
    str(name);
    out_ += ':';
    return *this;
  }

  /// A comma before an array element that is not the first.
  json_out& item() {
    if (!out_.empty() && out_.back() != '[')
      out_ += ',';
    return *this;
  }

  const std::string& text() const noexcept {
    return out_;
  }

private:
  std::string out_;
};

std::string iso_time(std::chrono::system_clock::time_point t) {
  auto secs = std::chrono::system_clock::to_time_t(t);
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
              t.time_since_epoch())
              .count()
            % 1000;
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[96];
  std::snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
                tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                tm.tm_min, tm.tm_sec, static_cast<int>(ms));
  return buf;
}

/// Elements per second over the last few seconds of `history` (ending at
/// the current count `now_count` at `now`), 0 when too short.
double recent_rate(const status_entry& e, double now, std::uint64_t count) {
  constexpr double window = 3.0;
  const std::pair<double, std::uint64_t>* from = nullptr;
  for (auto& sample : e.history) {
    if (sample.first <= now - window || from == nullptr)
      from = &sample;
    if (sample.first > now - window)
      break;
  }
  if (from == nullptr || now - from->first < 0.2 || count < from->second)
    return 0;
  return static_cast<double>(count - from->second) / (now - from->first);
}

void optional_num(json_out& j, const std::optional<double>& x) {
  if (x)
    j.num(*x);
  else
    j.null();
}

/// Progress in [0, 1] and the ETA in seconds of `done` of `total` at `rate`.
/// An estimated total can be exceeded: its progress stays at most 0.99 and
/// its ETA unknown past it until the end.
void progress_fields(json_out& j, std::optional<std::uint64_t> total,
                     std::uint64_t done, double rate, bool finished,
                     bool estimated = false) {
  std::optional<double> progress;
  std::optional<double> eta;
  if (total && estimated && finished) {
    progress = 1.0;
    eta = 0.0;
  } else if (total) {
    progress = *total == 0 ? 1.0
                           : std::min(1.0, static_cast<double>(done)
                                             / static_cast<double>(*total));
    if (estimated)
      progress = std::min(*progress, 0.99);
    if (finished || (done >= *total && !estimated))
      eta = 0.0;
    else if (done >= *total)
      eta = std::nullopt;
    else if (rate > 0)
      eta = static_cast<double>(*total - done) / rate;
  } else if (finished) {
    progress = 1.0;
    eta = 0.0;
  }
  j.key("progress");
  optional_num(j, progress);
  j.key("eta_seconds");
  optional_num(j, eta);
}

/// A task source's task (null for other sources): its state, node and rows.
void task_json(json_out& j, const std::optional<task_stats>& t) {
  if (!t) {
    j.null();
    return;
  }
  j.raw("{");
  j.key("state").str(to_string(t->state));
  j.key("node");
  if (t->node.empty())
    j.null();
  else
    j.str(t->node);
  j.key("local").boolean(t->local);
  j.key("rows_total");
  if (t->rows_total)
    j.num(*t->rows_total);
  else
    j.null();
  j.key("rows_total_estimated").boolean(t->rows_total
                                        && t->rows_total_is_estimate);
  j.key("rows_read").num(t->rows_read);
  j.key("rows_aggregated").num(t->rows_aggregated);
  j.key("rows_rejected").num(t->rows_rejected);
  j.key("rows_dead_lettered").num(t->rows_dead_lettered);
  j.raw("}");
}

void source_json(json_out& j, const source_stats& s, double job_rate,
                 std::uint64_t job_emitted, bool finished) {
  j.item().raw("{");
  j.key("name").str(s.name);
  j.key("total");
  if (s.total)
    j.num(*s.total);
  else
    j.null();
  j.key("total_estimated").boolean(s.total && s.total_is_estimate);
  j.key("emitted").num(s.emitted);
  j.key("aggregated").num(s.aggregated);
  j.key("rejected").num(s.rejected);
  j.key("dead_lettered").num(s.dead_lettered);
  j.key("batches").num(s.batches);
  j.key("merged").num(s.merged);
  j.key("in_flight").num(s.in_flight);
  j.key("credit").num(s.credit);
  j.key("waiting").boolean(s.waiting);
  j.key("credit_wait_seconds").num(s.credit_wait_seconds);
  j.key("done").boolean(s.done);
  // The job's rate, shared by the sources in proportion to what each one
  // emitted so far.
  double rate = job_emitted == 0
                  ? 0
                  : job_rate * static_cast<double>(s.emitted)
                      / static_cast<double>(job_emitted);
  progress_fields(j, s.total, s.emitted, rate, finished || s.done,
                  s.total_is_estimate);
  j.key("task");
  task_json(j, s.task);
  j.raw("}");
}

/// The job's tasks summed (null without task sources): how far a job whose
/// sources are tasks (a distributed database job) is, in rows, since its
/// elements (keyed results) say nothing of that.
void tasks_json(json_out& j, const job_stats& s, bool finished) {
  std::uint64_t count = 0;
  std::uint64_t by_state[4] = {0, 0, 0, 0};
  std::optional<std::uint64_t> rows_total = 0;
  bool estimated = false;
  task_stats sum;
  for (auto& src : s.sources) {
    if (!src.task)
      continue;
    auto& t = *src.task;
    ++count;
    ++by_state[static_cast<int>(t.state)];
    if (rows_total && t.rows_total)
      *rows_total += *t.rows_total;
    else
      rows_total = std::nullopt;
    estimated = estimated || (t.rows_total && t.rows_total_is_estimate);
    sum.rows_read += t.rows_read;
    sum.rows_aggregated += t.rows_aggregated;
    sum.rows_rejected += t.rows_rejected;
    sum.rows_dead_lettered += t.rows_dead_lettered;
  }
  if (count == 0) {
    j.null();
    return;
  }
  auto done = by_state[static_cast<int>(task_state::done)];
  j.raw("{");
  j.key("count").num(count);
  j.key("queued").num(by_state[static_cast<int>(task_state::queued)]);
  j.key("running").num(by_state[static_cast<int>(task_state::running)]);
  j.key("done").num(done);
  j.key("failed").num(by_state[static_cast<int>(task_state::failed)]);
  j.key("rows_total");
  if (rows_total)
    j.num(*rows_total);
  else
    j.null();
  j.key("rows_total_estimated").boolean(rows_total && estimated);
  j.key("rows_read").num(sum.rows_read);
  j.key("rows_aggregated").num(sum.rows_aggregated);
  j.key("rows_rejected").num(sum.rows_rejected);
  j.key("rows_dead_lettered").num(sum.rows_dead_lettered);
  // Rows arrive a task at a time: progress in rows of the tasks done over
  // the (estimated) rows in all, else in tasks done over tasks.
  finished = finished || done == count;
  auto secs = s.elapsed_seconds;
  if (rows_total)
    progress_fields(j, rows_total, sum.rows_read,
                    secs > 0 ? static_cast<double>(sum.rows_read) / secs : 0,
                    finished, estimated);
  else
    progress_fields(j, count, done,
                    secs > 0 ? static_cast<double>(done) / secs : 0,
                    finished);
  j.raw("}");
}

void result_json(json_out& j, const job_result& r) {
  constexpr std::size_t shown_keys = 100;
  j.raw("{");
  j.key("final").boolean(r.final);
  j.key("partial").boolean(r.partial);
  j.key("balanced").boolean(r.balanced());
  j.key("emitted").num(r.emitted);
  j.key("aggregated").num(r.aggregated);
  j.key("rejected").num(r.rejected);
  j.key("dead_lettered").num(r.dead_lettered);
  j.key("abandoned").num(r.abandoned);
  j.key("batches").num(r.batches);
  j.key("retried").num(r.retried);
  j.key("written").num(r.written);
  j.key("sources").num(r.sources);
  j.key("peak_in_flight").num(r.peak_in_flight);
  j.key("remote_batches").num(r.remote_batches);
  j.key("reducers_replaced").num(r.reducers_replaced);
  j.key("speculated").num(r.speculated);
  j.key("speculation_won").num(r.speculation_won);
  j.key("keys_total").num(std::max<std::uint64_t>(r.key_count, r.keys.size()));
  j.key("keys").raw("[");
  for (std::size_t i = 0; i < r.keys.size() && i < shown_keys; ++i) {
    auto& k = r.keys[i];
    j.item().raw("{");
    j.key("key").str(to_string(k.key));
    // 128-bit sums as strings: JSON numbers lose precision past 2^53.
    j.key("sum").str(to_string(k.agg.sum));
    j.key("count").num(k.agg.count);
    if (k.agg.count > 0) {
      j.key("min").str(std::to_string(k.agg.min));
      j.key("max").str(std::to_string(k.agg.max));
    } else {
      j.key("min").null();
      j.key("max").null();
    }
    j.raw("}");
  }
  j.raw("]");
  j.raw("}");
}

void job_json(json_out& j, const status_entry& e) {
  auto& s = e.stats;
  bool finished = s.state == job_state::done || s.state == job_state::failed;
  auto emitted = s.emitted();
  auto aggregated = s.aggregated();
  auto rejected = s.rejected();
  auto dead = s.dead_lettered();
  auto accounted = aggregated + rejected + dead;
  double rate_now = finished ? 0 : recent_rate(e, s.elapsed_seconds, emitted);
  double rate_avg = s.elapsed_seconds > 0
                      ? static_cast<double>(emitted) / s.elapsed_seconds
                      : 0;
  j.item().raw("{");
  j.key("name").str(e.name);
  j.key("state").str(to_string(s.state));
  j.key("started").str(iso_time(s.started));
  j.key("started_unix").num(
    std::chrono::duration<double>(s.started.time_since_epoch()).count());
  j.key("elapsed_seconds").num(s.elapsed_seconds);
  j.key("accounting").raw("{");
  j.key("emitted").num(emitted);
  j.key("aggregated").num(aggregated);
  j.key("rejected").num(rejected);
  j.key("dead_lettered").num(dead);
  j.key("in_flight").num(emitted - accounted);
  j.key("balanced").boolean(true);
  j.raw("}");
  j.key("throughput").raw("{");
  j.key("now_per_second").num(rate_now);
  j.key("average_per_second").num(rate_avg);
  j.raw("}");
  j.key("total");
  if (auto t = s.total())
    j.num(*t);
  else
    j.null();
  bool estimated = std::any_of(
    s.sources.begin(), s.sources.end(),
    [](const source_stats& x) { return x.total && x.total_is_estimate; });
  j.key("total_estimated").boolean(s.total() && estimated);
  progress_fields(j, s.total(), emitted, rate_now > 0 ? rate_now : rate_avg,
                  finished, estimated);
  j.key("tasks");
  tasks_json(j, s, finished);
  j.key("sources").raw("[");
  for (auto& src : s.sources)
    source_json(j, src, rate_now > 0 ? rate_now : rate_avg, emitted,
                finished);
  j.raw("]");
  j.key("batches").raw("{");
  j.key("dispatched").num(s.batches_dispatched);
  j.key("merged").num(s.batches_merged());
  j.key("retried").num(s.batches_retried);
  j.key("redispatched").num(s.batches_redispatched);
  j.key("speculated").num(s.batches_speculated);
  j.key("speculation_won").num(s.speculation_won);
  j.raw("}");
  double wait = 0;
  std::uint64_t waiting = 0;
  for (auto& src : s.sources) {
    wait += src.credit_wait_seconds;
    waiting += src.waiting ? 1 : 0;
  }
  j.key("credit").raw("{");
  j.key("wait_seconds").num(wait);
  j.key("sources_waiting").num(waiting);
  j.raw("}");
  j.key("reducers").raw("{");
  j.key("count").num(s.reducers);
  j.key("busy").num(s.reducers_busy);
  j.key("replaced").num(s.reducers_replaced);
  j.raw("}");
  j.key("nodes").raw("[");
  for (auto& n : s.nodes) {
    j.item().raw("{");
    j.key("name").str(n.name);
    j.key("connected").boolean(n.reducers > 0);
    j.key("reducers").num(n.reducers);
    j.key("lost").num(n.lost);
    j.key("batches_held").num(n.batches_held);
    j.key("batches_merged").num(n.batches_merged);
    j.raw("}");
  }
  j.raw("]");
  j.key("keys").num(s.keys);
  j.key("manager_shards").num(s.manager_shards);
  j.key("written").num(s.written);
  j.key("sink").str(s.sink);
  j.key("outputs").raw("[");
  for (auto& [name, rows] : s.outputs) {
    j.item().raw("{");
    j.key("table").str(name);
    j.key("written").num(rows);
    j.raw("}");
  }
  j.raw("]");
  j.key("rejections").raw("[");
  for (auto& [reason, n] : s.rejections) {
    j.item().raw("{");
    j.key("reason").str(reason);
    j.key("count").num(n);
    j.raw("}");
  }
  j.raw("]");
  j.key("reduce_time").raw("{");
  j.key("bounds_seconds").raw("[");
  for (auto b : job_stats::reduce_bounds)
    j.item().num(b);
  j.raw("]");
  j.key("counts").raw("[");
  for (auto c : s.reduce_counts)
    j.item().num(c);
  j.raw("]");
  j.key("sum_seconds").num(s.reduce_seconds);
  j.raw("}");
  j.key("history").raw("[");
  for (auto& [t, n] : e.history) {
    j.item().raw("[").num(t).raw(",").num(n).raw("]");
  }
  j.raw("]");
  j.key("dead_letters").raw("[");
  for (auto& d : s.dead_letters) {
    j.item().raw("{");
    j.key("source").num(static_cast<std::uint64_t>(d.source));
    j.key("index").num(d.index);
    j.key("count").num(d.count);
    j.key("value").str(d.value);
    j.key("error").str(d.error);
    j.raw("}");
  }
  j.raw("]");
  j.key("errors").raw("[");
  for (auto& err : s.errors)
    j.item().str(err);
  j.raw("]");
  j.key("result");
  if (s.result)
    result_json(j, *s.result);
  else
    j.null();
  j.raw("}");
}

} // namespace

std::string render_status_json(
  const std::vector<status_entry>& jobs,
  const std::vector<std::pair<std::string, std::string>>& info) {
  json_out j;
  j.raw("{");
  j.key("version").num(std::uint64_t{1});
  j.key("now").str(iso_time(std::chrono::system_clock::now()));
  j.key("process").raw("{");
  for (auto& [k, v] : info)
    j.key(k).str(v);
  j.raw("}");
  j.key("jobs").raw("[");
  for (auto& e : jobs)
    job_json(j, e);
  j.raw("]");
  j.raw("}");
  return j.text() + "\n";
}

} // namespace flow
