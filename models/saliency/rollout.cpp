#include "models/saliency/rollout.h"

#include <c10/core/InferenceMode.h>
#include <torch/autograd.h>
#include <torch/nn/functional/upsampling.h>

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

// Per-layer N x T x T matrices (heads already fused) -> the class token's raw rollout over the patch grid,
// in float64.
torch::Tensor roll_out(const std::vector<torch::Tensor>& layers, int64_t grid_h, int64_t grid_w) {
  const int64_t n = layers.front().size(0), t = layers.front().size(1);
  const torch::Tensor eye = torch::eye(t, layers.front().options().dtype(torch::kDouble));
  torch::Tensor joint = eye.expand({n, t, t});
  for (const torch::Tensor& layer : layers) {
    // The residual connection carries each token to itself: A + I, rows renormalised to a distribution.
    torch::Tensor a = layer.to(torch::kDouble) + eye;
    a = a / a.sum(-1, /*keepdim=*/true);
    joint = torch::bmm(a, joint);
  }
  return joint.select(1, 0).slice(1, 1).reshape({n, grid_h, grid_w});
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

torch::Tensor rollout_weights(const NamedTensors& attention, HeadFusion fusion, int64_t grid_h, int64_t grid_w) {
  check_layers(attention, grid_h, grid_w);
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> layers;
  // Probabilities from a bf16 network come as they were computed; the product over layers runs in float32 at least.
  for (const auto& named : attention)
    layers.push_back(fuse_heads(named.second.scalar_type() == torch::kBFloat16 ? named.second.to(torch::kFloat32)
                                                                                : named.second,
                                fusion));
  return roll_out(layers, grid_h, grid_w);
}

torch::Tensor attention_rollout(const NamedTensors& attention, HeadFusion fusion, int64_t grid_h,
                                int64_t grid_w) {
  const torch::Tensor raw = rollout_weights(attention, fusion, grid_h, grid_w);
  return normalise_maps(raw).to(torch::promote_types(attention.front().second.scalar_type(), torch::kFloat32));
}

torch::Tensor attention_rollout(NetworkImpl& net, const torch::Tensor& x, HeadFusion fusion) {
  torch::NoGradGuard no_grad;
  ForwardRequest request;
  request.attention = true;
  const Forward f = net.backbone().forward_features(x, request);
  const auto [h, w] = grid_of(f);
  return attention_rollout(f.attention, fusion, h, w);
}

torch::Tensor grad_rollout_weights(NetworkImpl& net, const torch::Tensor& x, const ScoreFn& score,
                                   Forward* forward) {
  // Gradients need a recorded graph even when the caller runs under InferenceMode or NoGradGuard.
  c10::InferenceMode no_inference(false);
  torch::AutoGradMode with_grad(true);
  // An input that requires grad guarantees the graph reaches every attention matrix, whether or not the
  // parameters require grad.
  const torch::Tensor input = x.detach().clone().requires_grad_(true);
  ForwardRequest request;
  request.attention = true;
  Forward f = net.forward(input, request);
  if (!f.tokens.defined()) throw std::invalid_argument("gradient rollout needs a ViT (arch: vit)");
  const auto [h, w] = grid_of(f);
  check_layers(f.attention, h, w);
  // Images do not interact in a ViT, so one backward of the summed scores gives each image its own gradient.
  std::vector<torch::Tensor> probs;
  for (const auto& named : f.attention) probs.push_back(named.second);
  const std::vector<torch::Tensor> grads = torch::autograd::grad({score(f).sum()}, probs);

  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> layers;
  for (size_t i = 0; i < probs.size(); ++i)
    layers.push_back((grads[i].to(torch::kFloat32) * probs[i].detach().to(torch::kFloat32)).clamp_min(0).mean(1));
  if (forward) *forward = f.detached();
  return roll_out(layers, h, w);
}

torch::Tensor grad_rollout(NetworkImpl& net, const torch::Tensor& x, const ScoreFn& score) {
  return normalise_maps(grad_rollout_weights(net, x, score)).to(torch::kFloat32);
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
