#include "cli.hpp"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include <malloc.h>

#include <CLI/CLI.hpp>

#include "common/watch.hpp"
#include "flow/error.hpp"
#include "flow/logging.hpp"
#include "flow/parse.hpp"
#include "signals.hpp"

namespace flow::apps {

namespace {

/// The programs' --config format, read by CLI11: `name = value` lines,
/// blank lines and lines starting with `#` skipped. The value is the whole
/// rest of the line, trimmed, as the programs always read it: CLI11's own
/// TOML reader would cut it at a `#`, split it at commas or spaces and strip
/// quotes (a path with a space, a passphrase with a `#`).
class name_value_config : public CLI::Config {
public:
  std::string to_config(const CLI::App*, bool, bool,
                        std::string) const override {
    return {};
  }

  std::vector<CLI::ConfigItem> from_config(std::istream& in) const override {
    std::vector<CLI::ConfigItem> items;
    std::string line;
    std::size_t n = 0;
    while (std::getline(in, line)) {
      ++n;
      line = trim(line);
      if (line.empty() || line[0] == '#')
        continue;
      auto eq = line.find('=');
      if (eq == std::string::npos)
        throw CLI::ConfigError("line " + std::to_string(n)
                               + ": expected 'name = value'");
      CLI::ConfigItem item;
      item.name = trim(line.substr(0, eq));
      item.inputs = {trim(line.substr(eq + 1))};
      items.push_back(std::move(item));
    }
    return items;
  }

private:
  static std::string trim(const std::string& x) {
    auto b = x.find_first_not_of(" \t\r");
    auto e = x.find_last_not_of(" \t\r");
    return b == std::string::npos ? std::string{} : x.substr(b, e - b + 1);
  }
};

} // namespace

// -- arg_parser ---------------------------------------------------------------

/// One declared option: where CLI11 stores its value, and what it was
/// declared as.
struct arg_parser::option {
  CLI::Option* opt = nullptr;
  std::string meta;
  std::string value;
  /// A flag's value (a flag may be set to false in a config file).
  bool set = false;
  bool is_flag = false;
  /// For an alias: the option it stands for.
  std::string target;
};

arg_parser::arg_parser(std::string prog, std::string summary)
  : prog_(std::move(prog)),
    app_(std::make_unique<CLI::App>(std::move(summary), prog_)) {
  // Unknown options and stray arguments are reported as before, by parse().
  app_->allow_extras();
  // Long options only: a single dash is nobody's option here.
  app_->set_help_flag("--help", "print this help and exit");
  app_->get_formatter()->column_width(24);
}

arg_parser::~arg_parser() = default;

void arg_parser::value(const std::string& name, const std::string& meta,
                       const std::string& help, std::string default_value) {
  auto o = std::make_unique<option>();
  o->meta = meta;
  o->value = std::move(default_value);
  auto text = help;
  if (!o->value.empty())
    text += " (default: " + o->value + ")";
  o->opt = app_->add_option("--" + name, o->value, text);
  o->opt->type_name(meta)->configurable(false);
  options_[name] = std::move(o);
}

void arg_parser::flag(const std::string& name, const std::string& help) {
  auto o = std::make_unique<option>();
  o->is_flag = true;
  o->opt = app_->add_flag("--" + name, o->set, help);
  o->opt->configurable(false);
  options_[name] = std::move(o);
}

void arg_parser::alias(const std::string& name, const std::string& target) {
  auto& t = *options_.at(target);
  auto o = std::make_unique<option>();
  o->meta = t.meta;
  o->target = target;
  o->opt = app_->add_option("--" + name, o->value,
                            "the same as --" + target
                              + " (its former name, still accepted)");
  o->opt->type_name(t.meta)->configurable(false);
  options_[name] = std::move(o);
}

void arg_parser::config(const std::string& name, const std::string& help,
                        const std::vector<std::string>& names) {
  app_->set_config("--" + name, "", help)->type_name("FILE");
  app_->config_formatter(std::make_shared<name_value_config>());
  // A line for any other option is an error, not silently ignored.
  app_->allow_config_extras(CLI::config_extras_mode::error);
  for (auto& n : names)
    options_.at(n)->opt->configurable(true);
}

std::string arg_parser::describe(const CLI::Error& e) const {
  std::string what = e.what();
  auto name_end = what.find(':');
  auto name = what.substr(0, name_end);
  auto known = [&](const std::string& n) {
    return n.size() > 2 && options_.count(n.substr(2)) > 0;
  };
  if (dynamic_cast<const CLI::ArgumentMismatch*>(&e) != nullptr && known(name)) {
    auto& o = *options_.at(name.substr(2));
    if (what.find("missing") != std::string::npos)
      return "option " + name + " needs a value (" + o.meta + ")";
    if (what.find("At Most") != std::string::npos)
      return "option " + name + " given twice";
  }
  if (dynamic_cast<const CLI::ConfigError*>(&e) != nullptr) {
    // A line that is not `name = value` (name_value_config says which).
    if (what.rfind("line ", 0) == 0)
      return "--config: " + what;
    // "NAME: This option is not allowed in a configuration file", or "INI
    // was not able to parse NAME" for a name no option has.
    auto item = what.find(": This option") != std::string::npos
                  ? what.substr(0, what.find(": This option"))
                  : what.substr(what.find("parse ") + 6);
    return "--config: " + quote_token(item)
           + " cannot be set in the config file";
  }
  if (dynamic_cast<const CLI::FileError*>(&e) != nullptr)
    return "--config: " + what;
  return what;
}

bool arg_parser::parse(int argc, char** argv) {
  try {
    app_->parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    print_help();
    return false;
  } catch (const CLI::ParseError& e) {
    throw usage_error(describe(e));
  }
  for (auto& [name, o] : options_)
    if (!o->target.empty() && o->opt->count() > 0
        && options_.at(o->target)->opt->count() > 0)
      throw usage_error("option --" + o->target + " given twice (--" + name
                        + " is its former name)");
  auto extras = app_->remaining();
  if (!extras.empty()) {
    auto& arg = extras.front();
    auto name = arg.substr(0, arg.find('='));
    if (arg.size() < 3 || arg.compare(0, 2, "--") != 0)
      throw usage_error("unexpected argument " + quote_token(arg)
                        + " (options start with --; see --help)");
    throw usage_error("unknown option " + quote_token(name) + " (see --help)");
  }
  return true;
}

const arg_parser::option& arg_parser::find(const std::string& name) const {
  auto& o = *options_.at(name);
  // An option given under its former name.
  for (auto& [n, x] : options_)
    if (x->target == name && x->opt->count() > 0)
      return *x;
  return o;
}

bool arg_parser::given(const std::string& name) const {
  auto& o = find(name);
  return o.is_flag ? o.set : o.opt->count() > 0;
}

const std::string& arg_parser::get(const std::string& name) const {
  return find(name).value;
}

bool arg_parser::is_set(const std::string& name) const {
  return find(name).set;
}

namespace {

/// The value `text` of option `shown` parsed by `parse` (which returns an
/// optional and says why not), checked by `in_range`; throws usage_error
/// naming the option, the text and the problem (`range`: how the range is
/// shown).
template <class Parse, class InRange>
auto parse_option(const std::string& shown, const std::string& text,
                  Parse parse, InRange in_range, const std::string& range) {
  std::string why;
  auto x = parse(text, why);
  if (!x)
    throw usage_error(shown + ": " + quote_token(text) + " " + why);
  if (!in_range(*x))
    throw usage_error(shown + ": " + quote_token(text)
                      + " is outside the range " + range);
  return *x;
}

} // namespace

std::uint64_t arg_parser::get_uint(const std::string& name, std::uint64_t lo,
                                   std::uint64_t hi) const {
  auto& o = find(name);
  auto x = parse_option(
    o.opt->get_name(), o.value,
    [](const std::string& t, std::string& why) { return parse_int64(t, why); },
    [&](std::int64_t v) {
      return v >= 0 && static_cast<std::uint64_t>(v) >= lo
             && static_cast<std::uint64_t>(v) <= hi;
    },
    std::to_string(lo) + ".." + std::to_string(hi));
  return static_cast<std::uint64_t>(x);
}

double arg_parser::get_double(const std::string& name, double lo,
                              double hi) const {
  auto& o = find(name);
  char range[64];
  std::snprintf(range, sizeof range, "%g..%g", lo, hi);
  return parse_option(
    o.opt->get_name(), o.value,
    [](const std::string& t, std::string& why) { return parse_double(t, why); },
    [&](double v) { return v >= lo && v <= hi; }, range);
}

void arg_parser::print_help() const {
  std::cout << app_->help();
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

std::uint64_t parse_bytes(const std::string& option, const std::string& text) {
  auto bad = [&](const std::string& why) {
    return usage_error(option + ": " + quote_token(text) + " " + why);
  };
  std::size_t digits = 0;
  while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9')
    ++digits;
  if (digits == 0)
    throw bad("is not a number of bytes (for example 268435456, 256M or "
              "256MiB)");
  auto suffix = text.substr(digits);
  static const std::pair<const char*, unsigned> units[] = {
    {"", 0},   {"K", 10},   {"KiB", 10}, {"M", 20}, {"MiB", 20},
    {"G", 30}, {"GiB", 30}, {"T", 40},   {"TiB", 40}};
  unsigned shift = 64;
  for (auto& [name, s] : units)
    if (suffix == name)
      shift = s;
  if (shift == 64)
    throw bad("has an unknown unit (K, M, G, T, KiB, MiB, GiB or TiB)");
  std::uint64_t x = 0;
  for (std::size_t i = 0; i < digits; ++i)
    if (__builtin_mul_overflow(x, 10u, &x)
        || __builtin_add_overflow(x, static_cast<unsigned>(text[i] - '0'),
                                  &x))
      throw bad("is too large");
  if (shift > 0 && x > (UINT64_MAX >> shift))
    throw bad("is too large");
  return x << shift;
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

void pin_malloc_thresholds() {
  auto tunables = std::getenv("GLIBC_TUNABLES");
  if ((tunables != nullptr && std::strstr(tunables, "glibc.malloc.") != nullptr)
      || std::getenv("MALLOC_MMAP_THRESHOLD_") != nullptr
      || std::getenv("MALLOC_TRIM_THRESHOLD_") != nullptr)
    return;
  // Both together: setting either one stops glibc adapting the other, and
  // either alone was slower than the default (10 s and 19 s against 4 s).
  // A 32 MiB mmap threshold is refused where glibc's maximum is lower (32-bit
  // builds); the trim threshold alone would then be the slow case.
  if (mallopt(M_MMAP_THRESHOLD, 32 << 20) == 1)
    mallopt(M_TRIM_THRESHOLD, 256 << 20);
}

int guarded_main(const std::string& prog,
                 const std::function<int()>& main_fn) {
  install_signal_handling(prog);
  try {
    auto rc = main_fn();
    finish_watch();
    return rc;
  } catch (const usage_error& e) {
    return report_usage_error(prog, e.what());
  } catch (const std::bad_alloc&) {
    return report_usage_error(prog, "out of memory");
  } catch (const std::exception& e) {
    return report_usage_error(prog, e.what());
  }
}

} // namespace flow::apps
