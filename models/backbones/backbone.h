// The one interface every backbone family (ResNet, ViT) implements, so heads, saliency and the
// pipelines never ask which architecture they hold. A backbone has no head: models/network.h joins them. LibTorch C++ modules have no hooks, so whatever
// saliency needs (intermediate activations, attention probabilities) is returned by forward when asked.
#pragma once

#include "models/layers/attention.h"

#include <c10/core/GradMode.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/linear.h>
#include <torch/types.h>

#include <array>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace attnvision::models {

// One stage of a backbone: its timm module name, output channels and stride relative to the input.
struct FeatureInfo {
  std::string module;
  int64_t channels = 0;
  int64_t stride = 0;
};

// What a caller asks a forward pass to hand back besides the last feature map.
struct ForwardRequest {
  bool activations = false;  // stem/stage/attention-module outputs, named as in timm
  bool attention = false;    // attention maps: CBAM spatial maps (N x 1 x H x W) or ViT probabilities (N x heads x T x T)
  bool stages = false;       // the feature maps of the stages finer than the last (what a dense head builds on)
  // The batch's training targets, for a head that learns from them inside its forward pass (a caption decoder
  // reads the reference words instead of its own: teacher forcing); every other head ignores them.
  torch::Tensor targets;
  // Where the caller will take a gradient (saliency): the output of this stage (a Forward::stages name, or ""
  // for the last feature map) becomes an autograd leaf, and the forward before it runs without autograd
  // (NetworkImpl::trunk), since no gradient the caller asks for flows there. Unset: the caller's grad mode.
  std::optional<std::string> gradient_at;

  // The common asks, by name (brace-initialising the struct would have to spell out the targets too).
  static ForwardRequest asking(bool activations, bool attention) {
    ForwardRequest r;
    r.activations = activations, r.attention = attention;
    return r;
  }
};

// Everything one forward pass produced. Fields nobody asked for stay undefined tensors / empty lists.
struct Forward {
  torch::Tensor input;        // the network's input as given (for a head that looks at the pixels itself)
  torch::Tensor feature_map;  // N x C x H x W (a ViT's patch tokens on their grid)
  torch::Tensor tokens;       // ViT only: all tokens after the final norm, N x (1 + patches) x D
  // Filled by the classification head (models/heads/classifier.cpp):
  torch::Tensor pre_logits;   // N x C, the pooled features the classifier sees
  torch::Tensor logits;       // N x num_classes
  // Filled by the anomaly head (models/heads/lesion_map.cpp), besides logits [0, slice lesion logit]:
  torch::Tensor anomaly_map;  // N x 1 x h x w, a lesion logit per cell of the feature map
  // Filled by the detection head (models/heads/centernet.cpp), on a grid of output_stride pixels per cell:
  torch::Tensor heatmap;      // N x num_classes x h x w, logits of "an object of this class is centred here"
  torch::Tensor box_size;     // N x 2 x h x w, box width and height in cells
  torch::Tensor box_offset;   // N x 2 x h x w, the centre's sub-cell offset (x, y)
  // Filled by a caption decoder (models/heads/caption_decoder.h), over the feature map's P = h x w cells:
  // with ForwardRequest::targets (N x R x L reference ids), teacher forcing on every reference,
  torch::Tensor word_logits;  // (N R) x (L - 1) x V, the logits of each next word given the reference's previous ones
  torch::Tensor word_alphas;  // (N R) x (L - 1) x P, where the decoder looked for each (an attention decoder only)
  // and in eval mode, the greedy caption (the caption task decodes with beam search itself):
  torch::Tensor caption_ids;        // N x T word ids, <end> then <pad> after the caption
  torch::Tensor caption_logprobs;   // N x T, log p of each chosen word (0 after <end>): what saliency explains
  torch::Tensor caption_attention;  // N x T x P, the attention behind each word (uniform for the baseline)
  // When ForwardRequest::stages: the outputs of the stages whose stride is below the feature map's, named as
  // in feature_info(), shallow to deep (a ViT has none: every block keeps the patch stride).
  NamedTensors stages;
  NamedTensors activations;   // in forward order, when ForwardRequest::activations
  NamedTensors attention;     // in forward order, named by the module that produced them

