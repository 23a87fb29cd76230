// A small Transformer decoder over the feature map (the captioning ablation's second attention decoder):
// word embeddings plus learned positions, decoder_layers pre-norm blocks of masked self-attention over the
// words so far, cross-attention to the cells (projected to the token width, plus learned row and column
// embeddings so the decoder knows where a cell is) and an MLP, then a final norm and the word logits.
// Teacher forcing runs every word in parallel under a causal mask; decoding runs one word per step against
// each block's cached keys and values (the words' so far and the cells', which are projected once per
// caption), all held as batch-first tensors so that beam search reorders them as any decoder state. The
// attention reported for a word is the last block's cross-attention, averaged over heads.
//
// With caption.detector_classes > 0 the decoder also attends to a detector's findings, as bottom-up attention
// (Anderson et al. 2018) attends to object regions: a CenterNet detector on a backbone of the captioner's
// architecture, embedded as the module `detector` (its parameters `detector.<a detector checkpoint's names>`),
// frozen and always in eval mode, runs on the same input in float32. Its detector_tokens strongest peaks each
// become one more memory token, after the cells: an MLP of the peak's class probabilities, its score, its box
// (centre, width and height as fractions of the input) and the input's pixels at 4 x 4 points spread over the
// box (the item's colours, which a detector trained to name kinds need not keep); with caption.detector_counts
// also the scene's expected count of each class and of the token's own (see detection_counts).
#include "models/heads/caption_decoder.h"

#include "models/heads/centernet.h"
#include "models/registry.h"
#include "models/runtime.h"
#include "models/second_stage.h"

#include <torch/torch.h>

#include <cmath>
#include <limits>
#include <stdexcept>

namespace attnvision::models {
namespace {

constexpr int64_t kMaxGridSide = 64;  // the largest feature-map side the position embeddings cover
constexpr int64_t kBoxPoints = 4;     // a detection token samples the input at kBoxPoints^2 points of its box

// What a detection token is made from: class probabilities, score, box (4), the box's pixels, and with
// detector_counts the scene's count per class and of its own class.
int64_t detection_feature_count(const ModelCfg& cfg) {
  const CaptionArgs& c = cfg.caption;
  return c.detector_classes + 5 + cfg.in_chans * kBoxPoints * kBoxPoints + (c.detector_counts ? c.detector_classes + 1 : 0);
}

// Multi-head attention that also hands back its weights (averaged over heads).
class AttentionImpl : public torch::nn::Module {
 public:
  AttentionImpl(int64_t dim, int64_t heads) : heads_(heads) {
    q_ = register_module("q", torch::nn::Linear(dim, dim));
    kv_ = register_module("kv", torch::nn::Linear(dim, 2 * dim));
    proj_ = register_module("proj", torch::nn::Linear(dim, dim));
  }

  // x: B x L x D queries, memory: B x M x D, mask: L x M additive (or undefined). Returns B x L x D and the
  // B x L x M weights.
  std::pair<torch::Tensor, torch::Tensor> forward(const torch::Tensor& x, const torch::Tensor& memory,
                                                  const torch::Tensor& mask) {
    const auto [k, v] = keys_values(memory);
    return attend(x, k, v, mask);
  }

  // The memory's keys and values, each B x heads x M x D/heads.
  std::pair<torch::Tensor, torch::Tensor> keys_values(const torch::Tensor& memory) {
    const int64_t b = memory.size(0), m = memory.size(1), hd = memory.size(2) / heads_;
    const std::vector<torch::Tensor> kv = kv_->forward(memory).reshape({b, m, 2, heads_, hd}).permute({2, 0, 3, 1, 4}).unbind(0);
    return {kv[0], kv[1]};
  }

  // The queries x (B x L x D) against keys and values from keys_values.
  std::pair<torch::Tensor, torch::Tensor> attend(const torch::Tensor& x, const torch::Tensor& k, const torch::Tensor& v,
                                                 const torch::Tensor& mask) {
    const int64_t b = x.size(0), l = x.size(1), d = x.size(2), hd = d / heads_;
    const torch::Tensor q = q_->forward(x).reshape({b, l, heads_, hd}).transpose(1, 2);
    torch::Tensor scores = torch::matmul(q, k.transpose(-2, -1)) / std::sqrt(static_cast<double>(hd));
    if (mask.defined()) scores = scores + mask;
    const torch::Tensor weights = torch::softmax(scores, -1);
    const torch::Tensor out = torch::matmul(weights, v).transpose(1, 2).reshape({b, l, d});
    return {proj_->forward(out), weights.mean(1)};
  }

