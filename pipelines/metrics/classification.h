// Classification metrics: loss, accuracy, per-class accuracy and the confusion matrix.
#pragma once

#include "pipelines/metrics/metric.h"

#include <cstdint>
#include <string>
#include <vector>

namespace attnvision::pipelines {

class ClassificationMetric : public Metric {
 public:
  explicit ClassificationMetric(std::vector<std::string> labels);

  void add(const models::Forward& f, const torch::Tensor& targets) override;
  torch::Tensor& counts() override { return counts_; }
  int64_t count() const override;
  double score() const override { return accuracy(); }
  const char* score_name() const override { return "acc"; }
  std::string progress() const override;  // "acc 91.2%"
  double loss() const override;
  nlohmann::json summary() const override;  // {count, accuracy, loss, per_class, confusion}
  std::string report() const override;      // accuracy, per-class accuracy and the confusion matrix as text
  void write_chart(const std::string& path) const override;  // the confusion matrix

  double accuracy() const;
  std::vector<std::vector<int64_t>> confusion() const;  // [true][predicted]
  std::vector<double> per_class_accuracy() const;

 private:
  std::vector<std::string> labels_;
  // k x k confusion, then the summed cross-entropy in the last slot (float64 keeps large sums exact enough).
  torch::Tensor counts_;
};

}  // namespace attnvision::pipelines
