#pragma once

/// @file
/// PostgreSQL errors as libflow errors: libpqxx's exceptions become
/// `caf::error` values in category `flow` whose message carries the SQL state,
/// e.g. `bad_input: 42P01 undefined_table: relation "x" does not exist`.

#include <exception>
#include <functional>
#include <string>

#include "flow/error.hpp"

namespace flow::pg {

/// The condition name of a SQLSTATE code ("undefined_table" for "42P01"), or
/// an empty string for an unknown code.
std::string condition_name(const std::string& sqlstate);

/// The libflow error code for a SQLSTATE: data exceptions (class 22),
/// integrity violations (23), invalid names and catalogs (3D, 3F) and syntax
/// or access-rule violations (42: undefined table or column, permission
/// denied) are `errc::bad_input`; everything else, and an unknown state, is
/// `errc::source_failed`.
errc errc_of_sqlstate(const std::string& sqlstate);

/// One line describing the exception `e`: for a libpqxx SQL error
/// "SQLSTATE name: message", for a failed connection "cannot connect:
/// message"; newlines folded, passwords of `conninfo` scrubbed.
std::string describe_exception(const std::exception& e,
                               const std::string& conninfo = {});

/// The libflow error code `e` maps to (see errc_of_sqlstate; connection
/// failures are `errc::source_failed`, `flow::input_error` keeps its code).
errc errc_of_exception(const std::exception& e);

/// `e` as a libflow error: code from errc_of_exception, text from
/// describe_exception, prefixed by `context` ("context: ...") when not empty.
caf::error to_error(const std::exception& e, const std::string& conninfo = {},
                    const std::string& context = {});

/// The exception in flight (call inside a `catch` block) as a libflow error,
/// as `to_error` does; non-standard exceptions become errc::source_failed.
caf::error current_error(const std::string& conninfo = {},
                         const std::string& context = {});

/// Rethrows the exception in flight as `flow::input_error`, which a generator
/// actor reports with its code: the way pg sources fail.
[[noreturn]] void rethrow_as_input_error(const std::string& conninfo,
                                         const std::string& context);

/// True for errors that a new connection may cure: the server went away,
/// a backend was terminated, the server is starting or shutting down (SQL
/// states 08xxx and 57P01..03, or libpq's and libpqxx's messages for them).
bool connection_lost(const caf::error& err);

/// Runs `probe` (a statement on a session, e.g. `SELECT 1`) and says whether
/// it found the session's connection lost, as `connection_lost()` judges its
/// error. Any other failure (a transaction an SQL error ended) is no lost
/// connection. Never throws.
bool session_lost(const std::function<void()>& probe) noexcept;

/// The text of the error a reader reports when the session that exported
/// its snapshot ended before it imported the snapshot (the import fails with
/// 22023 or 55000 then): a lost connection, as `connection_lost()` says, not
/// bad input. `reader` names the reader ("partition 1/2 of t ...", "step 3").
std::string snapshot_lost_text(const std::string& reader);

/// True when the server could not be reached at all, as opposed to a
/// connection lost midway (libpq's "connection to server ... failed").
bool connect_failed(const caf::error& err);

} // namespace flow::pg