 private:
  int64_t heads_;
  torch::nn::Linear q_{nullptr}, kv_{nullptr}, proj_{nullptr};
};
TORCH_MODULE(Attention);

class BlockImpl : public torch::nn::Module {
 public:
  BlockImpl(int64_t dim, int64_t heads, double dropout) {
    norm1_ = register_module("norm1", torch::nn::LayerNorm(torch::nn::LayerNormOptions({dim})));
    self_attn_ = register_module("self_attn", Attention(dim, heads));
    norm2_ = register_module("norm2", torch::nn::LayerNorm(torch::nn::LayerNormOptions({dim})));
    cross_attn_ = register_module("cross_attn", Attention(dim, heads));
    norm3_ = register_module("norm3", torch::nn::LayerNorm(torch::nn::LayerNormOptions({dim})));
    fc1_ = register_module("fc1", torch::nn::Linear(dim, 4 * dim));
    fc2_ = register_module("fc2", torch::nn::Linear(4 * dim, dim));
    dropout_ = register_module("dropout", torch::nn::Dropout(dropout));
  }

  // Returns the words' new tokens and their cross-attention weights over the memory.
  std::pair<torch::Tensor, torch::Tensor> forward(torch::Tensor x, const torch::Tensor& memory, const torch::Tensor& causal) {
    const torch::Tensor h = norm1_->forward(x);
    x = x + dropout_->forward(self_attn_->forward(h, h, causal).first);
    auto [cross, weights] = cross_attn_->forward(norm2_->forward(x), memory, torch::Tensor());
    return {finish(x + dropout_->forward(cross)), weights};
  }

  // The cells' keys and values for cross-attention, for step().
  std::pair<torch::Tensor, torch::Tensor> memory_keys_values(const torch::Tensor& memory) {
    return cross_attn_->keys_values(memory);
  }

  // One new word's token x (B x 1 x D) after the words whose self-attention keys and values `self_k` /
  // `self_v` hold (B x heads x t x D/heads; the new word's are appended), against the cells' cross_k / cross_v:
  // forward's last row, without re-running the words before it.
  std::pair<torch::Tensor, torch::Tensor> step(torch::Tensor x, torch::Tensor& self_k, torch::Tensor& self_v,
                                               const torch::Tensor& cross_k, const torch::Tensor& cross_v) {
    const torch::Tensor h = norm1_->forward(x);
    const auto [k, v] = self_attn_->keys_values(h);
    // The first word's replace the empty caches, whose dtype autocast may not share.
    self_k = self_k.size(2) == 0 ? k : torch::cat({self_k, k}, 2);
    self_v = self_v.size(2) == 0 ? v : torch::cat({self_v, v}, 2);
    x = x + dropout_->forward(self_attn_->attend(h, self_k, self_v, torch::Tensor()).first);
    auto [cross, weights] = cross_attn_->attend(norm2_->forward(x), cross_k, cross_v, torch::Tensor());
    return {finish(x + dropout_->forward(cross)), weights};
  }

 private:
  // The MLP and its residual.
  torch::Tensor finish(const torch::Tensor& x) {
    return x + dropout_->forward(fc2_->forward(torch::gelu(fc1_->forward(norm3_->forward(x)))));
  }

  torch::nn::LayerNorm norm1_{nullptr}, norm2_{nullptr}, norm3_{nullptr};
  Attention self_attn_{nullptr}, cross_attn_{nullptr};
  torch::nn::Linear fc1_{nullptr}, fc2_{nullptr};
  torch::nn::Dropout dropout_{nullptr};
};
TORCH_MODULE(Block);

class TransformerDecoderImpl : public CaptionDecoderImpl {
 public:
  TransformerDecoderImpl(const ModelCfg& cfg, BackboneImpl& backbone) : CaptionDecoderImpl(cfg) {
    namespace nn = torch::nn;
    const CaptionArgs& c = cfg.caption;
    const int64_t d = c.decoder_dim;
    word_embed_ = register_module("word_embed", nn::Embedding(cfg.num_classes, d));
    word_pos_ = register_parameter("word_pos", torch::randn({c.max_words + 2, d}) * 0.02);
    cell_proj_ = register_module("cell_proj", nn::Linear(backbone.num_features(), d));
    cell_row_ = register_parameter("cell_row", torch::randn({kMaxGridSide, d}) * 0.02);
    cell_col_ = register_parameter("cell_col", torch::randn({kMaxGridSide, d}) * 0.02);
    blocks_ = register_module("dec_blocks", nn::ModuleList());
    for (int64_t i = 0; i < c.decoder_layers; ++i) blocks_->push_back(Block(d, c.decoder_heads, c.decoder_dropout));
    norm_ = register_module("dec_norm", nn::LayerNorm(nn::LayerNormOptions({d})));
    dropout_ = register_module("word_dropout", nn::Dropout(c.decoder_dropout));
    word_out_ = register_module("word_out", nn::Linear(d, cfg.num_classes));
    if (c.detector_classes > 0) {
      detector_cfg_ = cfg.embedded_detector();
      detector_ = register_module("detector", build_model(detector_cfg_, Initialisation::kNone));
      for (auto& p : detector_->parameters()) p.requires_grad_(false);
      detector_->eval();
      if (c.detector_second_stage) {
        const ModelCfg stage = cfg.embedded_second_stage();
        const Network classifier = register_module("second_stage", build_model(stage, Initialisation::kNone));
        for (auto& p : classifier->parameters()) p.requires_grad_(false);
        classifier->eval();
        second_stage_ = SecondStage(classifier, stage, cfg);
      }
      const int64_t features = detection_feature_count(cfg);
      det_embed_ = register_module("det_embed", nn::Sequential(nn::Linear(features, d), nn::GELU(), nn::Linear(d, d)));
    }
  }

