#include "vision/regions.h"

#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

namespace attnvision::vision {

std::optional<std::array<double, 3>> patient_point(const SliceGeometry& g, double x, double y) {
  if (!g.pixel_spacing || !g.orientation || !g.position) return std::nullopt;
  const auto& o = *g.orientation;
  const double dx = (*g.pixel_spacing)[1] * x,
               dy = (*g.pixel_spacing)[0] * y;  // columns step along X, rows along Y
  const auto& s = *g.position;
  return std::array<double, 3>{s[0] + o[0] * dx + o[3] * dy, s[1] + o[1] * dx + o[4] * dy,
                               s[2] + o[2] * dx + o[5] * dy};
}

namespace {

// The convex hull of the boundary pixels' outer corners, in pixel units: the farthest pair of a region's
// pixels lies on it, in pixels and in millimetres alike (scaling each axis maps a hull onto the scaled
// points' hull).
std::vector<cv::Point2f> corner_hull(const std::vector<cv::Point>& contour) {
  std::vector<cv::Point2f> corners;
  corners.reserve(contour.size() * 4);
  for (const cv::Point& p : contour)
    for (const float cx : {-0.5f, 0.5f})
      for (const float cy : {-0.5f, 0.5f})
        corners.emplace_back(static_cast<float>(p.x) + cx, static_cast<float>(p.y) + cy);
  std::vector<cv::Point2f> hull;
  cv::convexHull(corners, hull);
  return hull;
}

// The longest distance between two hull points with each axis scaled by its spacing: a single pixel measures
// its diagonal, a disc of d pixels about d.
double longest_extent(const std::vector<cv::Point2f>& hull, double column_spacing, double row_spacing) {
  double best = 0;
  for (size_t i = 0; i < hull.size(); ++i)
    for (size_t j = i + 1; j < hull.size(); ++j)
      best = std::max(
          best, std::hypot((hull[i].x - hull[j].x) * column_spacing, (hull[i].y - hull[j].y) * row_spacing));
  return best;
}

// The smallest float at or above `t`: for float values, v >= result exactly when v >= t (a comparison with a
// float scalar would otherwise round the threshold, possibly down).
float float_threshold(double t) {
  float f = static_cast<float>(t);
  if (static_cast<double>(f) < t) f = std::nextafter(f, std::numeric_limits<float>::infinity());
  return f;
}

}  // namespace

std::vector<Region> find_regions(const cv::Mat& map, double threshold, const SliceGeometry& geometry,
                                 const RegionOptions& options) {
  if (map.channels() != 1 || (map.depth() != CV_32F && map.depth() != CV_64F))
    throw std::invalid_argument("find_regions: the map must be one channel of float32 or float64");
  if (options.connectivity != 4 && options.connectivity != 8)
    throw std::invalid_argument("find_regions: connectivity is 4 or 8");
  // Only the mask's bounding box is labelled: a region is lesion-sized, the map a whole slice.
  const cv::Mat mask =
      map.depth() == CV_32F ? map >= float_threshold(threshold) : map >= threshold;  // NaN: never
  const cv::Rect box = cv::boundingRect(mask);
  if (box.empty()) return {};
  const cv::Mat values = map(box);
  cv::Mat labels, stats, centroids;
  const int count =
      cv::connectedComponentsWithStats(mask(box), labels, stats, centroids, options.connectivity, CV_32S);

  std::vector<Region> regions;
  for (int label = 1; label < count; ++label) {
    Region r;
    r.area_px = stats.at<int>(label, cv::CC_STAT_AREA);
    if (r.area_px < options.min_area_px) continue;
    const cv::Rect in_box(stats.at<int>(label, cv::CC_STAT_LEFT), stats.at<int>(label, cv::CC_STAT_TOP),
                          stats.at<int>(label, cv::CC_STAT_WIDTH), stats.at<int>(label, cv::CC_STAT_HEIGHT));
    r.bbox_px = in_box + box.tl();
    r.centroid_px =
        cv::Point2d(centroids.at<double>(label, 0) + box.x, centroids.at<double>(label, 1) + box.y);
    const cv::Mat mine = labels(in_box) == label;
    double lo = 0;
    cv::minMaxLoc(values(in_box), &lo, &r.peak, nullptr, nullptr, mine);
    r.mean = cv::mean(values(in_box), mine)[0];
    std::vector<std::vector<cv::Point>> contours;
    cv::findContours(mine, contours, cv::RETR_EXTERNAL, cv::CHAIN_APPROX_NONE, r.bbox_px.tl());
    // One component has one outer boundary; with 4-connectivity findContours (8-connected) may split none.
    for (const auto& c : contours)
      if (c.size() > r.contour.size()) r.contour = c;
    const std::vector<cv::Point2f> hull = corner_hull(r.contour);
    r.diameter_px = longest_extent(hull, 1.0, 1.0);
    if (geometry.pixel_spacing) {
      const auto [row_spacing, column_spacing] = *geometry.pixel_spacing;
      r.area_mm2 = static_cast<double>(r.area_px) * row_spacing * column_spacing;
      r.diameter_mm = longest_extent(hull, column_spacing, row_spacing);
    }
    r.centroid_mm = patient_point(geometry, r.centroid_px.x, r.centroid_px.y);
    regions.push_back(std::move(r));
  }
  std::stable_sort(regions.begin(), regions.end(),
                   [](const Region& a, const Region& b) { return a.peak > b.peak; });
  if (static_cast<int>(regions.size()) > options.max_regions)
    regions.resize(static_cast<size_t>(options.max_regions));
  return regions;
}

double otsu_threshold(const cv::Mat& map) {
  cv::Mat values;
  map.convertTo(values, CV_64F);
  double lo = 0, hi = 0;
  cv::minMaxLoc(values, &lo, &hi);
  if (!(hi > lo)) return lo;
  // Otsu on 256 bins of the map's own range: cv::threshold's Otsu wants 8-bit input, and the raw maps are
  // not.
  std::array<double, 256> hist{};
  const double scale = 255.0 / (hi - lo);
  for (auto it = values.begin<double>(); it != values.end<double>(); ++it)
    if (std::isfinite(*it)) hist[static_cast<size_t>(std::lround((*it - lo) * scale))] += 1;
  double total = 0, sum_all = 0;
  for (size_t b = 0; b < 256; ++b) total += hist[b], sum_all += static_cast<double>(b) * hist[b];
  // Every empty bin between two modes gives the same split: take the middle of the best run, not its first
  // bin, so that the threshold sits in the gap rather than on the lower mode's shoulder.
  double below = 0, sum_below = 0, best_var = -1;
  size_t first = 0, last = 0;
  for (size_t b = 0; b < 255; ++b) {
    below += hist[b];
    sum_below += static_cast<double>(b) * hist[b];
    const double above = total - below;
    if (below == 0 || above == 0) continue;
    const double mean_diff = sum_below / below - (sum_all - sum_below) / above;
    const double between = below * above * mean_diff * mean_diff;
    if (between > best_var * (1 + 1e-12))
      best_var = between, first = last = b;
    else if (between >= best_var * (1 - 1e-12))
      last = b;
  }
  // Values in bins above the split are the upper class: the threshold sits at the upper edge of the split
  // bin.
  return lo + (0.5 * static_cast<double>(first + last) + 0.5) / scale;
}

}  // namespace attnvision::vision
