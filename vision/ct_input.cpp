#include "vision/ct_input.h"

#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace attnvision::vision {

cv::Point2d CtPlacement::to_model(double x, double y) const {
  return {(x + 0.5) * resized.width / source.width - 0.5 + offset.x,
          (y + 0.5) * resized.height / source.height - 0.5 + offset.y};
}

namespace {

// The overlap of the resized slice (placed at `offset`) with the size x size grid, in both frames.
struct Overlap {
  cv::Rect in_resized, in_grid;
};

Overlap overlap(const CtPlacement& p) {
  const cv::Rect grid(0, 0, p.size, p.size);
  const cv::Rect placed = cv::Rect(p.offset, p.resized) & grid;
  return {placed - p.offset, placed};
}

// `image` (one channel) resampled as ct_input resamples HU, as CV_32F on the size x size grid, `outside` where
// the slice does not reach.
cv::Mat on_model_grid(const cv::Mat& image, const CtPlacement& p, double outside) {
  cv::Mat values, resized;
  image.convertTo(values, CV_32F);
  const bool shrinking = p.resized.width < image.cols || p.resized.height < image.rows;
  cv::resize(values, resized, p.resized, 0, 0, shrinking ? cv::INTER_AREA : cv::INTER_LINEAR);
  cv::Mat canvas(p.size, p.size, CV_32F, cv::Scalar(outside));
  const Overlap o = overlap(p);
  resized(o.in_resized).copyTo(canvas(o.in_grid));
  return canvas;
}

}  // namespace

CtInput ct_input(const cv::Mat& hu, const std::array<double, 2>& pixel_spacing, const CtInputSpec& spec) {
  if (hu.empty() || hu.channels() != 1)
    throw std::invalid_argument("ct_input: one non-empty monochrome slice expected");
  if (!(pixel_spacing[0] > 0) || !(pixel_spacing[1] > 0) || !(spec.spacing_mm > 0))
    throw std::invalid_argument("ct_input: pixel spacings must be positive");
  if (spec.windows.empty() || spec.windows.size() > 4)
    throw std::invalid_argument("ct_input: 1 to 4 windows expected");
  if (spec.size < 1) throw std::invalid_argument("ct_input: the model grid needs a positive size");

  CtPlacement p;
  p.source = hu.size();
  p.size = spec.size;
  // PixelSpacing is (row spacing, column spacing): columns step by the second value, rows by the first.
  const double sx = pixel_spacing[1] / spec.spacing_mm, sy = pixel_spacing[0] / spec.spacing_mm;
  p.resized = cv::Size(std::max(1, static_cast<int>(std::lround(hu.cols * sx))),
                       std::max(1, static_cast<int>(std::lround(hu.rows * sy))));
  // A guard against absurd spacings (a corrupt header): the resized slice stays within 16 grids per side.
  if (p.resized.width > 16 * spec.size || p.resized.height > 16 * spec.size)
    throw std::invalid_argument("ct_input: the slice would be resized to " + std::to_string(p.resized.width) +
                                "x" + std::to_string(p.resized.height) +
                                " pixels; its pixel spacing is implausible");
  p.offset = cv::Point((spec.size - p.resized.width) / 2, (spec.size - p.resized.height) / 2);

  // Outside the slice is air (-1000 HU), as around a patient.
  const cv::Mat canvas = on_model_grid(hu, p, -1000.0);
  std::vector<cv::Mat> channels;
  for (const Window& w : spec.windows) channels.push_back(window_to_8bit(canvas, w, false));
  CtInput out;
  cv::merge(channels, out.image);
  out.placement = p;
  return out;
}

cv::Mat mask_to_model(const cv::Mat& mask, const CtPlacement& placement) {
  if (mask.type() != CV_8UC1 || mask.size() != placement.source)
    throw std::invalid_argument("mask_to_model: a CV_8U mask of the source slice's size expected");
  cv::Mat covered = on_model_grid(mask, placement, 0.0) > 0.0f;
  return covered;
}

cv::Mat map_to_source(const cv::Mat& map, const CtPlacement& p, float outside) {
  if (map.type() != CV_32FC1 || map.rows != p.size || map.cols != p.size)
    throw std::invalid_argument("map_to_source: a CV_32F map of the model grid's size expected");
  cv::Mat resized(p.resized, CV_32F, cv::Scalar(outside));
  const Overlap o = overlap(p);
  map(o.in_grid).copyTo(resized(o.in_resized));
  cv::Mat source;
  cv::resize(resized, source, p.source, 0, 0, cv::INTER_LINEAR);
  return source;
}

}  // namespace attnvision::vision
