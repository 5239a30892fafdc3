#include "flow/key.hpp"

namespace flow {

int key::compare(const key& other) const noexcept {
  if (is_string_ != other.is_string_)
    return is_string_ ? 1 : -1;
  if (is_string_)
    return str_.compare(other.str_);
  return int_ < other.int_ ? -1 : (int_ > other.int_ ? 1 : 0);
}

std::size_t key::hash() const noexcept {
  if (is_string_)
    return std::hash<std::string>{}(str_);
  // Mix so that small consecutive integers spread over the buckets.
  auto z = static_cast<std::uint64_t>(int_) * 0x9e3779b97f4a7c15ULL;
  return static_cast<std::size_t>(z ^ (z >> 32));
}

std::string to_string(const key& x) {
  return x.is_string() ? x.as_string() : std::to_string(x.as_int());
}

} // namespace flow
