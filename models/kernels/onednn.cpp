#include "models/kernels/onednn.h"

#include <torch/torch.h>

#include <algorithm>

namespace attnvision::models::onednn {

const dnnl::engine& cpu_engine() {
  static const dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

Scratchpad::Scratchpad(size_t bytes) {
  const auto size = static_cast<int64_t>(std::max<size_t>(bytes, 1));
  storage = torch::empty({size}, torch::kUInt8);
  memory = dnnl::memory({{size}, dnnl::memory::data_type::u8, dnnl::memory::format_tag::a}, cpu_engine(),
                        storage.data_ptr());
}

}  // namespace attnvision::models::onednn
