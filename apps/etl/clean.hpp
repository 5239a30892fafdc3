#pragma once

// flow-etl's `clean` command: its options, the run (here or over worker
// nodes) and what it prints. The job itself is in clean_job.hpp.

namespace flow::apps {

/// `flow-etl clean`: argv[0] is "clean".
int cmd_clean(int argc, char** argv);

} // namespace flow::apps
