#pragma once

/// @file
/// libflow's PostgreSQL layer (target `flow::pg`): row sources with
/// partitioned, snapshot-consistent reads, aggregate push-down, the aggregate
/// sink, error mapping and a throwaway cluster for tests and demos.

#include "flow/pg/connection.hpp"
#include "flow/pg/copy_sink.hpp"
#include "flow/pg/error.hpp"
#include "flow/pg/ownership.hpp"
#include "flow/pg/read.hpp"
#include "flow/pg/row.hpp"
#include "flow/pg/sink.hpp"
#include "flow/pg/temp_cluster.hpp"
