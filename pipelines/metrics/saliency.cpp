#include "pipelines/metrics/saliency.h"

#include <opencv2/imgproc.hpp>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>

namespace attnvision::pipelines {

bool pointing_hit(const cv::Mat& mask, cv::Point point, double tolerance_px) {
  if (mask.empty() || mask.type() != CV_8U) throw std::invalid_argument("pointing_hit: a CV_8U mask expected");
  const int r = static_cast<int>(std::ceil(tolerance_px));
  const cv::Rect window = cv::Rect(point.x - r, point.y - r, 2 * r + 1, 2 * r + 1) & cv::Rect(0, 0, mask.cols, mask.rows);
  for (int y = window.y; y < window.y + window.height; ++y) {
    const uint8_t* row = mask.ptr<uint8_t>(y);
    for (int x = window.x; x < window.x + window.width; ++x) {
      const double dx = x - point.x, dy = y - point.y;
      if (row[x] && dx * dx + dy * dy <= tolerance_px * tolerance_px) return true;
    }
  }
  return false;
}

Overlap mask_overlap(const cv::Mat& predicted, const cv::Mat& truth) {
  if (predicted.size() != truth.size() || predicted.type() != CV_8U || truth.type() != CV_8U)
    throw std::invalid_argument("mask_overlap: two CV_8U masks of one size expected");
  const double both = cv::countNonZero(predicted & truth);
  const double p = cv::countNonZero(predicted), t = cv::countNonZero(truth);
  if (p + t == 0) return {1.0, 1.0};
  return {both / (p + t - both), 2 * both / (p + t)};
}

RegionMatch match_regions(const cv::Mat& regions, int region_count, const std::vector<cv::Mat>& lesions,
                          double tolerance_px) {
  if (regions.type() != CV_32S) throw std::invalid_argument("match_regions: a CV_32S label image expected");
  for (const cv::Mat& lesion : lesions)
    if (lesion.size() != regions.size() || lesion.type() != CV_8U)
      throw std::invalid_argument("match_regions: lesion masks must be CV_8U of the label image's size");
  RegionMatch m;
  m.lesions = static_cast<int>(lesions.size());
  m.regions = region_count;
  // Each region's centroid: the mean of its pixels' coordinates.
  std::vector<double> sum_x(static_cast<size_t>(region_count) + 1, 0), sum_y(sum_x), pixels(sum_x);
  for (int y = 0; y < regions.rows; ++y) {
    const int* label = regions.ptr<int>(y);
    for (int x = 0; x < regions.cols; ++x) {
      if (label[x] <= 0 || label[x] > region_count) continue;
      const size_t k = static_cast<size_t>(label[x]);
      sum_x[k] += x, sum_y[k] += y, pixels[k] += 1;
    }
  }
  std::vector<bool> lesion_found(lesions.size(), false);
  for (size_t k = 1; k <= static_cast<size_t>(region_count); ++k) {
    if (pixels[k] == 0) continue;
    const cv::Point centroid(static_cast<int>(std::lround(sum_x[k] / pixels[k])),
                             static_cast<int>(std::lround(sum_y[k] / pixels[k])));
    bool points_at_one = false;
    for (size_t l = 0; l < lesions.size(); ++l)
      if (pointing_hit(lesions[l], centroid, tolerance_px)) lesion_found[l] = true, points_at_one = true;
    m.false_regions += points_at_one ? 0 : 1;
  }
  m.found = static_cast<int>(std::count(lesion_found.begin(), lesion_found.end(), true));
  return m;
}

RiseCurves rise_curves(const torch::Tensor& input, const torch::Tensor& removed, const torch::Tensor& saliency,
                       int steps, const std::function<torch::Tensor(const torch::Tensor&)>& score) {
  if (input.dim() != 3 || removed.sizes() != input.sizes() || saliency.dim() != 2 ||
      saliency.size(0) != input.size(1) || saliency.size(1) != input.size(2) || steps < 1)
    throw std::invalid_argument("rise_curves: C x H x W input and removed, H x W saliency, steps >= 1 expected");
  const int64_t pixels = saliency.numel();
  // Most salient first; ties by position (stable), so the curves do not depend on the sort's whims.
  const torch::Tensor order = std::get<1>(saliency.reshape({-1}).to(torch::kFloat64).sort(/*stable=*/true, 0, true));
  // rank[p]: the position of pixel p in that order. Step k has replaced the pixels with rank < k * pixels / steps.
  const torch::Tensor rank = torch::empty({pixels}, torch::kLong).index_put_({order}, torch::arange(pixels));
  std::vector<torch::Tensor> deletion, insertion;
  for (int k = 0; k <= steps; ++k) {
    const int64_t done = k * pixels / steps;
    const torch::Tensor replaced = (rank < done).reshape({1, saliency.size(0), saliency.size(1)});
    deletion.push_back(torch::where(replaced, removed, input));
    insertion.push_back(torch::where(replaced, input, removed));
  }
  const torch::Tensor scores = score(torch::stack(deletion)).to(torch::kFloat64);
  const torch::Tensor scores_in = score(torch::stack(insertion)).to(torch::kFloat64);
  RiseCurves c;
  for (int k = 0; k <= steps; ++k) c.deletion.push_back(scores[k].item<double>()), c.insertion.push_back(scores_in[k].item<double>());
  auto trapezoid = [steps](const std::vector<double>& y) {
    double sum = 0;
    for (int k = 0; k < steps; ++k) sum += 0.5 * (y[static_cast<size_t>(k)] + y[static_cast<size_t>(k) + 1]);
    return sum / steps;
  };
  c.deletion_auc = trapezoid(c.deletion);
  c.insertion_auc = trapezoid(c.insertion);
  return c;
}

torch::Tensor rise_substrate(const torch::Tensor& x) {
  if (x.dim() != 4) throw std::invalid_argument("rise_substrate: an N x C x H x W batch expected");
  constexpr int64_t kSize = 31;
  constexpr double kSigma = 5.0;
  const torch::Tensor t = torch::arange(kSize, torch::kFloat64) - (kSize - 1) / 2.0;
  torch::Tensor g = torch::exp(-t * t / (2 * kSigma * kSigma));
  g = g / g.sum();
  const int64_t c = x.size(1);
  const torch::Tensor kernel = torch::outer(g, g).to(x.scalar_type()).expand({c, 1, kSize, kSize}).contiguous();
  namespace F = torch::nn::functional;
  const int64_t p = kSize / 2;
  const torch::Tensor padded = F::pad(x, F::PadFuncOptions({p, p, p, p}).mode(torch::kReplicate));
  return F::conv2d(padded, kernel, F::Conv2dFuncOptions().groups(c));
}

double exact_auroc(const std::vector<double>& scores, const std::vector<int>& labels) {
  if (scores.size() != labels.size()) throw std::invalid_argument("exact_auroc: one label per score expected");
  std::vector<size_t> order(scores.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return scores[a] < scores[b]; });
  double positives = 0, negatives = 0, pairs = 0;
  // Walk groups of equal scores upwards: each positive beats the negatives below its group and ties half of
  // those inside it.
  double negatives_below = 0;
  for (size_t i = 0; i < order.size();) {
    size_t j = i;
    double pos = 0, neg = 0;
    for (; j < order.size() && scores[order[j]] == scores[order[i]]; ++j) (labels[order[j]] == 1 ? pos : neg) += 1;
    pairs += pos * (negatives_below + 0.5 * neg);
    negatives_below += neg;
    positives += pos, negatives += neg;
    i = j;
  }
  return positives > 0 && negatives > 0 ? pairs / (positives * negatives) : 0.0;
}

}  // namespace attnvision::pipelines
