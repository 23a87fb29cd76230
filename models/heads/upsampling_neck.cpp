#include "models/heads/upsampling_neck.h"

#include "models/layers/batchnorm_fold.h"

#include <torch/nn/functional/upsampling.h>
#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/conv.h>

#include <stdexcept>

namespace attnvision::models {
namespace nn = torch::nn;

namespace {

torch::Tensor upsample_2x(const torch::Tensor& y) {
  return nn::functional::interpolate(y, nn::functional::InterpolateFuncOptions()
                                            .scale_factor(std::vector<double>{2.0, 2.0})
                                            .mode(torch::kBilinear)
                                            .align_corners(false));
}

const torch::Tensor& stage_output(const Forward& f, const std::string& name) {
  for (const auto& [stage, t] : f.stages)
    if (stage == name) return t;
  throw std::logic_error("upsampling neck: the backbone did not hand back stage '" + name + "'");
}

// A conv + BN + ReLU unit packed with the BatchNorm folded in (already folded: the convolution as it is).
PackedConv2d pack_conv_bn(const nn::SequentialImpl& conv_bn_relu, bool folded) {
  const auto& conv = *conv_bn_relu[0]->as<nn::Conv2dImpl>();
  const ConvWeights w = folded ? ConvWeights{conv.weight, conv.bias}
                               : fold_batchnorm(conv, *conv_bn_relu[1]->as<nn::BatchNorm2dImpl>());
  return PackedConv2d(w.weight, w.bias, geometry_of(conv), torch::kFloat32);
}

// A conv + BN + ReLU unit on x; once folded, its convolution (which carries the BatchNorm) and the ReLU.
torch::Tensor run_unit(nn::SequentialImpl& unit, const torch::Tensor& x, bool folded) {
  if (!folded) return unit.forward(x);
  return torch::relu(unit[0]->as<nn::Conv2dImpl>()->forward(x));
}

// conv (no bias) + BatchNorm + ReLU, padded to keep the size.
nn::Sequential conv_bn_relu(int64_t in, int64_t out, int64_t kernel) {
  return nn::Sequential(nn::Conv2d(nn::Conv2dOptions(in, out, kernel).padding(kernel / 2).bias(false)),
                        nn::BatchNorm2d(out), nn::ReLU(nn::ReLUOptions(true)));
}

}  // namespace

UpsamplingNeck::UpsamplingNeck(nn::Module& owner, const std::vector<FeatureInfo>& stages, int64_t width,
                               int64_t output_stride, const std::string& who) {
  if (stages.empty()) throw std::invalid_argument(who + ": the backbone reports no stages");
  int64_t stride = stages.back().stride;
  if (output_stride > stride)
    throw std::invalid_argument(who + ": output_stride " + std::to_string(output_stride) +
                                " is coarser than the backbone's stride " + std::to_string(stride));
  reduce_ = owner.register_module("neck_reduce", conv_bn_relu(stages.back().channels, width, 1));
  ups_ = owner.register_module("neck_up", nn::ModuleList());
  laterals_ = owner.register_module("neck_lateral", nn::ModuleDict());
  for (; stride > output_stride; stride /= 2) {
    // The deepest stage at the finer stride, if the backbone has one there.
    std::string lateral;
    int64_t channels = 0;
    for (const FeatureInfo& fi : stages)
      if (fi.stride == stride / 2) {
        lateral = fi.module;
        channels = fi.channels;
      }
    if (!lateral.empty()) {
      const std::vector<std::pair<std::string, std::shared_ptr<nn::Module>>> entry{
          {lateral, conv_bn_relu(channels, width, 1).ptr()}};
      laterals_->update(entry);
    }
    step_laterals_.push_back(lateral);
    ups_->push_back(conv_bn_relu(width, width, 3));
  }
}

torch::Tensor UpsamplingNeck::forward(const Forward& f) {
  torch::Tensor y = run_unit(*reduce_, f.feature_map, folded_);
  for (size_t i = 0; i < step_laterals_.size(); ++i) {
    y = upsample_2x(y);
    if (!step_laterals_[i].empty())
      y = y + run_unit(*laterals_[step_laterals_[i]]->as<nn::SequentialImpl>(), stage_output(f, step_laterals_[i]),
                       folded_);
    y = run_unit(*ups_[i]->as<nn::SequentialImpl>(), y, folded_);
  }
  return y;
}

void UpsamplingNeck::fold_batchnorm() {
  if (folded_) return;
  auto fold = [](nn::SequentialImpl& unit) {
    fold_batchnorm_into(*unit[0]->as<nn::Conv2dImpl>(), *unit[1]->as<nn::BatchNorm2dImpl>());
  };
  fold(*reduce_);
  for (size_t i = 0; i < ups_->size(); ++i) fold(*ups_[i]->as<nn::SequentialImpl>());
  for (const auto& [name, lateral] : laterals_->items()) fold(*std::dynamic_pointer_cast<nn::SequentialImpl>(lateral));
  folded_ = true;
}

UpsamplingNeck::Packed UpsamplingNeck::pack() {
  torch::NoGradGuard no_grad;
  Packed p;
  p.reduce.emplace(pack_conv_bn(*reduce_, folded_));
  for (size_t i = 0; i < ups_->size(); ++i) p.ups.push_back(pack_conv_bn(*ups_[i]->as<nn::Sequential>(), folded_));
  for (const auto& [name, lateral] : laterals_->items())
    p.laterals.emplace(name, pack_conv_bn(*std::dynamic_pointer_cast<nn::SequentialImpl>(lateral), folded_));
  return p;
}

torch::Tensor UpsamplingNeck::forward(const Packed& p, const Forward& f) {
  torch::Tensor y = (*p.reduce)(f.feature_map, /*relu=*/true);
  for (size_t i = 0; i < step_laterals_.size(); ++i) {
    y = upsample_2x(y);
    if (!step_laterals_[i].empty())
      y.add_(p.laterals.at(step_laterals_[i])(stage_output(f, step_laterals_[i]), /*relu=*/true));
    y = p.ups[i](y, /*relu=*/true);
  }
  return y;
}

double UpsamplingNeck::gmacs(int64_t height, int64_t width_px, int64_t width, int64_t output_stride,
                             int64_t feature_stride, int64_t num_features) {
  const double w = static_cast<double>(width);
  double macs = static_cast<double>(height / feature_stride) * static_cast<double>(width_px / feature_stride) *
                static_cast<double>(num_features) * w;  // the reduction
  for (int64_t stride = feature_stride / 2; stride >= output_stride; stride /= 2)
    macs += static_cast<double>(height / stride) * static_cast<double>(width_px / stride) * w * w * 9;
  return macs / 1e9;
}

}  // namespace attnvision::models
