#include "pipelines/metrics/caption_metric.h"

#include "datasets/caption_set.h"
#include "models/heads/caption_decoder.h"
#include "vision/image_write.h"
#include "vision/plot.h"

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <cmath>
#include <cstdio>

namespace attnvision::pipelines {

CaptionMetric::CaptionMetric(const models::ModelCfg& /*cfg*/, const std::vector<std::string>& labels)
    : vocabulary_(datasets::Vocabulary::from_json(labels, "the captioner's labels (its vocabulary)")),
      counts_(torch::zeros({4}, torch::kFloat64)) {}

void CaptionMetric::add(const models::Forward& f, const torch::Tensor& references) {
  const int64_t n = references.size(0);
  counts_[1] += static_cast<double>(n);
  if (f.word_logits.defined()) {
    const auto [inputs, targets] = models::teacher_inputs_and_targets(references);
    const torch::Tensor logits = f.word_logits.reshape({-1, f.word_logits.size(2)});
    const torch::Tensor next = targets.reshape({-1});
    const torch::Tensor real = next.ne(datasets::Vocabulary::kPad);
    const torch::Tensor ce = torch::nn::functional::cross_entropy(
        logits, next, torch::nn::functional::CrossEntropyFuncOptions().ignore_index(datasets::Vocabulary::kPad));
    counts_[0] += ce.item<double>() * static_cast<double>(n);
    counts_[2] += logits.argmax(1).eq(next).logical_and(real).sum().item<double>();
    counts_[3] += real.sum().item<double>();
  }
  if (!f.caption_ids.defined()) return;
  scored_ = false;
  for (int64_t i = 0; i < n; ++i) {
    CaptionPair pair;
    pair.image_id = static_cast<int64_t>(pairs_.size());
    pair.references = datasets::reference_captions(vocabulary_, references[i]);
    pair.candidate = datasets::caption_words(vocabulary_, f.caption_ids[i]);
    pairs_.push_back(std::move(pair));
  }
}

int64_t CaptionMetric::count() const { return static_cast<int64_t>(counts_[1].item<double>()); }

const CaptionScores& CaptionMetric::scores() const {
  if (!scored_) {
    scores_ = pairs_.empty() ? CaptionScores{} : score_captions(pairs_);
    scored_ = true;
  }
  return scores_;
}

double CaptionMetric::score() const { return pairs_.empty() ? NAN : scores().cider_d; }

double CaptionMetric::loss() const {
  return counts_[3].item<double>() > 0 ? counts_[0].item<double>() / counts_[1].item<double>() : NAN;
}

double CaptionMetric::word_accuracy() const {
  const double words = counts_[3].item<double>();
  return words > 0 ? counts_[2].item<double>() / words : NAN;
}

std::string CaptionMetric::progress() const {
  char text[48];
  std::snprintf(text, sizeof(text), "word acc %.1f%%", 100.0 * word_accuracy());
  return text;
}

nlohmann::json CaptionMetric::summary() const {
  auto num = [](double v) { return std::isnan(v) ? nlohmann::json(nullptr) : nlohmann::json(v); };
  nlohmann::json j = {{"count", count()}, {"loss", num(loss())}, {"word_accuracy", num(word_accuracy())}};
  if (!pairs_.empty()) j.update(scores().to_json());
  return j;
}

std::string CaptionMetric::report() const {
  char line[200];
  std::snprintf(line, sizeof(line), "images: %lld  loss: %.4f  next-word accuracy: %.2f%%\n",
                static_cast<long long>(count()), loss(), 100.0 * word_accuracy());
  std::string text = line;
  if (pairs_.empty()) return text;
  const CaptionScores& s = scores();
  std::snprintf(line, sizeof(line), "BLEU-1 %.4f  BLEU-2 %.4f  BLEU-3 %.4f  BLEU-4 %.4f  ROUGE-L %.4f  CIDEr-D %.4f\n",
                s.bleu[0], s.bleu[1], s.bleu[2], s.bleu[3], s.rouge_l, s.cider_d);
  return text + line;
}

void CaptionMetric::write_chart(const std::string& path) const {
  vision::Series bars{"score", {}, {}};
  if (!pairs_.empty()) {
    const CaptionScores& s = scores();
    const double values[] = {s.bleu[0], s.bleu[1], s.bleu[2], s.bleu[3], s.rouge_l, s.cider_d};
    for (int k = 0; k < 6; ++k) bars.x.push_back(k), bars.y.push_back(values[k]);
  }
  vision::write_png(path, vision::plot_panels({{"BLEU-1..4, ROUGE-L, CIDEr-D", {bars}}}));
}

}  // namespace attnvision::pipelines
