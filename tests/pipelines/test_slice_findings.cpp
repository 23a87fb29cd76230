// find_on_slices with the flip test: each slice's findings are those of the slice and of its mirror image
// averaged, the mirror's map mirrored back, for the anomaly head's own map and for a gradient method alike.
#include "anomaly_testing.h"
#include "models/registry.h"
#include "pipelines/tasks/saliency/slice_findings.h"

#include <gtest/gtest.h>
#include <opencv2/core.hpp>
#include <torch/torch.h>

#include <cmath>
#include <string>
#include <vector>

namespace attnvision::pipelines {
namespace {

models::ModelCfg tiny_anomaly_cfg() {
  models::ModelCfg c;
  c.name = "tiny_anomaly";
  c.arch = "resnet";
  c.resnet.block = "basic";
  c.resnet.layers = {1, 1, 1, 1};
  c.resnet.channels = {8, 16, 32, 64};
  c.resnet.attn = "cbam";
  return testing::fine_lesion_map_model(c, 4, 8);
}

TEST(SliceFindings, FlipTestAveragesTheSliceAndItsMirrorImage) {
  const models::ModelCfg cfg = tiny_anomaly_cfg();
  torch::manual_seed(5);
  models::Network net = models::build_model(cfg);
  {
    // Cell weights far from their near-zero init, so that a slice and its mirror image score apart.
    torch::NoGradGuard no_grad;
    for (auto& p : net->named_parameters())
      if (p.key().find("lesion_head") != std::string::npos) p.value().normal_(0.0, 0.5);
  }
  net->eval();
  const torch::Tensor x = torch::randn({2, 2, 64, 64});
  vision::CtPlacement placement;
  placement.source = placement.resized = cv::Size(64, 64);
  placement.size = 64;
  const std::vector<vision::CtPlacement> placements(2, placement);
  const std::vector<vision::SliceGeometry> geometries(2);
  for (const char* method : {"cam", "gradcam"}) {
    SaliencyReading reading = saliency_reading_for(cfg, method);
    const std::vector<SliceFindings> plain = find_on_slices(*net, x, placements, geometries, reading);
    const std::vector<SliceFindings> mirror = find_on_slices(*net, x.flip({3}), placements, geometries, reading);
    reading.flip_test = true;
    const std::vector<SliceFindings> both = find_on_slices(*net, x, placements, geometries, reading);
    for (size_t i = 0; i < 2; ++i) {
      EXPECT_GT(std::abs(plain[i].score - mirror[i].score), 1e-4) << method << ": the mirror must differ";
      EXPECT_NEAR(both[i].score, (plain[i].score + mirror[i].score) / 2, 1e-6) << method;
      cv::Mat mirrored_back;
      cv::flip(mirror[i].model_map, mirrored_back, 1);
      const cv::Mat expected = (plain[i].model_map + mirrored_back) / 2;
      const double scale = cv::norm(expected, cv::NORM_INF);
      ASSERT_GT(scale, 0.0) << method;
      EXPECT_LE(cv::norm(both[i].model_map, expected, cv::NORM_INF), 1e-5 * scale) << method << " slice " << i;
      EXPECT_GT(cv::norm(both[i].model_map, plain[i].model_map, cv::NORM_INF), 1e-4 * scale) << method;
    }
  }
}

}  // namespace
}  // namespace attnvision::pipelines
