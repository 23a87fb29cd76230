#include "models/saliency/saliency.h"

#include "models/saliency/rollout.h"

#include <torch/torch.h>

#include <stdexcept>

namespace attnvision::models {

namespace {

// What a method hands back: raw maps (N x h x w, any floating dtype) and the forward pass they came from.
struct MethodOutput {
  torch::Tensor raw;
  Forward forward;
};

// Grad-CAM (Selvaraju et al. 2017) on the last feature map: channels weighted by the spatial mean of the
// score's gradient, summed, ReLU. Works for every backbone (a ViT's grid included) and every score.
MethodOutput gradcam(NetworkImpl& net, const torch::Tensor& x, const ScoreFn& score) {
  c10::InferenceMode no_inference(false);
  torch::AutoGradMode grad(true);
  Forward f = net.forward(x);
  // Images do not interact, so one backward of the summed scores gives each image its own gradient.
  const torch::Tensor g = torch::autograd::grad({score(f).sum()}, {f.feature_map})[0];
  const torch::Tensor weights = g.mean({2, 3}, /*keepdim=*/true);
  torch::Tensor raw = torch::relu((weights * f.feature_map.detach()).sum(1));
  return {raw, f.detached()};
}

// CBAM's own spatial gates (N x 1 x H x W per block), averaged over blocks at the finest resolution: what the
// attention modules let through, independent of any score.
MethodOutput cbam_spatial(NetworkImpl& net, const torch::Tensor& x, const ScoreFn&) {
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
  return {sum.squeeze(1) / static_cast<double>(gates.size()), std::move(f)};
}

// Attention rollout over a ViT's layers, heads fused by `Fusion`; independent of any score.
template <HeadFusion Fusion>
MethodOutput rollout(NetworkImpl& net, const torch::Tensor& x, const ScoreFn&) {
  torch::NoGradGuard no_grad;
  Forward f = net.forward(x, {false, true});
  if (f.attention.empty() || !f.tokens.defined())
    throw std::invalid_argument("attention rollout needs a ViT (arch: vit)");
  torch::Tensor raw = rollout_weights(f.attention, Fusion, f.feature_map.size(2), f.feature_map.size(3));
  return {raw, std::move(f)};
}

// Gradient-weighted rollout of the score (Chefer et al. 2021 style).
MethodOutput grad_weighted_rollout(NetworkImpl& net, const torch::Tensor& x, const ScoreFn& score) {
  Forward f;
  torch::Tensor raw = grad_rollout_weights(net, x, score, &f);
  return {raw, std::move(f)};
}

struct MethodRow {
  const char* name;
  const char* help;
  MethodOutput (*run)(NetworkImpl&, const torch::Tensor&, const ScoreFn&);
};

const std::vector<MethodRow>& method_table() {
  static const std::vector<MethodRow> table = {
      {"gradcam", "Grad-CAM on the last feature map (any model)", gradcam},
      {"cbam", "mean of the CBAM spatial attention gates (CBAM models)", cbam_spatial},
      {"rollout", "attention rollout, heads averaged (ViT)", rollout<HeadFusion::kMean>},
      {"rollout-max", "attention rollout, strongest head per layer (ViT)", rollout<HeadFusion::kMax>},
      {"rollout-min", "attention rollout, weakest head per layer (ViT)", rollout<HeadFusion::kMin>},
      {"grad-rollout", "gradient-weighted attention rollout of the target's score (ViT)", grad_weighted_rollout},
  };
  return table;
}

}  // namespace

ScoreFn class_score(std::vector<int64_t> classes) {
  return [classes = std::move(classes)](const Forward& f) {
    if (!f.logits.defined()) throw std::invalid_argument("class score: the network has no logits");
    const int64_t n = f.logits.size(0), num_classes = f.logits.size(1);
    torch::Tensor target;
    if (classes.empty()) {
      target = f.logits.detach().argmax(1);
    } else if (classes.size() == 1 || static_cast<int64_t>(classes.size()) == n) {
      for (int64_t c : classes)
        if (c < 0 || c >= num_classes)
          throw std::invalid_argument("target class " + std::to_string(c) + " is out of range (model has " +
                                      std::to_string(num_classes) + " classes)");
      target = torch::tensor(classes, torch::kLong).to(f.logits.device()).expand({n});
    } else {
      throw std::invalid_argument(std::to_string(classes.size()) + " target classes for " + std::to_string(n) +
                                  " images");
    }
    return f.logits.gather(1, target.view({n, 1})).squeeze(1);
  };
}

torch::Tensor normalise_maps(const torch::Tensor& maps) {
  torch::Tensor flat = maps.flatten(1);
  torch::Tensor lo = std::get<0>(flat.min(1, true)), hi = std::get<0>(flat.max(1, true));
  torch::Tensor range = hi - lo;
  return ((flat - lo) / torch::where(range > 0, range, torch::ones_like(range))).view_as(maps);
}

SaliencyResult explain(NetworkImpl& net, const torch::Tensor& x, const std::string& method, const ScoreFn& score) {
  for (const MethodRow& row : method_table()) {
    if (method != row.name) continue;
    MethodOutput out = row.run(net, x, score);
    // Normalised in the method's own precision (rollout's products run in float64), then float32.
    return {out.raw.to(torch::kFloat32), normalise_maps(out.raw).to(torch::kFloat32), std::move(out.forward)};
  }
  std::string known;
  for (const std::string& name : saliency_methods()) known += (known.empty() ? "" : ", ") + name;
  throw std::invalid_argument("unknown saliency method '" + method + "' (known: " + known + ")");
}

std::vector<std::string> saliency_methods() {
  std::vector<std::string> names;
  for (const MethodRow& row : method_table()) names.emplace_back(row.name);
  return names;
}

std::vector<std::string> saliency_method_help() {
  std::vector<std::string> lines;
  for (const MethodRow& row : method_table()) lines.push_back(std::string(row.name) + ": " + row.help);
  return lines;
}

}  // namespace attnvision::models
