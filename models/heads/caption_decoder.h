// What every caption decoder shares (models/heads/show_attend_tell.cpp, transformer_decoder.cpp): teacher
// forcing for training, and greedy and beam search for inference, written once over two per-decoder steps:
// start() prepares a batch's state from the backbone's feature map and step() emits one word's logits and
// where the decoder looked for it. The state is a list of batch-first tensors (the LSTM's h and c, the
// Transformer's words so far, the projected feature map), so beam search reorders any decoder's beams alike.
//
// Words are ids of the model's vocabulary (its labels; datasets/vocabulary.h): <pad> 0, <start> 1, <end> 2.
#pragma once

#include "models/heads/head.h"

#include <torch/types.h>

#include <utility>
#include <vector>

namespace attnvision::models {

using DecoderState = std::vector<torch::Tensor>;

struct DecodeOptions {
  int64_t beam = 1;        // beams per image; 1 is greedy decoding
  int64_t max_words = 20;  // words before <end>; a caption still open then is closed with <end>
  // Beams are ranked at the end by (sum of log p) / length^length_alpha, length counting <end>: 0 ranks by
  // the raw sum (which favours short captions), 1 by the mean log p per word.
  double length_alpha = 1.0;
  // Draw each word from the model's distribution instead of taking the likeliest (beam 1 only): the captions
  // self-critical training scores; their logprobs carry the gradient back to the decoder and the encoder.
  bool sample = false;
};

// A batch's captions, padded with <pad> after each <end>.
struct Captions {
  torch::Tensor ids;        // N x T int64
  torch::Tensor logprobs;   // N x T, log p of each chosen word (0 on padding), differentiable
  torch::Tensor attention;  // N x T x P, over the feature map's cells
  torch::Tensor score;      // N, the ranking score of the chosen beam
};

class CaptionDecoderImpl : public HeadImpl {
 public:
  explicit CaptionDecoderImpl(const ModelCfg& cfg) : cfg_(cfg) {}

  // Teacher forcing on request.targets (N x R x L reference ids, rows of <pad> for missing references) into
  // word_logits / word_alphas, and in eval mode the greedy caption into caption_ids / _logprobs / _attention.
  void forward(BackboneImpl& backbone, Forward& f, const ForwardRequest& request) final;

  // Beam search (greedy at beam 1) over a batch's feature maps (N x C x h x w), all images at once.
  Captions decode(const torch::Tensor& feature_map, const DecodeOptions& options);

 protected:
  // The state of N empty captions, one per feature map (N x C x h x w).
  virtual DecoderState start(const torch::Tensor& feature_map) = 0;
  // Feeds each caption its previous word (N ids) and returns the next word's logits (N x V) and the attention
  // over the cells behind them (N x P).
  virtual std::pair<torch::Tensor, torch::Tensor> step(DecoderState& state, const torch::Tensor& words) = 0;
  // All words at once, given the previous ones (B x L ids, the feature maps already one per row): B x L x V
  // logits and the B x L x P attention to regularise (undefined when the decoder has no regulariser). This
  // default steps through the words; a decoder that can run them in parallel overrides it.
  virtual std::pair<torch::Tensor, torch::Tensor> teacher_force(const torch::Tensor& feature_map,
                                                                const torch::Tensor& words);

  const ModelCfg& cfg() const { return cfg_; }

 private:
  ModelCfg cfg_;
};

// The training loss of teacher-forced outputs against the references (N x R x L): cross-entropy of every next
// word (padding ignored), plus Show-Attend-Tell's doubly stochastic attention regularisation when the decoder
// returned word_alphas: attention_reg x the mean over captions and cells of (1 - the cell's attention summed
// over the caption's words)^2.
torch::Tensor caption_loss(const ModelCfg& cfg, const Forward& f, const torch::Tensor& references,
                           double label_smoothing);

// The inputs and the next-word targets teacher forcing takes from references (N x R x L): (N R) x (L' - 1)
// each, L' the longest reference actually present (trailing all-padding columns dropped).
std::pair<torch::Tensor, torch::Tensor> teacher_inputs_and_targets(const torch::Tensor& references);

// The cells a decoder attends to in one image, for the FLOP counts: the input at the backbone's last stride (a
// ViT's patch, a ResNet's feature_stride).
double caption_cells(const ModelCfg& cfg);

}  // namespace attnvision::models
