// A network is a backbone plus the head its task needs (models/heads/). Parameter names stay timm's: the
// backbone's and the head's submodules are registered at the network's root (`conv1`, `layer1`, ..., `fc`),
// so a timm checkpoint loads into a classification network as it is.
#pragma once

#include "models/backbones/backbone.h"
#include "models/heads/head.h"
#include "models/model_cfg.h"

#include <torch/nn/module.h>

#include <memory>

namespace attnvision::models {

class NetworkImpl : public torch::nn::Module {
 public:
  NetworkImpl(Backbone backbone, Head head);

  // The backbone's trunk, then the head; `request` asks for activations and attention maps on the way.
  Forward forward(const torch::Tensor& x, const ForwardRequest& request = {});
  // The backbone's trunk alone (what a caller that drives the head itself starts from: beam search).
  Forward features(const torch::Tensor& x, const ForwardRequest& request = {});
  torch::Tensor logits(const torch::Tensor& x) { return forward(x).logits; }

  // Readies the network for inference, once, after its weights are loaded: eval mode, BatchNorms folded into
  // the convolutions before them (BackboneImpl::fold_batchnorm) and, for a backbone that prefers it,
  // convolution weights and every input in channels-last memory format. Outputs are unchanged up to float
  // rounding (the parity tests check the prepared path against timm too). A prepared network is for
  // inference only: train(true) throws, and its parameters are no longer a checkpoint's.
  void prepare_for_inference();

  BackboneImpl& backbone() { return *backbone_; }
  HeadImpl& head() { return *head_; }

  // Also flips the backbone and head objects themselves (their children are ours, registered at the root).
  void train(bool on = true) override;

 private:
  void adopt(torch::nn::Module& part);

  Backbone backbone_;
  Head head_;
  bool channels_last_ = false;
  bool folded_ = false;  // prepare_for_inference folded the backbone's BatchNorms: inference only from then on
};
using Network = std::shared_ptr<NetworkImpl>;

}  // namespace attnvision::models
