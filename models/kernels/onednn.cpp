#include "models/kernels/onednn.h"

#include <torch/torch.h>

#include <algorithm>
#include <stdexcept>
#include <string>

namespace attnvision::models::onednn {

const dnnl::engine& cpu_engine() {
  static const dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

dnnl::memory::data_type data_type(torch::ScalarType type) {
  if (type == torch::kFloat32) return dnnl::memory::data_type::f32;
  if (type == torch::kBFloat16) return dnnl::memory::data_type::bf16;
  throw std::invalid_argument(std::string("oneDNN kernels: run in float32 or bfloat16, not ") + c10::toString(type));
}

Scratchpad::Scratchpad(size_t bytes) {
  const auto size = static_cast<int64_t>(std::max<size_t>(bytes, 1));
  storage = torch::empty({size}, torch::kUInt8);
  memory = dnnl::memory({{size}, dnnl::memory::data_type::u8, dnnl::memory::format_tag::a}, cpu_engine(),
                        storage.data_ptr());
}

}  // namespace attnvision::models::onednn
