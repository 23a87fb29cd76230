// Slice-level anomaly metrics (lesion / clean): AUROC, the headline, plus sensitivity, specificity and the
// confusion at the 0.5 operating point, and the loss.
//
// AUROC from histograms, so that shards and ranks merge by summing: each slice adds one count to its class's
// histogram of the logit margin (lesion logit - clean logit, the log-odds of p(lesion)), 4000 bins of 0.01
// over [-20, 20] (margins outside land in the end bins). AUROC = P(margin of a lesion slice > margin of a
// clean one) + half of P(same bin): exact except for pairs closer than 0.01 in log-odds, which count half.
#pragma once

#include "pipelines/metrics/metric.h"

#include <string>
#include <vector>

namespace attnvision::pipelines {

class AnomalyMetric : public Metric {
 public:
  AnomalyMetric();

  // targets: N int64 (1 = lesion), or the slices' lesion masks N x H x W (datasets::slice_labels)
  void add(const models::Forward& f, const torch::Tensor& targets) override;
  torch::Tensor& counts() override { return counts_; }
  int64_t count() const override;
  double score() const override { return auroc(); }
  const char* score_name() const override { return "AUROC"; }
  std::string progress() const override;  // "acc 97.1%"
  double loss() const override;
  // {count, auroc, accuracy, sensitivity, specificity, loss, confusion}
  nlohmann::json summary() const override;
  std::string report() const override;
  void write_chart(const std::string& path) const override;  // the confusion matrix

  double auroc() const;
  double accuracy() const;
  double sensitivity() const;  // lesion slices called lesion at p >= 0.5
  double specificity() const;  // clean slices called clean

  static constexpr int64_t kBins = 4000;
  static constexpr double kMarginRange = 20.0;

 private:
  // [0..3] confusion [true][predicted] (clean, lesion), [4] summed cross-entropy, then the clean slices'
  // histogram (kBins) and the lesion slices' histogram (kBins).
  torch::Tensor counts_;
};

}  // namespace attnvision::pipelines
