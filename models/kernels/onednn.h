// What the oneDNN kernels of this folder share (included by their .cpp files only: the public headers stay
// free of oneDNN's).
#pragma once

#include <oneapi/dnnl/dnnl.hpp>
#include <torch/types.h>

#include <cstddef>

namespace attnvision::models::onednn {

// The CPU engine every primitive here is created on and runs on.
const dnnl::engine& cpu_engine();

// oneDNN's data type for the precisions the kernels here run in, float32 and bfloat16; an invalid_argument for
// any other.
dnnl::memory::data_type data_type(torch::ScalarType type);

// Scratch memory for one execution of a primitive created with scratchpad_mode::user, from torch's allocator:
// one per call (or per thread), so that several threads may run the same primitive at once.
struct Scratchpad {
  explicit Scratchpad(size_t bytes);
  torch::Tensor storage;
  dnnl::memory memory;
};

}  // namespace attnvision::models::onednn
