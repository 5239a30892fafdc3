#include "flow/job.hpp"

#include <caf/actor_system.hpp>
#include <caf/scoped_actor.hpp>

#include "flow/detail/messages.hpp"
#include "flow/error.hpp"
#include "engine/engine.hpp"

namespace flow {

job::job(std::shared_ptr<detail::job_impl> impl) noexcept
  : impl_(std::move(impl)) {
  // nop
}

namespace {

caf::error invalid_handle() {
  return make_error(errc::invalid_config, "invalid job handle");
}

} // namespace

caf::expected<job_result> job::wait() const {
  if (!impl_)
    return invalid_handle();
  std::unique_lock<std::mutex> guard{impl_->mtx};
  impl_->cv.wait(guard, [this] { return impl_->done; });
  return impl_->result;
}

caf::expected<job_result> job::take() const {
  if (!impl_)
    return invalid_handle();
  std::unique_lock<std::mutex> guard{impl_->mtx};
  impl_->cv.wait(guard, [this] { return impl_->done; });
  if (!impl_->result)
    return impl_->result.error();
  auto out = impl_->result->without_keys();
  out.keys = std::move(impl_->result->keys);
  impl_->result->keys = std::vector<key_result>{};
  impl_->result->key_count = out.key_count;
  return out;
}

bool job::wait_for(std::chrono::milliseconds timeout) const {
  if (!impl_)
    return true;
  std::unique_lock<std::mutex> guard{impl_->mtx};
  return impl_->cv.wait_for(guard, timeout, [this] { return impl_->done; });
}

bool job::done() const {
  if (!impl_)
    return true;
  std::lock_guard<std::mutex> guard{impl_->mtx};
  return impl_->done;
}

caf::expected<job_result> job::snapshot() const {
  if (!impl_)
    return invalid_handle();
  if (done())
    return wait();
  caf::expected<job_result> result{caf::error{}};
  {
    caf::scoped_actor self{*impl_->sys};
    self->request(impl_->manager, std::chrono::seconds(10),
                  detail::snapshot_atom::value)
      .receive([&](job_result& res) { result = std::move(res); },
               [&](caf::error& err) { result = std::move(err); });
  }
  // The job may have ended while we asked: then its final result answers.
  if (!result && done())
    return wait();
  return result;
}

job_stats job::stats() const {
  if (!impl_)
    return {};
  std::lock_guard<std::mutex> guard{impl_->mtx};
  if (impl_->stats)
    return *impl_->stats;
  return {};
}

void job::cancel() const {
  if (impl_ && !done())
    caf::anon_send(impl_->manager, detail::cancel_atom::value);
}

void job::stop(std::chrono::milliseconds drain) const {
  if (impl_ && !done())
    caf::anon_send(impl_->manager, detail::stop_atom::value,
                   static_cast<std::uint64_t>(drain.count()));
}

} // namespace flow
