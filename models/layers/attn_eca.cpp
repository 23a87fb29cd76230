// Efficient Channel Attention (Wang et al. 2020), as timm's EcaModule: a 1-D conv across the channel
// means, kernel size adapted to the channel count.
#include "models/layers/attention.h"

#include <torch/nn/modules/conv.h>

#include <cmath>

namespace attnvision::models {
namespace {

int64_t eca_kernel_size(int64_t channels) {
  // timm: t = int(abs(math.log(channels, 2) + 1) / 2). math.log(x, 2) is log(x) / log(2) in doubles;
  // computing it the same way (not log2) keeps the kernel size identical at powers of two.
  const auto t = static_cast<int64_t>(std::abs(std::log(static_cast<double>(channels)) / std::log(2.0) + 1.0) / 2.0);
  return std::max<int64_t>(t % 2 ? t : t + 1, 3);
}

class EcaAttnImpl : public AttentionImpl {
 public:
  explicit EcaAttnImpl(int64_t channels) {
    const int64_t k = eca_kernel_size(channels);
    conv_ = register_module("conv", torch::nn::Conv1d(torch::nn::Conv1dOptions(1, 1, k).padding((k - 1) / 2).bias(false)));
  }
  torch::Tensor forward(const torch::Tensor& x) override {
    torch::Tensor y = x.mean({2, 3}).view({x.size(0), 1, -1});
    y = torch::sigmoid(conv_->forward(y)).view({x.size(0), -1, 1, 1});
    return x * y;
  }

 private:
  torch::nn::Conv1d conv_{nullptr};
};

}  // namespace

Attention make_eca_attn(int64_t channels) { return std::make_shared<EcaAttnImpl>(channels); }

}  // namespace attnvision::models
