#include "flow/result.hpp"

#include <algorithm>

namespace flow {

const key_result* job_result::find(const flow::key& k) const noexcept {
  // keys are sorted by key: binary search.
  auto i = std::lower_bound(keys.begin(), keys.end(), k,
                            [](const key_result& x, const flow::key& y) {
                              return x.key < y;
                            });
  return i != keys.end() && i->key == k ? &*i : nullptr;
}

job_result job_result::without_keys() const {
  // Every member but `keys`: a member added to job_result must be added
  // here. The size check catches most additions where we build (three
  // vectors, sixteen 64-bit counts, two flags padded to 8 bytes; a third
  // flag would fit the padding).
#if defined(__x86_64__) && defined(__GLIBCXX__)
  static_assert(sizeof(job_result) == 3 * 24 + 16 * 8 + 8,
                "job_result changed: copy the new member in without_keys");
#endif
  job_result out;
  out.emitted = emitted;
  out.aggregated = aggregated;
  out.rejected = rejected;
  out.dead_lettered = dead_lettered;
  out.dead_letters = dead_letters;
  out.retried = retried;
  out.batches = batches;
  out.written = written;
  out.sources = sources;
  out.rejections = rejections;
  out.peak_in_flight = peak_in_flight;
  out.remote_batches = remote_batches;
  out.reducers_replaced = reducers_replaced;
  out.final = final;
  out.partial = partial;
  out.abandoned = abandoned;
  out.speculated = speculated;
  out.speculation_won = speculation_won;
  out.partials = partials;
  out.key_count = std::max<std::uint64_t>(key_count, keys.size());
  return out;
}

} // namespace flow
