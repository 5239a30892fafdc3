#include "net_support.hpp"

#include <catch2/catch.hpp>

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

std::size_t count_of(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (auto pos = text.find(what); pos != std::string::npos;
       pos = text.find(what, pos + 1))
    ++n;
  return n;
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
  INFO("the manager printed: " << slurp(manager.err));
  FAIL("the manager printed no port to listen on within 10 s");
  return {};
}

} // namespace flow::test
