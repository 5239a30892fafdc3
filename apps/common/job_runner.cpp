#include "common/job_runner.hpp"

#include <cerrno>
#include <cstring>
#include <iostream>
#include <stdexcept>

#include "common/progress.hpp"
#include "common/signals.hpp"
#include "flow/error.hpp"
#include "flow/parse.hpp"

namespace flow::apps {

// -- dead letters -------------------------------------------------------------

dead_letter_file::dead_letter_file(const std::string& path) : path_(path) {
  if (path_.empty())
    return;
  file_ = std::fopen(path_.c_str(), "w");
  if (file_ == nullptr)
    throw usage_error("--dead-letter: cannot open " + quote_token(path_)
                      + ": " + std::strerror(errno));
}

dead_letter_file::~dead_letter_file() {
  if (file_ != nullptr)
    std::fclose(file_);
}

void dead_letter_file::attach(flow::options& opts) {
  if (file_ == nullptr)
    return;
  auto* f = file_;
  opts.dead_letter_handler = [f](const dead_letter& d) {
    json_object obj;
    obj.add("source", static_cast<std::uint64_t>(d.source))
      .add("index", d.index)
      .add("count", d.count)
      .add("value", d.value)
      .add("error", d.error);
    auto line = obj.str() + '\n';
    if (std::fwrite(line.data(), 1, line.size(), f) != line.size())
      throw std::runtime_error("writing the dead-letter file failed");
  };
}

void dead_letter_file::close() {
  if (file_ == nullptr)
    return;
  auto failed = std::fflush(file_) != 0 || std::ferror(file_) != 0;
  std::fclose(file_);
  file_ = nullptr;
  if (failed)
    throw usage_error("--dead-letter: writing " + quote_token(path_)
                      + " failed");
}

void report_dead_letters(const std::string& prog, const job_result& res,
                         const std::string& where) {
  if (res.dead_lettered == 0)
    return;
  std::cerr << prog << ": the reducer failed on " << res.dead_lettered
            << " elements; they are dead-lettered, not in the result";
  if (!where.empty())
    std::cerr << " (written to " << where << ")";
  std::cerr << '\n';
  std::size_t shown = 0;
  for (auto& d : res.dead_letters) {
    if (++shown > 3)
      break;
    std::cerr << prog << ":   source " << d.source << " element " << d.index;
    if (d.count > 1)
      std::cerr << " (+" << (d.count - 1) << " more)";
    if (!d.value.empty())
      std::cerr << " value " << quote_token(d.value);
    std::cerr << ": " << d.error << '\n';
  }
  std::cerr.flush();
}

// -- partial results ----------------------------------------------------------

void report_partial(const std::string& prog, const job_result& res) {
  std::cerr << prog << ": PARTIAL result: the job was stopped by a signal "
            << "after accepting " << res.emitted << " elements ("
            << res.aggregated << " aggregated, " << res.rejected
            << " rejected, " << res.dead_lettered << " dead-lettered, "
            << res.abandoned << " abandoned when the drain timed out)"
            << std::endl;
}

void add_counts(json_object& obj, const job_result& res) {
  obj.add("emitted", res.emitted)
    .add("aggregated", res.aggregated)
    .add("rejected", res.rejected)
    .add("dead_lettered", res.dead_lettered)
    .add("speculated", res.speculated)
    .add("speculation_won", res.speculation_won);
}

// -- job_runner ---------------------------------------------------------------

job_runner::job_runner(std::string prog) : prog_(std::move(prog)) {
}

caf::expected<job_result> job_runner::wait(const caf::expected<job>& started,
                                           std::uint64_t total,
                                           const std::string& what) const {
  if (!started)
    return started.error();
  return wait_with_progress(*started, total, what);
}

int job_runner::job_error(const caf::error& err) const {
  std::cerr << prog_ << ": error: " << describe(err) << std::endl;
  return code_of(err) == errc::bad_input ? exit_usage : exit_mismatch;
}

int job_runner::dead_letters(const job_result& res,
                             const std::string& where) const {
  report_dead_letters(prog_, res, where);
  return res.dead_lettered > 0 ? exit_dead_letters : exit_ok;
}

bool job_runner::stopped(const job_result& res) noexcept {
  return res.partial || interrupted() != 0;
}

int job_runner::stopped_exit_code(const job_result& res) const {
  if (res.partial)
    report_partial(prog_, res);
  return interrupted_exit_code();
}

void job_runner::exit_stopped(const job_result& res,
                              dead_letter_file& dead) const {
  stopped_exit_code(res);
  dead.close();
  exit_interrupted();
}

} // namespace flow::apps
