#include "models/heads/caption_decoder.h"

#include <torch/torch.h>

#include <cmath>
#include <limits>
#include <stdexcept>
#include <tuple>

namespace attnvision::models {
namespace {

constexpr int64_t kPad = 0, kStart = 1, kEnd = 2;  // datasets::Vocabulary's specials

}  // namespace

std::pair<torch::Tensor, torch::Tensor> teacher_inputs_and_targets(const torch::Tensor& references) {
  if (references.dim() != 3 || references.scalar_type() != torch::kLong || references.size(2) < 2)
    throw std::invalid_argument("caption references must be N x R x L int64 word ids with L >= 2");
  const torch::Tensor rows = references.flatten(0, 1);
  // Columns up to the longest reference: a batch of short captions does not pay for the set's longest.
  const int64_t used = std::max<int64_t>(2, rows.ne(kPad).sum(1).max().item<int64_t>());
  const torch::Tensor kept = rows.narrow(1, 0, used);
  return {kept.narrow(1, 0, used - 1), kept.narrow(1, 1, used - 1)};
}

void CaptionDecoderImpl::forward(BackboneImpl&, Forward& f, const ForwardRequest& request) {
  const torch::Tensor memory = encode(f);
  if (request.targets.defined()) {
    const int64_t references = request.targets.size(1);
    const auto [inputs, _] = teacher_inputs_and_targets(request.targets);
    std::tie(f.word_logits, f.word_alphas) = teacher_force(memory.repeat_interleave(references, 0), inputs);
  }
  if (!is_training()) {
    const Captions c = decode(memory, {1, cfg_.caption.max_words, 1.0});
    f.caption_ids = c.ids, f.caption_logprobs = c.logprobs, f.caption_attention = c.attention;
  }
}

std::pair<torch::Tensor, torch::Tensor> CaptionDecoderImpl::teacher_force(const torch::Tensor& memory,
                                                                          const torch::Tensor& words) {
  DecoderState state = start(memory);
  std::vector<torch::Tensor> logits, alphas;
  for (int64_t t = 0; t < words.size(1); ++t) {
    auto [l, a] = step(state, words.select(1, t));
    logits.push_back(l), alphas.push_back(a);
  }
  return {torch::stack(logits, 1), torch::stack(alphas, 1)};
}

Captions CaptionDecoderImpl::decode(const torch::Tensor& memory, const DecodeOptions& o) {
  if (o.beam < 1 || o.max_words < 1) throw std::invalid_argument("decode: beam and max_words must be >= 1");
  if (o.sample && o.beam != 1) throw std::invalid_argument("decode: sampling draws one caption per row (beam 1)");
  const int64_t n = memory.size(0), k = o.beam;
  const auto long_opts = torch::TensorOptions().dtype(torch::kLong).device(memory.device());
  const auto float_opts = torch::TensorOptions().dtype(torch::kFloat32).device(memory.device());
  const float neg_inf = -std::numeric_limits<float>::infinity();

  DecoderState state = start(k == 1 ? memory : memory.repeat_interleave(k, 0));
  torch::Tensor words = torch::full({n * k}, kStart, long_opts);
  // Beam j of image i is row i k + j. At the start every beam is the same empty caption: only beam 0 is live,
  // so the first step expands k different words rather than k copies of the best one.
  torch::Tensor score = torch::zeros({n, k}, float_opts);
  if (k > 1) score.narrow(1, 1, k - 1).fill_(neg_inf);
  torch::Tensor finished = torch::zeros({n * k}, long_opts.dtype(torch::kBool));
  torch::Tensor length = torch::zeros({n * k}, float_opts);
  torch::Tensor ids = torch::empty({n * k, 0}, long_opts);
  torch::Tensor logprobs = torch::empty({n * k, 0}, float_opts);
  torch::Tensor attention;  // N k x t x P, begun at the first step, which says P
  // A finished caption continues with <pad> at no cost, so it keeps its score while it competes.
  torch::Tensor pad_only = torch::full({1, cfg_.num_classes}, neg_inf, float_opts);
  pad_only[0][kPad] = 0.0f;
  // <pad> and <start> are never a next word in training, so their logits are untrained: no caption takes them.
  // (Added, not written in place: the log-softmax's backward needs its output as it was.)
  torch::Tensor never = torch::zeros({1, cfg_.num_classes}, float_opts);
  never[0][kPad] = neg_inf;
  never[0][kStart] = neg_inf;
  const torch::Tensor image_base = torch::arange(n, long_opts).unsqueeze(1) * k;

  for (int64_t t = 0; t <= o.max_words; ++t) {
    auto [logits, alpha] = step(state, words);
    torch::Tensor logp = torch::log_softmax(logits.to(torch::kFloat32), 1) + never;
    if (t == o.max_words) {  // the last word any caption gets is <end>
      torch::Tensor only_end = torch::full_like(logp, neg_inf);
      only_end.select(1, kEnd).copy_(logp.select(1, kEnd));
      logp = only_end;
    }
    logp = torch::where(finished.unsqueeze(1), pad_only.expand_as(logp), logp);
    const torch::Tensor candidates = (score.reshape({n * k, 1}) + logp).reshape({n, -1});
    torch::Tensor best, index;
    if (o.sample) {  // k is 1: a row's candidates are its next word's log-probabilities plus a constant
      index = torch::multinomial(logp.detach().exp(), 1);
      best = candidates.gather(1, index);
    } else {
      std::tie(best, index) = candidates.topk(k, 1);
    }
    const torch::Tensor origin = (image_base + torch::div(index, cfg_.num_classes, "floor")).flatten();
    const torch::Tensor word = index.remainder(cfg_.num_classes).flatten();

    // With one beam every row continues itself: no reordering (whose backward, for sampled captions, would
    // scatter every step's whole state back row by row).
    const auto follow = [&](const torch::Tensor& t) { return k == 1 ? t : t.index_select(0, origin); };
    for (torch::Tensor& s : state) s = follow(s);
    const torch::Tensor word_logp = follow(logp).gather(1, word.unsqueeze(1));
    const torch::Tensor was_finished = follow(finished);
    if (!attention.defined()) attention = torch::empty({n * k, 0, alpha.size(1)}, float_opts);
    ids = torch::cat({follow(ids), word.unsqueeze(1)}, 1);
    logprobs = torch::cat({follow(logprobs), word_logp}, 1);
    attention = torch::cat({follow(attention), follow(alpha.to(torch::kFloat32)).unsqueeze(1)}, 1);
    length = follow(length) + was_finished.logical_not().to(torch::kFloat32);
    finished = was_finished.logical_or(word.eq(kEnd));
    score = best;
    words = word;
    if (finished.all().item<bool>()) break;
  }

  // The best beam of each image by the length-normalised score.
  const torch::Tensor ranked = score.reshape({n * k}) / length.clamp_min(1.0).pow(o.length_alpha);
  const torch::Tensor chosen = image_base.flatten() + ranked.reshape({n, k}).argmax(1);
  return {ids.index_select(0, chosen), logprobs.index_select(0, chosen), attention.index_select(0, chosen),
          ranked.index_select(0, chosen)};
}

torch::Tensor caption_loss(const ModelCfg& cfg, const Forward& f, const torch::Tensor& references,
                           double label_smoothing) {
  if (!f.word_logits.defined())
    throw std::logic_error("caption_loss: the forward pass had no teacher forcing (ForwardRequest::targets)");
  const auto [inputs, targets] = teacher_inputs_and_targets(references);
  const torch::Tensor logits = f.word_logits.to(torch::kFloat32);
  torch::Tensor loss = torch::nn::functional::cross_entropy(
      logits.reshape({-1, logits.size(2)}), targets.reshape({-1}),
      torch::nn::functional::CrossEntropyFuncOptions().ignore_index(kPad).label_smoothing(label_smoothing));
  if (f.word_alphas.defined() && cfg.caption.attention_reg > 0) {
    const torch::Tensor real = targets.ne(kPad);  // the steps that predict a word of the reference
    const torch::Tensor rows = real.any(1);       // references that exist (not an all-padding row)
    const torch::Tensor seen = (f.word_alphas.to(torch::kFloat32) * real.unsqueeze(2)).sum(1);  // B x P
    const torch::Tensor reg = (1.0 - seen).pow(2).mean(1);
    loss = loss + cfg.caption.attention_reg * (reg * rows).sum() / rows.sum().clamp_min(1);
  }
  return loss;
}

double caption_cells(const ModelCfg& cfg) {
  const int64_t stride = cfg.backbone_stride();
  return static_cast<double>(cfg.input_size[1] / stride) * static_cast<double>(cfg.input_size[2] / stride);
}

}  // namespace attnvision::models
