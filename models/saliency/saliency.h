// Saliency: where a model looked, as one map per image on the model-input grid. One table of methods;
// each needs only what Backbone::forward returns when asked (LibTorch has no hooks).
#pragma once

#include "models/backbones/backbone.h"

#include <string>
#include <vector>

namespace attnvision::models {

struct SaliencyRequest {
  std::string method = "gradcam";
  int64_t target_class = -1;  // -1: each image's top-1 class
};

struct SaliencyResult {
  torch::Tensor maps;     // N x h x w, each map min-max normalised to [0, 1]
  torch::Tensor logits;   // N x classes, from the same forward pass
  torch::Tensor targets;  // N, the class each map explains (-1 for class-agnostic methods)
};

// Throws std::invalid_argument naming the method, or why it does not apply to this model.
SaliencyResult explain(BackboneImpl& net, const torch::Tensor& x, const SaliencyRequest& request);

// "name: one-line description" for --help.
std::vector<std::string> saliency_method_help();

// Per-image min-max normalisation of N x h x w maps (a constant map becomes zeros).
torch::Tensor normalise_maps(const torch::Tensor& maps);

}  // namespace attnvision::models
