// Attention rollout for ViTs: how much each patch feeds the class token through the stack of attention
// layers. Plain rollout (Abnar & Zuidema 2020) and gradient-weighted rollout for one class (Chefer et al.
// 2021 style), both as maps on the patch grid, N x h x w, min-max normalised per image to [0, 1].
#pragma once

#include "models/backbones/backbone.h"

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
// the patch tokens. Throws std::invalid_argument on an empty list or shapes that do not fit the grid.
torch::Tensor attention_rollout(const NamedTensors& attention, HeadFusion fusion, int64_t grid_h,
                                int64_t grid_w);

// Runs `model` (a ViT; eval mode is the caller's choice) with attention maps and rolls them out.
torch::Tensor attention_rollout(BackboneImpl& model, const torch::Tensor& x,
                                HeadFusion fusion = HeadFusion::kMean);

// Gradient-weighted rollout: per layer, mean over heads of relu(dlogit/dattn * attn), then the same residual,
// normalisation and product. `classes` holds one class per image, one class for all, or is empty (each
// image's top-1 class). Runs with gradients enabled whatever the caller's mode; the gradients are taken with
// respect to the attention probabilities only, so the model's parameter gradients are left untouched.
torch::Tensor grad_rollout(BackboneImpl& model, const torch::Tensor& x, const std::vector<int64_t>& classes);

// Bilinear (align_corners false) upsampling of N x h x w maps to N x height x width, for overlays.
torch::Tensor upsample_map(const torch::Tensor& maps, int64_t height, int64_t width);

}  // namespace attnvision::models
