// The status server: cpp-httplib (Debian's libcpp-httplib-dev, header-only)
// in threads of its own, reading the statistics jobs publish
// (job::stats(): a copy under a mutex, never a message to the manager), so
// that no request can slow a job down. docs/observability.md says why
// cpp-httplib.

#include "flow/status_server.hpp"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include <httplib.h>
#include <spdlog/spdlog.h>

#include "flow/logging.hpp"
#include "flow/status_render.hpp"

namespace flow {

namespace {

/// A watched job and what the server sampled of it.
struct watched {
  job handle;
  std::string name;
  /// (elapsed seconds, elements emitted), at most max_history, thinned.
  std::vector<std::pair<double, std::uint64_t>> history;
  bool ended = false;
};

constexpr std::size_t max_history = 240;
constexpr std::size_t max_jobs = 32;

/// A token bucket per connection (remote address and port).
struct bucket {
  double tokens = 0;
  std::chrono::steady_clock::time_point last;
};

} // namespace

struct status_server::impl {
  settings cfg;
  httplib::Server http;
  std::thread listener;
  std::thread sampler;
  int port = 0;

  mutable std::mutex mtx;
  std::condition_variable cv;
  bool stopping = false;
  std::deque<watched> jobs;
  std::vector<std::pair<std::string, std::string>> info;

  std::mutex rate_mtx;
  std::map<std::string, bucket> buckets;

  /// The entries to render, with their latest statistics.
  std::vector<status_entry> entries() const {
    std::vector<status_entry> result;
    std::lock_guard<std::mutex> guard{mtx};
    result.reserve(jobs.size());
    for (auto& w : jobs)
      result.push_back({w.name, w.handle.stats(), w.history});
    return result;
  }

  /// Records a throughput sample of every running job; halves a history
  /// that grew too long, so it spans the job's whole life.
  void sample() {
    std::lock_guard<std::mutex> guard{mtx};
    for (auto& w : jobs) {
      if (w.ended)
        continue;
      auto xs = w.handle.stats();
      w.history.emplace_back(xs.elapsed_seconds, xs.emitted());
      if (xs.state == job_state::done || xs.state == job_state::failed)
        w.ended = true;
      if (w.history.size() > max_history) {
        std::vector<std::pair<double, std::uint64_t>> thin;
        for (std::size_t i = 0; i < w.history.size(); i += 2)
          thin.push_back(w.history[i]);
        thin.push_back(w.history.back());
        w.history = std::move(thin);
      }
    }
  }

  void run_sampler() {
    std::unique_lock<std::mutex> guard{mtx};
    while (!stopping) {
      cv.wait_for(guard, std::chrono::milliseconds(cfg.sample_ms));
      if (stopping)
        break;
      guard.unlock();
      sample();
      guard.lock();
    }
  }

  /// True when the connection may make one more request now.
  bool admit(const httplib::Request& req) {
    auto now = std::chrono::steady_clock::now();
    auto who = req.remote_addr + ' ' + std::to_string(req.remote_port);
    std::lock_guard<std::mutex> guard{rate_mtx};
    if (buckets.size() > 4096) {
      // Forget idle connections.
      for (auto i = buckets.begin(); i != buckets.end();)
        if (now - i->second.last > std::chrono::seconds(10))
          i = buckets.erase(i);
        else
          ++i;
    }
    auto burst = 2 * cfg.requests_per_second;
    auto [i, added] = buckets.try_emplace(who, bucket{burst, now});
    auto& b = i->second;
    if (!added) {
      b.tokens = std::min(burst,
                          b.tokens
                            + cfg.requests_per_second
                                * std::chrono::duration<double>(now - b.last)
                                    .count());
      b.last = now;
    }
    if (b.tokens < 1)
      return false;
    b.tokens -= 1;
    return true;
  }

  /// Rejects oversized and too frequent requests before any route runs.
  httplib::Server::HandlerResponse screen(const httplib::Request& req,
                                          httplib::Response& res) {
    std::size_t size = req.target.size() + req.body.size();
    for (auto& [k, v] : req.headers)
      size += k.size() + v.size() + 4;
    if (size > cfg.max_request_bytes) {
      res.status = 431;
      res.set_content("request too large\n", "text/plain");
      return httplib::Server::HandlerResponse::Handled;
    }
    if (!admit(req)) {
      res.status = 429;
      res.set_header("Retry-After", "1");
      res.set_content("too many requests\n", "text/plain");
      return httplib::Server::HandlerResponse::Handled;
    }
    return httplib::Server::HandlerResponse::Unhandled;
  }

