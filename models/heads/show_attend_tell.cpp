// "Show, Attend and Tell" (Xu et al. 2015): an LSTM that, before each word, looks over the feature map's cells
// with soft additive attention (alpha = softmax(w . tanh(W_c cell + W_h h))), scales the attended context by a
// gating scalar beta = sigmoid(W_beta h) and reads it with the previous word's embedding. The initial state
// comes from the mean cell. Training adds the doubly stochastic regulariser (caption_loss).
//
// The no-attention baseline of the ablation is the same LSTM with the attention taken out: it reads the
// mean-pooled feature map at every word. It lives here, as a flag, because it is this decoder minus one
// part; a copy of the LSTM in its own file would drift from the one it is measured against.
#include "models/heads/caption_decoder.h"

#include <torch/torch.h>

namespace attnvision::models {
namespace {

class LstmDecoderImpl : public CaptionDecoderImpl {
 public:
  LstmDecoderImpl(const ModelCfg& cfg, BackboneImpl& backbone, bool attend) : CaptionDecoderImpl(cfg), attend_(attend) {
    namespace nn = torch::nn;
    const CaptionArgs& c = cfg.caption;
    const int64_t features = backbone.num_features();
    word_embed_ = register_module("word_embed", nn::Embedding(cfg.num_classes, c.word_dim));
    init_h_ = register_module("init_h", nn::Linear(features, c.decoder_dim));
    init_c_ = register_module("init_c", nn::Linear(features, c.decoder_dim));
    if (attend_) {
      att_cells_ = register_module("att_cells", nn::Linear(features, c.attention_dim));
      att_state_ = register_module("att_state", nn::Linear(c.decoder_dim, c.attention_dim));
      att_score_ = register_module("att_score", nn::Linear(c.attention_dim, 1));
      gate_ = register_module("att_gate", nn::Linear(c.decoder_dim, features));
    }
    lstm_ = register_module("lstm", nn::LSTMCell(c.word_dim + features, c.decoder_dim));
    dropout_ = register_module("word_dropout", nn::Dropout(c.decoder_dropout));
    word_out_ = register_module("word_out", nn::Linear(c.decoder_dim, cfg.num_classes));
  }

 protected:
  // State: cells (N x P x C), their attention projection (N x P x A; the mean cell N x C without attention),
  // h and c (N x H).
  DecoderState start(const torch::Tensor& feature_map) override {
    const torch::Tensor cells = feature_map.flatten(2).transpose(1, 2);
    const torch::Tensor mean = cells.mean(1);
    return {cells, attend_ ? att_cells_->forward(cells) : mean, init_h_->forward(mean), init_c_->forward(mean)};
  }

  std::pair<torch::Tensor, torch::Tensor> step(DecoderState& s, const torch::Tensor& words) override {
    const torch::Tensor& cells = s[0];
    torch::Tensor context, alpha;
    if (attend_) {
      const torch::Tensor e = att_score_->forward(torch::tanh(s[1] + att_state_->forward(s[2]).unsqueeze(1))).squeeze(2);
      alpha = torch::softmax(e, 1);
      context = torch::sigmoid(gate_->forward(s[2])) * (cells * alpha.unsqueeze(2)).sum(1);
    } else {
      context = s[1];
      alpha = torch::full({cells.size(0), cells.size(1)}, 1.0 / static_cast<double>(cells.size(1)), cells.options());
    }
    std::tie(s[2], s[3]) = lstm_->forward(torch::cat({word_embed_->forward(words), context}, 1), std::make_tuple(s[2], s[3]));
    return {word_out_->forward(dropout_->forward(s[2])), alpha};
  }

  std::pair<torch::Tensor, torch::Tensor> teacher_force(const torch::Tensor& feature_map, const torch::Tensor& words) override {
    auto [logits, alphas] = CaptionDecoderImpl::teacher_force(feature_map, words);
    return {logits, attend_ ? alphas : torch::Tensor()};  // the baseline's uniform weights have nothing to regularise
  }

 private:
  bool attend_;
  torch::nn::Embedding word_embed_{nullptr};
  torch::nn::Linear init_h_{nullptr}, init_c_{nullptr}, att_cells_{nullptr}, att_state_{nullptr}, att_score_{nullptr},
      gate_{nullptr}, word_out_{nullptr};
  torch::nn::LSTMCell lstm_{nullptr};
  torch::nn::Dropout dropout_{nullptr};
};

}  // namespace

Head build_show_attend_tell_head(const ModelCfg& cfg, BackboneImpl& backbone) {
  return std::make_shared<LstmDecoderImpl>(cfg, backbone, /*attend=*/true);
}

Head build_mean_lstm_head(const ModelCfg& cfg, BackboneImpl& backbone) {
  return std::make_shared<LstmDecoderImpl>(cfg, backbone, /*attend=*/false);
}

// Per caption of max_words words: the LSTM cell, the word logits and (an upper bound for the baseline) the
// attention over the cells, whose count follows from the input size at the backbone's stride.
double lstm_decoder_gmacs(const ModelCfg& cfg, int64_t num_features) {
  const CaptionArgs& c = cfg.caption;
  const double cells = caption_cells(cfg);
  const double f = static_cast<double>(num_features), h = static_cast<double>(c.decoder_dim);
  const double per_word = 4 * h * (static_cast<double>(c.word_dim) + f + h) + h * static_cast<double>(cfg.num_classes) +
                          h * static_cast<double>(c.attention_dim) + cells * (static_cast<double>(c.attention_dim) + f) + h * f;
  return (cells * f * static_cast<double>(c.attention_dim) + static_cast<double>(c.max_words + 1) * per_word) / 1e9;
}

}  // namespace attnvision::models
