// What every caption decoder shares (models/heads/show_attend_tell.cpp, transformer_decoder.cpp): teacher
// forcing for training, and greedy and beam search for inference, written once over three per-decoder steps:
// encode() turns a forward pass into what the decoder attends to (its memory: the backbone's feature map, or
// the Transformer's tokens), start() prepares a batch's state from that memory and step() emits one word's
// logits and where the decoder looked for it. The memory and the state are batch-first tensors (the LSTM's h
// and c, the Transformer's words so far, its memory's keys and values), so beam search reorders any decoder's
// beams alike.
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
  torch::Tensor attention;  // N x T x P, over the memory's P entries (the feature map's cells first)
  torch::Tensor score;      // N, the ranking score of the chosen beam
};

class CaptionDecoderImpl : public HeadImpl {
 public:
  explicit CaptionDecoderImpl(const ModelCfg& cfg) : cfg_(cfg) {}

  // Teacher forcing on request.targets (N x R x L reference ids, rows of <pad> for missing references) into
  // word_logits / word_alphas, and in eval mode the greedy caption into caption_ids / _logprobs / _attention.
  void forward(BackboneImpl& backbone, Forward& f, const ForwardRequest& request) final;

  // What the decoder attends to for a forward pass's images, batch first: by default the feature map (N x C x
  // h x w); the Transformer's tokens (N x P x D: the cells, then any detections; f.input feeds its detector).
  virtual torch::Tensor encode(const Forward& f) { return f.feature_map; }

  // Where in the input the memory's entries after the feature map's cells look, N x E x 4 boxes (x, y, w, h in
  // input pixels; a detection's box), for drawing a word's attention: N x 0 x 4 for a memory of cells alone.
  virtual torch::Tensor memory_boxes(const Forward& f) { return torch::zeros({f.feature_map.size(0), 0, 4}); }
  // What the memory's detection tokens are made from, N x E x F (the Transformer's: each detection's class
  // probabilities, score, box and the box's pixels), for inspection: N x 0 x 0 for a memory of cells alone.
  virtual torch::Tensor detection_features(const Forward& f) {
    return torch::zeros({f.feature_map.size(0), 0, 0});
  }

  // Beam search (greedy at beam 1) over a batch's memories (encode's), all images at once.
  Captions decode(const torch::Tensor& memory, const DecodeOptions& options);

 protected:
  // The state of N empty captions, one per memory.
  virtual DecoderState start(const torch::Tensor& memory) = 0;
  // Feeds each caption its previous word (N ids) and returns the next word's logits (N x V) and the attention
  // over the cells behind them (N x P).
  virtual std::pair<torch::Tensor, torch::Tensor> step(DecoderState& state, const torch::Tensor& words) = 0;
  // All words at once, given the previous ones (B x L ids, the memories already one per row): B x L x V
  // logits and the B x L x P attention to regularise (undefined when the decoder has no regulariser). This
  // default steps through the words; a decoder that can run them in parallel overrides it.
  virtual std::pair<torch::Tensor, torch::Tensor> teacher_force(const torch::Tensor& memory,
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
