#include "signals.hpp"

#include <atomic>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <thread>

#include <pthread.h>
#include <unistd.h>

namespace flow::apps {

namespace {

std::atomic<int> first_signal{0};
std::atomic<long long> drain_ms{5000};
std::string program = "flow";

// The job a signal stops; guarded because the signal thread and the thread
// running the job both touch it.
std::mutex current_mtx;
const job* current = nullptr;

// linger()'s wait, which a signal ends instead of the process.
std::mutex linger_mtx;
std::condition_variable linger_cv;
bool lingering = false;
bool linger_ended = false;

void say(const char* what, int sig) {
  std::fprintf(stderr, "%s: %s (%s)\n", program.c_str(), what,
               sig == SIGINT ? "SIGINT" : "SIGTERM");
  std::fflush(stderr);
}

void signal_loop(sigset_t set) {
  for (;;) {
    int sig = 0;
    if (sigwait(&set, &sig) != 0)
      continue;
    int expected = 0;
    if (!first_signal.compare_exchange_strong(expected, sig)) {
      // A second signal: the user does not want to wait for the drain.
      say("second signal: aborting at once", sig);
      std::fflush(stdout);
      _exit(128 + first_signal.load());
    }
    std::lock_guard<std::mutex> guard{current_mtx};
    if (current == nullptr) {
      std::lock_guard<std::mutex> linger_guard{linger_mtx};
      if (lingering) {
        say("interrupted: no longer serving the final status", sig);
        linger_ended = true;
        linger_cv.notify_all();
        continue;
      }
      say("interrupted", sig);
      std::fflush(stdout);
      _exit(128 + sig);
    }
    say("interrupted: stopping the job and draining the batches in flight; "
        "a second signal aborts at once",
        sig);
    current->stop(std::chrono::milliseconds(drain_ms.load()));
  }
}

} // namespace

void install_signal_handling(const std::string& prog) {
  program = prog;
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  std::thread{signal_loop, set}.detach();
}

void set_drain_timeout(std::chrono::milliseconds timeout) noexcept {
  drain_ms = timeout.count();
}

int interrupted() noexcept {
  return first_signal.load();
}

int interrupted_exit_code() noexcept {
  auto sig = first_signal.load();
  return sig == 0 ? 0 : 128 + sig;
}

void exit_interrupted() {
  std::fflush(stdout);
  std::fflush(stderr);
  _exit(interrupted_exit_code());
}

void linger(std::chrono::milliseconds d) {
  std::unique_lock<std::mutex> lock{linger_mtx};
  lingering = true;
  linger_cv.wait_for(lock, d, [] { return linger_ended; });
  lingering = false;
}

watch_job::watch_job(const job& j) {
  std::lock_guard<std::mutex> guard{current_mtx};
  current = &j;
  // A signal that came before the job started stops it at once.
  if (first_signal.load() != 0)
    j.stop(std::chrono::milliseconds(drain_ms.load()));
}

watch_job::~watch_job() {
  std::lock_guard<std::mutex> guard{current_mtx};
  current = nullptr;
}

} // namespace flow::apps
