// Detection metrics: the CenterNet loss and COCO box mAP (pipelines/metrics/coco_map.h, pycocotools' numbers)
// over the detections a network decodes from its maps, against the batch's boxes. The trainer validates with
// it every epoch (mAP@[.5:.95] is the score it keeps the best checkpoint by), `eval` prints it.
//
// The ground truth comes from the boxes alone (N x M x 5 [class, x, y, w, h], datasets/detection_set.h), so
// an object's area for the small / medium / large split is its box's w * h, not the visible-pixel count a
// scenes folder's instances.json gives: APs, APm and APl can differ slightly from `eval-detect` on the same
// detections; AP, AP50, AP75 and the ARs over all areas do not depend on areas and agree.
#pragma once

#include "datasets/coco.h"
#include "models/model_cfg.h"
#include "pipelines/metrics/coco_map.h"
#include "pipelines/metrics/metric.h"

#include <cstdint>
#include <string>
#include <vector>

namespace attnvision::pipelines {

// One image's decoded peaks (models::centernet_decode's k x [x, y, w, h, score, class index] for that image)
// appended as COCO results of `image_id`, class index c as category `category_ids[c]`.
void append_coco_results(const torch::Tensor& peaks, int64_t image_id, const std::vector<int64_t>& category_ids,
                         std::vector<datasets::CocoResult>& results);

class DetectionMetric : public Metric {
 public:
  // For a detector of `cfg` (its output stride, input size and detections per image) with classes `labels`.
  DetectionMetric(const models::ModelCfg& cfg, std::vector<std::string> labels);

  // One batch: the network's maps and the batch's padded boxes; images get ids in the order added.
  void add(const models::Forward& f, const torch::Tensor& boxes) override;
  torch::Tensor& counts() override { return counts_; }  // {loss sum, images}: what sums across ranks
  bool merges_by_sum() const override { return false; }  // the mAP needs every detection in one place
  int64_t count() const override;
  double score() const override { return coco().stats[0]; }  // AP@[.5:.95]; -1 with nothing to evaluate
  const char* score_name() const override { return "mAP"; }
  double loss() const override;
  nlohmann::json summary() const override;  // {count, loss, AP, AP50, ... ARl, per_class: {label: AP}}
  std::string report() const override;      // COCOeval's twelve lines, then AP per class
  void write_chart(const std::string& path) const override;  // AP per class

  const CocoEvalResult& coco() const;  // evaluated once after the last add()

 private:
  models::ModelCfg cfg_;
  std::vector<std::string> labels_;
  std::vector<int64_t> category_ids_;  // of each class, as the model's config names them
  datasets::CocoInstances gt_;
  std::vector<datasets::CocoResult> detections_;
  torch::Tensor counts_;
  mutable bool evaluated_ = false;
  mutable CocoEvalResult result_;
};

}  // namespace attnvision::pipelines
