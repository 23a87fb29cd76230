// Channel / spatial attention modules and the one table that creates them by name.
// Every module takes the channel count first and returns a tensor of its input's shape.
// A new attention module is one file (models/layers/attn_<name>.cpp) plus one row in attention.cpp.
#pragma once

#include <torch/nn/module.h>
#include <torch/types.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace attnvision::models {

using NamedTensors = std::vector<std::pair<std::string, torch::Tensor>>;

class AttentionImpl : public torch::nn::Module {
 public:
  virtual torch::Tensor forward(const torch::Tensor& x) = 0;
  // The same as forward, also appending the module's inner results to `trace` by name: CBAM adds
  // "channel" (the channel-gated input) and "spatial_gate" (N x 1 x H x W, what CBAM saliency shows).
  virtual torch::Tensor forward_traced(const torch::Tensor& x, NamedTensors& trace) { return forward(x); }
};
using Attention = std::shared_ptr<AttentionImpl>;

// nullptr for "none" (callers skip the module, as timm registers no `se` submodule then).
// Throws std::invalid_argument naming the known types for an unknown name.
Attention create_attn(const std::string& name, int64_t channels);
std::vector<std::string> attention_names();

// timm's make_divisible(v, divisor, min_value=None, round_limit) used for reduction widths.
int64_t make_divisible(double v, int64_t divisor, double round_limit = 0.9);

}  // namespace attnvision::models
