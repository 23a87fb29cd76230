#include "models/layers/attention.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace attnvision::models {

// One factory per module file (models/layers/attn_<name>.cpp).
Attention make_se_attn(int64_t channels);
Attention make_eca_attn(int64_t channels);
Attention make_cbam_attn(int64_t channels);

namespace {

struct AttnRow {
  const char* name;
  Attention (*make)(int64_t channels);
};

// The attention table: the one place a name becomes a module. "none" makes no module at all.
const std::vector<AttnRow>& attn_table() {
  static const std::vector<AttnRow> table = {
      {"none", nullptr},
      {"se", make_se_attn},
      {"eca", make_eca_attn},
      {"cbam", make_cbam_attn},
  };
  return table;
}

}  // namespace

std::vector<std::string> attention_names() {
  std::vector<std::string> names;
  for (const AttnRow& row : attn_table()) names.emplace_back(row.name);
  return names;
}

Attention create_attn(const std::string& name, int64_t channels) {
  if (channels < 1) throw std::invalid_argument("attention '" + name + "': channels must be positive");
  for (const AttnRow& row : attn_table())
    if (name == row.name) return row.make ? row.make(channels) : nullptr;
  std::string known;
  for (const std::string& n : attention_names()) known += (known.empty() ? "" : ", ") + n;
  throw std::invalid_argument("unknown attention '" + name + "' (known: " + known + ")");
}

int64_t make_divisible(double v, int64_t divisor, double round_limit) {
  // timm.layers.helpers.make_divisible with min_value = divisor.
  int64_t new_v = std::max<int64_t>(divisor, static_cast<int64_t>(v + divisor / 2.0) / divisor * divisor);
  if (new_v < round_limit * v) new_v += divisor;
  return new_v;
}

}  // namespace attnvision::models
