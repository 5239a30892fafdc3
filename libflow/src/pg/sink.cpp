#include "flow/pg/sink.hpp"

#include <atomic>
#include <optional>
#include <tuple>

#include <pqxx/stream_to>
#include <pqxx/transaction>
#include <unistd.h>

#include "flow/pg/error.hpp"
#include "session.hpp"

namespace flow::pg {

namespace {

std::string staging_name() {
  static std::atomic<unsigned> counter{0};
  return "flow_staging_" + std::to_string(::getpid()) + "_"
         + std::to_string(counter++);
}

} // namespace

caf::error write_aggregates(const std::string& conninfo,
                            const table_name& table, const job_result& res,
                            const sink_options& opts) {
  try {
    if (!table.schema.empty())
      check_identifier(table.schema, "schema");
    check_identifier(table.table, "table");
    bool string_keys = false;
    for (auto& k : res.keys)
      string_keys = string_keys || k.key.is_string();
    auto conn = detail::connect(conninfo);
    pqxx::work tx{*conn};
    // The staging table lives in the target's schema, so the rename is all
    // the swap needs.
    auto schema = table.schema.empty()
                    ? tx.exec("SELECT current_schema()")[0][0].as<std::string>()
                    : table.schema;
    table_name target{schema, table.table};
    table_name staging{schema, staging_name()};
    tx.exec("CREATE TABLE " + staging.quoted() + " (key "
            + (string_keys ? "text" : "bigint")
            + ", sum numeric NOT NULL, count bigint NOT NULL, "
              "min bigint, max bigint, sources bigint NOT NULL)");
    {
      pqxx::stream_to out{tx, staging.quoted()};
      for (auto& k : res.keys) {
        std::optional<std::int64_t> lo;
        std::optional<std::int64_t> hi;
        if (!k.agg.empty()) {
          lo = k.agg.min;
          hi = k.agg.max;
        }
        // Text keys are escaped for COPY by libpqxx.
        out << std::make_tuple(to_string(k.key), flow::to_string(k.agg.sum),
                               static_cast<std::int64_t>(k.agg.count), lo, hi,
                               static_cast<std::int64_t>(k.sources));
      }
      out.complete();
    }
    if (opts.before_swap)
      opts.before_swap();
    tx.exec("DROP TABLE IF EXISTS " + target.quoted());
    tx.exec("ALTER TABLE " + staging.quoted() + " RENAME TO "
            + quote_ident(target.table));
    tx.commit();
    return {};
  } catch (...) {
    return current_error(conninfo, "writing " + table.display());
  }
}

} // namespace flow::pg
