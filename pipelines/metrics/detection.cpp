#include "pipelines/metrics/detection.h"

#include "models/heads/centernet.h"
#include "vision/image_write.h"
#include "vision/plot.h"

#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include <cstdio>

namespace attnvision::pipelines {

void append_coco_results(const torch::Tensor& peaks, int64_t image_id, const std::vector<int64_t>& category_ids,
                         std::vector<datasets::CocoResult>& results) {
  const torch::Tensor found = peaks.to(torch::kFloat32).contiguous();
  const auto p = found.accessor<float, 2>();
  for (int64_t k = 0; k < p.size(0); ++k) {
    const auto c = static_cast<size_t>(p[k][5]);
    if (c >= category_ids.size())
      throw std::invalid_argument("detection: class index " + std::to_string(c) + " beyond the " +
                                  std::to_string(category_ids.size()) + " categories");
    results.push_back({image_id, category_ids[c], datasets::CocoBox{p[k][0], p[k][1], p[k][2], p[k][3]}, p[k][4]});
  }
}

DetectionMetric::DetectionMetric(const models::ModelCfg& cfg, std::vector<std::string> labels)
    : cfg_(cfg), labels_(std::move(labels)), counts_(torch::zeros({2}, torch::kFloat64)) {
  for (size_t c = 0; c < labels_.size(); ++c) {
    category_ids_.push_back(cfg_.category_id(static_cast<int64_t>(c)));
    gt_.categories.push_back({category_ids_.back(), labels_[c]});
  }
}

void DetectionMetric::add(const models::Forward& f, const torch::Tensor& boxes) {
  if (!f.heatmap.defined())
    throw std::invalid_argument("detection metric: the network's forward has no heatmap (not a detector)");
  const int64_t n = f.heatmap.size(0), stride = cfg_.detection.output_stride;
  const double loss = models::centernet_loss(f, boxes, stride, cfg_.detection.center_class_loss).total.item<double>();
  counts_[0] += loss * static_cast<double>(n);
  counts_[1] += static_cast<double>(n);

  const torch::Tensor found = models::centernet_decode(f, cfg_.detection.max_detections, stride);
  const torch::Tensor truth = boxes.to(torch::kFloat32).contiguous();
  const auto b = truth.accessor<float, 3>();
  for (int64_t i = 0; i < n; ++i) {
    const int64_t image_id = static_cast<int64_t>(gt_.images.size()) + 1;
    gt_.images.push_back({image_id, "", cfg_.input_size[2], cfg_.input_size[1]});
    for (int64_t j = 0; j < b.size(1); ++j) {
      if (b[i][j][0] < 0) continue;
      const datasets::CocoBox box{b[i][j][1], b[i][j][2], b[i][j][3], b[i][j][4]};
      gt_.annotations.push_back({static_cast<int64_t>(gt_.annotations.size()) + 1, image_id,
                                 static_cast<int64_t>(b[i][j][0]) + 1, box, box[2] * box[3], false});
    }
    append_coco_results(found[i], image_id, category_ids_, detections_);
  }
  evaluated_ = false;
}

int64_t DetectionMetric::count() const { return static_cast<int64_t>(counts_[1].item<double>()); }

double DetectionMetric::loss() const {
  const double n = counts_[1].item<double>();
  return n > 0 ? counts_[0].item<double>() / n : 0.0;
}

const CocoEvalResult& DetectionMetric::coco() const {
  if (!evaluated_) {
    result_ = evaluate_coco_bbox(gt_, detections_);
    evaluated_ = true;
  }
  return result_;
}

nlohmann::json DetectionMetric::summary() const {
  const CocoEvalResult& r = coco();
  nlohmann::json j = {{"count", count()}, {"loss", loss()}};
  for (size_t s = 0; s < kCocoStatCount; ++s) j[kCocoStatNames[s]] = r.stats[s];
  nlohmann::json per_class = nlohmann::json::object();
  for (const CocoCategoryAP& c : r.per_category) per_class[c.name] = c.ap;
  j["per_class"] = per_class;
  return j;
}

std::string DetectionMetric::report() const {
  const CocoEvalResult& r = coco();
  char line[160];
  std::snprintf(line, sizeof(line), "images: %lld  loss: %.4f\n", static_cast<long long>(count()), loss());
  std::string text = line + format_coco_summary(r) + "AP@[.5:.95] per class:\n";
  for (const CocoCategoryAP& c : r.per_category) {
    std::snprintf(line, sizeof(line), "  %-14s %s\n", c.name.c_str(),
                  c.ap < 0 ? "  -  (no objects)" : std::to_string(c.ap).substr(0, 6).c_str());
    text += line;
  }
  return text;
}

void DetectionMetric::write_chart(const std::string& path) const {
  vision::Series ap{"AP@[.5:.95]", {}, {}};
  for (const CocoCategoryAP& c : coco().per_category) {
    ap.x.push_back(static_cast<double>(c.category_id - 1));  // the class index
    ap.y.push_back(c.ap < 0 ? NAN : 100.0 * c.ap);
  }
  vision::write_png(path, vision::plot_panels({{"AP per class index (%)", {ap}}}));
}

}  // namespace attnvision::pipelines
