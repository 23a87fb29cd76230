// Charts for training reports, drawn with OpenCV so that no plotting library is needed: learning curves
// (one panel per metric, a line per series) and a confusion matrix. Both return an 8-bit RGB image for
// write_png.
#pragma once

#include <opencv2/core/mat.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace attnvision::vision {

struct Series {
  std::string name;        // legend entry, e.g. "train" or "val"
  std::vector<double> x;   // e.g. epochs
  std::vector<double> y;   // same length as x; NaN points are skipped
};

struct Panel {
  std::string title;       // e.g. "loss" or "accuracy (%)"
  std::vector<Series> series;
};

// Panels side by side, each with its own axes scaled to its data.
cv::Mat plot_panels(const std::vector<Panel>& panels, int panel_width = 480, int height = 360);

// counts[true][predicted]; rows are normalised to fractions for the colour, cells show the count.
cv::Mat plot_confusion(const std::vector<std::vector<int64_t>>& counts, const std::vector<std::string>& labels);

}  // namespace attnvision::vision
