#include "models/saliency/saliency.h"

#include "models/saliency/rollout.h"

#include <torch/torch.h>

#include <algorithm>
#include <stdexcept>
#include <utility>

namespace attnvision::models {

namespace {

// What a method hands back: raw maps (N x h x w, any floating dtype) and the forward pass they came from.
struct MethodOutput {
  torch::Tensor raw;
  Forward forward;
};

std::string joined(const std::vector<std::string>& names) {
  std::string text;
  for (const std::string& name : names) text += (text.empty() ? "" : ", ") + name;
  return text;
}

// The Forward::stages entry `stage` names: "" when it is the last feature map, else a name saliency_stages()
// lists; anything else is std::invalid_argument naming the stage and the choices.
std::string stage_to_read(NetworkImpl& net, const std::string& stage) {
  if (stage.empty()) return stage;
  const std::vector<std::string> stages = saliency_stages(net);
  if (!stages.empty() && stage == stages.back()) return "";
  if (std::find(stages.begin(), stages.end(), stage) != stages.end()) return stage;
  throw std::invalid_argument("saliency stage '" + stage + "' is not a stage this network offers (" +
                              joined(stages) + "; empty: the last feature map)");
}

// The activations of the explained stage and the score's gradient with respect to them, N x C x h x w each,
// and the forward pass (detached).
struct StageGradient {
  torch::Tensor activations;
  torch::Tensor gradient;
  Forward forward;
};

StageGradient stage_gradient(const std::string& method, NetworkImpl& net, const torch::Tensor& x,
                             const ScoreFn& score, const std::string& stage) {
  const std::string name = stage_to_read(net, stage);
  c10::InferenceMode no_inference(false);
  torch::AutoGradMode grad(true);
  ForwardRequest request;
  request.stages = !name.empty();
  request.gradient_at = name;  // the stage's output is the leaf: the layers before it run unrecorded
  Forward f = net.forward(x, request);
  torch::Tensor activations = f.feature_map;
  if (!name.empty()) {
    const auto found =
        std::find_if(f.stages.begin(), f.stages.end(), [&](const auto& s) { return s.first == name; });
    if (found == f.stages.end())
      throw std::logic_error("saliency: the backbone did not return stage '" + name + "'");
    activations = found->second;
  }
  if (!activations.requires_grad())
    throw std::logic_error("saliency: the backbone did not make stage '" + name + "' the gradient's leaf");
  // Images do not interact, so one backward of the summed scores gives each image its own gradient.
  const torch::Tensor total = score(f).sum();
  // A score nothing recorded leads to (no grad_fn: only the unrecorded layers before the leaf feed it) has no
  // gradient to take, like one whose graph does not reach the leaf (grad's undefined result).
  const torch::Tensor gradient =
      total.requires_grad() ? torch::autograd::grad({total}, {activations}, /*grad_outputs=*/{},
                                                    /*retain_graph=*/c10::nullopt, /*create_graph=*/false,
                                                    /*allow_unused=*/true)[0]
                            : torch::Tensor();
  // A ViT's classifier reads its class token alone, and the final norm works token by token: the patch grid
  // is not upstream of a class logit (a dense head's score is).
  if (!gradient.defined())
    throw std::invalid_argument(
        "saliency '" + method + "': the score does not depend on " +
        (stage.empty() ? std::string("the last feature map") : "stage '" + stage + "'") +
        " (a ViT's class logits read only its class token: use grad-rollout)");
  // Under a bf16 network the stage is bfloat16 (models/network.h); the map is computed in float32.
  return {activations.detach().to(torch::kFloat32), gradient.to(torch::kFloat32), f.detached()};
}

// Grad-CAM (Selvaraju et al. 2017): channels weighted by the spatial mean of the score's gradient, summed,
// ReLU. Works for every backbone and every score that depends on the stage (on a ViT: a dense head's score).
MethodOutput gradcam(NetworkImpl& net, const torch::Tensor& x, const ScoreFn& score,
                     const SaliencyOptions& o) {
  StageGradient s = stage_gradient("gradcam", net, x, score, o.stage);
  const torch::Tensor weights = s.gradient.mean({2, 3}, /*keepdim=*/true);
  return {torch::relu((weights * s.activations).sum(1)), std::move(s.forward)};
}

// Grad-CAM++ (Chattopadhay et al. 2018): each position's gradient weighted by the closed-form alpha of
// their eq. 19, written for an exponential score S = exp(Y), whose higher derivatives are powers of dY/dA:
//   alpha = g^2 / (2 g^2 + sum_ab(A) g^3),   w_c = sum_ij alpha * relu(g),   map = relu(sum_c w_c A_c)
// with g = dY/dA (exp(Y)'s common factor drops out of relu(dS/dA) and the normalised map). As
// pytorch-grad-cam computes it: 1e-6 added to the denominator, alpha zero where g is.
MethodOutput gradcam_plus_plus(NetworkImpl& net, const torch::Tensor& x, const ScoreFn& score,
                               const SaliencyOptions& o) {
  StageGradient s = stage_gradient("gradcam++", net, x, score, o.stage);
  const torch::Tensor& g = s.gradient;
  const torch::Tensor g2 = g * g, g3 = g2 * g;
  const torch::Tensor activation_sums = s.activations.sum({2, 3}, /*keepdim=*/true);
  const torch::Tensor alpha =
      torch::where(g != 0, g2 / (2 * g2 + activation_sums * g3 + 1e-6), torch::zeros_like(g));
  const torch::Tensor weights = (alpha * torch::relu(g)).sum({2, 3}, /*keepdim=*/true);
  return {torch::relu((weights * s.activations).sum(1)), std::move(s.forward)};
}

// Layer-CAM (Jiang et al. 2021): every position keeps its own weight, the positive gradient there, instead
// of one weight per channel, so a shallow stage's fine detail survives: relu(sum_c relu(g_c) * A_c).
MethodOutput layercam(NetworkImpl& net, const torch::Tensor& x, const ScoreFn& score,
                      const SaliencyOptions& o) {
  StageGradient s = stage_gradient("layercam", net, x, score, o.stage);
  return {torch::relu((torch::relu(s.gradient) * s.activations).sum(1)), std::move(s.forward)};
}

// CBAM's own spatial gates (N x 1 x H x W per block), averaged over blocks at the finest resolution: what the
// attention modules let through, independent of any score.
MethodOutput cbam_spatial(NetworkImpl& net, const torch::Tensor& x, const ScoreFn&, const SaliencyOptions&) {
  torch::NoGradGuard no_grad;
  Forward f = net.forward(x, ForwardRequest::asking(/*activations=*/false, /*attention=*/true));
  std::vector<torch::Tensor> gates;
  for (const auto& [name, t] : f.attention)
    if (t.dim() == 4 && t.size(1) == 1) gates.push_back(t.to(torch::kFloat32));
  if (gates.empty()) throw std::invalid_argument("saliency 'cbam' needs a model with CBAM attention (attn: cbam)");
  const auto size = gates.front().sizes().slice(2).vec();
  torch::Tensor sum = torch::zeros({x.size(0), 1, size[0], size[1]});
  for (const torch::Tensor& g : gates)
    sum += torch::nn::functional::interpolate(
        g, torch::nn::functional::InterpolateFuncOptions().size(size).mode(torch::kBilinear).align_corners(false));
  return {sum.squeeze(1) / static_cast<double>(gates.size()), std::move(f)};
}

// CAM (Zhou et al. 2016) of the anomaly head: its own per-cell lesion map, whose maximum is the slice's
// logit (models/heads/lesion_map.cpp), as each cell's p(lesion), so that a value means the same on every
// slice. Independent of any score, and needs no gradient: the head draws it in the forward pass.
MethodOutput lesion_cam(NetworkImpl& net, const torch::Tensor& x, const ScoreFn&, const SaliencyOptions&) {
  torch::NoGradGuard no_grad;
  Forward f = net.forward(x);
  if (!f.anomaly_map.defined())
    throw std::invalid_argument("saliency 'cam' needs a model whose head draws a lesion map (task: anomaly)");
  torch::Tensor raw = torch::sigmoid(f.anomaly_map.to(torch::kFloat32)).squeeze(1);
  return {raw, std::move(f)};
}

// Attention rollout over a ViT's layers, heads fused by `Fusion`; independent of any score.
template <HeadFusion Fusion>
MethodOutput rollout(NetworkImpl& net, const torch::Tensor& x, const ScoreFn&, const SaliencyOptions&) {
  torch::NoGradGuard no_grad;
  Forward f = net.forward(x, ForwardRequest::asking(/*activations=*/false, /*attention=*/true));
  if (f.attention.empty() || !f.tokens.defined())
    throw std::invalid_argument("attention rollout needs a ViT (arch: vit)");
  torch::Tensor raw = rollout_weights(f.attention, Fusion, f.feature_map.size(2), f.feature_map.size(3));
  return {raw, std::move(f)};
}

// Gradient-weighted rollout of the score (Chefer et al. 2021 style).
MethodOutput grad_weighted_rollout(NetworkImpl& net, const torch::Tensor& x, const ScoreFn& score,
                                   const SaliencyOptions&) {
  Forward f;
  torch::Tensor raw = grad_rollout_weights(net, x, score, &f);
  return {raw, std::move(f)};
}

// The window's offsets along one side of `length` pixels: every `stride`, and one flush with the far edge
// when the stride does not land there, so that every pixel is covered at least once.
std::vector<int64_t> window_offsets(int64_t length, int64_t patch, int64_t stride) {
  std::vector<int64_t> offsets;
  for (int64_t at = 0; at + patch <= length; at += stride) offsets.push_back(at);
  if (offsets.back() + patch < length) offsets.push_back(length - patch);
  return offsets;
}

// The occlusion window for an N x C x H x W input: defaults filled in, every choice checked.
OcclusionOptions occlusion_window(const OcclusionOptions& asked, const torch::Tensor& x) {
  if (x.dim() != 4) throw std::invalid_argument("saliency 'occlusion' needs an N x C x H x W input");
  const int64_t shorter = std::min(x.size(2), x.size(3));
  OcclusionOptions o = asked;
  if (o.patch == 0) o.patch = std::max<int64_t>(1, shorter / 8);
  if (o.stride == 0) o.stride = std::max<int64_t>(1, o.patch / 2);
  const std::string input = std::to_string(x.size(2)) + "x" + std::to_string(x.size(3));
  if (o.patch < 0 || o.patch > shorter)
    throw std::invalid_argument("saliency 'occlusion': patch " + std::to_string(o.patch) +
                                " does not fit the " + input + " input (0: 1/8 of its shorter side)");
  if (o.stride < 0)
    throw std::invalid_argument("saliency 'occlusion': stride must be positive (0: half the patch)");
  if (o.batch < 1) throw std::invalid_argument("saliency 'occlusion': batch must be at least 1");
  return o;
}

// Occlusion sensitivity (Zeiler & Fergus 2014), the reference that assumes nothing about the model: a patch
// of zeros (the normalised input's mean) slides over the input, and each pixel gets the score's drop, clean
// minus occluded, averaged over the patches that covered it. The drops may be negative (hiding something
// raised the score). Each forward pass holds all N images for each of o.batch / N positions (at least one),
// position-major, so the score function sees the batch's images in their order, one position at a time.
MethodOutput occlusion(NetworkImpl& net, const torch::Tensor& x, const ScoreFn& score,
                       const SaliencyOptions& asked) {
  const OcclusionOptions o = occlusion_window(asked.occlusion, x);
  torch::NoGradGuard no_grad;
  const int64_t n = x.size(0), height = x.size(2), width = x.size(3);
  Forward clean = net.forward(x);
  const torch::Tensor clean_score = score(clean).to(torch::kFloat32);
  if (clean_score.dim() != 1 || clean_score.size(0) != n)
    throw std::invalid_argument("saliency 'occlusion': the score gives " +
                                std::to_string(clean_score.numel()) + " values for " + std::to_string(n) +
                                " images (one per image expected)");

  std::vector<std::pair<int64_t, int64_t>> positions;  // (top, left) of each patch
  for (int64_t top : window_offsets(height, o.patch, o.stride))
    for (int64_t left : window_offsets(width, o.patch, o.stride)) positions.emplace_back(top, left);
  const auto options = torch::TensorOptions().dtype(torch::kFloat32).device(x.device());
  torch::Tensor drop_sums = torch::zeros({n, height, width}, options);
  torch::Tensor covered = torch::zeros({height, width}, options);
  const int64_t per_pass = std::max<int64_t>(1, o.batch / n);
  for (size_t first = 0; first < positions.size(); first += per_pass) {
    const int64_t count = std::min<int64_t>(per_pass, static_cast<int64_t>(positions.size() - first));
    torch::Tensor copies = x.unsqueeze(0).repeat({count, 1, 1, 1, 1});  // count x N x C x H x W
    for (int64_t j = 0; j < count; ++j) {
      const auto [top, left] = positions[first + j];
      copies[j].narrow(2, top, o.patch).narrow(3, left, o.patch).zero_();
    }
    const Forward occluded = net.forward(copies.flatten(0, 1));
    for (int64_t j = 0; j < count; ++j) {
      const auto [top, left] = positions[first + j];
      const torch::Tensor drop = clean_score - score(occluded.narrow_batch(j * n, n)).to(torch::kFloat32);
      drop_sums.narrow(1, top, o.patch).narrow(2, left, o.patch) += drop.view({n, 1, 1});
      covered.narrow(0, top, o.patch).narrow(1, left, o.patch) += 1;
    }
  }
  return {drop_sums / covered, std::move(clean)};
}

struct MethodRow {
  const char* name;
  const char* help;
  MethodOutput (*run)(NetworkImpl&, const torch::Tensor&, const ScoreFn&, const SaliencyOptions&);
  bool reads_stage;  // SaliencyOptions::stage picks the feature map it explains
};

const std::vector<MethodRow>& method_table() {
  static const std::vector<MethodRow> table = {
      {"gradcam", "Grad-CAM: channels weighted by their mean gradient (CNNs; a ViT's grid for a dense head)",
       gradcam, true},
      {"gradcam++", "Grad-CAM++: gradients weighted per position by the closed-form alpha (as gradcam)",
       gradcam_plus_plus, true},
      {"layercam",
       "Layer-CAM: positive gradient times activation per position, finer on shallow stages (as gradcam)",
       layercam, true},
      {"cbam", "mean of the CBAM spatial attention gates (CBAM models)", cbam_spatial, false},
      {"cam", "CAM: the anomaly head's own lesion map, each cell's p(lesion) (anomaly models; no gradient)",
       lesion_cam, false},
      {"rollout", "attention rollout, heads averaged (ViT)", rollout<HeadFusion::kMean>, false},
      {"rollout-max", "attention rollout, strongest head per layer (ViT)", rollout<HeadFusion::kMax>, false},
      {"rollout-min", "attention rollout, weakest head per layer (ViT)", rollout<HeadFusion::kMin>, false},
      {"grad-rollout", "gradient-weighted attention rollout of the target's score (ViT)",
       grad_weighted_rollout, false},
      {"occlusion",
       "score drop under a sliding patch of the input's mean, at input resolution (any model; slow)",
       occlusion, false},
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

SaliencyResult explain(NetworkImpl& net, const torch::Tensor& x, const std::string& method,
                       const ScoreFn& score, const SaliencyOptions& options) {
  for (const MethodRow& row : method_table()) {
    if (method != row.name) continue;
    if (!row.reads_stage && !options.stage.empty()) {
      std::vector<std::string> readers;
      for (const MethodRow& r : method_table())
        if (r.reads_stage) readers.emplace_back(r.name);
      throw std::invalid_argument("saliency '" + method + "' has no stage to choose (stage '" +
                                  options.stage + "' given); the methods that read one: " + joined(readers));
    }
    MethodOutput out = row.run(net, x, score, options);
    // Normalised in the method's own precision (rollout's products run in float64), then float32.
    return {out.raw.to(torch::kFloat32), normalise_maps(out.raw).to(torch::kFloat32), std::move(out.forward)};
  }
  throw std::invalid_argument("unknown saliency method '" + method +
                              "' (known: " + joined(saliency_methods()) + ")");
}

std::vector<std::string> saliency_stages(NetworkImpl& net) {
  // Forward::stages holds the stages finer than the last feature map (ForwardRequest::stages); the last
  // stage's output is the feature map itself.
  const std::vector<FeatureInfo> info = net.backbone().feature_info();
  std::vector<std::string> names;
  for (const FeatureInfo& stage : info)
    if (stage.stride < info.back().stride) names.push_back(stage.module);
  if (!info.empty()) names.push_back(info.back().module);
  return names;
}

bool saliency_method_reads_stage(const std::string& method) {
  for (const MethodRow& row : method_table())
    if (method == row.name) return row.reads_stage;
  return false;
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
