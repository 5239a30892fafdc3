#include "flow/error.hpp"

#include <caf/message.hpp>
#include <caf/sec.hpp>

namespace flow {

const char* to_string(errc x) noexcept {
  switch (x) {
    case errc::none:
      return "none";
    case errc::invalid_config:
      return "invalid_config";
    case errc::bad_input:
      return "bad_input";
    case errc::source_failed:
      return "source_failed";
    case errc::reducer_failed:
      return "reducer_failed";
    case errc::overflow:
      return "overflow";
    case errc::accounting_mismatch:
      return "accounting_mismatch";
    case errc::protocol_violation:
      return "protocol_violation";
    case errc::actor_down:
      return "actor_down";
    case errc::cancelled:
      return "cancelled";
    case errc::not_serializable:
      return "not_serializable";
    case errc::sink_failed:
      return "sink_failed";
    case errc::no_workers:
      return "no_workers";
    case errc::spill_failed:
      return "spill_failed";
    case errc::out_of_memory:
      return "out_of_memory";
  }
  return "unknown";
}

caf::error make_error(errc code, std::string context) {
  return caf::make_error(code, std::move(context));
}

errc code_of(const caf::error& err) noexcept {
  if (!err || err.category() != caf::atom("flow"))
    return errc::none;
  return static_cast<errc>(err.code());
}

std::string describe(const caf::error& err) {
  if (!err)
    return "no error";
  if (err.category() == caf::atom("flow")) {
    std::string result = to_string(static_cast<errc>(err.code()));
    auto& ctx = err.context();
    if (ctx.size() == 1 && ctx.match_element<std::string>(0)) {
      result += ": ";
      result += ctx.get_as<std::string>(0);
    }
    return result;
  }
  if (err.category() == caf::atom("system"))
    return caf::to_string(static_cast<caf::sec>(err.code()));
  return caf::to_string(err);
}

} // namespace flow
