#include "child_process.hpp"

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string_view>
#include <thread>

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

namespace flow::test {

std::string slurp(const std::string& path) {
  std::ifstream in{path};
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

child::child(const std::vector<std::string>& argv, const std::string& tag,
             const std::string& env) {
  auto base = "/tmp/flow-test-" + std::to_string(getpid()) + "-" + tag;
  out = base + ".out";
  err = base + ".err";
  // Everything the child needs is prepared before the fork: between fork
  // and exec only async-signal-safe calls are made, since another thread of
  // the test may hold a lock of malloc or stdio. The files are opened with
  // open/dup2, not freopen: freopen would first flush the parent's buffered
  // stdout a second time (Catch's "Filters:" line once per child, which
  // buried a failure's report in CI).
  std::vector<char*> args;
  for (auto& a : argv)
    args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  // The environment with `env` in place of any variable of the same name.
  std::vector<char*> envp;
  auto eq = env.find('=');
  auto name = eq == std::string::npos ? env + "=" : env.substr(0, eq + 1);
  if (eq != std::string::npos)
    envp.push_back(const_cast<char*>(env.c_str()));
  for (char** e = environ; *e != nullptr; ++e)
    if (env.empty() || std::string_view{*e}.substr(0, name.size()) != name)
      envp.push_back(*e);
  envp.push_back(nullptr);
  std::fflush(nullptr);
  pid = fork();
  if (pid == 0) {
    int o = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    int e = ::open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    // dup2 clears close-on-exec, except when the file already got 1 or 2
    // (the parent had closed it): cleared by hand for that case.
    if (o < 0 || e < 0 || ::dup2(o, 1) < 0 || ::dup2(e, 2) < 0
        || ::fcntl(1, F_SETFD, 0) < 0 || ::fcntl(2, F_SETFD, 0) < 0)
      _exit(126);
    execve(args[0], args.data(), envp.data());
    _exit(127);
  }
}

int child::wait() {
  int status = 0;
  waitpid(pid, &status, 0);
  pid = -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

bool child::running() {
  if (pid <= 0)
    return false;
  int status = 0;
  return waitpid(pid, &status, WNOHANG) == 0;
}

void child::signal(int sig) {
  ::kill(pid, sig);
}

void child::kill_now() {
  ::kill(pid, SIGKILL);
}

child::~child() {
  if (pid > 0) {
    ::kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
  }
  std::remove(out.c_str());
  std::remove(err.c_str());
}

bool wait_for_text(const std::string& path, const std::string& text) {
  for (int i = 0; i < 1200; ++i) {
    if (slurp(path).find(text) != std::string::npos)
      return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  return false;
}

std::vector<std::string> with(std::vector<std::string> xs,
                              const std::vector<std::string>& more) {
  xs.insert(xs.end(), more.begin(), more.end());
  return xs;
}

} // namespace flow::test
