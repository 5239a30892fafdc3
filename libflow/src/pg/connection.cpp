#include "flow/pg/connection.hpp"

#include <cctype>
#include <cstdlib>
#include <vector>

#include <libpq-fe.h>

#include "flow/error.hpp"
#include "flow/source.hpp"

namespace flow::pg {

namespace {

bool env_set(const char* name) {
  auto val = std::getenv(name);
  return val != nullptr && *val != '\0';
}

bool is_uri(const std::string& x) {
  return x.rfind("postgresql://", 0) == 0 || x.rfind("postgres://", 0) == 0;
}

// The password libpq would take from `conninfo` (not from the environment).
std::string password_of(const std::string& conninfo) {
  if (conninfo.empty())
    return {};
  char* err = nullptr;
  PQconninfoOption* opts = PQconninfoParse(conninfo.c_str(), &err);
  if (err != nullptr)
    PQfreemem(err);
  if (opts == nullptr)
    return {};
  std::string result;
  for (auto* o = opts; o->keyword != nullptr; ++o)
    if (std::string{o->keyword} == "password" && o->val != nullptr)
      result = o->val;
  PQconninfoFree(opts);
  return result;
}

void replace_all(std::string& text, const std::string& needle,
                 const std::string& with) {
  if (needle.empty())
    return;
  for (auto pos = text.find(needle); pos != std::string::npos;
       pos = text.find(needle, pos + with.size()))
    text.replace(pos, needle.size(), with);
}

// postgresql://user:secret@host/db?password=x&sslmode=y
std::string redact_uri(const std::string& uri) {
  auto scheme_end = uri.find("://") + 3;
  auto auth_end = uri.find_first_of("/?", scheme_end);
  if (auth_end == std::string::npos)
    auth_end = uri.size();
  std::string result = uri.substr(0, scheme_end);
  auto authority = uri.substr(scheme_end, auth_end - scheme_end);
  auto at = authority.rfind('@');
  if (at != std::string::npos) {
    auto userinfo = authority.substr(0, at);
    auto colon = userinfo.find(':');
    if (colon != std::string::npos)
      userinfo = userinfo.substr(0, colon) + ":***";
    authority = userinfo + authority.substr(at);
  }
  result += authority;
  auto rest = uri.substr(auth_end);
  auto q = rest.find('?');
  if (q == std::string::npos)
    return result + rest;
  result += rest.substr(0, q + 1);
  auto query = rest.substr(q + 1);
  std::size_t pos = 0;
  bool first = true;
  while (pos <= query.size()) {
    auto amp = query.find('&', pos);
    if (amp == std::string::npos)
      amp = query.size();
    auto param = query.substr(pos, amp - pos);
    auto eq = param.find('=');
    if (eq != std::string::npos && param.substr(0, eq) == "password")
      param = "password=***";
    if (!first)
      result += '&';
    result += param;
    first = false;
    pos = amp + 1;
  }
  return result;
}

// key = value pairs; values may be single-quoted with backslash escapes.
std::string redact_pairs(const std::string& text) {
  std::string result;
  std::size_t i = 0;
  auto n = text.size();
  while (i < n) {
    while (i < n && std::isspace(static_cast<unsigned char>(text[i])))
      result += text[i++];
    auto key_begin = i;
    while (i < n && text[i] != '='
           && !std::isspace(static_cast<unsigned char>(text[i])))
      ++i;
    auto key = text.substr(key_begin, i - key_begin);
    result += key;
    while (i < n && std::isspace(static_cast<unsigned char>(text[i])))
      result += text[i++];
    if (i < n && text[i] == '=')
      result += text[i++];
    while (i < n && std::isspace(static_cast<unsigned char>(text[i])))
      result += text[i++];
    auto value_begin = i;
    if (i < n && text[i] == '\'') {
      ++i;
      while (i < n && text[i] != '\'') {
        if (text[i] == '\\' && i + 1 < n)
          ++i;
        ++i;
      }
      if (i < n)
        ++i;
    } else {
      while (i < n && !std::isspace(static_cast<unsigned char>(text[i])))
        ++i;
    }
    if (key == "password")
      result += "***";
    else
      result += text.substr(value_begin, i - value_begin);
  }
  return result;
}

} // namespace

bool environment_configured() {
  for (auto name : {"PGHOST", "PGHOSTADDR", "PGPORT", "PGDATABASE",
                    "PGSERVICE", "PGUSER"})
    if (env_set(name))
      return true;
  return false;
}

std::string redact(const std::string& conninfo) {
  if (conninfo.empty())
    return "(environment)";
  auto result = is_uri(conninfo) ? redact_uri(conninfo)
                                 : redact_pairs(conninfo);
  // Belt and braces: whatever the syntax, the password itself never shows.
  return scrub(std::move(result), conninfo);
}

std::string scrub(std::string text, const std::string& conninfo) {
  std::vector<std::string> secrets{password_of(conninfo)};
  if (auto env = std::getenv("PGPASSWORD"))
    secrets.emplace_back(env);
  for (auto& secret : secrets)
    if (secret.size() >= 3)
      replace_all(text, secret, "***");
  return text;
}

caf::expected<std::string> without_password(const std::string& conninfo) {
  if (conninfo.empty())
    return std::string{};
  char* err = nullptr;
  PQconninfoOption* opts = PQconninfoParse(conninfo.c_str(), &err);
  if (opts == nullptr) {
    std::string why = err != nullptr ? err : "cannot parse it";
    if (err != nullptr)
      PQfreemem(err);
    while (!why.empty() && std::isspace(static_cast<unsigned char>(why.back())))
      why.pop_back();
    return make_error(errc::invalid_config,
                      "connection string " + redact(conninfo) + ": "
                        + scrub(why, conninfo));
  }
  std::string result;
  for (auto* o = opts; o->keyword != nullptr; ++o) {
    // Secrets (a password, a client key's passphrase) and the path of this
    // machine's password file stay here.
    std::string key = o->keyword;
    if (o->val == nullptr || *o->val == '\0' || key == "password"
        || key == "sslpassword" || key == "passfile")
      continue;
    if (!result.empty())
      result += ' ';
    result += o->keyword;
    result += "='";
    for (auto* c = o->val; *c != '\0'; ++c) {
      if (*c == '\'' || *c == '\\')
        result += '\\';
      result += *c;
    }
    result += '\'';
  }
  PQconninfoFree(opts);
  return result;
}

void check_identifier(const std::string& name, const std::string& what) {
  if (name.empty())
    throw input_error(what + ": empty name");
  if (name.find('\0') != std::string::npos)
    throw input_error(what + ": a name cannot contain a NUL byte");
  if (name.size() > 63)
    throw input_error(what + ": name longer than 63 bytes (PostgreSQL would "
                      "truncate it)");
}

namespace {

/// `text` between `q`s, each `q` in it doubled; `escaped` doubles
/// backslashes too.
std::string enclosed(const std::string& text, char q, bool escaped) {
  std::string result(1, q);
  for (auto c : text) {
    if (c == q || (escaped && c == '\\'))
      result += c;
    result += c;
  }
  return result + q;
}

} // namespace

std::string quote_ident(const std::string& name) {
  check_identifier(name, "identifier");
  return enclosed(name, '"', false);
}

std::string quote_literal(const std::string& text) {
  // With a backslash, an escape string (E'a\\b'): read the same whatever
  // the server's standard_conforming_strings.
  if (text.find('\\') == std::string::npos)
    return enclosed(text, '\'', false);
  return "E" + enclosed(text, '\'', true);
}

std::string table_name::quoted() const {
  if (schema.empty())
    return quote_ident(table);
  return quote_ident(schema) + '.' + quote_ident(table);
}

std::string table_name::display() const {
  return schema.empty() ? table : schema + '.' + table;
}

} // namespace flow::pg
