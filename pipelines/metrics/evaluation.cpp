#include "pipelines/metrics/evaluation.h"

#include "datasets/augment.h"
#include "pipelines/train/distributed.h"
#include "vision/image_write.h"
#include "vision/plot.h"

#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include <cstdio>

namespace attnvision::pipelines {

datasets::ImageFolderOptions folder_options_for(const models::ModelCfg& cfg) {
  datasets::ImageFolderOptions f;
  f.channels = cfg.in_chans;
  f.height = cfg.input_size[1];
  f.width = cfg.input_size[2];
  f.interpolation = cfg.interpolation;
  return f;
}

void check_data_fits(const datasets::LabeledImages& d, const models::ModelCfg& m) {
  const auto s = d.images.sizes();
  if (s[1] != m.input_size[0] || s[2] != m.input_size[1] || s[3] != m.input_size[2])
    throw std::invalid_argument(d.source + ": images are " + std::to_string(s[1]) + "x" + std::to_string(s[2]) + "x" +
                                std::to_string(s[3]) + " but the model takes input_size [" +
                                std::to_string(m.input_size[0]) + ", " + std::to_string(m.input_size[1]) + ", " +
                                std::to_string(m.input_size[2]) + "]");
  if (static_cast<int64_t>(d.classes.size()) != m.num_classes)
    throw std::invalid_argument(d.source + ": " + std::to_string(d.classes.size()) + " classes but the model has " +
                                "num_classes " + std::to_string(m.num_classes));
}

std::vector<double> EvalResult::per_class_accuracy() const {
  std::vector<double> acc;
  for (size_t c = 0; c < confusion.size(); ++c) {
    int64_t total = 0;
    for (int64_t v : confusion[c]) total += v;
    acc.push_back(total ? static_cast<double>(confusion[c][c]) / total : 0.0);
  }
  return acc;
}

torch::Tensor float32_logits(models::BackboneImpl& net, const torch::Tensor& x, models::Precision precision) {
  torch::Tensor logits;
  {
    const models::AutocastScope autocast(precision);
    logits = net.logits(x);
  }
  return logits.to(torch::kFloat32);
}

EvalResult evaluate(models::BackboneImpl& net, const models::ModelCfg& cfg, const datasets::LabeledImages& data,
                    int64_t batch_size, DataParallel* dp, models::Precision precision) {
  const int64_t k = cfg.num_classes;
  const bool was_training = net.is_training();
  net.eval();
  // Counts: k x k confusion, then the summed loss in the last slot (double keeps large sums exact enough).
  torch::Tensor counts = torch::zeros({k * k + 1}, torch::kFloat64);
  {
    torch::InferenceMode guard;
    const int64_t rank = dp ? dp->rank() : 0, world = dp ? dp->world() : 1;
    torch::Tensor rows = torch::arange(rank, data.size(), world, torch::kInt64);
    for (int64_t begin = 0; begin < rows.size(0); begin += batch_size) {
      const torch::Tensor idx = rows.narrow(0, begin, std::min(batch_size, rows.size(0) - begin));
      const torch::Tensor x = datasets::normalize_batch(data.images.index_select(0, idx), cfg.mean, cfg.std);
      const torch::Tensor y = data.labels.index_select(0, idx);
      const torch::Tensor logits = float32_logits(net, x, precision);
      const torch::Tensor pred = logits.argmax(1);
      counts.narrow(0, 0, k * k).index_add_(0, y * k + pred, torch::ones({y.size(0)}, torch::kFloat64));
      counts[k * k] += torch::nn::functional::cross_entropy(logits, y,
                                                            torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum))
                           .to(torch::kFloat64);
    }
  }
  if (dp) dp->sum(counts);
  if (was_training) net.train();

  EvalResult r;
  const auto c = counts.accessor<double, 1>();
  r.confusion.assign(k, std::vector<int64_t>(k, 0));
  int64_t correct = 0;
  for (int64_t t = 0; t < k; ++t)
    for (int64_t p = 0; p < k; ++p) {
      r.confusion[t][p] = static_cast<int64_t>(c[t * k + p]);
      r.count += r.confusion[t][p];
      if (t == p) correct += r.confusion[t][p];
    }
  r.accuracy = r.count ? static_cast<double>(correct) / r.count : 0.0;
  r.loss = r.count ? c[k * k] / r.count : 0.0;
  return r;
}

std::string format_report(const EvalResult& r, const std::vector<std::string>& labels) {
  std::string out;
  char line[256];
  std::snprintf(line, sizeof(line), "accuracy %.2f%% (%lld images), loss %.4f\n", 100.0 * r.accuracy,
                static_cast<long long>(r.count), r.loss);
  out += line;
  out += "per class:\n";
  const std::vector<double> acc = r.per_class_accuracy();
  for (size_t c = 0; c < acc.size(); ++c) {
    std::snprintf(line, sizeof(line), "  %3zu %-20s %6.2f%%\n", c, labels[c].c_str(), 100.0 * acc[c]);
    out += line;
  }
  out += "confusion matrix (rows: true class, columns: predicted):\n     ";
  for (size_t p = 0; p < r.confusion.size(); ++p) {
    std::snprintf(line, sizeof(line), "%6zu", p);
    out += line;
  }
  out += "\n";
  for (size_t t = 0; t < r.confusion.size(); ++t) {
    std::snprintf(line, sizeof(line), "  %3zu", t);
    out += line;
    for (int64_t v : r.confusion[t]) {
      std::snprintf(line, sizeof(line), "%6lld", static_cast<long long>(v));
      out += line;
    }
    out += "\n";
  }
  return out;
}

nlohmann::json to_json(const EvalResult& r, const std::vector<std::string>& labels) {
  nlohmann::json per_class = nlohmann::json::array();
  const std::vector<double> acc = r.per_class_accuracy();
  for (size_t c = 0; c < acc.size(); ++c) per_class.push_back({{"index", c}, {"label", labels[c]}, {"accuracy", acc[c]}});
  return {{"count", r.count}, {"accuracy", r.accuracy}, {"loss", r.loss}, {"per_class", per_class},
          {"confusion", r.confusion}};
}

void write_confusion_png(const std::string& path, const EvalResult& r, const std::vector<std::string>& labels) {
  vision::write_png(path, vision::plot_confusion(r.confusion, labels));
}

}  // namespace attnvision::pipelines
