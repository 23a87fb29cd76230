#include "pipelines/metrics/classification.h"

#include "vision/image_write.h"
#include "vision/plot.h"

#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include <cstdio>

namespace attnvision::pipelines {

ClassificationMetric::ClassificationMetric(std::vector<std::string> labels)
    : labels_(std::move(labels)),
      counts_(torch::zeros({static_cast<int64_t>(labels_.size() * labels_.size()) + 1}, torch::kFloat64)) {}

void ClassificationMetric::add(const models::Forward& f, const torch::Tensor& y) {
  const int64_t k = static_cast<int64_t>(labels_.size());
  const torch::Tensor logits = f.logits.to(torch::kFloat32);
  counts_.narrow(0, 0, k * k).index_add_(0, y * k + logits.argmax(1), torch::ones({y.size(0)}, torch::kFloat64));
  namespace F = torch::nn::functional;
  counts_[k * k] += F::cross_entropy(logits, y, F::CrossEntropyFuncOptions().reduction(torch::kSum)).to(torch::kFloat64);
}

std::vector<std::vector<int64_t>> ClassificationMetric::confusion() const {
  const int64_t k = static_cast<int64_t>(labels_.size());
  const auto c = counts_.accessor<double, 1>();
  std::vector<std::vector<int64_t>> m(k, std::vector<int64_t>(k, 0));
  for (int64_t t = 0; t < k; ++t)
    for (int64_t p = 0; p < k; ++p) m[t][p] = static_cast<int64_t>(c[t * k + p]);
  return m;
}

int64_t ClassificationMetric::count() const {
  return static_cast<int64_t>(counts_.narrow(0, 0, counts_.size(0) - 1).sum().item<double>());
}

double ClassificationMetric::accuracy() const {
  const int64_t k = static_cast<int64_t>(labels_.size()), n = count();
  return n ? counts_.narrow(0, 0, k * k).view({k, k}).diagonal().sum().item<double>() / n : 0.0;
}

std::string ClassificationMetric::progress() const {
  char text[32];
  std::snprintf(text, sizeof(text), "acc %.1f%%", 100.0 * accuracy());
  return text;
}

double ClassificationMetric::loss() const {
  const int64_t n = count();
  return n ? counts_[counts_.size(0) - 1].item<double>() / n : 0.0;
}

std::vector<double> ClassificationMetric::per_class_accuracy() const {
  std::vector<double> acc;
  for (const auto& row : confusion()) {
    int64_t total = 0;
    for (int64_t v : row) total += v;
    acc.push_back(total ? static_cast<double>(row[acc.size()]) / total : 0.0);
  }
  return acc;
}

std::string ClassificationMetric::report() const {
  std::string out;
  char line[256];
  std::snprintf(line, sizeof(line), "accuracy %.2f%% (%lld images), loss %.4f\n", 100.0 * accuracy(),
                static_cast<long long>(count()), loss());
  out += line;
  out += "per class:\n";
  const std::vector<double> acc = per_class_accuracy();
  for (size_t c = 0; c < acc.size(); ++c) {
    std::snprintf(line, sizeof(line), "  %3zu %-20s %6.2f%%\n", c, labels_[c].c_str(), 100.0 * acc[c]);
    out += line;
  }
  const auto m = confusion();
  out += "confusion matrix (rows: true class, columns: predicted):\n     ";
  for (size_t p = 0; p < m.size(); ++p) {
    std::snprintf(line, sizeof(line), "%6zu", p);
    out += line;
  }
  out += "\n";
  for (size_t t = 0; t < m.size(); ++t) {
    std::snprintf(line, sizeof(line), "  %3zu", t);
    out += line;
    for (int64_t v : m[t]) {
      std::snprintf(line, sizeof(line), "%6lld", static_cast<long long>(v));
      out += line;
    }
    out += "\n";
  }
  return out;
}

nlohmann::json ClassificationMetric::summary() const {
  nlohmann::json per_class = nlohmann::json::array();
  const std::vector<double> acc = per_class_accuracy();
  for (size_t c = 0; c < acc.size(); ++c) per_class.push_back({{"index", c}, {"label", labels_[c]}, {"accuracy", acc[c]}});
  return {{"count", count()}, {"accuracy", accuracy()}, {"loss", loss()}, {"per_class", per_class},
          {"confusion", confusion()}};
}

void ClassificationMetric::write_chart(const std::string& path) const {
  vision::write_png(path, vision::plot_confusion(confusion(), labels_));
}

}  // namespace attnvision::pipelines
