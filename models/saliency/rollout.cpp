#include "models/saliency/rollout.h"

#include <c10/core/InferenceMode.h>
#include <torch/autograd.h>
#include <torch/nn/functional/upsampling.h>

#include <limits>
#include <stdexcept>

namespace attnvision::models {
namespace {

torch::Tensor fuse_heads(const torch::Tensor& attn, HeadFusion fusion) {
  switch (fusion) {
    case HeadFusion::kMax:
      return attn.amax(1);
    case HeadFusion::kMin:
      return attn.amin(1);
    case HeadFusion::kMean:
      break;
  }
  return attn.mean(1);
}

void check_layers(const NamedTensors& attention, int64_t grid_h, int64_t grid_w) {
  if (attention.empty())
    throw std::invalid_argument("attention rollout: no attention probabilities (is the model a ViT?)");
  const int64_t tokens = 1 + grid_h * grid_w;
  const int64_t n = attention.front().second.dim() == 4 ? attention.front().second.size(0) : -1;
  for (const auto& [name, a] : attention) {
    if (a.dim() != 4 || a.size(0) != n || a.size(2) != tokens || a.size(3) != tokens)
      throw std::invalid_argument("attention rollout: '" + name + "' is not N x heads x T x T with T = 1 + " +
                                  std::to_string(grid_h) + "*" + std::to_string(grid_w) +
                                  " (is the model a ViT?)");
  }
}

// Per-layer N x T x T matrices (heads already fused) -> the class token's rollout over the patch grid.
// The product runs in float64: in float32 its rounding, magnified by the min-max stretch of a map whose
// values differ by little, reaches 1e-5 on a 2-layer toy model already.
torch::Tensor roll_out(const std::vector<torch::Tensor>& layers, int64_t grid_h, int64_t grid_w) {
  const int64_t n = layers.front().size(0), t = layers.front().size(1);
  const auto dtype = layers.front().scalar_type();
  const torch::Tensor eye = torch::eye(t, layers.front().options().dtype(torch::kDouble));
  torch::Tensor joint = eye.expand({n, t, t});
  for (const torch::Tensor& layer : layers) {
    // The residual connection carries each token to itself: A + I, rows renormalised to a distribution.
    torch::Tensor a = layer.to(torch::kDouble) + eye;
    a = a / a.sum(-1, /*keepdim=*/true);
    joint = torch::bmm(a, joint);
  }
  const torch::Tensor maps = joint.select(1, 0).slice(1, 1).reshape({n, grid_h, grid_w});
  const torch::Tensor flat = maps.flatten(1);
  const torch::Tensor lo = flat.amin(1).view({n, 1, 1});
  const torch::Tensor range = flat.amax(1).view({n, 1, 1}) - lo;
  // A constant map (range 0) becomes all zeros rather than NaN.
  return ((maps - lo) / range.clamp_min(std::numeric_limits<float>::min())).to(dtype);
}

std::pair<int64_t, int64_t> grid_of(const Forward& f) {
  if (!f.feature_map.defined() || f.feature_map.dim() != 4)
    throw std::invalid_argument("attention rollout: the model produced no feature grid");
  return {f.feature_map.size(2), f.feature_map.size(3)};
}

}  // namespace

HeadFusion parse_head_fusion(const std::string& name) {
  if (name == "mean") return HeadFusion::kMean;
  if (name == "max") return HeadFusion::kMax;
  if (name == "min") return HeadFusion::kMin;
  throw std::invalid_argument("head fusion must be mean, max or min, not '" + name + "'");
}

torch::Tensor attention_rollout(const NamedTensors& attention, HeadFusion fusion, int64_t grid_h,
                                int64_t grid_w) {
  check_layers(attention, grid_h, grid_w);
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> layers;
  for (const auto& named : attention) layers.push_back(fuse_heads(named.second, fusion));
  return roll_out(layers, grid_h, grid_w);
}

torch::Tensor attention_rollout(BackboneImpl& model, const torch::Tensor& x, HeadFusion fusion) {
  torch::NoGradGuard no_grad;
  ForwardRequest request;
  request.attention = true;
  const Forward f = model.forward_features(x, request);
  const auto [h, w] = grid_of(f);
  return attention_rollout(f.attention, fusion, h, w);
}

torch::Tensor grad_rollout(BackboneImpl& model, const torch::Tensor& x, const std::vector<int64_t>& classes) {
  // Gradients need a recorded graph even when the caller runs under InferenceMode or NoGradGuard.
  c10::InferenceMode no_inference(false);
  torch::AutoGradMode with_grad(true);
  // An input that requires grad guarantees the graph reaches every attention matrix, whether or not the
  // parameters require grad.
  const torch::Tensor input = x.detach().clone().requires_grad_(true);
  ForwardRequest request;
  request.attention = true;
  const Forward f = model.forward(input, request);
  const auto [h, w] = grid_of(f);
  check_layers(f.attention, h, w);

  const int64_t n = f.logits.size(0), num_classes = f.logits.size(1);
  torch::Tensor target;
  if (classes.empty()) {
    target = f.logits.detach().argmax(1);
  } else if (classes.size() == 1 || static_cast<int64_t>(classes.size()) == n) {
    for (int64_t c : classes)
      if (c < 0 || c >= num_classes)
        throw std::invalid_argument("grad rollout: class " + std::to_string(c) + " is outside 0.." +
                                    std::to_string(num_classes - 1));
    target = torch::tensor(classes, torch::kLong).to(f.logits.device()).expand({n});
  } else {
    throw std::invalid_argument("grad rollout: " + std::to_string(classes.size()) + " classes for " +
                                std::to_string(n) + " images");
  }
  // Images do not interact in a ViT, so one backward of the summed scores gives each image its own gradient.
  const torch::Tensor score = f.logits.gather(1, target.view({n, 1})).sum();
  std::vector<torch::Tensor> probs;
  for (const auto& named : f.attention) probs.push_back(named.second);
  const std::vector<torch::Tensor> grads = torch::autograd::grad({score}, probs);

  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> layers;
  for (size_t i = 0; i < probs.size(); ++i)
    layers.push_back((grads[i] * probs[i].detach()).clamp_min(0).mean(1));
  return roll_out(layers, h, w);
}

torch::Tensor upsample_map(const torch::Tensor& maps, int64_t height, int64_t width) {
  if (maps.dim() != 3) throw std::invalid_argument("upsample_map: expected N x h x w maps");
  if (height < 1 || width < 1 || height > 65536 || width > 65536)
    throw std::invalid_argument("upsample_map: size " + std::to_string(height) + "x" + std::to_string(width) +
                                " out of range");
  namespace F = torch::nn::functional;
  return F::interpolate(maps.unsqueeze(1), F::InterpolateFuncOptions()
                                               .size(std::vector<int64_t>{height, width})
                                               .mode(torch::kBilinear)
                                               .align_corners(false))
      .squeeze(1);
}

}  // namespace attnvision::models
