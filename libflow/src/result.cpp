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

} // namespace flow
