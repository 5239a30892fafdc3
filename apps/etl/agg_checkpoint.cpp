#include "etl/agg_checkpoint.hpp"

#include <algorithm>
#include <map>
#include <sstream>

#include <caf/binary_deserializer.hpp>
#include <caf/binary_serializer.hpp>
#include <pqxx/pqxx>

#include "common/cli.hpp"
#include "etl/failure.hpp"
#include "flow/error.hpp"
#include "flow/pg/error.hpp"
#include "flow/pg/ownership.hpp"

namespace flow::apps {

namespace {

/// The schema clean's resume state lives in too: one place to look for
/// (and clean up) what interrupted runs left.
constexpr const char* resume_schema = pg::resume_schema_name;

/// The checkpoint table's definition: one row, the latest step's.
constexpr const char* table_columns
  = " (fingerprint text NOT NULL, ranges text NOT NULL, "
    "partitions integer NOT NULL, steps integer NOT NULL, "
    "steps_done integer NOT NULL, rows_read bigint NOT NULL, "
    "state bytea NOT NULL)";

} // namespace

pg::table_name checkpoint_table(const pg::table_name& output,
                                const std::string& current_schema) {
  // The same digits as clean's job_<hex> for that output (one lock each).
  return {resume_schema, "agg_" + pg::owner_hex(output, current_schema)};
}

std::string drop_checkpoint_sql(const pg::table_name& table) {
  return "DROP TABLE IF EXISTS " + table.quoted();
}

struct checkpoint_store::impl {
  std::string conninfo;
  pg::table_name output;
  std::optional<pg::table_name> table;
  std::unique_ptr<pqxx::connection> conn;
  /// The table exists (created by this run's first save).
  bool created = false;

