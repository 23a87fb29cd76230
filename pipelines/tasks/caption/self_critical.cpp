// Self-critical sequence training for captioners (Rennie et al., "Self-critical Sequence Training for Image
// Captioning", CVPR 2017): the caption a model is scored by is one it decodes itself, so after teacher forcing
// it is trained on its own captions with CIDEr-D as the reward. Each image draws several captions; a caption's
// advantage is its CIDEr-D minus the mean of the image's other draws (Luo, "A Better Variant of Self-Critical
// Sequence Training", 2020: no greedy decode for the baseline, and the baseline is unbiased), and the loss is
// minus the advantage times the caption's log-probability, per word.
#include "pipelines/tasks/caption/self_critical.h"

#include "datasets/caption_set.h"
#include "datasets/vocabulary.h"
#include "models/heads/caption_decoder.h"
#include "pipelines/metrics/caption_scores.h"

#include <torch/torch.h>

#include <stdexcept>

namespace attnvision::pipelines {
namespace {

using datasets::Tokens;
using datasets::Vocabulary;

std::vector<std::vector<Tokens>> corpus_of(const Vocabulary& vocabulary, const torch::Tensor& targets) {
  std::vector<std::vector<Tokens>> corpus;
  for (int64_t i = 0; i < targets.size(0); ++i) corpus.push_back(datasets::reference_captions(vocabulary, targets[i]));
  return corpus;
}

class CaptionSelfCritical : public SequenceObjective {
 public:
  CaptionSelfCritical(const models::ModelCfg& cfg, const torch::Tensor& train_targets, int64_t samples)
      : vocabulary_(Vocabulary::from_json(cfg.labels, "the captioner's labels (its vocabulary)")),
        cider_(corpus_of(vocabulary_, train_targets)), samples_(samples), max_words_(cfg.caption.max_words) {
    if (samples < 2)
      throw std::invalid_argument("self-critical training draws at least 2 captions per image (each one's "
                                  "baseline is the mean of the others); got " + std::to_string(samples));
  }

  torch::Tensor loss(models::NetworkImpl& net, const torch::Tensor& x, const torch::Tensor& targets,
                     models::Precision precision, double& mean_reward) override {
    auto* decoder = dynamic_cast<models::CaptionDecoderImpl*>(&net.head());
    if (!decoder) throw std::logic_error("self-critical training: the network has no caption decoder head");
    const models::AutocastScope autocast(precision);
    const torch::Tensor memory = decoder->encode(net.features(x));
    models::DecodeOptions draw;
    draw.max_words = max_words_;
    draw.sample = true;
    // Row i k + j is image i's draw j.
    const models::Captions c = decoder->decode(memory.repeat_interleave(samples_, 0), draw);

    const int64_t n = x.size(0), k = samples_;
    torch::Tensor reward = torch::empty({n, k}, torch::kFloat64);
    auto r = reward.accessor<double, 2>();
    for (int64_t i = 0; i < n; ++i) {
      std::vector<Tokens> drawn;
      for (int64_t j = 0; j < k; ++j) drawn.push_back(datasets::caption_words(vocabulary_, c.ids[i * k + j]));
      const std::vector<double> scores = cider_.score(drawn, datasets::reference_captions(vocabulary_, targets[i]));
      for (int64_t j = 0; j < k; ++j) r[i][j] = scores[static_cast<size_t>(j)];
    }
    mean_reward = reward.mean().item<double>();
    // Each draw against the mean of its image's other draws.
    const torch::Tensor baseline = (reward.sum(1, true) - reward) / static_cast<double>(k - 1);
    const torch::Tensor advantage = (reward - baseline).to(torch::kFloat32).reshape({n * k, 1});
    // Every word drawn counts, <end> too (the caption's length is the model's choice as much as its words).
    const torch::Tensor words = c.ids.ne(Vocabulary::kPad).to(torch::kFloat32);
    return -(advantage * c.logprobs * words).sum() / words.sum().clamp_min(1);
  }

 private:
  Vocabulary vocabulary_;
  CiderD cider_;
  int64_t samples_, max_words_;
};

}  // namespace

std::unique_ptr<SequenceObjective> make_caption_self_critical(const models::ModelCfg& cfg,
                                                              const torch::Tensor& train_targets, int64_t samples) {
  return std::make_unique<CaptionSelfCritical>(cfg, train_targets, samples);
}

}  // namespace attnvision::pipelines
