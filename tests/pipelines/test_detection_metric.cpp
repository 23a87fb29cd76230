// The detection metric: decoded maps against padded boxes into COCO mAP, on cases derived by hand.
#include "centernet_testing.h"
#include "pipelines/metrics/detection.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

namespace attnvision::pipelines {
namespace {

using models::testing::boxes_of;
using models::testing::perfect_forward;

models::ModelCfg detector_cfg() {
  models::ModelCfg cfg;
  cfg.task = "detection";
  cfg.num_classes = 3;
  cfg.input_size = {3, 64, 64};
  cfg.detection.output_stride = 4;
  cfg.detection.max_detections = 100;
  return cfg;
}

models::Forward concat(const models::Forward& a, const models::Forward& b) {
  models::Forward f;
  f.heatmap = torch::cat({a.heatmap, b.heatmap});
  f.box_size = torch::cat({a.box_size, b.box_size});
  f.box_offset = torch::cat({a.box_offset, b.box_offset});
  return f;
}

TEST(DetectionMetric, PerfectMapsScoreOne) {
  const torch::Tensor first = boxes_of({{0, 8, 12, 16, 8}, {1, 30, 30, 20, 24}}, 2);
  const torch::Tensor second = boxes_of({{2, 4, 40, 12, 12}}, 2);
  DetectionMetric m(detector_cfg(), {"a", "b", "c"});
  m.add(concat(perfect_forward(first, 3, 16, 4), perfect_forward(second, 3, 16, 4)), torch::cat({first, second}));
  EXPECT_EQ(m.count(), 2);
  EXPECT_DOUBLE_EQ(m.score(), 1.0);
  const nlohmann::json s = m.summary();
  EXPECT_DOUBLE_EQ(s["AP50"].get<double>(), 1.0);
  EXPECT_DOUBLE_EQ(s["AR100"].get<double>(), 1.0);
  EXPECT_DOUBLE_EQ(s["per_class"]["c"].get<double>(), 1.0);
  EXPECT_FALSE(m.merges_by_sum()) << "an mAP is not a sum over shards";
}

TEST(DetectionMetric, AMissedObjectHalvesItsClassRecall) {
  // Image 1 is found perfectly (classes 0 and 1); image 2's one object (class 0) gets a blank map, whose
  // peaks are zero-size boxes of score sigmoid(-10): they match nothing. Class 0: one of two objects found
  // first, precision 1 up to recall 0.5, so 51 of the 101 recall points: AP 51/101; class 1: AP 1; class 2
  // has no objects and is left out. mAP = (51/101 + 1) / 2 at every IoU threshold.
  const torch::Tensor first = boxes_of({{0, 8, 12, 16, 8}, {1, 30, 30, 20, 24}}, 2);
  const torch::Tensor second = boxes_of({{0, 4, 40, 12, 12}}, 2);
  models::Forward blank = perfect_forward(second, 3, 16, 4);
  blank.heatmap.fill_(-10.0);
  DetectionMetric m(detector_cfg(), {"a", "b", "c"});
  m.add(perfect_forward(first, 3, 16, 4), first);
  m.add(blank, second);
  EXPECT_EQ(m.count(), 2);
  EXPECT_NEAR(m.score(), (51.0 / 101.0 + 1.0) / 2.0, 1e-12);
  const nlohmann::json s = m.summary();
  EXPECT_DOUBLE_EQ(s["per_class"]["c"].get<double>(), -1.0);
  EXPECT_NEAR(s["per_class"]["a"].get<double>(), 51.0 / 101.0, 1e-12);
  EXPECT_GT(m.loss(), 0.0);
  EXPECT_NE(m.report().find("Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ]"),
            std::string::npos);
}

TEST(DetectionMetric, NeedsADetectorsMaps) {
  DetectionMetric m(detector_cfg(), {"a", "b", "c"});
  models::Forward f;
  f.logits = torch::zeros({1, 3});
  EXPECT_THROW(m.add(f, boxes_of({{0, 1, 1, 4, 4}}, 1)), std::invalid_argument);
}

}  // namespace
}  // namespace attnvision::pipelines
