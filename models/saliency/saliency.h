// Saliency: where a network looked, as one map per image on the model-input grid. One table of methods
// (saliency.cpp); each needs only what NetworkImpl::forward returns when asked (LibTorch has no hooks).
// A method explains a score function, not logits: the task decides what is explained (a class's logit, a
// detected box's peak, a word's log-probability), so the same Grad-CAM serves every head.
#pragma once

#include "models/network.h"

#include <functional>
#include <string>
#include <vector>

namespace attnvision::models {

// What to explain: one scalar per image (an N tensor) computed from a forward pass's outputs, differentiable
// with respect to them. Class-agnostic methods (CBAM gates, plain rollout) do not call it.
using ScoreFn = std::function<torch::Tensor(const Forward& f)>;

// The logit of a class per image: `classes` holds one class for all images, one per image, or is empty
// (each image's top-1). A class outside the logits, or a count that fits neither, is std::invalid_argument.
ScoreFn class_score(std::vector<int64_t> classes = {});

struct SaliencyResult {
  torch::Tensor raw;   // N x h x w float32, the method's own values (Grad-CAM's ReLU'd sums, rollout weights)
  torch::Tensor maps;  // the same min-max normalised per image to [0, 1]
  Forward forward;     // the forward pass the maps came from (detached): the task reads its outputs here
};

// Throws std::invalid_argument naming the method, or why it does not apply to this network.
SaliencyResult explain(NetworkImpl& net, const torch::Tensor& x, const std::string& method, const ScoreFn& score);

std::vector<std::string> saliency_methods();
// "name: one-line description" for --help.
std::vector<std::string> saliency_method_help();

// Per-image min-max normalisation of N x h x w maps (a constant map becomes zeros), in the maps' dtype.
torch::Tensor normalise_maps(const torch::Tensor& maps);

}  // namespace attnvision::models
