#include "common/watch.hpp"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <mutex>
#include <string_view>

#include <unistd.h>

#include <spdlog/pattern_formatter.h>
#include <spdlog/spdlog.h>

#include "common/signals.hpp"
#include "flow/logging.hpp"
#include "flow/parse.hpp"
#ifdef FLOW_HAS_STATUS
#include "flow/status_server.hpp"
#endif

namespace flow::apps {

namespace {

// -- the program's watch state ---------------------------------------------------

struct watch_state {
#ifdef FLOW_HAS_STATUS
  std::unique_ptr<status_server> server;
#endif
  std::chrono::milliseconds linger{0};
  /// The program's name, for the line saying the status page lingers.
  std::string prog;
  std::optional<std::chrono::milliseconds> progress;
  std::mutex mtx;
  /// The job JSON log lines name.
  std::string job_name;
};

watch_state& state() {
  static watch_state instance;
  return instance;
}

// -- JSON log lines ---------------------------------------------------------------

void append_json_escaped(std::string_view text, spdlog::memory_buf_t& dest) {
  for (auto c : text) {
    auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      dest.push_back('\\');
      dest.push_back(c);
    } else if (c == '\n') {
      dest.append(std::string_view{"\\n"});
    } else if (c == '\r') {
      dest.append(std::string_view{"\\r"});
    } else if (c == '\t') {
      dest.append(std::string_view{"\\t"});
    } else if (u < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\u%04x", u);
      dest.append(std::string_view{buf});
    } else {
      dest.push_back(c);
    }
  }
}

/// %* : the message, escaped for a JSON string.
class json_message_flag final : public spdlog::custom_flag_formatter {
public:
  void format(const spdlog::details::log_msg& msg, const std::tm&,
              spdlog::memory_buf_t& dest) override {
    append_json_escaped(std::string_view{msg.payload.data(),
                                         msg.payload.size()},
                        dest);
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return spdlog::details::make_unique<json_message_flag>();
  }
};

/// %J : the name of the job the program runs now, escaped.
class json_job_flag final : public spdlog::custom_flag_formatter {
public:
  void format(const spdlog::details::log_msg&, const std::tm&,
              spdlog::memory_buf_t& dest) override {
    std::string name;
    {
      std::lock_guard<std::mutex> guard{state().mtx};
      name = state().job_name;
    }
    append_json_escaped(name, dest);
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return spdlog::details::make_unique<json_job_flag>();
  }
};

/// One JSON object per line: time (UTC, ISO 8601), level, program, job,
/// logger, message.
void use_json_log_lines(const std::string& prog) {
  auto f = std::make_unique<spdlog::pattern_formatter>(
    spdlog::pattern_time_type::utc);
  std::string escaped;
  for (auto c : prog)
    if (c != '"' && c != '\\' && static_cast<unsigned char>(c) >= 0x20)
      escaped += c;
  f->add_flag<json_message_flag>('*');
  f->add_flag<json_job_flag>('J');
  f->set_pattern("{\"time\":\"%Y-%m-%dT%H:%M:%S.%eZ\",\"level\":\"%l\","
                 "\"program\":\""
                 + escaped
                 + "\",\"job\":\"%J\",\"logger\":\"%n\",\"message\":\"%*\"}");
  logger()->set_formatter(std::move(f));
}

} // namespace

// -- options ----------------------------------------------------------------------

std::pair<std::string, std::uint16_t> parse_host_port(const std::string& option,
                                                      const std::string& text) {
  auto colon = text.rfind(':');
  if (colon == std::string::npos)
    throw usage_error(option + ": " + quote_token(text)
                      + " is not HOST:PORT (for example 127.0.0.1:8080; "
                        "port 0 picks a free one)");
  auto host = text.substr(0, colon);
  auto port_text = text.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  if (host.empty())
    host = "127.0.0.1";
  std::uint64_t port = 0;
  bool ok = !port_text.empty() && port_text.size() <= 5;
  for (auto c : port_text)
    ok = ok && c >= '0' && c <= '9';
  if (ok)
    port = std::stoull(port_text);
  if (!ok || port > 65535)
    throw usage_error(option + ": " + quote_token(port_text)
                      + " is not a port number (0..65535)");
  return {host, static_cast<std::uint16_t>(port)};
}

