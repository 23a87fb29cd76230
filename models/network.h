// A network is a backbone plus the head its task needs (models/heads/). Parameter names stay timm's: the
// backbone's and the head's submodules are registered at the network's root (`conv1`, `layer1`, ..., `fc`),
// so a timm checkpoint loads into a classification network as it is.
#pragma once

#include "models/backbones/backbone.h"
#include "models/heads/head.h"
#include "models/model_cfg.h"
#include "models/runtime.h"

#include <torch/nn/module.h>

#include <memory>

namespace attnvision::models {

class NetworkImpl : public torch::nn::Module {
 public:
  NetworkImpl(Backbone backbone, Head head);

  // The backbone's trunk, then the head; `request` asks for activations and attention maps on the way. In the
  // precision the network was prepared for; what comes out is float32 either way.
  Forward forward(const torch::Tensor& x, const ForwardRequest& request = {});
  // The backbone's trunk alone, float32 out (what a caller that drives the head itself starts from: beam search,
  // which runs its steps in float32 whatever the precision).
  Forward features(const torch::Tensor& x, const ForwardRequest& request = {});
  torch::Tensor logits(const torch::Tensor& x) { return forward(x).logits; }

  // Readies the network for inference, once, after its weights are loaded: eval mode, BatchNorms folded into
  // the convolutions before them (BackboneImpl::fold_batchnorm) and, for a backbone that prefers it,
  // convolution weights and every input in channels-last memory format. Outputs are unchanged up to float
  // rounding (the parity tests check the prepared path against timm too). A prepared network is for
  // inference only: train(true) throws, and its parameters are no longer a checkpoint's.
  // `precision` bf16 runs every forward pass under bfloat16 autocast (convolutions and matrix products in
  // oneDNN's bf16; norms, softmax and the weights stay float32: casting the weights anew each pass measured no
  // slower than keeping bf16 copies). The caller decides whether the CPU is worth it (inference_precision).
  void prepare_for_inference(Precision precision = Precision::kFloat32);
  Precision precision() const { return precision_; }

  BackboneImpl& backbone() { return *backbone_; }
  HeadImpl& head() { return *head_; }

  // Also flips the backbone and head objects themselves (their children are ours, registered at the root).
  void train(bool on = true) override;

 private:
  void adopt(torch::nn::Module& part);
  Forward trunk(const torch::Tensor& x, const ForwardRequest& request);  // features() in the caller's precision

  Backbone backbone_;
  Head head_;
  bool channels_last_ = false;
  Precision precision_ = Precision::kFloat32;
  bool folded_ = false;  // prepare_for_inference folded the backbone's BatchNorms: inference only from then on
};
using Network = std::shared_ptr<NetworkImpl>;

}  // namespace attnvision::models
