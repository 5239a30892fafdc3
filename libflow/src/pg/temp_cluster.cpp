#include "flow/pg/temp_cluster.hpp"

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "flow/error.hpp"

namespace flow::pg {

namespace {

namespace fs = std::filesystem;

std::string tail_of(const std::string& path, std::size_t max_lines = 5) {
  std::ifstream in{path};
  std::vector<std::string> lines;
  std::string line;
  while (std::getline(in, line))
    if (!line.empty())
      lines.push_back(line);
  std::string result;
  auto first = lines.size() > max_lines ? lines.size() - max_lines : 0;
  for (auto i = first; i < lines.size(); ++i)
    result += (result.empty() ? "" : " | ") + lines[i];
  return result;
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

/// Runs `argv` (absolute path first), as uid/gid when `switch_user`, with
/// stdout and stderr appended to `log`; returns the exit status (-1 when it
/// could not run). Everything the child needs is prepared before fork: the
/// caller may have threads.
int run(const std::vector<std::string>& argv, bool switch_user, unsigned uid,
        unsigned gid, const std::string& log) {
  std::vector<char*> args;
  for (auto& a : argv)
    args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  static const char* env[] = {"PATH=/usr/bin:/bin", "LC_ALL=C", "LANG=C",
                              nullptr};
  int log_fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC,
                      0600);
  if (log_fd < 0)
    return -1;
  if (switch_user && ::fchown(log_fd, uid, gid) != 0) {
    ::close(log_fd);
    return -1;
  }
  pid_t pid = ::fork();
  if (pid < 0) {
    ::close(log_fd);
    return -1;
  }
  if (pid == 0) {
    int null_fd = ::open("/dev/null", O_RDONLY);
    if (null_fd < 0 || ::dup2(null_fd, 0) < 0 || ::dup2(log_fd, 1) < 0
        || ::dup2(log_fd, 2) < 0)
      ::_exit(126);
    ::closefrom(3);
    if (switch_user
        && (::setgroups(0, nullptr) != 0 || ::setgid(gid) != 0
            || ::setuid(uid) != 0))
      ::_exit(126);
    ::execve(args[0], args.data(), const_cast<char* const*>(env));
    ::_exit(127);
  }
  ::close(log_fd);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0)
    if (errno != EINTR)
      return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/// The postmaster's pid from postmaster.pid, or 0.
pid_t postmaster_pid(const std::string& data_dir) {
  std::ifstream in{data_dir + "/postmaster.pid"};
  long pid = 0;
  if (in >> pid)
    return static_cast<pid_t>(pid);
  return 0;
}

bool is_postgres(pid_t pid) {
  std::ifstream in{"/proc/" + std::to_string(pid) + "/comm"};
  std::string comm;
  return static_cast<bool>(in >> comm) && comm == "postgres";
}

std::string pick_parent(const cluster_options& opts) {
  if (!opts.parent_dir.empty())
    return opts.parent_dir;
  // The socket path (dir + "/.s.PGSQL.NNNNN") must fit in 107 bytes.
  if (auto tmp = std::getenv("TMPDIR"); tmp != nullptr && *tmp != '\0'
                                        && std::strlen(tmp) < 60)
    return tmp;
  return "/tmp";
}

const char* watchdog_script =
  // Waits until the owner says "keep" or goes away (EOF, also when it was
  // killed), then stops the server at once and removes the directory.
  "read -r cmd; [ \"$cmd\" = keep ] && exit 0; "
  "pid=$(head -n 1 \"$1/data/postmaster.pid\" 2>/dev/null); "
  "if [ -n \"$pid\" ] && [ \"$(cat /proc/$pid/comm 2>/dev/null)\" = postgres ];"
  " then kill -QUIT \"$pid\" 2>/dev/null; i=0; "
  "while [ -e \"$1/data/postmaster.pid\" ] && [ $i -lt 100 ]; "
  "do sleep 0.1; i=$((i+1)); done; fi; "
  "rm -rf \"$1\"";

} // namespace

caf::expected<std::unique_ptr<temp_cluster>>
temp_cluster::start(const cluster_options& opts) {
  std::unique_ptr<temp_cluster> c{new temp_cluster};
  auto fail = [&](const std::string& what) {
    c->stop();
    return make_error(errc::source_failed, "throwaway PostgreSQL: " + what);
  };
  c->bin_dir_ = opts.bin_dir;
  c->port_ = opts.port;
  for (auto prog : {"initdb", "pg_ctl", "postgres"})
    if (::access((opts.bin_dir + "/" + prog).c_str(), X_OK) != 0)
      return make_error(errc::source_failed,
                        "throwaway PostgreSQL: " + opts.bin_dir + "/" + prog
                          + " not found (install the postgresql package, "
                            "see scripts/setup.sh)");
  auto tmpl = pick_parent(opts) + "/flow-pg-XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  if (::mkdtemp(buf.data()) == nullptr)
    return make_error(errc::source_failed,
                      "throwaway PostgreSQL: cannot create a directory from "
                        + tmpl + ": " + std::strerror(errno));
  c->dir_ = buf.data();
  // From here on, a failed step stops what the earlier ones started. The
  // watchdog comes before anything that can leak (a server, a directory).
  if (auto why = c->choose_os_user(opts); !why.empty())
    return fail(why);
  if (auto why = c->start_watchdog(); !why.empty())
    return fail(why);
  if (auto why = c->init_data_dir(opts); !why.empty())
    return fail(why);
  if (auto why = c->start_server(opts); !why.empty())
    return fail(why);
  return c;
}

std::string temp_cluster::choose_os_user(const cluster_options& opts) {
  // The directory goes to the server's user: PostgreSQL refuses to run as
  // root.
  if (::geteuid() == 0) {
    std::vector<std::string> candidates;
    if (!opts.run_as.empty()) {
      candidates.push_back(opts.run_as);
    } else {
      if (auto u = std::getenv("FLOW_PG_USER"); u != nullptr && *u != '\0')
        candidates.emplace_back(u);
      candidates.insert(candidates.end(), {"flowpg", "postgres", "nobody"});
    }
    for (auto& name : candidates) {
      if (auto pw = ::getpwnam(name.c_str()); pw != nullptr && pw->pw_uid != 0) {
        os_user_ = name;
        uid_ = pw->pw_uid;
        gid_ = pw->pw_gid;
        break;
      }
    }
    if (os_user_.empty())
      return "running as root and none of the users " + candidates.front()
             + ", ... exists to run the server (scripts/setup.sh creates "
               "flowpg)";
    switch_user_ = true;
    if (::chown(dir_.c_str(), uid_, gid_) != 0)
      return "cannot hand " + dir_ + " to " + os_user_ + ": "
             + std::strerror(errno);
  } else {
    if (auto pw = ::getpwuid(::geteuid()))
      os_user_ = pw->pw_name;
    uid_ = ::geteuid();
    gid_ = ::getegid();
  }
  return {};
}

std::string temp_cluster::start_watchdog() {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
    return std::string{"socketpair: "} + std::strerror(errno);
  {
    std::vector<std::string> argv{"/bin/sh", "-c", watchdog_script,
                                  "flow-pg-watchdog", dir_};
    std::vector<char*> args;
    for (auto& a : argv)
      args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    static const char* env[] = {"PATH=/usr/bin:/bin", nullptr};
    pid_t pid = ::fork();
    if (pid < 0) {
      ::close(sv[0]);
      ::close(sv[1]);
      return std::string{"fork: "} + std::strerror(errno);
    }
    if (pid == 0) {
      // Its own session: a Ctrl-C to our process group must not kill it.
      ::setsid();
      int null_fd = ::open("/dev/null", O_RDWR);
      if (null_fd < 0 || ::dup2(sv[1], 0) < 0 || ::dup2(null_fd, 1) < 0
          || ::dup2(null_fd, 2) < 0)
        ::_exit(126);
      ::closefrom(3);
      ::execve(args[0], args.data(), const_cast<char* const*>(env));
      ::_exit(127);
    }
    ::close(sv[1]);
    watchdog_fd_ = sv[0];
    watchdog_pid_ = pid;
  }
  return {};
}

std::string temp_cluster::init_data_dir(const cluster_options& opts) {
  auto data = data_dir();
  auto initdb_log = dir_ + "/initdb.log";
  if (run({opts.bin_dir + "/initdb", "-D", data, "-U", superuser(),
           "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8",
           "--locale=C", "--no-sync", "--no-instructions"},
          switch_user_, uid_, gid_, initdb_log)
      != 0)
    return "initdb failed as user " + os_user_ + ": " + tail_of(initdb_log);
  {
    std::ofstream conf{data + "/postgresql.conf", std::ios::app};
    conf << "\n# flow::pg::temp_cluster: private, throwaway, fast\n"
         << "listen_addresses = ''\n"
         << "unix_socket_directories = '" << dir_ << "'\n"
         << "port = " << port_ << "\n"
         << "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
         << "wal_level = minimal\nmax_wal_senders = 0\n"
         << "password_encryption = 'scram-sha-256'\n"
         << "max_connections = 200\n";
    std::ofstream hba{data + "/pg_hba.conf", std::ios::trunc};
    // The socket lives in a directory only the server's user (and root) can
    // enter: the superuser needs no password there; other roles do.
    hba << "local all " << superuser() << " trust\n"
        << "local all all scram-sha-256\n";
    if (!conf || !hba)
      return "cannot write the configuration in " + data;
  }
  return {};
}

std::string temp_cluster::start_server(const cluster_options& opts) {
  auto server_log = dir_ + "/server.log";
  auto ctl_log = dir_ + "/pg_ctl.log";
  if (run({opts.bin_dir + "/pg_ctl", "-D", data_dir(), "-l", server_log, "-w",
           "-t", "60", "-s", "start"},
          switch_user_, uid_, gid_, ctl_log)
      != 0) {
    auto why = tail_of(server_log);
    if (why.empty())
      why = tail_of(ctl_log);
    running_ = true; // pg_ctl may have started it before timing out
    return "pg_ctl start failed: " + why;
  }
  running_ = true;
  return {};
}

temp_cluster::~temp_cluster() {
  if (kept_) {
    if (watchdog_fd_ >= 0) {
      ::close(watchdog_fd_);
      ::waitpid(watchdog_pid_, nullptr, 0);
    }
    return;
  }
  stop();
}

std::string temp_cluster::conninfo(const std::string& dbname) const {
  return "host=" + dir_ + " port=" + std::to_string(port_) + " user="
         + superuser() + " dbname=" + dbname;
}

void temp_cluster::keep() {
  if (kept_ || dir_.empty())
    return;
  kept_ = true;
  if (watchdog_fd_ >= 0) {
    static const char msg[] = "keep\n";
    if (::send(watchdog_fd_, msg, sizeof(msg) - 1, MSG_NOSIGNAL) < 0) {
      // The watchdog is gone already: nothing to tell.
    }
  }
}

std::string temp_cluster::stop_command() const {
  std::string ctl = bin_dir_ + "/pg_ctl -D " + shell_quote(data_dir())
                    + " -m fast stop";
  if (switch_user_)
    ctl = "runuser -u " + os_user_ + " -- " + ctl;
  return ctl + " && rm -rf " + shell_quote(dir_);
}

bool temp_cluster::restart() {
  if (!running_)
    return false;
  return run({bin_dir_ + "/pg_ctl", "-D", data_dir(), "-l",
              dir_ + "/server.log", "-m", "fast", "-w", "-t", "60", "-s",
              "restart"},
             switch_user_, uid_, gid_, dir_ + "/pg_ctl.log")
         == 0;
}

void temp_cluster::stop() noexcept {
  try {
    if (running_) {
      auto data = data_dir();
      auto ok = run({bin_dir_ + "/pg_ctl", "-D", data, "-m", "fast", "-w",
                     "-t", "30", "-s", "stop"},
                    switch_user_, uid_, gid_, dir_ + "/pg_ctl.log")
                == 0;
      if (!ok) {
        // Fall back to an immediate shutdown, then wait for the pid file.
        if (auto pid = postmaster_pid(data); pid > 0 && is_postgres(pid))
          ::kill(pid, SIGQUIT);
        for (int i = 0; i < 100 && fs::exists(data + "/postmaster.pid"); ++i)
          std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
      running_ = false;
    }
    if (!dir_.empty()) {
      std::error_code ec;
      fs::remove_all(dir_, ec);
    }
    if (watchdog_fd_ >= 0) {
      // EOF: the watchdog finds nothing left to do and exits.
      ::close(watchdog_fd_);
      watchdog_fd_ = -1;
      ::waitpid(watchdog_pid_, nullptr, 0);
      watchdog_pid_ = -1;
    }
    kept_ = false;
    dir_.clear();
  } catch (...) {
    // best effort: nothing may escape a destructor
  }
}

} // namespace flow::pg
