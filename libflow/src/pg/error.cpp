#include "flow/pg/error.hpp"

#include <algorithm>
#include <cstring>

#include <pqxx/except>

#include "flow/pg/connection.hpp"
#include "flow/source.hpp"
#include "sqlstate_table.hpp"

namespace flow::pg {

namespace {

// libpq messages span lines ("ERROR:  x\nLINE 1: ..."; "could not connect
// ...\n\tIs the server running ..."): keep the first line of each paragraph
// of substance, joined by "; ".
std::string one_line(const std::string& text) {
  std::string result;
  std::size_t pos = 0;
  while (pos < text.size()) {
    auto end = text.find('\n', pos);
    if (end == std::string::npos)
      end = text.size();
    auto line = text.substr(pos, end - pos);
    pos = end + 1;
    auto first = line.find_first_not_of(" \t\r");
    if (first == std::string::npos)
      continue;
    line = line.substr(first);
    while (!line.empty()
           && (line.back() == ' ' || line.back() == '\r'
               || line.back() == '\t'))
      line.pop_back();
    // Query echoes and caret lines add nothing to a one-line message.
    if (line.rfind("LINE ", 0) == 0 || line.rfind("^", 0) == 0
        || line.rfind("QUERY:", 0) == 0 || line.rfind("CONTEXT:", 0) == 0)
      continue;
    for (auto prefix : {"ERROR:  ", "FATAL:  ", "ERROR: ", "FATAL: "})
      if (line.rfind(prefix, 0) == 0)
        line = line.substr(std::strlen(prefix));
    if (!result.empty())
      result += "; ";
    result += line;
  }
  return result;
}

// libpqxx 6.4 drops the SQL state for some classes it maps to exception
// types: recover it from the type (most specific first).
std::string sqlstate_of(const std::exception& e) {
  if (auto sql = dynamic_cast<const pqxx::sql_error*>(&e);
      sql != nullptr && !sql->sqlstate().empty())
    return sql->sqlstate();
  if (dynamic_cast<const pqxx::undefined_table*>(&e))
    return "42P01";
  if (dynamic_cast<const pqxx::undefined_column*>(&e))
    return "42703";
  if (dynamic_cast<const pqxx::undefined_function*>(&e))
    return "42883";
  if (dynamic_cast<const pqxx::syntax_error*>(&e))
    return "42601";
  if (dynamic_cast<const pqxx::insufficient_privilege*>(&e))
    return "42501";
  if (dynamic_cast<const pqxx::disk_full*>(&e))
    return "53100";
  if (dynamic_cast<const pqxx::out_of_memory*>(&e))
    return "53200";
  if (dynamic_cast<const pqxx::too_many_connections*>(&e))
    return "53300";
  if (dynamic_cast<const pqxx::serialization_failure*>(&e))
    return "40001";
  if (dynamic_cast<const pqxx::statement_completion_unknown*>(&e))
    return "40003";
  if (dynamic_cast<const pqxx::deadlock_detected*>(&e))
    return "40P01";
  if (dynamic_cast<const pqxx::transaction_rollback*>(&e))
    return "40000";
  return {};
}

} // namespace

std::string condition_name(const std::string& sqlstate) {
  auto first = detail::sqlstate_table;
  auto last = first + detail::sqlstate_table_size;
  auto i = std::lower_bound(first, last, sqlstate,
                            [](const detail::sqlstate_entry& e,
                               const std::string& x) { return x > e.code; });
  if (i != last && sqlstate == i->code)
    return i->name;
  return {};
}

errc errc_of_sqlstate(const std::string& sqlstate) {
  if (sqlstate.size() != 5)
    return errc::source_failed;
  auto cls = sqlstate.substr(0, 2);
  if (cls == "22" || cls == "23" || cls == "3D" || cls == "3F" || cls == "42")
    return errc::bad_input;
  return errc::source_failed;
}

std::string describe_exception(const std::exception& e,
                               const std::string& conninfo) {
  std::string result;
  auto state = sqlstate_of(e);
  if (!state.empty()) {
    result = state;
    auto name = condition_name(state);
    if (!name.empty())
      result += ' ' + name;
    result += ": " + one_line(e.what());
  } else if (dynamic_cast<const pqxx::broken_connection*>(&e) != nullptr) {
    result = "cannot connect to " + redact(conninfo) + ": " + one_line(e.what());
  } else {
    result = one_line(e.what());
  }
  return scrub(std::move(result), conninfo);
}

errc errc_of_exception(const std::exception& e) {
  if (auto in = dynamic_cast<const input_error*>(&e))
    return in->code();
  if (auto state = sqlstate_of(e); !state.empty())
    return errc_of_sqlstate(state);
  return errc::source_failed;
}

caf::error to_error(const std::exception& e, const std::string& conninfo,
                    const std::string& context) {
  auto text = describe_exception(e, conninfo);
  if (!context.empty())
    text = context + ": " + text;
  return make_error(errc_of_exception(e), std::move(text));
}

caf::error current_error(const std::string& conninfo,
                         const std::string& context) {
  try {
    throw;
  } catch (const std::exception& e) {
    return to_error(e, conninfo, context);
  } catch (...) {
    return make_error(errc::source_failed,
                      context.empty() ? "unknown exception"
                                      : context + ": unknown exception");
  }
}

void rethrow_as_input_error(const std::string& conninfo,
                            const std::string& context) {
  try {
    throw;
  } catch (const input_error&) {
    throw;
  } catch (const std::exception& e) {
    auto text = describe_exception(e, conninfo);
    if (!context.empty())
      text = context + ": " + text;
    throw input_error(text, errc_of_exception(e));
  } catch (...) {
    throw input_error(context + ": unknown exception", errc::source_failed);
  }
}

bool connection_lost(const caf::error& err) {
  // Errors reach here as text (SQL state first where there is one): libpq
  // reports a dropped connection without a state, libpqxx as
  // broken_connection, described as "cannot connect".
  auto text = describe(err);
  for (auto* needle :
       {"57P01", "57P02", "57P03", " 08000", " 08003", " 08006", "08001",
        "08004", "server closed the connection", "connection to server",
        "Lost connection", "cannot connect", "terminating connection",
        "no connection to the server"})
    if (text.find(needle) != std::string::npos)
      return true;
  return false;
}

bool session_lost(const std::function<void()>& probe) noexcept {
  try {
    probe();
    return false;
  } catch (...) {
    // The same test as for any error that reaches a job.
    try {
      return connection_lost(current_error());
    } catch (...) {
      return false;
    }
  }
}

std::string snapshot_lost_text(const std::string& reader) {
  // "Lost connection" is how libpqxx says it, and what connection_lost()
  // recognises.
  return "Lost connection to the database server: the session that exported "
         "the snapshot ended before " + reader + " imported it";
}

bool connect_failed(const caf::error& err) {
  auto text = describe(err);
  return text.find("connection to server") != std::string::npos
         && text.find("failed:") != std::string::npos;
}

} // namespace flow::pg