  // The cells' tokens, then the detections'.
  torch::Tensor encode(const Forward& f) override {
    const torch::Tensor cells = cell_tokens(f.feature_map);
    if (!detector_) return cells;
    return torch::cat({cells, detection_tokens(f.input).to(cells.scalar_type())}, 1);
  }

  torch::Tensor detection_features(const Forward& f) override {
    if (!detector_) return CaptionDecoderImpl::detection_features(f);
    return detection_inputs(f.input);
  }

  torch::Tensor memory_boxes(const Forward& f) override {
    if (!detector_) return CaptionDecoderImpl::memory_boxes(f);
    return detections(f.input).first.narrow(2, 0, 4);
  }

  // The embedded detector keeps its running statistics and never trains.
  void train(bool on) override {
    CaptionDecoderImpl::train(on);
    if (detector_) detector_->train(false);
    if (second_stage_) second_stage_.network().train(false);
  }

  void prepare_for_inference() override {
    if (detector_) detector_->prepare_for_inference(Precision::kFloat32);
    if (second_stage_) second_stage_.network().prepare_for_inference(Precision::kFloat32);
  }

 protected:
  // State, per block: the words' self-attention keys and values so far (N x heads x t x D/heads, empty at
  // first), and the memory's cross-attention keys and values (N x heads x P x D/heads).
  DecoderState start(const torch::Tensor& memory) override {
    const int64_t n = memory.size(0), heads = cfg().caption.decoder_heads, d = memory.size(2);
    DecoderState s;
    for (const auto& block : *blocks_) {
      const torch::Tensor none = memory.new_empty({n, heads, 0, d / heads});
      auto [k, v] = block->as<Block>()->memory_keys_values(memory);
      s.insert(s.end(), {none, none, k, v});
    }
    return s;
  }

  std::pair<torch::Tensor, torch::Tensor> step(DecoderState& s, const torch::Tensor& words) override {
    const int64_t t = s[0].size(2);  // the words before this one
    if (t >= word_pos_.size(0)) throw std::invalid_argument("transformer decoder: more words than max_words + 2");
    torch::Tensor x = dropout_->forward(word_embed_->forward(words.unsqueeze(1)) + word_pos_.narrow(0, t, 1));
    torch::Tensor weights;
    size_t i = 0;
    for (const auto& block : *blocks_) {
      std::tie(x, weights) = block->as<Block>()->step(x, s[i], s[i + 1], s[i + 2], s[i + 3]);
      i += 4;
    }
    return {word_out_->forward(norm_->forward(x)).select(1, 0), weights.select(1, 0)};
  }

  std::pair<torch::Tensor, torch::Tensor> teacher_force(const torch::Tensor& memory, const torch::Tensor& words) override {
    // The regulariser is Show-Attend-Tell's; this decoder trains on the words alone.
    return {run(memory, words).first, torch::Tensor()};
  }

 private:
  torch::Tensor cell_tokens(const torch::Tensor& feature_map) {
    const int64_t h = feature_map.size(2), w = feature_map.size(3);
    if (h > kMaxGridSide || w > kMaxGridSide)
      throw std::invalid_argument("transformer decoder: a " + std::to_string(h) + "x" + std::to_string(w) +
                                  " feature map is larger than the " + std::to_string(kMaxGridSide) + "-cell side it places");
    const torch::Tensor where = (cell_row_.narrow(0, 0, h).unsqueeze(1) + cell_col_.narrow(0, 0, w).unsqueeze(0)).reshape({h * w, -1});
    return cell_proj_->forward(feature_map.flatten(2).transpose(1, 2)) + where;
  }

