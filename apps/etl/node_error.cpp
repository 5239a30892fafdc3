#include "etl/node_error.hpp"

#include "flow/error.hpp"
#include "flow/pg/error.hpp"
#include "flow/pg/read.hpp"

namespace flow::apps {

caf::error node_error(caf::error err) {
  // A node that cannot reach the database (unreachable, no credentials of
  // its own) is misconfigured: errc::invalid_config makes the manager give
  // the partition to another node and this one no more.
  if (pg::connect_failed(err))
    return make_error(errc::invalid_config,
                      "this node cannot connect to the database: "
                        + describe(err));
  return err;
}

bool import_failed(const std::string& what) {
  return what.find("22023") != std::string::npos
         || what.find("55000") != std::string::npos;
}

bool exporter_lost_in(const std::string& what, pg::partitioned_read& coord) {
  // Only an import failure makes the coordinator worth probing.
  return import_failed(what) && coord.exporter_lost();
}

} // namespace flow::apps
