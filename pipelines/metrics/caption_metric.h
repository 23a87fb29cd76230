// The caption metric: coco-caption's BLEU-1..4, ROUGE-L and CIDEr-D (pipelines/metrics/caption_scores.h) of
// the greedy captions an eval-mode network decodes, against the batch's references; and from teacher forcing,
// the next-word loss and accuracy. The trainer validates with it every epoch (CIDEr-D is the score it keeps
// the best checkpoint by; training batches, which decode nothing, report the word accuracy); `eval` prints it.
#pragma once

#include "datasets/vocabulary.h"
#include "models/model_cfg.h"
#include "pipelines/metrics/caption_scores.h"
#include "pipelines/metrics/metric.h"

#include <string>
#include <vector>

namespace attnvision::pipelines {

class CaptionMetric : public Metric {
 public:
  // For a captioner whose vocabulary is `labels` (word id = index); `cfg` is the task table's common argument.
  CaptionMetric(const models::ModelCfg& cfg, const std::vector<std::string>& labels);

  // One batch: the network's outputs (word_logits when it was teacher-forced, caption_ids in eval mode) and
  // the batch's references (N x R x L word ids).
  void add(const models::Forward& f, const torch::Tensor& references) override;
  torch::Tensor& counts() override { return counts_; }  // {loss sum, images, correct next words, next words}
  bool merges_by_sum() const override { return false; }  // CIDEr-D's idf needs every reference in one place
  int64_t count() const override;
  double score() const override;  // CIDEr-D; NaN when no captions were decoded (a training batch)
  const char* score_name() const override { return "CIDEr-D"; }
  std::string progress() const override;  // the teacher-forced next-word accuracy so far
  double loss() const override;           // mean next-word cross-entropy; NaN without teacher forcing
  double word_accuracy() const;           // the share of next words the teacher-forced logits rank first
  nlohmann::json summary() const override;  // {count, loss, word_accuracy, Bleu_1 ... CIDEr}
  std::string report() const override;
  void write_chart(const std::string& path) const override;  // the six scores

  const std::vector<CaptionPair>& pairs() const { return pairs_; }  // one per image decoded, in order added
  const CaptionScores& scores() const;  // computed once after the last add()

 private:
  datasets::Vocabulary vocabulary_;
  std::vector<CaptionPair> pairs_;
  torch::Tensor counts_;
  mutable bool scored_ = false;
  mutable CaptionScores scores_;
};

}  // namespace attnvision::pipelines
