// The upsampling neck of the dense heads (CenterNet's detector, the fine lesion map): the backbone's last
// feature map, reduced to `width` channels by a 1x1 convolution, brought up to `output_stride` by 2x bilinear
// steps, each adding a 1x1 projection of the backbone stage of that stride when there is one (a ResNet's
// layer3, layer2, layer1) and followed by a 3x3 convolution. A ViT has one stride, so its neck is the simple
// feature pyramid of its token grid (ViTDet) without laterals. Every convolution is conv + BatchNorm + ReLU.
#pragma once

#include "models/backbones/backbone.h"
#include "models/kernels/packed_conv.h"

#include <torch/nn/module.h>
#include <torch/nn/modules/container/moduledict.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/container/sequential.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace attnvision::models {

class UpsamplingNeck {
 public:
  UpsamplingNeck() = default;
  // Registers its modules on the head `owner` as neck_reduce, neck_up.<step> and neck_lateral.<stage>, so that
  // their parameters are named at the head's root. `who` names the head in errors (an output_stride coarser
  // than the backbone's, a backbone with no stages): std::invalid_argument.
  UpsamplingNeck(torch::nn::Module& owner, const std::vector<FeatureInfo>& stages, int64_t width,
                 int64_t output_stride, const std::string& who);

  // The neck's output, width x (H / output_stride) x (W / output_stride), from the backbone's last feature map
  // and its finer stages: a head that owns a neck asks for them (ForwardRequest::stages).
  torch::Tensor forward(const Forward& f);

  // For inference through the modules (forwards with autograd: saliency differentiates through the neck):
  // each BatchNorm folded into its convolution (models/layers/batchnorm_fold.h) and skipped from then on.
  void fold_batchnorm();

  // The neck folded for forwards without gradient in float32: each BatchNorm folded into its convolution and
  // the ReLUs fused (models/kernels/packed_conv.h). Built from the modules' weights when called.
  struct Packed {
    std::optional<PackedConv2d> reduce;
    std::vector<PackedConv2d> ups;
    std::map<std::string, PackedConv2d> laterals;
  };
  Packed pack();
  torch::Tensor forward(const Packed& packed, const Forward& f);

  // Multiply-accumulates for one input of `height` x `width_px` pixels, in units of 1e9: the upsampling
  // convolutions and the reduction (the laterals are left out: 1x1 convolutions on a quarter of the cells of
  // the step they join, or fewer).
  static double gmacs(int64_t height, int64_t width_px, int64_t width, int64_t output_stride, int64_t feature_stride,
                      int64_t num_features);

 private:
  torch::nn::Sequential reduce_{nullptr};
  torch::nn::ModuleList ups_{nullptr};
  torch::nn::ModuleDict laterals_{nullptr};
  std::vector<std::string> step_laterals_;  // per upsampling step, the stage added there ("" for none)
  bool folded_ = false;                     // fold_batchnorm: every conv + BN + ReLU runs as conv + ReLU
};

}  // namespace attnvision::models
