// Attention rollout for ViTs: how much each patch feeds the class token through the stack of attention
// layers. Plain rollout (Abnar & Zuidema 2020) and gradient-weighted rollout for one class (Chefer et al.
// 2021 style), both as maps on the patch grid, N x h x w, min-max normalised per image to [0, 1].
#pragma once

#include "models/network.h"
#include "models/saliency/saliency.h"

#include <torch/types.h>

#include <string>
#include <vector>

namespace attnvision::models {

// How one layer's heads become one matrix.
enum class HeadFusion { kMean, kMax, kMin };
// "mean" | "max" | "min"; anything else throws std::invalid_argument naming the choices.
HeadFusion parse_head_fusion(const std::string& name);

// Rollout from per-layer attention probabilities (N x heads x T x T each, T = 1 + grid_h * grid_w, class
// token first) in forward order: per layer fuse the heads, add the identity for the residual path,
// normalise rows to sum 1, multiply the layers (later layers on the left), take the class-token row over
// the patch tokens. Raw weights, N x h x w in float64 (the product runs in float64: in float32 its rounding,
// magnified by the min-max stretch of a map whose values differ by little, reaches 1e-5 on a 2-layer toy
// model already). Throws std::invalid_argument on an empty list or shapes that do not fit the grid.
torch::Tensor rollout_weights(const NamedTensors& attention, HeadFusion fusion, int64_t grid_h, int64_t grid_w);

// The same, min-max normalised per image to [0, 1], in the attention's dtype.
torch::Tensor attention_rollout(const NamedTensors& attention, HeadFusion fusion, int64_t grid_h,
                                int64_t grid_w);

// Runs `net` (a ViT; eval mode is the caller's choice) with attention maps and rolls them out, normalised.
torch::Tensor attention_rollout(NetworkImpl& net, const torch::Tensor& x, HeadFusion fusion = HeadFusion::kMean);

// Gradient-weighted rollout of `score`: per layer, mean over heads of relu(dscore/dattn * attn), then the same
// residual, normalisation and product; raw float64 weights. Runs with gradients enabled whatever the caller's
// mode; the gradients are taken with respect to the attention probabilities only, so the parameters'
// gradients are left untouched. `forward`, when given, receives the (detached) forward pass.
torch::Tensor grad_rollout_weights(NetworkImpl& net, const torch::Tensor& x, const ScoreFn& score,
                                   Forward* forward = nullptr);
// The same, min-max normalised per image to [0, 1], in float32.
torch::Tensor grad_rollout(NetworkImpl& net, const torch::Tensor& x, const ScoreFn& score);

// Bilinear (align_corners false) upsampling of N x h x w maps to N x height x width, for overlays.
torch::Tensor upsample_map(const torch::Tensor& maps, int64_t height, int64_t width);

}  // namespace attnvision::models
