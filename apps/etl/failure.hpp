#pragma once

// The error flow-etl's commands throw for a library error: reported as the
// usual one-line error (exit code 2), and telling a lost database
// connection apart, for the commands that try again after one.

#include <caf/error.hpp>

#include "common/cli.hpp"
#include "flow/error.hpp"
#include "flow/pg/error.hpp"

namespace flow::apps {

/// A library error on its way to the usual one-line error (exit code 2),
/// with what the commands that reconnect need to know about it.
class failure : public usage_error {
public:
  /// Describes `err`.
  explicit failure(const caf::error& err)
    : usage_error(describe(err)),
      connection_lost_(pg::connection_lost(err)) {
    // nop
  }

  /// The database connection was lost (or could not be made): trying again
  /// may succeed once the server is back.
  bool connection_lost() const noexcept {
    return connection_lost_;
  }

private:
  bool connection_lost_;
};

} // namespace flow::apps
