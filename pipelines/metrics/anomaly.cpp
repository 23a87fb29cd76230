#include "pipelines/metrics/anomaly.h"

#include "datasets/ct_slices.h"

#include "vision/image_write.h"
#include "vision/plot.h"

#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include <cstdio>
#include <stdexcept>

namespace attnvision::pipelines {
namespace {
constexpr int64_t kHist = 5;  // where the histograms start in counts_
}

AnomalyMetric::AnomalyMetric() : counts_(torch::zeros({kHist + 2 * kBins}, torch::kFloat64)) {}

void AnomalyMetric::add(const models::Forward& f, const torch::Tensor& targets) {
  const torch::Tensor y = datasets::slice_labels(targets);
  const torch::Tensor logits = f.logits.to(torch::kFloat32);
  if (logits.dim() != 2 || logits.size(1) != 2)
    throw std::invalid_argument("anomaly metric: expected N x 2 logits (clean, lesion)");
  const torch::Tensor ones = torch::ones({y.size(0)}, torch::kFloat64);
  counts_.narrow(0, 0, 4).index_add_(0, y * 2 + logits.argmax(1), ones);
  namespace F = torch::nn::functional;
  counts_[4] += F::cross_entropy(logits, y, F::CrossEntropyFuncOptions().reduction(torch::kSum)).to(torch::kFloat64);
  const torch::Tensor margin = (logits.select(1, 1) - logits.select(1, 0)).to(torch::kFloat64);
  const torch::Tensor bin =
      ((margin + kMarginRange) * (kBins / (2 * kMarginRange))).floor().clamp(0, kBins - 1).to(torch::kLong);
  counts_.narrow(0, kHist, 2 * kBins).index_add_(0, y * kBins + bin, ones);
}

int64_t AnomalyMetric::count() const { return static_cast<int64_t>(counts_.narrow(0, 0, 4).sum().item<double>()); }

double AnomalyMetric::loss() const {
  const int64_t n = count();
  return n ? counts_[4].item<double>() / n : 0.0;
}

double AnomalyMetric::accuracy() const {
  const auto c = counts_.accessor<double, 1>();
  const int64_t n = count();
  return n ? (c[0] + c[3]) / n : 0.0;
}

double AnomalyMetric::sensitivity() const {
  const auto c = counts_.accessor<double, 1>();
  return c[2] + c[3] > 0 ? c[3] / (c[2] + c[3]) : 0.0;
}

double AnomalyMetric::specificity() const {
  const auto c = counts_.accessor<double, 1>();
  return c[0] + c[1] > 0 ? c[0] / (c[0] + c[1]) : 0.0;
}

double AnomalyMetric::auroc() const {
  const auto c = counts_.accessor<double, 1>();
  double clean_total = 0, lesion_total = 0;
  for (int64_t b = 0; b < kBins; ++b) clean_total += c[kHist + b], lesion_total += c[kHist + kBins + b];
  if (clean_total == 0 || lesion_total == 0) return 0.0;  // undefined with one class: no credit
  double pairs = 0, clean_below = 0;  // lesion-over-clean pairs, clean slices in lower bins so far
  for (int64_t b = 0; b < kBins; ++b) {
    const double clean = c[kHist + b], lesion = c[kHist + kBins + b];
    pairs += lesion * (clean_below + 0.5 * clean);
    clean_below += clean;
  }
  return pairs / (clean_total * lesion_total);
}

std::string AnomalyMetric::progress() const {
  char text[32];
  std::snprintf(text, sizeof(text), "acc %.1f%%", 100.0 * accuracy());
  return text;
}

std::string AnomalyMetric::report() const {
  const auto c = counts_.accessor<double, 1>();
  char text[512];
  std::snprintf(text, sizeof(text),
                "AUROC %.4f (%lld slices), accuracy %.2f%%, sensitivity %.2f%%, specificity %.2f%% at p >= 0.5, "
                "loss %.4f\nconfusion (rows: true clean, lesion; columns: predicted): [%lld %lld] [%lld %lld]\n",
                auroc(), static_cast<long long>(count()), 100 * accuracy(), 100 * sensitivity(), 100 * specificity(),
                loss(), static_cast<long long>(c[0]), static_cast<long long>(c[1]), static_cast<long long>(c[2]),
                static_cast<long long>(c[3]));
  return text;
}

nlohmann::json AnomalyMetric::summary() const {
  const auto c = counts_.accessor<double, 1>();
  const std::vector<std::vector<int64_t>> confusion = {{static_cast<int64_t>(c[0]), static_cast<int64_t>(c[1])},
                                                       {static_cast<int64_t>(c[2]), static_cast<int64_t>(c[3])}};
  return {{"count", count()},           {"auroc", auroc()},           {"accuracy", accuracy()},
          {"sensitivity", sensitivity()}, {"specificity", specificity()}, {"loss", loss()},
          {"confusion", confusion}};
}

void AnomalyMetric::write_chart(const std::string& path) const {
  const auto c = counts_.accessor<double, 1>();
  const std::vector<std::vector<int64_t>> confusion = {{static_cast<int64_t>(c[0]), static_cast<int64_t>(c[1])},
                                                       {static_cast<int64_t>(c[2]), static_cast<int64_t>(c[3])}};
  vision::write_png(path, vision::plot_confusion(confusion, {"clean", "lesion"}));
}

}  // namespace attnvision::pipelines