  // One token per detection of the embedded detector on `image` (N x C x H x W, as the network was fed):
  // N x detector_tokens x D. The detector runs without gradient; the pixels sampled from the image keep theirs.
  torch::Tensor detection_tokens(const torch::Tensor& image) {
    return det_embed_->forward(detection_inputs(image));
  }

  // What each detection token is made from: N x detector_tokens x detection_feature_count(cfg()).
  torch::Tensor detection_inputs(const torch::Tensor& image) {
    const auto [found, classes] = detections(image);
    const int64_t n = found.size(0), kept = found.size(1);
    const double height = static_cast<double>(image.size(2)), width = static_cast<double>(image.size(3));
    const torch::Tensor x = found.select(2, 0) / width, y = found.select(2, 1) / height;
    const torch::Tensor w = found.select(2, 2) / width, h = found.select(2, 3) / height;
    const torch::Tensor box = torch::stack({x + w / 2, y + h / 2, w, h}, 2);  // N x k x 4
    // kBoxPoints^2 points at the centres of a kBoxPoints x kBoxPoints split of each box, in grid_sample's
    // [-1, 1] coordinates (align_corners false: -1 and 1 are the input's outer edges).
    const torch::Tensor steps = (torch::arange(kBoxPoints, found.options()) + 0.5) / kBoxPoints;  // P
    const torch::Tensor px = x.unsqueeze(2).unsqueeze(3) + w.unsqueeze(2).unsqueeze(3) * steps.view({1, 1, 1, -1});
    const torch::Tensor py = y.unsqueeze(2).unsqueeze(3) + h.unsqueeze(2).unsqueeze(3) * steps.view({1, 1, -1, 1});
    const torch::Tensor grid = torch::stack({px.expand({n, kept, kBoxPoints, kBoxPoints}),
                                             py.expand({n, kept, kBoxPoints, kBoxPoints})}, 4) * 2 - 1;
    const torch::Tensor pixels = torch::grid_sampler(image.to(torch::kFloat), grid.reshape({n, kept * kBoxPoints * kBoxPoints, 1, 2}),
                                                     /*bilinear*/ 0, /*zeros*/ 0, /*align_corners=*/false);  // N x C x k P x 1
    const torch::Tensor colours = pixels.reshape({n, image.size(1), kept, kBoxPoints * kBoxPoints})
                                      .permute({0, 2, 1, 3}).reshape({n, kept, -1});
    const torch::Tensor inputs = torch::cat({classes, found.select(2, 4).unsqueeze(2), box, colours}, 2);
    if (!cfg().caption.detector_counts) return inputs;
    return torch::cat({inputs, detection_counts(found, classes)}, 2);
  }

  // Per token, the scene's counts as the detections give them (N x k x (detector_classes + 1)): per class the
  // expected number of items, sum over tokens of score x p(class), then the expected number sharing this
  // token's class, itself included (that vector weighted by its own class probabilities). Padding rows have
  // score and probabilities 0, so they count for nothing.
  static torch::Tensor detection_counts(const torch::Tensor& found, const torch::Tensor& classes) {
    const torch::Tensor per_class = (classes * found.select(2, 4).unsqueeze(2)).sum(1, /*keepdim=*/true);  // N x 1 x C
    const torch::Tensor own = (classes * per_class).sum(2, /*keepdim=*/true);                             // N x k x 1
    return torch::cat({per_class.expand_as(classes), own}, 2);
  }

  // The embedded detector's detector_tokens strongest peaks on `image` (centernet_decode_with_classes: N x k x 6
  // and N x k x detector_classes), without gradient, in float32. An input with fewer cells than detector_tokens
  // gets rows of zeros for the rest (no class, no score, an empty box in the corner).
  std::pair<torch::Tensor, torch::Tensor> detections(const torch::Tensor& image) {
    const int64_t k = cfg().caption.detector_tokens, stride = detector_cfg_.detection.output_stride;
    const torch::NoGradGuard no_grad;
    const NoAutocastScope float32;
    auto [found, classes] = centernet_decode_with_classes(detector_->forward(image.detach().to(torch::kFloat)), k, stride);
    const int64_t n = found.size(0), kept = found.size(1);
    if (kept < k) {
      found = torch::cat({found, found.new_zeros({n, k - kept, found.size(2)})}, 1);
      classes = torch::cat({classes, classes.new_zeros({n, k - kept, classes.size(2)})}, 1);
    }
    if (second_stage_) std::tie(found, classes) = read_again(image, found, classes);
    return {found, classes};
  }

