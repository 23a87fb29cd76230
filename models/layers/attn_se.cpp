// Squeeze-and-Excitation (Hu et al. 2018), as timm's SEModule: a bottleneck MLP of 1x1 convs on the
// spatial mean gates each channel.
#include "models/layers/attention.h"

#include <torch/nn/modules/conv.h>

namespace attnvision::models {
namespace {

class SeAttnImpl : public AttentionImpl {
 public:
  explicit SeAttnImpl(int64_t channels) {
    const int64_t rd = make_divisible(channels / 16.0, 8, 0.0);
    fc1_ = register_module("fc1", torch::nn::Conv2d(torch::nn::Conv2dOptions(channels, rd, 1).bias(true)));
    fc2_ = register_module("fc2", torch::nn::Conv2d(torch::nn::Conv2dOptions(rd, channels, 1).bias(true)));
  }
  torch::Tensor forward(const torch::Tensor& x) override {
    torch::Tensor s = x.mean({2, 3}, /*keepdim=*/true);
    s = fc2_->forward(torch::relu(fc1_->forward(s)));
    return x * torch::sigmoid(s);
  }

 private:
  torch::nn::Conv2d fc1_{nullptr}, fc2_{nullptr};
};

}  // namespace

Attention make_se_attn(int64_t channels) { return std::make_shared<SeAttnImpl>(channels); }

}  // namespace attnvision::models