  void routes(status_server* self) {
    http.set_pre_routing_handler(
      [this](const httplib::Request& req, httplib::Response& res) {
        return screen(req, res);
      });
    http.Get("/metrics", [self](const httplib::Request&,
                                httplib::Response& res) {
      res.set_header("Cache-Control", "no-store");
      res.set_content(self->metrics(), "text/plain; version=0.0.4; "
                                       "charset=utf-8");
    });
    http.Get("/status", [self](const httplib::Request&,
                               httplib::Response& res) {
      res.set_header("Cache-Control", "no-store");
      res.set_content(self->status_json(), "application/json");
    });
    http.Get("/", [](const httplib::Request&, httplib::Response& res) {
      // The page fetches nothing from another host; say so to the browser.
      res.set_header("Content-Security-Policy",
                     "default-src 'self'; style-src 'unsafe-inline'; "
                     "script-src 'unsafe-inline'; img-src 'self' data:");
      res.set_header("Cache-Control", "no-store");
      res.set_content(status_page(), "text/html; charset=utf-8");
    });
  }
};

status_server::status_server() : impl_(std::make_unique<impl>()) {
  // nop
}

status_server::~status_server() {
  stop();
}

bool status_server::is_loopback(const std::string& host) {
  return host == "localhost" || host == "::1" || host == "[::1]"
         || host.rfind("127.", 0) == 0;
}

std::string status_server::start(const settings& cfg) {
  auto& d = *impl_;
  if (d.port != 0)
    return "the status server is already listening";
  d.cfg = cfg;
  if (d.cfg.requests_per_second <= 0)
    d.cfg.requests_per_second = 1;
  auto threads = std::max<std::size_t>(1, cfg.threads);
  d.http.new_task_queue = [threads] {
    return new httplib::ThreadPool(threads);
  };
  d.http.set_payload_max_length(cfg.max_request_bytes);
  d.http.set_read_timeout(5, 0);
  d.http.set_write_timeout(5, 0);
  d.http.set_keep_alive_max_count(1000);
  // SO_REUSEADDR only: httplib's default adds SO_REUSEPORT, with which a
  // second server would share a port in use instead of failing.
  d.http.set_socket_options([](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
  d.routes(this);
  auto host = cfg.host;
  if (host.size() > 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  if (host.find(':') != std::string::npos)
    d.http.set_address_family(AF_INET6);
  int port = cfg.port;
  if (cfg.port == 0)
    port = d.http.bind_to_any_port(host);
  else if (!d.http.bind_to_port(host, cfg.port))
    port = -1;
  if (port <= 0)
    return "cannot listen on " + cfg.host + ":" + std::to_string(cfg.port);
  d.port = port;
  if (!is_loopback(host))
    logger()->warn("the status server listens on {}, not on loopback: its "
                   "page and metrics are unauthenticated, anyone who can "
                   "reach the address can read them",
                   address());
  d.listener = std::thread{[&d] { d.http.listen_after_bind(); }};
  // httplib's stop() does nothing before the listening loop runs: wait for
  // it, so that a stop right after start cannot leave the loop running.
  for (int i = 0; i < 5000 && !d.http.is_running(); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  d.sampler = std::thread{[&d] { d.run_sampler(); }};
  return {};
}

void status_server::stop() {
  auto& d = *impl_;
  {
    std::lock_guard<std::mutex> guard{d.mtx};
    d.stopping = true;
  }
  d.cv.notify_all();
  if (d.listener.joinable()) {
    d.http.stop();
    d.listener.join();
  }
  if (d.sampler.joinable())
    d.sampler.join();
}

std::uint16_t status_server::port() const noexcept {
  return static_cast<std::uint16_t>(impl_->port);
}

std::string status_server::address() const {
  auto host = impl_->cfg.host;
  if (host.find(':') != std::string::npos && host.front() != '[')
    host = "[" + host + "]";
  return host + ":" + std::to_string(port());
}

void status_server::watch(const job& j, const std::string& name) {
  auto& d = *impl_;
  std::lock_guard<std::mutex> guard{d.mtx};
  if (d.jobs.size() >= max_jobs) {
    auto i = std::find_if(d.jobs.begin(), d.jobs.end(),
                          [](const watched& w) { return w.handle.done(); });
    d.jobs.erase(i != d.jobs.end() ? i : d.jobs.begin());
  }
  // Names are label values: two jobs of one name get distinct ones.
  auto unique = name;
  for (int n = 2; std::any_of(d.jobs.begin(), d.jobs.end(),
                              [&](const watched& x) { return x.name == unique; });
       ++n)
    unique = name + " #" + std::to_string(n);
  watched w;
  w.handle = j;
  w.name = unique;
  d.jobs.push_back(std::move(w));
}

void status_server::set_info(const std::string& key,
                             const std::string& value) {
  auto& d = *impl_;
  std::lock_guard<std::mutex> guard{d.mtx};
  for (auto& [k, v] : d.info) {
    if (k == key) {
      v = value;
      return;
    }
  }
  d.info.emplace_back(key, value);
}

std::string status_server::metrics() const {
  return render_metrics(impl_->entries());
}

std::string status_server::status_json() const {
  std::vector<std::pair<std::string, std::string>> info;
  {
    std::lock_guard<std::mutex> guard{impl_->mtx};
    info = impl_->info;
  }
  return render_status_json(impl_->entries(), info);
}

} // namespace flow
