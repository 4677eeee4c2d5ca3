// A step's rows grouped by slot once (LoraRowLayout), so the apply_adapters calls of the step (every layer,
// every module group) do not regroup them.
#include <algorithm>
#include <cstdint>

#include "loraplex/lora.h"

namespace loraplex {

void LoraRowLayout::set(const int32_t* row_slot, int64_t num_rows) {
  num_rows_ = num_rows;
  rows_.clear();
  groups_.clear();
  by_slot_.clear();
  for (int64_t t = 0; t < num_rows; ++t)
    if (row_slot[t] >= 0) by_slot_.emplace_back(row_slot[t], static_cast<int32_t>(t));
  // Rows of one slot become one group, in row order, so they share reads of A and Bt.
  std::stable_sort(by_slot_.begin(), by_slot_.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  for (size_t i = 0; i < by_slot_.size();) {
    const int32_t slot = by_slot_[i].first;
    const int64_t first = static_cast<int64_t>(rows_.size());
    while (i < by_slot_.size() && by_slot_[i].first == slot) rows_.push_back(by_slot_[i++].second);
    groups_.push_back({slot, first, static_cast<int64_t>(rows_.size()) - first});
  }
}

}  // namespace loraplex
