#include "net_support.hpp"

#include <cctype>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

#include <sys/wait.h>
#include <unistd.h>

#include "run_program.hpp"

namespace flow::test {

certs::certs() {
  char tmpl[] = "/tmp/flow-net-certs-XXXXXX";
  dir = mkdtemp(tmpl);
  auto a = run_program(MAKE_CERTS_PATH, {dir + "/good", "manager", "w1", "w2"});
  auto b = run_program(MAKE_CERTS_PATH, {dir + "/rogue", "rogue"});
  if (a.rc != 0 || b.rc != 0)
    throw std::runtime_error("make-certs.sh failed: " + a.err + b.err);
}

certs::~certs() {
  run_program("/bin/rm", {"-rf", dir});
}

std::vector<std::string> certs::tls(const std::string& who,
                                    const std::string& ca) const {
  auto base = dir + "/" + (ca == "good" ? "good" : "rogue") + "/";
  return {"--cert", base + who + ".pem", "--key", base + who + ".key",
          "--ca", base + "ca.pem"};
}

const certs& the_certs() {
  static certs instance;
  return instance;
}

std::string slurp(const std::string& path) {
  std::ifstream in{path};
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

child::child(const std::vector<std::string>& argv, const std::string& tag,
             const std::string& env) {
  out = "/tmp/flow-net-" + std::to_string(getpid()) + "-" + tag + ".out";
  err = "/tmp/flow-net-" + std::to_string(getpid()) + "-" + tag + ".err";
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

std::string wait_for_port(const child& manager) {
  // The program's own line ("flow-keyed: listening on ..."), not the log's.
  const std::string marker = ": listening on 127.0.0.1:";
  for (int i = 0; i < 400; ++i) {
    auto text = slurp(manager.err);
    for (auto pos = text.find(marker); pos != std::string::npos;
         pos = text.find(marker, pos + 1)) {
      auto begin = pos + marker.size();
      auto end = begin;
      while (end < text.size()
             && std::isdigit(static_cast<unsigned char>(text[end])))
        ++end;
      if (end > begin && end < text.size() && text[end] == '\n')
        return text.substr(begin, end - begin);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  return {};
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
