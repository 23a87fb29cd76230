// The detector's second stage: each detection's score becomes sqrt(score x p(its class | its crop)).
#include "pipelines/tasks/detect/crop_classifier.h"

#include "models/registry.h"
#include "models/weights/weights.h"
#include "pipelines/config.h"
#include "crop_classifier_testing.h"
#include "test_util.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

namespace attnvision::pipelines {
namespace {

models::ModelCfg tiny_classifier() {
  return models::testing::tiny_crop_classifier(3, {"cat", "dog", "bird"}, {0.5, 0.4, 0.3}, {0.2, 0.25, 0.3});
}

// A classifier whose logits are its fc bias alone (the fc weights zeroed): the same class probabilities for
// every crop, softmax(bias).
std::string write_classifier(const std::string& path, const std::vector<float>& bias) {
  const models::ModelCfg cfg = tiny_classifier();
  models::Network net = models::build_model(cfg);
  {
    torch::NoGradGuard no_grad;
    auto params = net->named_parameters();
    params["fc.weight"].zero_();
    params["fc.bias"].copy_(torch::tensor(bias));
  }
  models::save_checkpoint(path, *net, cfg);
  return path;
}

// A detector as the second stage sees it: its input's normalisation and its classes.
LoadedModel detector(std::vector<std::string> labels = {"cat", "dog", "bird"}) {
  LoadedModel d;
  d.cfg.in_chans = 3;
  d.cfg.mean = {0.485, 0.456, 0.406};
  d.cfg.std = {0.229, 0.224, 0.225};
  d.labels = std::move(labels);
  return d;
}

TEST(CropClassifier, RescoresEachDetectionAtOrAboveMinScoreByTheGeometricMeanAndSortsTheRows) {
  testing::ScratchDir dir;
  const std::vector<float> bias = {0.0f, 2.0f, -1.0f};
  CropClassifierOptions o;
  o.weights = write_classifier(dir / "c.safetensors", bias);
  o.min_score = 0.2;
  const std::optional<CropClassifier> stage = make_second_stage(o, detector());
  ASSERT_TRUE(stage);
  // Two images; rows [x, y, w, h, score, class].
  const torch::Tensor peaks = torch::tensor({{{4.f, 4.f, 10.f, 12.f, 0.9f, 0.f},
                                              {20.f, 8.f, 6.f, 6.f, 0.5f, 1.f},
                                              {0.f, 0.f, 3.f, 3.f, 0.1f, 2.f}},
                                             {{8.f, 8.f, 16.f, 16.f, 0.3f, 2.f},
                                              {1.f, 2.f, 5.f, 5.f, 0.25f, 1.f},
                                              {30.f, 30.f, 2.f, 2.f, 0.05f, 0.f}}});
  const torch::Tensor x = torch::randn({2, 3, 40, 40});
  const torch::Tensor out = stage->rescore(peaks, x);
  ASSERT_EQ(out.sizes(), peaks.sizes());

  const torch::Tensor p = torch::softmax(torch::tensor(bias), 0);
  auto expected = [&](float score, int64_t cls) {
    return score >= 0.2f ? std::sqrt(score * p[cls].item<float>()) : score * std::min(1.0f, score / 0.4f);
  };
  for (int64_t n = 0; n < 2; ++n) {
    // Each input row is found among the output rows with its box and class, and the expected score.
    for (int64_t r = 0; r < 3; ++r) {
      bool found = false;
      for (int64_t s = 0; s < 3; ++s)
        if (torch::equal(out[n][s].narrow(0, 0, 4), peaks[n][r].narrow(0, 0, 4)) &&
            out[n][s][5].item<float>() == peaks[n][r][5].item<float>()) {
          found = true;
          EXPECT_NEAR(out[n][s][4].item<float>(),
                      expected(peaks[n][r][4].item<float>(), static_cast<int64_t>(peaks[n][r][5].item<float>())),
                      1e-5)
              << n << " " << r;
        }
      EXPECT_TRUE(found) << n << " " << r;
    }
    for (int64_t s = 1; s < 3; ++s) EXPECT_GE(out[n][s - 1][4].item<float>(), out[n][s][4].item<float>());
  }
  // The classifier's favourite reorders image 1: the dog at 0.25 now outranks the bird at 0.3.
  EXPECT_EQ(out[1][0][5].item<float>(), 1.f);
}

TEST(CropClassifier, RefusesAClassifierOfOtherClassesNamingItsFile) {
  testing::ScratchDir dir;
  CropClassifierOptions o;
  o.weights = write_classifier(dir / "c.safetensors", {0.f, 0.f, 0.f});
  try {
    make_second_stage(o, detector({"cat", "bird", "dog"}));
    FAIL() << "classes in another order were accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find(o.weights), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("not the detector's"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace attnvision::pipelines
