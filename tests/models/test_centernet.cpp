// The CenterNet detection head: targets, decoding and loss against values derived by hand, and a detector
// that learns a fixed batch, on a ResNet and on a ViT.
#include "models/heads/centernet.h"
#include "centernet_testing.h"
#include "models/registry.h"
#include "test_util.h"

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <cmath>

namespace attnvision::models {
namespace {

using testing::boxes_of;
using testing::perfect_forward;

TEST(CenterNet, GaussianRadiusIsCenterNetsFormula) {
  // 10 x 10 cells, min_overlap 0.7. The three roots:
  //   r1 = (20 + sqrt(400 - 4 * 30 / 1.7)) / 2 = (20 + 18.1497) / 2 = 19.0749
  //   r2 = (40 + sqrt(1600 - 16 * 30)) / 2   = (40 + 33.4664) / 2 = 36.7332
  //   r3 = (-28 + sqrt(784 + 4 * 2.8 * 30)) / 2 = (-28 + 33.4664) / 2 = 2.7332   <- the smallest
  EXPECT_NEAR(centernet_gaussian_radius(10, 10), 2.7332, 1e-4);
}

TEST(CenterNet, TargetsPutEachBoxOnItsCentreCell) {
  // Box [x 8, y 12, w 16, h 8] at stride 4: 4 x 2 cells, centre (2 + 2, 3 + 1) = (4.0, 4.0): cell (4, 4),
  // offset (0, 0), index 4 * 16 + 4 = 68. Box [10, 6, 14, 10]: 3.5 x 2.5 cells, centre (2.5 + 1.75,
  // 1.5 + 1.25) = (4.25, 2.75): cell (4, 2), offset (0.25, 0.75), index 2 * 16 + 4 = 36.
  const CenterNetTargets t = centernet_targets(boxes_of({{2, 8, 12, 16, 8}, {0, 10, 6, 14, 10}}, 3), 3, 16, 16, 4);
  EXPECT_FLOAT_EQ(t.heatmap[0][2][4][4].item<float>(), 1.0f);
  EXPECT_FLOAT_EQ(t.heatmap[0][0][2][4].item<float>(), 1.0f);
  EXPECT_EQ(t.heatmap.eq(1).sum().item<int64_t>(), 2);
  EXPECT_LT(t.heatmap[0][2][4][6].item<float>(), 1.0f);  // the Gaussian falls off around the peak
  EXPECT_EQ(t.heatmap[0][1].sum().item<float>(), 0.0f);  // no box of class 1
  EXPECT_EQ(t.index[0][0].item<int64_t>(), 68);
  EXPECT_EQ(t.index[0][1].item<int64_t>(), 36);
  EXPECT_TRUE(torch::allclose(t.size[0][0], torch::tensor({4.0f, 2.0f})));
  EXPECT_TRUE(torch::allclose(t.size[0][1], torch::tensor({3.5f, 2.5f})));
  EXPECT_TRUE(torch::allclose(t.offset[0][1], torch::tensor({0.25f, 0.75f})));
  EXPECT_TRUE(torch::equal(t.mask, torch::tensor({{1.0f, 1.0f, 0.0f}})));  // the padding row counts for nothing
  EXPECT_THROW(centernet_targets(boxes_of({{3, 0, 0, 4, 4}}, 1), 3, 16, 16, 4), std::invalid_argument);
}

TEST(CenterNet, DecodingAPerfectPredictionGivesTheBoxesBack) {
  const torch::Tensor boxes = boxes_of({{2, 8, 12, 16, 8}, {0, 10, 6, 14, 10}, {1, 40, 36, 20, 24}}, 4);
  const Forward f = perfect_forward(boxes, 3, 16, 4);
  const torch::Tensor d = centernet_decode(f, 10, 4);  // 1 x 10 x [x, y, w, h, score, class]
  ASSERT_EQ(d.sizes(), (std::vector<int64_t>{1, 10, 6}));
  // The three peaks score ~1 and come first; each matches one box exactly (its class and its pixels).
  for (int64_t j = 0; j < 3; ++j) {
    EXPECT_GT(d[0][j][4].item<float>(), 0.999f);
    bool found = false;
    for (int64_t b = 0; b < 3; ++b) {
      const torch::Tensor want = boxes[0][b];
      if (d[0][j][5].item<float>() != want[0].item<float>()) continue;
      found = torch::allclose(d[0][j].slice(0, 0, 4), want.slice(0, 1, 5), 1e-5, 1e-4);
    }
    EXPECT_TRUE(found) << d[0][j];
  }
  // Cells beside a peak are not peaks: the fourth detection scores far lower.
  EXPECT_LT(d[0][3][4].item<float>(), 0.5f);
}

// What a bottom-up captioner reads of each detection: every class's probability at the peak's cell, whose
// largest is the peak's score and class.
TEST(CenterNet, DecodingWithClassesGivesEachPeaksClassProbabilities) {
  torch::manual_seed(3);
  Forward f;
  f.heatmap = torch::randn({2, 3, 8, 8}) * 3;
  f.box_size = torch::rand({2, 2, 8, 8}) * 4;
  f.box_offset = torch::rand({2, 2, 8, 8});
  const auto [d, classes] = centernet_decode_with_classes(f, 5, 4);
  EXPECT_TRUE(torch::equal(d, centernet_decode(f, 5, 4)));
  ASSERT_EQ(classes.sizes(), (std::vector<int64_t>{2, 5, 3}));
  const auto [best, which] = classes.max(2);
  EXPECT_TRUE(torch::allclose(best, d.select(2, 4)));
  EXPECT_TRUE(torch::equal(which.to(torch::kFloat), d.select(2, 5)));
  // And they are the probabilities of one cell: the one under the box's centre (offsets stay within a cell).
  const torch::Tensor p = f.heatmap.sigmoid();
  for (int64_t j = 0; j < 5; ++j) {
    const int64_t cx = static_cast<int64_t>(std::floor((d[0][j][0] + d[0][j][2] / 2).item<float>() / 4));
    const int64_t cy = static_cast<int64_t>(std::floor((d[0][j][1] + d[0][j][3] / 2).item<float>() / 4));
    const float x0 = d[0][j][0].item<float>(), y0 = d[0][j][1].item<float>();
    const float x1 = x0 + d[0][j][2].item<float>(), y1 = y0 + d[0][j][3].item<float>();
    if (x0 <= 0 || y0 <= 0 || x1 >= 32 || y1 >= 32) continue;  // a box cut by the input's edge moves its centre
    EXPECT_TRUE(torch::allclose(classes[0][j], p[0].select(1, cy).select(1, cx))) << j;
  }
}

TEST(CenterNet, LossIsLowForAPerfectPredictionAndHighForABlankOne) {
  const torch::Tensor boxes = boxes_of({{2, 8, 12, 16, 8}, {0, 10, 6, 14, 10}}, 3);
  const Forward perfect = perfect_forward(boxes, 3, 16, 4);
  const CenterNetLoss good = centernet_loss(perfect, boxes, 4);
  EXPECT_NEAR(good.size.item<float>(), 0.0f, 1e-4);
  EXPECT_NEAR(good.offset.item<float>(), 0.0f, 1e-4);
  // At the clamp (p = 1 - 1e-4 at the peaks, targets elsewhere) the focal term is tiny but not zero.
  EXPECT_LT(good.heatmap.item<float>(), 0.05f);
  Forward blank = perfect;
  blank.heatmap = torch::full_like(perfect.heatmap, -2.19);  // the head's initial prior, 0.1 everywhere
  blank.box_size = torch::zeros_like(perfect.box_size);
  const CenterNetLoss bad = centernet_loss(blank, boxes, 4);
  EXPECT_GT(bad.heatmap.item<float>(), 1.0f);
  // The size loss is the mean |error| per coordinate: (4 + 2 + 3.5 + 2.5) / 4 = 3.
  EXPECT_NEAR(bad.size.item<float>(), 3.0f, 1e-3);
}

// center_class_loss: the softmax cross-entropy of the class logits at each box's centre cell, averaged over the
// boxes (padding rows ignored), added to the total with its weight; weight 0 leaves CenterNet's loss as it was.
TEST(CenterNet, TheCentreClassLossIsTheCrossEntropyAtEachCentreCell) {
  // Centre cells at stride 4: (4, 4) for the class-2 box, (4, 2) for the class-0 box (TargetsPutEachBoxOn...).
  const torch::Tensor boxes = boxes_of({{2, 8, 12, 16, 8}, {0, 10, 6, 14, 10}}, 3);
  torch::manual_seed(3);
  Forward f = perfect_forward(boxes, 3, 16, 4);
  f.heatmap = torch::randn({1, 3, 16, 16}) * 2;
  const torch::Tensor at_a = f.heatmap[0].select(1, 4).select(1, 4), at_b = f.heatmap[0].select(1, 2).select(1, 4);
  const double expected = 0.5 * ((at_a.exp().sum().log() - at_a[2]).item<double>() +
                                 (at_b.exp().sum().log() - at_b[0]).item<double>());
  const CenterNetLoss plain = centernet_loss(f, boxes, 4);
  const CenterNetLoss weighted = centernet_loss(f, boxes, 4, 0.5);
  EXPECT_NEAR(plain.classes.item<double>(), expected, 1e-5);
  EXPECT_NEAR(weighted.classes.item<double>(), expected, 1e-5);
  // In float32, the totals (a random heatmap's focal loss: a few hundred) carry about 1e-7 of relative error.
  const double tolerance = 1e-6 * std::abs(plain.total.item<double>());
  EXPECT_NEAR(plain.total.item<double>(), (plain.heatmap + 0.1 * plain.size + plain.offset).item<double>(), tolerance);
  EXPECT_NEAR(weighted.total.item<double>(), plain.total.item<double>() + 0.5 * expected, tolerance);
  // A batch without boxes stays finite.
  const CenterNetLoss none = centernet_loss(f, torch::full({1, 2, 5}, -1.0), 4, 1.0);
  EXPECT_TRUE(std::isfinite(none.total.item<double>()));
  EXPECT_EQ(none.classes.item<double>(), 0.0);
}

// A detector built from a registered backbone learns one fixed batch: the loss falls and the box comes back.
void learns_a_batch(const std::string& model) {
  torch::manual_seed(0);
  ModelCfg cfg = default_cfg(model);
  cfg.task = "detection";
  cfg.num_classes = 3;
  cfg.labels.clear();
  cfg.detection.head_width = 32;
  // 64 x 64 keeps the test quick; a ViT then has a 4 x 4 patch grid, brought to 16 x 16 cells by its neck.
  const int64_t size = 64;
  cfg.input_size = {3, size, size};
  if (cfg.arch == "vit") cfg.vit.img_size = size;
  cfg.validate();
  Network net = build_model(cfg);
  net->train();
  const torch::Tensor boxes = boxes_of({{1, 8, 12, 24, 20}}, 2);  // a bright block on rows 12..31, columns 8..31
  torch::Tensor x = torch::zeros({1, 3, size, size});
  x.slice(2, 12, 32).slice(3, 8, 32).fill_(2.0);
  torch::optim::Adam opt(net->parameters(), torch::optim::AdamOptions(2e-3));
  float first = 0, last = 0;
  for (int step = 0; step < 60; ++step) {
    opt.zero_grad();
    const CenterNetLoss loss = centernet_loss(net->forward(x), boxes, cfg.detection.output_stride);
    loss.total.backward();
    opt.step();
    (step == 0 ? first : last) = loss.total.item<float>();
  }
  EXPECT_LT(last, 0.3f * first) << model << ": " << first << " -> " << last;
  net->eval();
  torch::NoGradGuard no_grad;
  const torch::Tensor d = centernet_decode(net->forward(x), 1, cfg.detection.output_stride)[0][0];
  EXPECT_EQ(d[5].item<float>(), 1.0f) << d;
  // Within a cell of the box on each edge.
  EXPECT_TRUE(torch::allclose(d.slice(0, 0, 4), boxes[0][0].slice(0, 1, 5), 0, 4.0)) << d;
}

TEST(CenterNet, ResNetDetectorLearnsABatch) { learns_a_batch("cbam_resnet18"); }
TEST(CenterNet, VitDetectorLearnsABatch) { learns_a_batch("vit_tiny_patch16_224"); }

// Worked by hand on one row of four cells: the mirrored pass's probabilities 0.1 0.3 0.5 0.7 flipped back are
// 0.7 0.5 0.3 0.1, so with 0.2 0.4 0.6 0.8 every cell averages to 0.45; sizes 2 and 1 2 3 4 flipped back average to
// 3 2.5 2 1.5; the offsets are the unmirrored pass's.
TEST(CenterNet, FlipTestAveragesProbabilitiesAndSizesWithTheMirroredPassFlippedBack) {
  Forward f, mirrored;
  f.heatmap = torch::logit(torch::tensor({0.2, 0.4, 0.6, 0.8}, torch::kFloat)).reshape({1, 1, 1, 4});
  mirrored.heatmap = torch::logit(torch::tensor({0.1, 0.3, 0.5, 0.7}, torch::kFloat)).reshape({1, 1, 1, 4});
  f.box_size = torch::full({1, 2, 1, 4}, 2.0f);
  mirrored.box_size = torch::tensor({1.0f, 2.0f, 3.0f, 4.0f}).reshape({1, 1, 1, 4}).repeat({1, 2, 1, 1});
  f.box_offset = torch::full({1, 2, 1, 4}, 0.25f);
  mirrored.box_offset = torch::full({1, 2, 1, 4}, 0.75f);
  const Forward a = centernet_flip_average(f, mirrored);
  EXPECT_TRUE(torch::allclose(a.heatmap.sigmoid(), torch::full({1, 1, 1, 4}, 0.45f), 0, 1e-6)) << a.heatmap.sigmoid();
  const torch::Tensor sizes = torch::tensor({3.0f, 2.5f, 2.0f, 1.5f}).reshape({1, 1, 1, 4}).repeat({1, 2, 1, 1});
  EXPECT_TRUE(torch::equal(a.box_size, sizes)) << a.box_size;
  EXPECT_TRUE(torch::equal(a.box_offset, f.box_offset));
}

// A network with strided convolutions is not mirror-equivariant (its sampling grids start at the left edge);
// the flip test makes it so: the flip test of the mirrored image is the mirror of the image's flip test.
TEST(CenterNet, FlipTestMakesTheDetectorsOutputsMirrorEquivariant) {
  torch::manual_seed(2);
  ModelCfg cfg = default_cfg("cbam_resnet18");
  cfg.task = "detection";
  cfg.num_classes = 3;
  cfg.labels.clear();
  cfg.detection.head_width = 32;
  cfg.input_size = {3, 64, 64};
  cfg.validate();
  Network net = build_model(cfg);
  net->eval();
  torch::NoGradGuard no_grad;
  const torch::Tensor x = torch::randn({2, 3, 64, 64}), mirror = x.flip({3});
  const Forward plain = net->forward(x), plain_mirror = net->forward(mirror);
  ASSERT_FALSE(torch::allclose(plain_mirror.heatmap, plain.heatmap.flip({3}), 1e-3, 1e-3));  // not equivariant
  const Forward a = centernet_flip_average(plain, plain_mirror);
  const Forward b = centernet_flip_average(plain_mirror, plain);
  EXPECT_TRUE(torch::allclose(b.heatmap.sigmoid(), a.heatmap.sigmoid().flip({3}), 0, 1e-6));
  EXPECT_TRUE(torch::allclose(b.box_size, a.box_size.flip({3}), 0, 1e-6));
}

TEST(CenterNet, ConfigIsValidatedAndTravelsInTheCheckpointJson) {
  ModelCfg cfg = default_cfg("resnet18");
  cfg.task = "detection";
  cfg.num_classes = 10;
  cfg.labels.clear();
  cfg.detection.output_stride = 3;
  EXPECT_THROW(cfg.validate(), std::invalid_argument);
  cfg.detection.output_stride = 8;
  cfg.validate();
  const ModelCfg back = cfg_from_json(to_json(cfg));
  EXPECT_EQ(back.task, "detection");
  EXPECT_EQ(back.detection.output_stride, 8);
  // A classifier's JSON carries no detection section.
  EXPECT_FALSE(to_json(default_cfg("resnet18")).contains("detection"));
}

}  // namespace
}  // namespace attnvision::models
