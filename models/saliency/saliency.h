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
// with respect to them. Class-agnostic methods (CBAM gates, plain rollout) do not call it. Occlusion calls it
// on the outputs of altered copies of the batch (one copy per image per call, in the batch's order): a score
// that picks its own target there (each image's top-1, the strongest detection) picks it again on every copy,
// so give explicit targets when the map must follow what the clean image chose.
using ScoreFn = std::function<torch::Tensor(const Forward& f)>;

// The logit of a class per image: `classes` holds one class for all images, one per image, or is empty
// (each image's top-1). A class outside the logits, or a count that fits neither, is std::invalid_argument.
ScoreFn class_score(std::vector<int64_t> classes = {});

struct SaliencyResult {
  torch::Tensor raw;   // N x h x w float32, the method's own values (Grad-CAM's ReLU'd sums, rollout weights)
  torch::Tensor maps;  // the same min-max normalised per image to [0, 1]
  Forward forward;     // the forward pass the maps came from (detached): the task reads its outputs here
};

// Occlusion sensitivity's sliding window, in model-input pixels.
struct OcclusionOptions {
  int64_t patch = 0;   // side of the square patch; 0: 1/8 of the input's shorter side (at least 1)
  int64_t stride = 0;  // step between patch positions; 0: half the patch (at least 1)
  int64_t batch = 64;  // occluded images per forward pass: bounds the memory whatever the number of positions
};

// A method's choices beyond its name; each method reads only its own (a default-constructed one is every
// method's default).
struct SaliencyOptions {
  // The stage the CAM methods (gradcam, gradcam++, layercam) explain, named as in feature_info(): "" is the
  // last feature map (stride 32 on a ResNet); a finer stage gives a finer map for small findings (a ResNet's
  // layer2: stride 8). saliency_stages() lists the names a network offers.
  std::string stage;
  OcclusionOptions occlusion;
};

// Throws std::invalid_argument naming the method, the stage or the option, and why it does not apply to this
// network or this input.
SaliencyResult explain(NetworkImpl& net, const torch::Tensor& x, const std::string& method,
                       const ScoreFn& score, const SaliencyOptions& options = {});

// The stages `net` can hand the CAM methods, shallow to deep: those forward returns with
// ForwardRequest::stages (finer than the last feature map), then the last stage's name, which stands for the
// feature map itself. A ResNet offers act1, layer1 .. layer4; a ViT only its last block (its blocks all keep
// the patch grid and only the last, after the final norm, is returned as a map).
std::vector<std::string> saliency_stages(NetworkImpl& net);

std::vector<std::string> saliency_methods();
// Whether `method` reads SaliencyOptions::stage (the CAM methods); false for an unknown name.
bool saliency_method_reads_stage(const std::string& method);
// "name: one-line description" for --help.
std::vector<std::string> saliency_method_help();

// Per-image min-max normalisation of N x h x w maps (a constant map becomes zeros), in the maps' dtype.
torch::Tensor normalise_maps(const torch::Tensor& maps);

}  // namespace attnvision::models