void declare_watch_options(arg_parser& args) {
  args.value("status", "HOST:PORT",
             "serve the job's status page (/), its status as JSON (/status) "
             "and Prometheus metrics (/metrics) on HOST:PORT; port 0 picks a "
             "free one, printed on stderr. Unauthenticated: keep HOST on "
             "loopback (127.0.0.1) unless the network is trusted");
  args.value("status-linger", "SECONDS",
             "with --status: keep serving the final status this long after "
             "the last job ends (SIGINT or SIGTERM ends the wait)",
             "0");
  args.value("progress", "SECONDS",
             "print a progress line on stderr every SECONDS, even when "
             "stderr is not a terminal (default: a line on a terminal only)");
  args.value("log-format", "FORMAT",
             "text, or json: one JSON object per log line (time, level, "
             "program, job, logger, message)",
             "text");
}

void read_watch_options(const arg_parser& args) {
  auto& st = state();
  st.prog = args.prog();
  auto& format = args.get("log-format");
  if (format == "json")
    use_json_log_lines(args.prog());
  else if (format != "text")
    throw usage_error("--log-format: " + quote_token(format)
                      + " is not text or json");
  if (args.given("progress")) {
    auto& text = args.get("progress");
    char* end = nullptr;
    errno = 0;
    double secs = std::strtod(text.c_str(), &end);
    if (text.empty() || end != text.c_str() + text.size() || errno != 0
        || !(secs >= 0.1) || secs > 86400)
      throw usage_error("--progress: " + quote_token(text)
                        + " is not a number of seconds in 0.1..86400");
    st.progress = std::chrono::milliseconds(
      static_cast<std::int64_t>(secs * 1000));
  }
  st.linger = std::chrono::milliseconds(
    args.get_uint("status-linger", 0, 86400) * 1000);
  if (!args.given("status"))
    return;
  auto [host, port] = parse_host_port("--status", args.get("status"));
#ifdef FLOW_HAS_STATUS
  if (st.server)
    return;
  auto server = std::make_unique<status_server>();
  status_server::settings cfg;
  cfg.host = host;
  cfg.port = port;
  if (auto err = server->start(cfg); !err.empty())
    throw usage_error("--status: " + err);
  server->set_info("program", args.prog());
  server->set_info("pid", std::to_string(::getpid()));
  std::cerr << args.prog() << ": status page at http://" << server->address()
            << "/ (also /status and /metrics)" << std::endl;
  st.server = std::move(server);
#else
  (void) host;
  (void) port;
  throw usage_error("--status: this build has no status server (configure "
                    "with libcpp-httplib-dev installed)");
#endif
}

void name_log_job(const std::string& name) {
  auto& st = state();
  std::lock_guard<std::mutex> guard{st.mtx};
  st.job_name = name;
}

void watch_job_status(const job& j, const std::string& name) {
  auto& st = state();
  name_log_job(name);
#ifdef FLOW_HAS_STATUS
  if (st.server)
    st.server->watch(j, name);
#else
  (void) j;
#endif
}

void set_status_info(const std::string& key, const std::string& value) {
#ifdef FLOW_HAS_STATUS
  if (auto& server = state().server)
    server->set_info(key, value);
#else
  (void) key;
  (void) value;
#endif
}

std::optional<std::chrono::milliseconds> progress_interval() {
  return state().progress;
}

void finish_watch() {
#ifdef FLOW_HAS_STATUS
  auto& st = state();
  if (!st.server)
    return;
  if (st.linger.count() > 0) {
    // The results are out before the wait: whoever reads them from a pipe
    // has them while the page still shows the final status, and knows from
    // this line that a signal now only ends the wait.
    std::cout.flush();
    std::fflush(stdout);
    std::cerr << st.prog << ": serving the final status for "
              << st.linger.count() / 1000
              << " s (--status-linger; SIGINT or SIGTERM ends this)"
              << std::endl;
    linger(st.linger);
  }
  st.server->stop();
#endif
}

} // namespace flow::apps
