#include "cli.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>

#include "flow/error.hpp"
#include "flow/logging.hpp"
#include "flow/parse.hpp"
#include "signals.hpp"

namespace flow::apps {

arg_parser::arg_parser(std::string prog, std::string summary)
  : prog_(std::move(prog)), summary_(std::move(summary)) {
  flag("help", "print this help and exit");
}

void arg_parser::value(const std::string& name, const std::string& meta,
                       const std::string& help, std::string default_value) {
  order_.push_back(name);
  options_[name] = option{true, meta, help, std::move(default_value)};
}

void arg_parser::flag(const std::string& name, const std::string& help) {
  order_.push_back(name);
  options_[name] = option{false, {}, help, {}};
}

void arg_parser::alias(const std::string& name, const std::string& target) {
  order_.push_back(name);
  aliases_[name] = target;
}

bool arg_parser::parse(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg.size() < 3 || arg.compare(0, 2, "--") != 0)
      throw usage_error("unexpected argument " + quote_token(arg)
                        + " (options start with --; see --help)");
    auto name = arg.substr(2);
    std::optional<std::string> inline_value;
    if (auto eq = name.find('='); eq != std::string::npos) {
      inline_value = name.substr(eq + 1);
      name.resize(eq);
    }
    auto alias = aliases_.find(name);
    auto opt = options_.find(alias != aliases_.end() ? alias->second : name);
    if (opt == options_.end())
      throw usage_error("unknown option " + quote_token("--" + name)
                        + " (see --help)");
    auto& o = opt->second;
    if (o.given)
      throw usage_error("option --" + name + " given twice");
    o.given = true;
    o.given_as = name;
    if (!o.takes_value) {
      if (inline_value)
        throw usage_error("option --" + name + " takes no value");
      continue;
    }
    if (inline_value) {
      o.value = *inline_value;
    } else {
      if (i + 1 >= argc)
        throw usage_error("option --" + name + " needs a value ("
                          + o.meta + ")");
      o.value = argv[++i];
    }
  }
  if (is_set("help")) {
    print_help();
    return false;
  }
  return true;
}

void arg_parser::apply_config(const std::string& path,
                              const std::vector<std::string>& names) {
  std::ifstream in{path};
  if (!in)
    throw usage_error("cannot read the config file " + quote_token(path));
  std::string line;
  std::size_t n = 0;
  auto trim = [](std::string x) {
    auto b = x.find_first_not_of(" \t\r");
    auto e = x.find_last_not_of(" \t\r");
    return b == std::string::npos ? std::string{} : x.substr(b, e - b + 1);
  };
  while (std::getline(in, line)) {
    ++n;
    line = trim(line);
    if (line.empty() || line[0] == '#')
      continue;
    auto where = quote_token(path) + ", line " + std::to_string(n);
    auto eq = line.find('=');
    if (eq == std::string::npos)
      throw usage_error(where + ": expected 'name = value'");
    auto name = trim(line.substr(0, eq));
    auto value = trim(line.substr(eq + 1));
    if (std::find(names.begin(), names.end(), name) == names.end())
      throw usage_error(where + ": " + quote_token(name)
                        + " cannot be set in the config file");
    auto& o = options_.at(name);
    if (o.given)
      continue; // the command line wins
    if (!o.takes_value) {
      if (value != "true" && value != "false")
        throw usage_error(where + ": " + name + " must be true or false");
      o.given = value == "true";
      continue;
    }
    o.value = value;
    o.given = true;
  }
}

bool arg_parser::given(const std::string& name) const {
  return options_.at(name).given;
}

const std::string& arg_parser::get(const std::string& name) const {
  return options_.at(name).value;
}

bool arg_parser::is_set(const std::string& name) const {
  return options_.at(name).given;
}

std::uint64_t arg_parser::get_uint(const std::string& name, std::uint64_t lo,
                                   std::uint64_t hi) const {
  auto& o = options_.at(name);
  auto& text = o.value;
  auto& shown = o.given_as.empty() ? name : o.given_as;
  std::string why;
  auto x = parse_int64(text, why);
  if (!x)
    throw usage_error("--" + shown + ": " + quote_token(text) + " " + why);
  if (*x < 0 || static_cast<std::uint64_t>(*x) < lo
      || static_cast<std::uint64_t>(*x) > hi)
    throw usage_error("--" + shown + ": " + quote_token(text)
                      + " is outside the range " + std::to_string(lo) + ".."
                      + std::to_string(hi));
  return static_cast<std::uint64_t>(*x);
}

void arg_parser::print_help() const {
  std::cout << "usage: " << prog_ << " [options]\n" << summary_ << "\n\n";
  for (auto& name : order_) {
    if (auto alias = aliases_.find(name); alias != aliases_.end()) {
      auto& o = options_.at(alias->second);
      std::string head = "  --" + name + (o.takes_value ? " " + o.meta : "");
      std::cout << head << std::string(head.size() < 24 ? 24 - head.size() : 1,
                                       ' ')
                << "the same as --" << alias->second
                << " (its former name, still accepted)\n";
      continue;
    }
    auto& o = options_.at(name);
    std::string head = "  --" + name;
    if (o.takes_value)
      head += " " + o.meta;
    std::cout << head;
    if (head.size() < 24)
      std::cout << std::string(24 - head.size(), ' ');
    else
      std::cout << "\n" << std::string(24, ' ');
    std::cout << o.help;
    if (o.takes_value && !o.value.empty())
      std::cout << " (default: " << o.value << ")";
    std::cout << '\n';
  }
}

