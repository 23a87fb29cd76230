// Vision Transformer as timm builds it by default (timm/models/vision_transformer.py): conv patch embedding,
// class token, learned absolute position embedding that includes the class position, pre-norm blocks
// (LayerNorm eps 1e-6, exact GELU), final norm, linear head on the class token. Parameter names are timm's.
#pragma once

#include "models/backbones/backbone.h"
#include "models/model_cfg.h"

#include <torch/types.h>

namespace attnvision::models {

Backbone build_vit(const ModelCfg& cfg);

// Multiply-accumulates of one forward at cfg.input_size, in units of 1e9 (models/backbones/vit_flops.cpp).
double vit_gmacs(const ModelCfg& cfg);

// How the blocks compute attention when no attention maps are asked for. kFused keeps the probabilities
// internal (the faster, the default); kExplicit is the path that returns them. Maps always use kExplicit.
enum class AttentionPath { kFused, kExplicit };
// Throws std::invalid_argument when `model` is not a ViT.
void set_attention_path(BackboneImpl& model, AttentionPath path);

// timm's resample_abs_pos_embed: the class position is kept, the old_h x old_w grid part of `pos_embed`
// (1 x (1 + old_h*old_w) x D) is resampled bicubically (align_corners false) to new_h x new_w.
torch::Tensor resample_abs_pos_embed(const torch::Tensor& pos_embed, int64_t new_h, int64_t new_w,
                                     int64_t old_h, int64_t old_w, bool antialias);

// timm v1.0's VisionTransformer resamples with resample_abs_pos_embed's default, antialias=True (which, even
// when upsampling, is PIL's cubic a = -0.5 with weights renormalised at the borders, not a = -0.75).
inline constexpr bool kPosEmbedAntialias = true;

}  // namespace attnvision::models
