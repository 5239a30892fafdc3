#pragma once

// flow-etl's `run`: the aggregate jobs of a job file (job_file.hpp), checked
// against the database first and then run in order through the functions
// `flow-etl aggregate` uses (aggregate.hpp); `run --check` stops after the
// check.
//
//   FILE.toml ──read_job_file──▶ jobs ──check_aggregate_job (each)──▶ --check: "N jobs OK"
//                                     └─run_aggregate_jobs(atomic)──▶ results, output tables

namespace flow::apps {

/// `flow-etl run [--check] FILE [options]`: argv[0] is "run".
int cmd_run(int argc, char** argv);

} // namespace flow::apps
