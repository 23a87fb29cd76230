// The anomaly and saliency metrics on hand-made cases whose answers are known by counting.
#include "pipelines/metrics/anomaly.h"
#include "pipelines/metrics/saliency.h"

#include <gtest/gtest.h>
#include <cmath>
#include <torch/torch.h>

namespace attnvision::pipelines {
namespace {

TEST(ExactAuroc, CountsPairsWithTiesHalf) {
  // Positives 0.9, 0.5; negatives 0.5, 0.1: pairs (0.9>0.5), (0.9>0.1), (0.5=0.5 half), (0.5>0.1) = 3.5 / 4.
  EXPECT_DOUBLE_EQ(exact_auroc({0.9, 0.5, 0.5, 0.1}, {1, 1, 0, 0}), 3.5 / 4);
  EXPECT_DOUBLE_EQ(exact_auroc({0.1, 0.2}, {1, 0}), 0.0);
  EXPECT_DOUBLE_EQ(exact_auroc({0.1, 0.2}, {1, 1}), 0.0);  // one class: undefined, no credit
}

TEST(AnomalyMetric, HistogramAurocMatchesTheExactOneAndMergesBySum) {
  torch::manual_seed(0);
  const torch::Tensor logits = torch::randn({200, 2}) * 3;
  const torch::Tensor y = torch::randint(0, 2, {200}, torch::kLong);
  AnomalyMetric a, b, whole;
  models::Forward first, second, all;
  first.logits = logits.narrow(0, 0, 120), second.logits = logits.narrow(0, 120, 80), all.logits = logits;
  a.add(first, y.narrow(0, 0, 120));
  b.add(second, y.narrow(0, 120, 80));
  whole.add(all, y);
  a.counts() += b.counts();
  EXPECT_DOUBLE_EQ(a.auroc(), whole.auroc());
  std::vector<double> margins;
  std::vector<int> labels;
  for (int64_t i = 0; i < 200; ++i) {
    margins.push_back((logits[i][1] - logits[i][0]).item<double>());
    labels.push_back(static_cast<int>(y[i].item<int64_t>()));
  }
  // Bins of 0.01 in log-odds: only pairs closer than that can differ, by half a pair each.
  EXPECT_NEAR(whole.auroc(), exact_auroc(margins, labels), 2e-3);
  EXPECT_EQ(whole.count(), 200);
}

TEST(PointingGame, AHitWithinFifteenPixelsOfTheMask) {
  cv::Mat mask = cv::Mat::zeros(100, 100, CV_8U);
  mask.at<uint8_t>(50, 50) = 255;
  EXPECT_TRUE(pointing_hit(mask, {50, 50}));
  EXPECT_TRUE(pointing_hit(mask, {65, 50}));   // 15 px away
  EXPECT_FALSE(pointing_hit(mask, {66, 50}));  // 16
  EXPECT_FALSE(pointing_hit(mask, {61, 61}));  // 15.6
}

TEST(MaskOverlap, IouAndDiceByCounting) {
  cv::Mat a = cv::Mat::zeros(10, 10, CV_8U), b = cv::Mat::zeros(10, 10, CV_8U);
  a(cv::Rect(0, 0, 4, 1)).setTo(255);  // 4 pixels
  b(cv::Rect(2, 0, 4, 1)).setTo(255);  // 4 pixels, 2 shared
  const Overlap o = mask_overlap(a, b);
  EXPECT_DOUBLE_EQ(o.iou, 2.0 / 6);
  EXPECT_DOUBLE_EQ(o.dice, 4.0 / 8);
}

TEST(MatchRegions, FoundLesionsAndFalseRegions) {
  cv::Mat labels = cv::Mat::zeros(10, 10, CV_32S);
  labels(cv::Rect(0, 0, 2, 2)).setTo(1);
  labels(cv::Rect(6, 6, 2, 2)).setTo(2);
  cv::Mat hit = cv::Mat::zeros(10, 10, CV_8U), missed = cv::Mat::zeros(10, 10, CV_8U);
  hit.at<uint8_t>(1, 1) = 255;
  missed.at<uint8_t>(4, 4) = 255;
  // Region 1's centroid (0.5, 0.5) rounds to (1, 1), on the first lesion; region 2's (7, 7) is 4.2 px from the
  // second, beyond a tolerance of 1 px and within one of 5.
  const RegionMatch m = match_regions(labels, 2, {hit, missed}, 1.0);
  EXPECT_EQ(m.lesions, 2);
  EXPECT_EQ(m.found, 1);
  EXPECT_EQ(m.regions, 2);
  EXPECT_EQ(m.false_regions, 1);
  const RegionMatch near = match_regions(labels, 2, {hit, missed}, 5.0);
  EXPECT_EQ(near.found, 2);
  EXPECT_EQ(near.false_regions, 0);
}

TEST(MatchRegions, ARegionAroundTheWholeBodyLocatesNoLesion) {
  // One region covering most of a 100 x 100 slice overlaps a small lesion near its edge, but its centroid
  // (the slice's centre) is 40 px away: the lesion is not found and the region is a false one.
  cv::Mat labels = cv::Mat::zeros(100, 100, CV_32S);
  labels(cv::Rect(5, 5, 90, 90)).setTo(1);
  cv::Mat lesion = cv::Mat::zeros(100, 100, CV_8U);
  lesion(cv::Rect(88, 48, 4, 4)).setTo(255);
  const RegionMatch m = match_regions(labels, 1, {lesion}, 15.0);
  EXPECT_EQ(m.found, 0);
  EXPECT_EQ(m.false_regions, 1);
}

TEST(RiseCurves, DeletingTheEvidenceFirstDropsTheScoreFirst) {
  // The score is the mean of the top-left quarter; a map pointing there deletes it in the first quarter of the
  // steps, a map pointing elsewhere only in the last.
  const torch::Tensor input = torch::ones({1, 8, 8}), removed = torch::zeros({1, 8, 8});
  auto score = [](const torch::Tensor& x) { return x.narrow(2, 0, 4).narrow(3, 0, 4).mean({1, 2, 3}); };
  torch::Tensor good = torch::zeros({8, 8}), bad = torch::ones({8, 8});
  good.narrow(0, 0, 4).narrow(1, 0, 4).fill_(1);
  bad.narrow(0, 0, 4).narrow(1, 0, 4).fill_(0);
  const RiseCurves g = rise_curves(input, removed, good, 4, score), b = rise_curves(input, removed, bad, 4, score);
  EXPECT_DOUBLE_EQ(g.deletion.front(), 1.0);
  EXPECT_DOUBLE_EQ(g.deletion[1], 0.0);
  EXPECT_DOUBLE_EQ(b.deletion[3], 1.0);
  EXPECT_LT(g.deletion_auc, b.deletion_auc);
  EXPECT_GT(g.insertion_auc, b.insertion_auc);
  EXPECT_DOUBLE_EQ(g.insertion.back(), 1.0);
}

TEST(RiseSubstrate, AGaussianOfSigmaFiveThatKeepsFlatImagesAndMass) {
  // A flat image stays flat (edges replicated, the kernel sums to 1); an impulse far from the edges spreads
  // into a Gaussian of sigma 5 px cut at 3 sigma: its mass stays 1 and its second moment along a row is that
  // of the cut Gaussian.
  const torch::Tensor flat = torch::full({1, 2, 40, 40}, 0.7, torch::kFloat64);
  EXPECT_TRUE(torch::allclose(rise_substrate(flat), flat, 0, 1e-12));
  torch::Tensor impulse = torch::zeros({1, 1, 64, 64}, torch::kFloat64);
  impulse[0][0][32][32] = 1.0;
  const torch::Tensor b = rise_substrate(impulse)[0][0];
  EXPECT_NEAR(b.sum().item<double>(), 1.0, 1e-12);
  const torch::Tensor row_mass = b.sum(0);
  const torch::Tensor d = torch::arange(64, torch::kFloat64) - 32;
  // The second moment of a sampled Gaussian of sigma 5 cut at +-15 px (24.5, not 25: the tails are cut).
  double weight = 0, moment = 0;
  for (int k = -15; k <= 15; ++k) weight += std::exp(-k * k / 50.0), moment += k * k * std::exp(-k * k / 50.0);
  EXPECT_NEAR((row_mass * d * d).sum().item<double>(), moment / weight, 1e-9);
  EXPECT_NEAR(moment / weight, 25.0, 0.6);
  EXPECT_DOUBLE_EQ(b[32][32].item<double>(), b.max().item<double>());
}

}  // namespace
}  // namespace attnvision::pipelines
