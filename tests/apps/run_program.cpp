#include "run_program.hpp"

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

namespace flow::test {

namespace {

std::string slurp(const std::string& path) {
  std::ifstream in{path, std::ios::binary};
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string make_temp_path() {
  char tmpl[] = "/tmp/flow-app-test-XXXXXX";
  int fd = mkstemp(tmpl);
  if (fd < 0)
    throw std::runtime_error("mkstemp failed");
  close(fd);
  return tmpl;
}

run_result spawn(const std::vector<std::string>& argv,
                 const std::string& stdin_path) {
  auto out_path = make_temp_path();
  auto err_path = make_temp_path();
  // Everything the child needs is built before the fork: between fork and
  // exec a child of a threaded test process may only make
  // async-signal-safe calls (no allocation).
  std::vector<char*> args;
  for (auto& a : argv)
    args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  auto in_path = stdin_path.empty() ? "/dev/null" : stdin_path.c_str();
  pid_t pid = fork();
  if (pid < 0)
    throw std::runtime_error("fork failed");
  if (pid == 0) {
    int in = open(in_path, O_RDONLY);
    int out = open(out_path.c_str(), O_WRONLY | O_TRUNC);
    int err = open(err_path.c_str(), O_WRONLY | O_TRUNC);
    if (in < 0 || out < 0 || err < 0)
      _exit(127);
    dup2(in, 0);
    dup2(out, 1);
    dup2(err, 2);
    execv(args[0], args.data());
    _exit(127);
  }
  int status = 0;
  struct rusage usage {};
  wait4(pid, &status, 0, &usage);
  run_result res;
  res.rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  res.out = slurp(out_path);
  res.err = slurp(err_path);
  res.max_rss_kib = usage.ru_maxrss;
  std::remove(out_path.c_str());
  std::remove(err_path.c_str());
  return res;
}

std::string shell_quote(const std::string& x) {
  std::string result = "'";
  for (auto c : x) {
    if (c == '\'')
      result += "'\\''";
    else
      result += c;
  }
  return result + "'";
}

} // namespace

run_result run_program(const std::string& program,
                       const std::vector<std::string>& args,
                       const std::string& stdin_path) {
  std::vector<std::string> argv{program};
  argv.insert(argv.end(), args.begin(), args.end());
  return spawn(argv, stdin_path);
}

run_result run_piped(const std::string& producer, const std::string& program,
                     const std::vector<std::string>& args) {
  // exec makes the program the shell's last child, so wait4 on the shell
  // reports the program's own peak memory alongside the producer's.
  std::string cmd = producer + " | exec " + shell_quote(program);
  for (auto& a : args)
    cmd += " " + shell_quote(a);
  return spawn({"/bin/sh", "-c", cmd}, {});
}

std::string temp_file(const std::string& text) {
  auto path = make_temp_path();
  std::ofstream out{path, std::ios::binary};
  out << text;
  return path;
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> result;
  std::istringstream in{text};
  std::string line;
  while (std::getline(in, line))
    result.push_back(line);
  return result;
}

} // namespace flow::test
