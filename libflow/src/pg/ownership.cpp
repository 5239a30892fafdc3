#include "flow/pg/ownership.hpp"

#include <algorithm>
#include <cstdio>
#include <map>
#include <stdexcept>

#include <pqxx/nontransaction>
#include <pqxx/except>
#include <pqxx/result>
#include <pqxx/transaction>

#include "flow/error.hpp"
#include "flow/pg/error.hpp"
#include "session.hpp"

namespace flow::pg {

namespace {

bool is_hex16(const std::string& x) {
  return x.size() == 16 && std::all_of(x.begin(), x.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

/// The owner of a table's name, or empty: `job_<hex>_...` in flow_resume,
/// `d<hex>_p...` in flow_dist.
std::string owner_of(const std::string& schema, const std::string& table) {
  if (schema == resume_schema_name && table.size() > 21
      && table.compare(0, 4, "job_") == 0 && table[20] == '_') {
    auto hex = table.substr(4, 16);
    return is_hex16(hex) ? hex : std::string{};
  }
  // flow-etl aggregate's checkpoint: agg_<hex>.
  if (schema == resume_schema_name && table.size() == 20
      && table.compare(0, 4, "agg_") == 0) {
    auto hex = table.substr(4, 16);
    return is_hex16(hex) ? hex : std::string{};
  }
  if (schema == dist_schema_name && table.size() > 19 && table[0] == 'd'
      && table.compare(17, 2, "_p") == 0) {
    auto hex = table.substr(1, 16);
    return is_hex16(hex) ? hex : std::string{};
  }
  return {};
}

bool try_lock(pqxx::connection& conn, std::int64_t key) {
  pqxx::nontransaction tx{conn};
  return tx.exec("SELECT pg_try_advisory_lock(" + std::to_string(key) + ")")[0]
           [0]
             .as<bool>();
}

/// Takes `key`'s lock on `conn`, waiting up to owner_lock_wait for a holder
/// that is going away (a killed run's backend notices its closed connection
/// a moment later; gc holds a lock for a moment); false when it is still
/// held then.
bool wait_lock(pqxx::connection& conn, std::int64_t key) {
  {
    pqxx::nontransaction tx{conn};
    tx.exec("SET lock_timeout = '"
            + std::to_string(owner_lock_wait.count()) + "ms'");
  }
  bool taken = true;
  try {
    pqxx::nontransaction tx{conn};
    tx.exec("SELECT pg_advisory_lock(" + std::to_string(key) + ")");
  } catch (const pqxx::sql_error& e) {
    if (e.sqlstate() != "55P03") // lock_not_available
      throw;
    taken = false;
  }
  pqxx::nontransaction tx{conn};
  tx.exec("SET lock_timeout = 0");
  return taken;
}

void unlock(pqxx::connection& conn, std::int64_t key) {
  pqxx::nontransaction tx{conn};
  tx.exec("SELECT pg_advisory_unlock(" + std::to_string(key) + ")");
}

/// Lists the job tables with the owners' liveness, on `conn`.
std::vector<job_table> list(pqxx::connection& conn,
                            const std::vector<std::string>& schemas) {
  std::vector<job_table> result;
  {
    pqxx::nontransaction tx{conn};
    auto rows = tx.exec(
      "SELECT schemaname, tablename FROM pg_tables WHERE schemaname IN ("
      + tx.quote(std::string{resume_schema_name}) + ", "
      + tx.quote(std::string{dist_schema_name})
      + ") ORDER BY schemaname, tablename");
    for (auto r : rows) {
      auto schema = r[0].as<std::string>();
      if (!schemas.empty()
          && std::find(schemas.begin(), schemas.end(), schema)
               == schemas.end())
        continue;
      auto table = r[1].as<std::string>();
      auto owner = owner_of(schema, table);
      if (owner.empty())
        continue;
      result.push_back({{schema, table}, owner, false});
    }
  }
  std::map<std::string, bool> live;
  for (auto& t : result) {
    auto i = live.find(t.owner);
    if (i == live.end()) {
      auto key = owner_lock_key(t.owner);
      bool free = try_lock(conn, key);
      if (free)
        unlock(conn, key);
      i = live.emplace(t.owner, !free).first;
    }
    t.live = i->second;
  }
  return result;
}

} // namespace

std::string owner_hex(const table_name& output,
                      const std::string& current_schema) {
  auto full = (output.schema.empty() ? current_schema : output.schema) + "."
              + output.table;
  std::uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : full) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  char buf[20];
  std::snprintf(buf, sizeof(buf), "%016llx",
                static_cast<unsigned long long>(h));
  return buf;
}

std::int64_t owner_lock_key(const std::string& hex) {
  if (!is_hex16(hex))
    throw std::invalid_argument("owner_lock_key: not 16 hex digits: " + hex);
  return static_cast<std::int64_t>(std::stoull(hex, nullptr, 16));
}

struct owner_lock::impl {
  std::unique_ptr<pqxx::connection> conn;

