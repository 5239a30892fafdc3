#include "etl/elements.hpp"

#include <utility>
#include <vector>

#include "flow/aggregate.hpp"
#include "flow/partial.hpp"

namespace flow::apps {

std::int64_t list_key(std::int32_t list_size, std::int32_t list_id) {
  return static_cast<std::int64_t>(list_size) * (std::int64_t{1} << 32)
         + static_cast<std::int64_t>(static_cast<std::uint32_t>(list_id));
}

std::int64_t size_of_key(std::int64_t key) {
  return key >> 32; // arithmetic shift: floor division by 2^32
}

element_row decode_element_row(const pg::row_view& r) {
  element_row x;
  auto id = r.int32(0);
  auto size = r.int32(1);
  x.key = list_key(size, id);
  if (auto v = r.opt_int64(2)) {
    x.value = *v;
    x.has_value = true;
  }
  return x;
}

reducer<element_row> sum_per_list() {
  return [](const batch_ref<element_row>& b, partial& out) {
    std::vector<std::pair<std::int64_t, aggregate>> acc;
    std::size_t last = 0;
    std::uint64_t nulls = 0;
    for (auto& x : b.items) {
      if (!x.has_value) {
        ++nulls;
        continue;
      }
      if (last >= acc.size() || acc[last].first != x.key) {
        last = 0;
        while (last < acc.size() && acc[last].first != x.key)
          ++last;
        if (last == acc.size())
          acc.emplace_back(x.key, aggregate{});
      }
      acc[last].second.add(x.value);
    }
    for (auto& [k, a] : acc)
      out.add(flow::key{k}, a);
    if (nulls > 0)
      out.reject("NULL value", nulls);
  };
}

} // namespace flow::apps
