#include "models/saliency/saliency.h"

#include "models/saliency/rollout.h"

#include <torch/torch.h>

#include <stdexcept>

namespace attnvision::models {

namespace {

torch::Tensor pick_targets(const torch::Tensor& logits, int64_t target_class) {
  if (target_class < 0) return logits.argmax(1);
  if (target_class >= logits.size(1))
    throw std::invalid_argument("target class " + std::to_string(target_class) + " is out of range (model has " +
                                std::to_string(logits.size(1)) + " classes)");
  return torch::full({logits.size(0)}, target_class, torch::kLong);
}

// Grad-CAM (Selvaraju et al. 2017) on the last feature map: channels weighted by the spatial mean of
// the target logit's gradient, summed, ReLU. Works for every backbone (a ViT's grid included).
SaliencyResult gradcam(BackboneImpl& net, const torch::Tensor& x, const SaliencyRequest& r) {
  torch::AutoGradMode grad(true);
  Forward f = net.forward(x);
  SaliencyResult out;
  out.logits = f.logits.detach();
  out.targets = pick_targets(out.logits, r.target_class);
  torch::Tensor score = f.logits.gather(1, out.targets.unsqueeze(1)).sum();
  torch::Tensor g = torch::autograd::grad({score}, {f.feature_map})[0];
  torch::Tensor weights = g.mean({2, 3}, /*keepdim=*/true);
  out.maps = normalise_maps(torch::relu((weights * f.feature_map.detach()).sum(1)));
  return out;
}

// CBAM's own spatial gates (N x 1 x H x W per block), averaged over blocks at the finest resolution:
// what the attention modules let through, independent of any class.
SaliencyResult cbam_spatial(BackboneImpl& net, const torch::Tensor& x, const SaliencyRequest&) {
  torch::NoGradGuard no_grad;
  Forward f = net.forward(x, {false, true});
  std::vector<torch::Tensor> gates;
  for (const auto& [name, t] : f.attention)
    if (t.dim() == 4 && t.size(1) == 1) gates.push_back(t);
  if (gates.empty()) throw std::invalid_argument("saliency 'cbam' needs a model with CBAM attention (attn: cbam)");
  const auto size = gates.front().sizes().slice(2).vec();
  torch::Tensor sum = torch::zeros({x.size(0), 1, size[0], size[1]});
  for (const torch::Tensor& g : gates)
    sum += torch::nn::functional::interpolate(
        g, torch::nn::functional::InterpolateFuncOptions().size(size).mode(torch::kBilinear).align_corners(false));
  SaliencyResult out;
  out.logits = f.logits;
  out.targets = torch::full({x.size(0)}, -1, torch::kLong);
  out.maps = normalise_maps(sum.squeeze(1) / static_cast<double>(gates.size()));
  return out;
}

// Attention rollout over a ViT's layers, heads fused by `Fusion`; class-agnostic.
template <HeadFusion Fusion>
SaliencyResult rollout(BackboneImpl& net, const torch::Tensor& x, const SaliencyRequest&) {
  torch::NoGradGuard no_grad;
  Forward f = net.forward(x, {false, true});
  if (f.attention.empty() || !f.tokens.defined())
    throw std::invalid_argument("attention rollout needs a ViT (arch: vit)");
  SaliencyResult out;
  out.logits = f.logits;
  out.targets = torch::full({x.size(0)}, -1, torch::kLong);
  out.maps = attention_rollout(f.attention, Fusion, f.feature_map.size(2), f.feature_map.size(3));
  return out;
}

// Gradient-weighted rollout for the target class (a second pass: the first finds the top-1 classes).
SaliencyResult grad_weighted_rollout(BackboneImpl& net, const torch::Tensor& x, const SaliencyRequest& r) {
  SaliencyResult out;
  {
    torch::NoGradGuard no_grad;
    Forward f = net.forward(x);
    if (!f.tokens.defined()) throw std::invalid_argument("gradient rollout needs a ViT (arch: vit)");
    out.logits = f.logits;
  }
  out.targets = pick_targets(out.logits, r.target_class);
  const auto t = out.targets.accessor<int64_t, 1>();
  out.maps = grad_rollout(net, x, std::vector<int64_t>(t.data(), t.data() + t.size(0)));
  return out;
}

struct MethodRow {
  const char* name;
  const char* help;
  SaliencyResult (*run)(BackboneImpl&, const torch::Tensor&, const SaliencyRequest&);
};

const std::vector<MethodRow>& method_table() {
  static const std::vector<MethodRow> table = {
      {"gradcam", "Grad-CAM on the last feature map (any model)", gradcam},
      {"cbam", "mean of the CBAM spatial attention gates (CBAM models)", cbam_spatial},
      {"rollout", "attention rollout, heads averaged (ViT)", rollout<HeadFusion::kMean>},
      {"rollout-max", "attention rollout, strongest head per layer (ViT)", rollout<HeadFusion::kMax>},
      {"rollout-min", "attention rollout, weakest head per layer (ViT)", rollout<HeadFusion::kMin>},
      {"grad-rollout", "gradient-weighted attention rollout for the target class (ViT)", grad_weighted_rollout},
  };
  return table;
}

}  // namespace

torch::Tensor normalise_maps(const torch::Tensor& maps) {
  torch::Tensor flat = maps.flatten(1);
  torch::Tensor lo = std::get<0>(flat.min(1, true)), hi = std::get<0>(flat.max(1, true));
  torch::Tensor range = hi - lo;
  return ((flat - lo) / torch::where(range > 0, range, torch::ones_like(range))).view_as(maps);
}

SaliencyResult explain(BackboneImpl& net, const torch::Tensor& x, const SaliencyRequest& request) {
  for (const MethodRow& row : method_table())
    if (request.method == row.name) return row.run(net, x, request);
  std::string known;
  for (const MethodRow& row : method_table()) known += (known.empty() ? "" : ", ") + std::string(row.name);
  throw std::invalid_argument("unknown saliency method '" + request.method + "' (known: " + known + ")");
}

std::vector<std::string> saliency_method_help() {
  std::vector<std::string> lines;
  for (const MethodRow& row : method_table()) lines.push_back(std::string(row.name) + ": " + row.help);
  return lines;
}

}  // namespace attnvision::models
