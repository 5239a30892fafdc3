#include "flow/partial.hpp"

namespace flow {

void partial::reject(const std::string& reason, std::uint64_t n) {
  rejected_ += n;
  for (auto& [r, count] : reasons_) {
    if (r == reason) {
      count += n;
      return;
    }
  }
  reasons_.emplace_back(reason, n);
}

void partial::to_general() const {
  if (general_)
    return;
  if (!ints_.empty()) {
    // Reserved first, so that the copies below cannot throw halfway.
    entries_.reserve(entries_.size() + ints_.size());
    for (auto& e : ints_)
      entries_.emplace_back(flow::key{e.key}, e.to_aggregate());
    ints_.clear();
    // The index, if any, misses the moved keys: slot() rebuilds it.
    index_.clear();
    last_ = npos;
  }
  general_ = true;
}

void partial::merge(partial&& other) {
  for (auto& e : other.ints_)
    if (!general_ ? !ints_[e.key].merge(e.sum, e.count, e.min, e.max)
                  : !slot(flow::key{e.key}).merge(e.to_aggregate()))
      overflow_ = true;
  for (auto& [k, agg] : other.entries_)
    add(k, agg);
  for (auto& [reason, n] : other.reasons_)
    reject(reason, n);
  overflow_ = overflow_ || other.overflow_;
  if (other.output_) {
    if (!output_) {
      output_ = std::move(other.output_);
      output_type_ = other.output_type_;
      row_count_ = other.row_count_;
      append_ = other.append_;
    } else if (*output_type_ != *other.output_type_) {
      throw std::logic_error("flow::partial::merge: rows of two types");
    } else {
      append_(output_.get(), other.output_.get());
    }
  }
  other = partial{};
}

aggregate& partial::slot(const flow::key& k) {
  to_general();
  // Reducers mostly add runs of the same key: check the last one first.
  if (last_ != npos && entries_[last_].first == k)
    return entries_[last_].second;
  if (entries_.size() <= linear_limit) {
    for (std::size_t i = 0; i < entries_.size(); ++i) {
      if (entries_[i].first == k) {
        last_ = i;
        return entries_[i].second;
      }
    }
  } else {
    if (index_.empty())
      for (std::size_t i = 0; i < entries_.size(); ++i)
        index_.emplace(entries_[i].first, i);
    if (auto i = index_.find(k); i != index_.end()) {
      last_ = i->second;
      return entries_[last_].second;
    }
    index_.emplace(k, entries_.size());
  }
  last_ = entries_.size();
  entries_.emplace_back(k, aggregate{});
  return entries_.back().second;
}

} // namespace flow
