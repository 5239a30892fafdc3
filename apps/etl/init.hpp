#pragma once

// flow-etl's `init`: the demo data. elements(list_id, list_size, value) holds
// the tutorial's lists as rows, ads(id, title, city, price, posted_at) raw,
// messy classified ads for the cleaning job; both deterministic for a seed.

#include <cstdint>
#include <string>

#include "common/cli.hpp"
#include "etl/command.hpp"
#include "flow/pg/connection.hpp"

namespace flow::apps {

/// What `init` creates.
struct init_config {
  /// The two tables.
  pg::table_name elements;
  pg::table_name ads;
  /// Rows of elements (the tutorial's lists scaled) and of ads.
  std::uint64_t rows = 0;
  std::uint64_t ads_rows = 0;
  /// Seed of both tables' data.
  std::uint64_t seed = 0;
};

/// Creates (or replaces) both tables in one transaction; throws usage_error
/// with the database's error.
void run_init(const std::string& conninfo, const init_config& cfg);

/// Declares --rows, --ads and --seed (sum and clean fill a throwaway
/// cluster with them too).
void declare_init_options(arg_parser& args);

/// Reads them, with --table and --schema (throws usage_error).
init_config read_init_options(const arg_parser& args);

/// With a throwaway cluster, says so and runs init in it first for the
/// command `cmd`; finishes the database when that fails.
void fill_throwaway(database& db, bool keep, const init_config& cfg,
                    const std::string& cmd);

/// `flow-etl init`: argv[0] is "init".
int cmd_init(int argc, char** argv);

} // namespace flow::apps
