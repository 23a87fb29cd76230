// CT slices as an anomaly model sees them: Hounsfield units resampled to one fixed pixel spacing (so a 10 mm
// lesion covers the same pixels whether the scan has 0.6 mm or 1.8 mm pixels), centred on a square canvas of
// fixed size, and windowed into one 8-bit channel per window (lung, soft tissue, ...). The way back maps a
// model-grid saliency map onto the source slice's own rows and columns.
#pragma once

#include "vision/dicom.h"

#include <opencv2/core/mat.hpp>

#include <array>
#include <vector>

namespace attnvision::vision {

struct CtInputSpec {
  double spacing_mm = 1.0;      // the model grid's pixel spacing, both axes
  int size = 256;               // the model grid's side: size * spacing_mm millimetres of field of view
  std::vector<Window> windows;  // one output channel per window, in order
};

// How the source slice lies on the model grid: the slice is resized to `resized` (cv::resize's pixel-centre
// convention: source column x maps to (x + 0.5) * resized.width / source.width - 0.5) and pasted with its
// top-left corner at `offset` (negative where the slice is larger than the grid and its border is cut), so
// that its centre lands on the grid's centre.
struct CtPlacement {
  cv::Size source;
  cv::Size resized;  // source size times source spacing / model spacing, rounded
  cv::Point offset;  // (size - resized) / 2, per axis
  int size = 0;
  // Model-grid coordinates (u, v) of source pixel centre (x, y).
  cv::Point2d to_model(double x, double y) const;
};

struct CtInput {
  cv::Mat image;  // size x size, CV_8UC(windows.size()); outside the source: the windows' value for air
  CtPlacement placement;
};

// `hu`: one slice in Hounsfield units (one channel, any depth read_dicom gives); `pixel_spacing`: DICOM's
// PixelSpacing (row spacing, column spacing). Resampling uses area averaging when shrinking (small lesions
// keep their mean contrast) and bilinear interpolation when enlarging. std::invalid_argument for a
// non-positive spacing, a multi-channel slice, or a spec without windows.
CtInput ct_input(const cv::Mat& hu, const std::array<double, 2>& pixel_spacing, const CtInputSpec& spec);

// A mask on the source slice's grid (CV_8U, non-zero inside) on the model grid (CV_8U 0 / 255): a model-grid
// pixel is inside when the resampling gives it any coverage, so a lesion never vanishes when shrunk.
cv::Mat mask_to_model(const cv::Mat& mask, const CtPlacement& placement);

// A map on the model grid (CV_32F, size x size) back on the source slice's grid (CV_32F, source size),
// bilinear; source pixels that fell outside the model grid get `outside`.
cv::Mat map_to_source(const cv::Mat& map, const CtPlacement& placement, float outside = 0.0f);

}  // namespace attnvision::vision
