#pragma once

/// @file
/// The one header a libflow user includes.

#include "flow/aggregate.hpp"
#include "flow/aggregator.hpp"
#include "flow/decimal.hpp"
#include "flow/distinct.hpp"
#include "flow/error.hpp"
#include "flow/exact_sum.hpp"
#include "flow/job.hpp"
#include "flow/key.hpp"
#include "flow/keyed_value.hpp"
#include "flow/logging.hpp"
#include "flow/options.hpp"
#include "flow/ordered.hpp"
#include "flow/parse.hpp"
#include "flow/partial.hpp"
#include "flow/pipeline.hpp"
#include "flow/quantiles.hpp"
#include "flow/random.hpp"
#include "flow/reducer.hpp"
#include "flow/result.hpp"
#include "flow/sink.hpp"
#include "flow/slice.hpp"
#include "flow/source.hpp"
#include "flow/stats.hpp"
