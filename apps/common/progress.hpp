#pragma once

// Waiting for a job, with a progress line on standard error when it is a
// terminal and the job takes long.

#include <cstdint>
#include <string>

#include <caf/expected.hpp>

#include "flow/job.hpp"
#include "flow/result.hpp"

namespace flow::apps {

/// Waits for `j` and takes its result (job::take: the keys move out of the
/// job); while it runs longer than half a second and stderr is a TTY, shows
/// "what: N elements (P%)" from the job's statistics. `total` is the
/// expected element count, 0 when unknown.
caf::expected<job_result> wait_with_progress(const job& j, std::uint64_t total,
                                             const std::string& what);

} // namespace flow::apps