  // The second stage's view of `found` / `classes` (detections()'s): every detection scoring at least
  // kSecondStageMinScore is cropped and classified, and its class probabilities become the geometric mean of
  // the detector's and the crop's, its score that of its class (the score `detect` ranks by). The rest, and the
  // rows of zeros for missing peaks, stay as they are and are not cropped.
  std::pair<torch::Tensor, torch::Tensor> read_again(const torch::Tensor& image, torch::Tensor found,
                                                     torch::Tensor classes) {
    const int64_t n = found.size(0), k = found.size(1);
    const SecondStage::Reading r =
        second_stage_.read(image.detach().to(torch::kFloat), found, kSecondStageMinScore, n * k);
    if (r.rows.numel() == 0) return {found, classes};
    const torch::Tensor flat_found = found.reshape({n * k, -1}).clone();
    const torch::Tensor flat_classes = classes.reshape({n * k, -1}).clone();
    const torch::Tensor own = r.own_class(found);
    flat_classes.index_copy_(0, r.rows, second_stage_fuse(flat_classes.index_select(0, r.rows), r.p));
    flat_found.select(1, 4).index_copy_(
        0, r.rows, second_stage_fuse(flat_found.select(1, 4).index_select(0, r.rows), own));
    return {flat_found.view_as(found), flat_classes.view_as(classes)};
  }

  // Logits (N x t x V) and the last block's cross-attention (N x t x P) of every prefix of `words` (N x t).
  std::pair<torch::Tensor, torch::Tensor> run(const torch::Tensor& memory, const torch::Tensor& words) {
    const int64_t t = words.size(1);
    if (t > word_pos_.size(0)) throw std::invalid_argument("transformer decoder: more words than max_words + 2");
    torch::Tensor x = dropout_->forward(word_embed_->forward(words) + word_pos_.narrow(0, 0, t));
    const torch::Tensor causal =
        torch::full({t, t}, -std::numeric_limits<float>::infinity(), memory.options()).triu(1);
    torch::Tensor weights;
    for (const auto& block : *blocks_) std::tie(x, weights) = block->as<Block>()->forward(x, memory, causal);
    return {word_out_->forward(norm_->forward(x)), weights};
  }

  torch::nn::Embedding word_embed_{nullptr};
  torch::Tensor word_pos_, cell_row_, cell_col_;
  torch::nn::Linear cell_proj_{nullptr}, word_out_{nullptr};
  torch::nn::ModuleList blocks_{nullptr};
  torch::nn::LayerNorm norm_{nullptr};
  torch::nn::Dropout dropout_{nullptr};
  ModelCfg detector_cfg_;                    // the embedded detector's, when there is one
  Network detector_{nullptr};
  SecondStage second_stage_;                 // the detector's second stage, when the captioner embeds one
  torch::nn::Sequential det_embed_{nullptr};  // a detection's features -> its memory token
};

}  // namespace

Head build_transformer_decoder_head(const ModelCfg& cfg, BackboneImpl& backbone) {
  return std::make_shared<TransformerDecoderImpl>(cfg, backbone);
}

// Per caption, decoded a word at a time against cached keys and values: per word and block the self- and
// cross-attention projections, the MLP, the scores and sums over the memory and over the words so far (their
// prefix lengths summed over the steps); the word logits; the memory's tokens (the cells' projection, the
// detections' MLP) and keys and values once. (An embedded detector's own forward is counted by forward_gflops,
// from its cfg.)
double transformer_decoder_gmacs(const ModelCfg& cfg, int64_t num_features) {
  const CaptionArgs& c = cfg.caption;
  const double cells = caption_cells(cfg);
  const double d = static_cast<double>(c.decoder_dim), words = static_cast<double>(c.max_words + 1);
  const double detections = c.detector_classes > 0 ? static_cast<double>(c.detector_tokens) : 0.0;
  const double detection_features = static_cast<double>(detection_feature_count(cfg));
  const double memory = cells + detections;
  const double prefixes = words * (words + 1) / 2;  // prefix lengths summed over the decoding steps
  const double layers = static_cast<double>(c.decoder_layers);
  // self-attention q, k, v and proj; cross-attention q and proj, and its scores and sum over the memory; MLP
  const double per_word_block = 4 * d * d + 2 * d * d + 2 * memory * d + 8 * d * d;
  return (cells * static_cast<double>(num_features) * d + detections * (detection_features * d + d * d) +
          memory * 2 * d * d * layers + words * (layers * per_word_block + d * static_cast<double>(cfg.num_classes)) +
          prefixes * layers * 2 * d) /
         1e9;
}

}  // namespace attnvision::models