std::vector<std::uint64_t> parse_size_list(const std::string& option,
                                           const std::string& text) {
  std::vector<std::uint64_t> result;
  if (text.find_first_not_of(" \t") == std::string::npos)
    throw usage_error(option + ": empty size list");
  std::size_t pos = 0;
  std::size_t index = 1;
  for (;;) {
    auto comma = text.find(',', pos);
    auto tok = text.substr(pos, comma == std::string::npos ? std::string::npos
                                                           : comma - pos);
    std::string why;
    auto x = parse_int64(tok, why);
    auto where = option + ": size " + std::to_string(index) + " "
                 + quote_token(tok);
    if (!x)
      throw usage_error(where + " " + why);
    if (*x < 0)
      throw usage_error(where + " is negative (a size is 0 or more)");
    result.push_back(static_cast<std::uint64_t>(*x));
    if (comma == std::string::npos)
      break;
    pos = comma + 1;
    ++index;
  }
  return result;
}

// -- JSON ---------------------------------------------------------------------

std::string json_string(const std::string& x) {
  std::string out = "\"";
  auto bytes = reinterpret_cast<const unsigned char*>(x.data());
  std::size_t n = x.size();
  for (std::size_t i = 0; i < n;) {
    auto c = bytes[i];
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
      ++i;
    } else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\u%04x", c);
      out += buf;
      ++i;
    } else if (c < 0x80) {
      out += static_cast<char>(c);
      ++i;
    } else {
      // Validate one UTF-8 sequence; replace anything invalid with U+FFFD.
      std::size_t len = c >= 0xf0 && c <= 0xf4   ? 4
                        : c >= 0xe0              ? 3
                        : c >= 0xc2 && c <= 0xdf ? 2
                                                 : 0;
      bool ok = len > 0 && i + len <= n;
      for (std::size_t k = 1; ok && k < len; ++k)
        ok = (bytes[i + k] & 0xc0) == 0x80;
      if (ok && len == 3) {
        auto c1 = bytes[i + 1];
        ok = !(c == 0xe0 && c1 < 0xa0) && !(c == 0xed && c1 >= 0xa0);
      } else if (ok && len == 4) {
        auto c1 = bytes[i + 1];
        ok = !(c == 0xf0 && c1 < 0x90) && !(c == 0xf4 && c1 >= 0x90);
      }
      if (ok) {
        out.append(x, i, len);
        i += len;
      } else {
        out += "\xef\xbf\xbd";
        ++i;
      }
    }
  }
  out += '"';
  return out;
}

json_object& json_object::add_raw(const std::string& name,
                                  const std::string& json) {
  if (!body_.empty())
    body_ += ',';
  body_ += json_string(name);
  body_ += ':';
  body_ += json;
  return *this;
}

json_object& json_object::add(const std::string& name,
                              const std::string& value) {
  return add_raw(name, json_string(value));
}

json_object& json_object::add(const std::string& name, const char* value) {
  return add_raw(name, json_string(value));
}

json_object& json_object::add(const std::string& name, std::int64_t value) {
  return add_raw(name, std::to_string(value));
}

json_object& json_object::add(const std::string& name, std::uint64_t value) {
  return add_raw(name, std::to_string(value));
}

json_object& json_object::add(const std::string& name, int value) {
  return add_raw(name, std::to_string(value));
}

json_object& json_object::add(const std::string& name, int128 value) {
  // JSON numbers have arbitrary precision: print every digit.
  return add_raw(name, to_string(value));
}

json_object& json_object::add(const std::string& name, double value) {
  if (!std::isfinite(value))
    return add_raw(name, "null");
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.9g", value);
  return add_raw(name, buf);
}

json_object& json_object::add(const std::string& name, bool value) {
  return add_raw(name, value ? "true" : "false");
}

std::string json_object::str() const {
  return "{" + body_ + "}";
}

// -- misc ---------------------------------------------------------------------

double time_seconds(const std::function<void()>& f) {
  stopwatch sw;
  f();
  return sw.seconds();
}

int report_usage_error(const std::string& prog, const std::string& what) {
  std::cerr << prog << ": error: " << what << std::endl;
  return exit_usage;
}

void apply_log_level(const std::string& level) {
  if (!level.empty() && !set_log_level(level))
    throw usage_error("--log-level: unknown level " + quote_token(level)
                      + " (trace, debug, info, warn, error, critical, off)");
}

int guarded_main(const std::string& prog,
                 const std::function<int()>& main_fn) {
  install_signal_handling(prog);
  try {
    return main_fn();
  } catch (const usage_error& e) {
    return report_usage_error(prog, e.what());
  } catch (const std::bad_alloc&) {
    return report_usage_error(prog, "out of memory");
  } catch (const std::exception& e) {
    return report_usage_error(prog, e.what());
  }
}

} // namespace flow::apps
