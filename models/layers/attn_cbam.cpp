// Convolutional Block Attention Module (Woo et al. 2018), as timm's CbamModule: channel attention from a
// shared MLP over the spatial mean and max, then spatial attention from a 7x7 conv over the channel mean
// and max. The spatial gate is what CBAM saliency shows, so forward_traced hands it back.
#include "models/layers/attention.h"

#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/conv.h>

namespace attnvision::models {
namespace {

class ChannelGateImpl : public torch::nn::Module {
 public:
  explicit ChannelGateImpl(int64_t channels) {
    const int64_t rd = make_divisible(channels / 16.0, 1, 0.0);
    fc1_ = register_module("fc1", torch::nn::Conv2d(torch::nn::Conv2dOptions(channels, rd, 1).bias(false)));
    fc2_ = register_module("fc2", torch::nn::Conv2d(torch::nn::Conv2dOptions(rd, channels, 1).bias(false)));
  }
  torch::Tensor forward(const torch::Tensor& x) {
    auto mlp = [&](const torch::Tensor& s) { return fc2_->forward(torch::relu(fc1_->forward(s))); };
    return x * torch::sigmoid(mlp(x.mean({2, 3}, true)) + mlp(x.amax({2, 3}, true)));
  }

 private:
  torch::nn::Conv2d fc1_{nullptr}, fc2_{nullptr};
};
TORCH_MODULE(ChannelGate);

// timm's ConvNormAct without the activation: registered as `conv` and `bn`.
class ConvBnImpl : public torch::nn::Module {
 public:
  ConvBnImpl(int64_t in, int64_t out, int64_t kernel) {
    conv_ = register_module("conv", torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, kernel).padding(kernel / 2).bias(false)));
    bn_ = register_module("bn", torch::nn::BatchNorm2d(out));
  }
  torch::Tensor forward(const torch::Tensor& x) { return bn_->forward(conv_->forward(x)); }

 private:
  torch::nn::Conv2d conv_{nullptr};
  torch::nn::BatchNorm2d bn_{nullptr};
};
TORCH_MODULE(ConvBn);

class SpatialGateImpl : public torch::nn::Module {
 public:
  SpatialGateImpl() { conv_ = register_module("conv", ConvBn(2, 1, 7)); }
  // Returns the gate (N x 1 x H x W); the caller multiplies.
  torch::Tensor gate(const torch::Tensor& x) {
    // Mean first, then max: the order the conv weights were trained with.
    torch::Tensor pooled = torch::cat({x.mean(1, true), x.amax(1, true)}, 1);
    return torch::sigmoid(conv_->forward(pooled));
  }

 private:
  ConvBn conv_{nullptr};
};
TORCH_MODULE(SpatialGate);

class CbamAttnImpl : public AttentionImpl {
 public:
  explicit CbamAttnImpl(int64_t channels) {
    channel_ = register_module("channel", ChannelGate(channels));
    spatial_ = register_module("spatial", SpatialGate());
  }
  torch::Tensor forward(const torch::Tensor& x) override {
    torch::Tensor y = channel_->forward(x);
    return y * spatial_->gate(y);
  }
  torch::Tensor forward_traced(const torch::Tensor& x, NamedTensors& trace) override {
    torch::Tensor y = channel_->forward(x);
    torch::Tensor gate = spatial_->gate(y);
    trace.emplace_back("channel", y);
    trace.emplace_back("spatial_gate", gate);
    return y * gate;
  }

 private:
  ChannelGate channel_{nullptr};
  SpatialGate spatial_{nullptr};
};

}  // namespace

Attention make_cbam_attn(int64_t channels) { return std::make_shared<CbamAttnImpl>(channels); }

}  // namespace attnvision::models
