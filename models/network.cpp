#include "models/network.h"

#include <c10/core/GradMode.h>
#include <torch/types.h>
#include <torch/utils.h>

#include <stdexcept>

namespace attnvision::models {

NetworkImpl::NetworkImpl(Backbone backbone, Head head) : backbone_(std::move(backbone)), head_(std::move(head)) {
  adopt(*backbone_);
  adopt(*head_);
}

// Registers `part`'s direct children, parameters and buffers under their own names at the root.
void NetworkImpl::adopt(torch::nn::Module& part) {
  for (const auto& child : part.named_children()) {
    if (named_children().contains(child.key()))
      throw std::logic_error("network: two parts register a module named '" + child.key() + "'");
    register_module(child.key(), child.value());
  }
  for (const auto& p : part.named_parameters(/*recurse=*/false)) register_parameter(p.key(), p.value());
  for (const auto& b : part.named_buffers(/*recurse=*/false)) register_buffer(b.key(), b.value());
}

Forward NetworkImpl::trunk(const torch::Tensor& x, const ForwardRequest& request) {
  ForwardRequest asked = request;
  asked.stages = asked.stages || head_->needs().stages;
  const torch::Tensor input = channels_last_ ? x.contiguous(at::MemoryFormat::ChannelsLast) : x;
  if (!request.gradient_at) {
    Forward f = backbone_->forward_features(input, asked);
    f.input = x;
    return f;
  }
  if (!c10::GradMode::is_enabled())
    throw std::logic_error("network: a forward with gradient_at needs grad mode on (the head is recorded)");
  // Before the leaf nothing is recorded: no graph the gradient never walks, no saved tensors kept alive. The
  // backbone turns autograd back on at the named stage (ForwardRecorder::stage), the guard restores the
  // caller's mode when the backbone is done, and the last feature map's leaf is made here.
  Forward f;
  {
    const c10::AutoGradMode unrecorded(false);
    f = backbone_->forward_features(input, asked);
  }
  if (request.gradient_at->empty()) f.feature_map = f.feature_map.detach().requires_grad_(true);
  f.input = x;
  return f;
}

Forward NetworkImpl::features(const torch::Tensor& x, const ForwardRequest& request) {
  if (precision_ == Precision::kFloat32) return trunk(x, request);
  const AutocastScope autocast(precision_);
  return trunk(x, request).as_float32();
}

Forward NetworkImpl::forward(const torch::Tensor& x, const ForwardRequest& request) {
  if (precision_ == Precision::kFloat32) {
    Forward f = trunk(x, request);
    head_->forward(*backbone_, f, request);
    return f;
  }
  const AutocastScope autocast(precision_);
  // The feature map goes to float32 before the head reads it, so the float32 map a caller gets is the one the
  // head's outputs depend on: saliency differentiates through it (the stages stay as computed, see as_float32).
  Forward f = trunk(x, request).as_float32();
  head_->forward(*backbone_, f, request);
  return f.as_float32();
}

void NetworkImpl::prepare_for_inference(Precision precision) {
  eval();
  precision_ = precision;
  if (!folded_) {
    backbone_->fold_batchnorm();
    backbone_->pack_for_inference();
    head_->prepare_for_inference();
  }
  folded_ = true;
  // Nothing differentiates an inference network's weights (saliency takes gradients of activations), so
  // autograd need not record what a weight gradient would need.
  for (auto& p : parameters()) p.requires_grad_(false);
  if (!backbone_->prefers_channels_last()) return;
  torch::NoGradGuard no_grad;
  for (auto& p : parameters())
    if (p.dim() == 4) p.set_data(p.contiguous(at::MemoryFormat::ChannelsLast));
  channels_last_ = true;
}

void NetworkImpl::train(bool on) {
  if (on && folded_)
    throw std::logic_error("network: prepared for inference (BatchNorm folded into the convolutions); build a "
                           "fresh one to train");
  torch::nn::Module::train(on);
  backbone_->train(on);
  head_->train(on);
}

}  // namespace attnvision::models