  ~impl() {
    // Released now, not when the server notices the closed connection: a
    // run that follows at once must find it free.
    if (!conn)
      return;
    try {
      pqxx::nontransaction tx{*conn};
      tx.exec("SELECT pg_advisory_unlock_all()");
    } catch (...) {
      // The connection is gone: so is the lock.
    }
  }
};

owner_lock::owner_lock(std::unique_ptr<impl> p) : impl_(std::move(p)) {
  // nop
}

owner_lock::owner_lock(owner_lock&&) noexcept = default;

owner_lock& owner_lock::operator=(owner_lock&&) noexcept = default;

owner_lock::~owner_lock() = default;

caf::expected<owner_lock> owner_lock::try_acquire(const std::string& conninfo,
                                                  const std::string& hex,
                                                  const std::string& what) {
  try {
    auto p = std::make_unique<impl>();
    p->conn = detail::connect(conninfo);
    if (!wait_lock(*p->conn, owner_lock_key(hex)))
      return make_error(errc::invalid_config,
                        "another run of this job is in progress (it holds "
                          + what + "); wait for it to end");
    return owner_lock{std::move(p)};
  } catch (...) {
    return current_error(conninfo, "locking " + what);
  }
}

caf::expected<std::vector<job_table>>
find_job_tables(const std::string& conninfo,
                const std::vector<std::string>& schemas) {
  try {
    auto conn = detail::connect(conninfo);
    return list(*conn, schemas);
  } catch (...) {
    return current_error(conninfo, "listing flow_resume and flow_dist");
  }
}

caf::expected<std::vector<job_table>>
drop_orphans(const std::string& conninfo, bool dry_run,
             const std::vector<std::string>& schemas,
             const std::function<bool(const std::string&)>& only) {
  try {
    auto conn = detail::connect(conninfo);
    std::vector<job_table> dropped;
    std::map<std::string, std::vector<job_table>> by_owner;
    for (auto& t : list(*conn, schemas))
      if (!t.live && (!only || only(t.owner)))
        by_owner[t.owner].push_back(t);
    for (auto& [owner, tables] : by_owner) {
      if (dry_run) {
        dropped.insert(dropped.end(), tables.begin(), tables.end());
        continue;
      }
      // Under the owner's lock: a run of that job starting now cannot
      // create tables of that name until they are gone.
      auto key = owner_lock_key(owner);
      if (!try_lock(*conn, key))
        continue; // it became live meanwhile
      {
        pqxx::work tx{*conn};
        for (auto& t : tables)
          tx.exec("DROP TABLE IF EXISTS " + t.name.quoted());
        tx.commit();
      }
      unlock(*conn, key);
      dropped.insert(dropped.end(), tables.begin(), tables.end());
    }
    return dropped;
  } catch (...) {
    return current_error(conninfo, "dropping orphaned staging tables");
  }
}

} // namespace flow::pg
