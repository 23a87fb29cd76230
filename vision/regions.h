// Saliency regions: a raw map on a slice's pixel grid -> threshold -> connected components, each measured in
// pixels and, where the slice's geometry is known, in millimetres and patient coordinates (DICOM PS3.3
// C.7.6.2.1.1). What a clinician reads off an anomaly map: where, how big, how strong.
#pragma once

#include <opencv2/core/mat.hpp>
#include <opencv2/core/types.hpp>

#include <array>
#include <cstdint>
#include <optional>
#include <vector>

namespace attnvision::vision {

// Where a slice lies in the patient (the fields of DicomInfo that place one frame). Any part may be missing:
// without pixel_spacing nothing is in millimetres; without orientation and position nothing is in patient
// coordinates.
struct SliceGeometry {
  std::optional<std::array<double, 2>> pixel_spacing;  // mm between rows, mm between columns (PixelSpacing)
  std::optional<std::array<double, 6>> orientation;    // row direction cosines, column direction cosines
  std::optional<std::array<double, 3>> position;       // the centre of the first transmitted pixel, mm
};

// The patient coordinates (mm) of pixel centre (column x, row y): S + X * column spacing * x + Y * row
// spacing
// * y, with S the position and X, Y the orientation's row and column directions. Empty without the geometry.
std::optional<std::array<double, 3>> patient_point(const SliceGeometry& g, double x, double y);

struct Region {
  cv::Rect bbox_px;                                  // covers columns x..x+width-1 and rows y..y+height-1
  cv::Point2d centroid_px;                           // mean pixel centre (column, row), 0-based
  std::vector<cv::Point> contour;                    // outer boundary pixels, in order (cv::findContours)
  int64_t area_px = 0;                               // pixels in the region
  double diameter_px = 0;                            // longest extent, across the pixels' outer edges
  std::optional<double> area_mm2;                    // area_px times the pixel's area
  std::optional<double> diameter_mm;                 // longest extent with each axis in its own spacing
  std::optional<std::array<double, 3>> centroid_mm;  // patient coordinates of centroid_px
  double peak = 0;                                   // the map's largest value inside the region
  double mean = 0;                                   // the map's mean over the region
};

struct RegionOptions {
  int64_t min_area_px = 1;  // smaller components are dropped (speckle)
  int max_regions = 32;     // the strongest regions by peak, at most this many
  int connectivity = 8;     // 4 or 8
};

// Components of `map` >= `threshold` (`map`: single channel, CV_32F or CV_64F), ordered by descending peak.
// std::invalid_argument for another map type or connectivity.
std::vector<Region> find_regions(const cv::Mat& map, double threshold, const SliceGeometry& geometry = {},
                                 const RegionOptions& options = {});

// Otsu's threshold of a map's values (256 bins between its minimum and maximum): the value that best splits
// them in two classes. A constant map returns its value.
double otsu_threshold(const cv::Mat& map);

}  // namespace attnvision::vision
