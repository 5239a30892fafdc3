#include "child_process.hpp"

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>

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
  pid = fork();
  if (pid == 0) {
    if (!freopen(out.c_str(), "w", stdout)
        || !freopen(err.c_str(), "w", stderr))
      _exit(126);
    if (!env.empty())
      putenv(const_cast<char*>(env.c_str()));
    std::vector<char*> args;
    for (auto& a : argv)
      args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execv(args[0], args.data());
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