  // The same tensors cut from any autograd graph (what a saliency pass hands back after its backward).
  Forward detached() const {
    return map_tensors([](const torch::Tensor& t) { return t.detach(); });
  }
  // Images [start, start + length) of the batch: every field is batch-first. What occlusion saliency hands
  // its score function, so that a score with one target per image still sees one row per image.
  Forward narrow_batch(int64_t start, int64_t length) const {
    return map_tensors([=](const torch::Tensor& t) { return t.narrow(0, start, length); });
  }
  // The feature map, tokens and every head output as float32 (a pass under bfloat16 autocast leaves bfloat16
  // ones), the word ids as they are. The named lists (stages, activations, attention) keep the precision their
  // ops ran in: they are what saliency differentiates with respect to, and a cast copy would be outside the
  // graph; their readers cast what they read (models/saliency/).
  Forward as_float32() const {
    Forward f = *this;
    for (torch::Tensor* t : outputs(f))
      if (t->defined() && t->is_floating_point()) *t = t->to(torch::kFloat32);
    return f;
  }

 private:
  // The single tensors, in one list whatever is done to all of them.
  static std::array<torch::Tensor*, 14> outputs(Forward& f) {
    return {&f.input,       &f.feature_map, &f.tokens,      &f.pre_logits,  &f.logits,    &f.anomaly_map,      &f.heatmap,
            &f.box_size,    &f.box_offset,  &f.word_logits, &f.word_alphas, &f.caption_ids, &f.caption_logprobs,
            &f.caption_attention};
  }
  // `fn` applied to every defined tensor, the named lists' too.
  template <typename Fn>
  Forward map_tensors(const Fn& fn) const {
    Forward f = *this;
    for (torch::Tensor* t : outputs(f))
      if (t->defined()) *t = fn(*t);
    for (NamedTensors* named : {&f.stages, &f.activations, &f.attention})
      for (auto& entry : *named) entry.second = fn(entry.second);
    return f;
  }
};

// What a backbone's layers use to record activations and attention maps, only when the caller asked.
struct ForwardRecorder {
  const ForwardRequest& request;
  Forward& out;
  void activation(const std::string& name, const torch::Tensor& t) {
    if (request.activations) out.activations.emplace_back(name, t);
  }
  void attention(const std::string& name, const torch::Tensor& t) {
    if (request.attention && t.defined()) out.attention.emplace_back(name, t);
  }
  // A stage's output `t`, handed back as what the rest of the forward reads: where the request's gradient_at
  // names this stage, a leaf that requires grad, with autograd on from here (ForwardRequest::gradient_at).
  torch::Tensor stage(const std::string& name, const torch::Tensor& t) {
    if (!request.gradient_at || *request.gradient_at != name) return t;
    c10::GradMode::set_enabled(true);  // NetworkImpl::trunk's guard restores the caller's mode afterwards
    return t.detach().requires_grad_(true);
  }
};

class BackboneImpl : public torch::nn::Module {
 public:
  // Runs the trunk: fills feature_map (and tokens, activations, attention when asked).
  virtual Forward forward_features(const torch::Tensor& x, const ForwardRequest& request = {}) = 0;
  // The backbone's own global pooling of what forward_features produced, N x num_features(): a ResNet
  // averages its feature map, a ViT takes its class token (which the grid does not hold).
  virtual torch::Tensor pool(const Forward& f) = 0;
  // Channels and stride of each stage, shallow to deep.
  virtual std::vector<FeatureInfo> feature_info() const = 0;
  // Width of the pooled features.
  virtual int64_t num_features() const = 0;
  // timm's name for the classifier on top of this backbone (`fc` on a ResNet, `head` on a ViT), and the
  // initialisation timm gives it (PyTorch's default unless the family says otherwise).
  virtual std::string classifier_name() const = 0;
  virtual void init_classifier(torch::nn::LinearImpl& fc) {}
  // The family's own random initialisation (timm's), over torch's defaults. build_model calls it right after
  // construction, unless its caller overwrites every weight next (models::Initialisation::kNone).
  virtual void init_weights() {}
  // True when the family's inference runs faster with weights and activations in channels-last memory format
  // (oneDNN's convolutions); see NetworkImpl::prepare_for_inference.
  virtual bool prefers_channels_last() const { return false; }
  // For inference only, after the weights are loaded and in eval mode: folds each BatchNorm into the
  // convolution before it (one pass over the activations instead of two). Families without such pairs
  // leave this alone. The parameters are no longer timm's afterwards: never train or save a folded network.
  virtual void fold_batchnorm() {}
  // For inference only, after the weights are loaded: weights packed once into the layout of the kernels that
  // run them fastest here (a ViT: its token GEMMs in oneDNN). Packed copies follow no later change of the weights.
  virtual void pack_for_inference() {}
};

using Backbone = std::shared_ptr<BackboneImpl>;

}  // namespace attnvision::models