  /// Runs `body` in a transaction on the store's connection, turning
  /// database errors into the usual one-line error.
  template <class F>
  auto in_transaction(const char* what, F body) {
    try {
      if (!conn)
        conn = std::make_unique<pqxx::connection>(conninfo);
      pqxx::work tx{*conn};
      // "already exists, skipping" and the like are no news here.
      tx.exec("SET LOCAL client_min_messages = warning");
      return body(tx);
    } catch (const usage_error&) {
      throw;
    } catch (...) {
      // As fail() does (a lost connection may be tried again).
      throw failure(pg::current_error(conninfo, what));
    }
  }
};

checkpoint_store::checkpoint_store(std::string conninfo, pg::table_name output)
  : impl_(std::make_unique<impl>()) {
  impl_->conninfo = std::move(conninfo);
  impl_->output = std::move(output);
}

checkpoint_store::~checkpoint_store() = default;

const pg::table_name& checkpoint_store::table() {
  if (!impl_->table) {
    std::string current;
    if (impl_->output.schema.empty())
      current = impl_->in_transaction("checkpoint", [](pqxx::work& tx) {
        return std::string{tx.exec("SELECT current_schema()")[0][0].c_str()};
      });
    impl_->table = checkpoint_table(impl_->output, current);
  }
  return *impl_->table;
}

void checkpoint_store::save(const agg_checkpoint& ckpt) {
  auto bytes = encode_result(ckpt.state);
  auto& t = table();
  impl_->in_transaction("writing the checkpoint", [&](pqxx::work& tx) {
    if (!impl_->created) {
      tx.exec(std::string{"CREATE SCHEMA IF NOT EXISTS "} + resume_schema);
      tx.exec("CREATE TABLE IF NOT EXISTS " + t.quoted() + table_columns);
    }
    // One row: the latest step replaces the one before, in one transaction.
    tx.exec("DELETE FROM " + t.quoted());
    tx.exec_params("INSERT INTO " + t.quoted()
                     + " VALUES ($1, $2, $3, $4, $5, $6, $7)",
                   ckpt.fingerprint, encode_ranges(ckpt.ranges),
                   static_cast<long long>(ckpt.partitions),
                   static_cast<long long>(ckpt.steps),
                   static_cast<long long>(ckpt.steps_done),
                   static_cast<long long>(ckpt.state.emitted),
                   pqxx::binarystring{bytes});
    tx.commit();
    return 0;
  });
  impl_->created = true;
}

std::optional<agg_checkpoint>
checkpoint_store::load(const std::string& fingerprint) {
  auto& t = table();
  return impl_->in_transaction(
    "reading the checkpoint",
    [&](pqxx::work& tx) -> std::optional<agg_checkpoint> {
      auto exists = tx.exec_params("SELECT to_regclass($1) IS NOT NULL",
                                   t.quoted());
      if (!exists[0][0].as<bool>())
        return std::nullopt;
      auto rows = tx.exec("SELECT fingerprint, ranges, partitions, steps, "
                          "steps_done, state FROM "
                          + t.quoted());
      if (rows.empty())
        return std::nullopt;
      auto r = rows[0];
      agg_checkpoint ckpt;
      ckpt.fingerprint = r[0].as<std::string>();
      if (ckpt.fingerprint != fingerprint) {
        // The job's part: all before the state columns' line (the whole
        // fingerprint of a build that did not write one).
        auto job_part = [](const std::string& f) {
          return f.substr(0, f.rfind(layout_line));
        };
        if (job_part(ckpt.fingerprint) == job_part(fingerprint))
          throw usage_error(
            "the checkpoint of " + impl_->output.display()
            + " was written by another version of flow-etl (it keeps other "
              "aggregator states for this job); run without --resume to "
              "start over");
        throw usage_error(
          "the checkpoint of " + impl_->output.display()
          + " was left by another job (other table, columns, aggregates, "
            "--where, --by or --pushdown); run without --resume to start "
            "over");
      }
      auto ranges = decode_ranges(r[1].as<std::string>());
      auto state = decode_result(pqxx::binarystring{r[5]}.str());
      ckpt.partitions = r[2].as<std::size_t>();
      ckpt.steps = r[3].as<std::size_t>();
      ckpt.steps_done = r[4].as<std::size_t>();
      if (!ranges || !state || ckpt.partitions == 0
          || ckpt.steps_done >= ckpt.steps
          || ranges->size() > ckpt.partitions * ckpt.steps)
        throw usage_error("the checkpoint in " + t.display()
                          + " is damaged or was left by another version "
                            "of flow-etl; run without --resume");
      ckpt.ranges = std::move(*ranges);
      ckpt.state = std::move(*state);
      return ckpt;
    });
}

void checkpoint_store::discard() {
  auto& t = table();
  impl_->in_transaction("discarding the checkpoint", [&](pqxx::work& tx) {
    tx.exec(drop_checkpoint_sql(t));
    tx.commit();
    return 0;
  });
  impl_->created = false;
}

std::string encode_result(const job_result& res) {
  std::vector<char> buf;
  auto copy = res; // CAF 0.17's inspectors take non-const references
  caf::binary_serializer sink{nullptr, buf};
  if (auto err = sink(copy))
    throw usage_error("checkpoint: a state cannot be serialised: "
                      + caf::to_string(err));
  return {buf.begin(), buf.end()};
}

std::optional<job_result> decode_result(const std::string& bytes) {
  job_result res;
  caf::binary_deserializer source{nullptr, bytes.data(), bytes.size()};
  if (source(res) || source.remaining() != 0)
    return std::nullopt;
  return res;
}

std::string encode_ranges(const std::vector<pg::range>& ranges) {
  auto end = [](const std::optional<std::int64_t>& x) {
    return x ? std::to_string(*x) : std::string{"-"};
  };
  std::string out;
  for (auto& r : ranges)
    out += end(r.lo) + " " + end(r.hi) + " " + (r.blocks ? "1" : "0") + " "
           + (r.nulls ? "1" : "0") + "\n";
  return out;
}

std::optional<std::vector<pg::range>> decode_ranges(const std::string& text) {
  auto end = [](const std::string& s, std::optional<std::int64_t>& x) {
    if (s == "-")
      return true;
    try {
      std::size_t used = 0;
      x = std::stoll(s, &used);
      return used == s.size();
    } catch (...) {
      return false;
    }
  };
  auto flag = [](const std::string& s, bool& x) {
    x = s == "1";
    return s == "0" || s == "1";
  };
  std::vector<pg::range> result;
  std::istringstream lines{text};
  std::string line;
  // Line by line, exactly four fields each: a cut record is damage, not
  // the end of the list.
  while (std::getline(lines, line)) {
    std::istringstream in{line};
    std::string f[5];
    in >> f[0] >> f[1] >> f[2] >> f[3] >> f[4];
    pg::range r;
    if (f[3].empty() || !f[4].empty() || !end(f[0], r.lo) || !end(f[1], r.hi)
        || !flag(f[2], r.blocks) || !flag(f[3], r.nulls))
      return std::nullopt;
    result.push_back(r);
  }
  return result;
}

bool merge_step(job_result& total, const job_result& step) {
  // Keys stay ordered (job_result's contract): merge by key, then rebuild.
  std::map<flow::key, key_result> by_key;
  for (auto& k : total.keys)
    by_key.emplace(k.key, std::move(k));
  for (auto& k : step.keys) {
    auto [it, fresh] = by_key.emplace(k.key, k);
    if (!fresh) {
      if (!it->second.agg.merge(k.agg))
        return false;
      it->second.sources += k.sources;
    }
  }
  total.keys.clear();
  total.keys.reserve(by_key.size());
  for (auto& [k, v] : by_key)
    total.keys.push_back(std::move(v));
  total.key_count = total.keys.size();
  total.emitted += step.emitted;
  total.aggregated += step.aggregated;
  total.rejected += step.rejected;
  total.dead_lettered += step.dead_lettered;
  total.dead_letters.insert(total.dead_letters.end(),
                            step.dead_letters.begin(),
                            step.dead_letters.end());
  total.retried += step.retried;
  total.batches += step.batches;
  total.written += step.written;
  total.sources += step.sources;
  for (auto& [why, n] : step.rejections) {
    auto it = std::find_if(total.rejections.begin(), total.rejections.end(),
                           [&](auto& x) { return x.first == why; });
    if (it == total.rejections.end())
      total.rejections.emplace_back(why, n);
    else
      it->second += n;
  }
  total.peak_in_flight = std::max(total.peak_in_flight, step.peak_in_flight);
  total.remote_batches += step.remote_batches;
  total.reducers_replaced += step.reducers_replaced;
  total.abandoned += step.abandoned;
  total.speculated += step.speculated;
  total.speculation_won += step.speculation_won;
  total.final = step.final;
  total.partial = step.partial;
  return true;
}

} // namespace flow::apps
