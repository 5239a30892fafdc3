#pragma once

// The rows of flow-etl's `clean` job: a raw ad as read, the reducer that
// cleans a batch into COPY rows, the output tables and their checks. Shared
// by the local run (clean_job.cpp) and the worker nodes' (clean_nodes.cpp).

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <caf/error.hpp>
#include <caf/expected.hpp>

#include "etl/clean_job.hpp"
#include "flow/pg/copy_sink.hpp"
#include "flow/pg/read.hpp"
#include "flow/pg/row.hpp"
#include "flow/reducer.hpp"
#include "flow/result.hpp"

namespace flow::apps {

/// A text column that may be NULL: a view into the text of the ad's batch
/// (pg::batch_text), valid as long as the batch.
using text = std::optional<std::string_view>;

/// One raw ad as read.
struct raw_ad {
  std::int64_t id = 0;
  text title;
  text city;
  text price;
  text posted;
};

/// The sink's tables, in this order.
enum output : std::uint32_t { clean_table = 0, rejects_table = 1,
                              summary_table = 2 };

/// The columns of the raw ads a partition reads.
extern const std::vector<std::string> ad_columns;

/// The partitioned read of the raw ads: `partitions` block ranges of
/// cfg.ads (ctid), planned anew.
pg::read_spec ads_read_spec(const clean_config& cfg, std::size_t partitions);

/// Decodes a row of (id, title, city, price, posted_at) into `ad`, its text
/// kept in the batch's `text`.
void decode_ad(const pg::row_view& r, raw_ad& ad, pg::batch_text& text);

/// The cleaning rules applied to one batch of raw ads. Output rows are
/// formatted here, in parallel, as one block of COPY data per table for the
/// sink (see pg::copy_row).
void clean_batch(const batch_ref<raw_ad>& b, partial& out);

/// A raw ad as the first five fields of an ads_rejects COPY line: how a
/// dead letter keeps the ad the reducer failed on.
std::string describe_ad(const raw_ad& ad);

/// ads_rejects rows for dead letters: the raw ad and the reducer's error.
std::vector<pg::copy_row> reject_rows(const std::vector<dead_letter>& xs);

/// ads_summary's rows from the manager's final per-city aggregates.
std::vector<pg::copy_row> summary_rows(const job_result& res);

/// The test hooks around the cleaning (see test_hooks.hpp): with
/// FLOW_TEST_POISON=ID the cleaning of the ad with that id throws, as a bug
/// in a cleaning rule would.
reducer<raw_ad> with_poison(reducer<raw_ad> fn);

/// The three output tables, written by one sink.
std::vector<pg::output_table> output_tables(const clean_config& cfg);

/// After the job: unless it was stopped (then the sink aborted and no table
/// changed), the counts read back from the committed tables.
caf::expected<clean_report> checked(const clean_config& cfg, clean_report rep,
                                    std::size_t summary_keys);

} // namespace flow::apps
