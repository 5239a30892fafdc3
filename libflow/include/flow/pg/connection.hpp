#pragma once

/// @file
/// Connecting the way libpq does, printing connection strings safely, and
/// quoting names given by users.

#include <string>

#include <caf/expected.hpp>

namespace flow::pg {

/// True when the standard libpq environment names a server or a database
/// (any of PGHOST, PGHOSTADDR, PGPORT, PGDATABASE, PGSERVICE, PGUSER is set
/// and not empty).
bool environment_configured();

/// The connection string `conninfo` (a `postgresql://` URI or `key=value`
/// pairs) with any password replaced by `***`: safe to print or log. An empty
/// string (libpq's defaults from the environment) is shown as
/// "(environment)".
std::string redact(const std::string& conninfo);

/// `conninfo` (URI or key=value pairs) without its secrets (`password`,
/// `sslpassword`) and without `passfile` (a path on this machine), as
/// key=value pairs; empty stays empty. Errors are errc::invalid_config.
caf::expected<std::string> without_password(const std::string& conninfo);

/// `text` with every occurrence of the password of `conninfo` and of
/// `PGPASSWORD` replaced by `***` (passwords shorter than 3 characters are
/// left alone, as they would mangle ordinary words).
std::string scrub(std::string text, const std::string& conninfo);

/// Checks a table, schema or column name given by a user: not empty, no NUL
/// byte, at most 63 bytes (PostgreSQL would silently truncate a longer name).
/// Throws `flow::input_error` (errc::bad_input) naming `what` otherwise. Any
/// other character, quotes and semicolons included, is allowed: names are
/// always quoted, never executed.
void check_identifier(const std::string& name, const std::string& what);

/// The identifier quoted for SQL: `"a""b"` for `a"b` (as PQescapeIdentifier
/// and pqxx's `quote_name` do). Calls `check_identifier` first.
std::string quote_ident(const std::string& name);

/// A string literal for SQL: `'it''s'` for `it's` (quotes doubled); text
/// with a backslash as an escape string, `E'a\\b'`, so that the server
/// reads the same text whatever its standard_conforming_strings.
std::string quote_literal(const std::string& text);

/// A table reference: an optional schema and a table name, both unquoted.
struct table_name {
  /// The schema; empty means the connection's search_path.
  std::string schema;
  /// The table.
  std::string table;

  /// The quoted, optionally schema-qualified name: `"s"."t"`.
  std::string quoted() const;

  /// The same, for messages: `s.t` or `t`, not quoted.
  std::string display() const;
};

} // namespace flow::pg
