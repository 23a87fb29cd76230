// Model outputs made visible. Saliency maps: a [0, 1] map on the model-input grid is placed back on the image
// it came from (undoing the eval transform's resize and centre crop), coloured with a colour map, and
// blended. Detections: boxes with their label and score, one colour per class.
#pragma once

#include "vision/regions.h"
#include "vision/transforms.h"

#include <opencv2/core/mat.hpp>

#include <string>
#include <vector>

namespace attnvision::vision {

// `map` (CV_32F, any size, values in [0, 1]) covers the model input; returns a CV_32F map the size of
// `image_size` that is zero outside the crop window the model saw.
cv::Mat map_to_image(const cv::Mat& map, cv::Size image_size, const EvalTransform& t);

// JET-coloured `map` blended over `image` (read_image's output: gray / RGB / RGBA, 8 or 16 bit) with the
// map's weight `alpha`; RGB 8-bit result.
cv::Mat overlay_heatmap(const cv::Mat& image, const cv::Mat& map, double alpha = 0.45);

// A saliency map (CV_32F, any non-negative scale) as a translucent RGBA layer of its own size: JET colours of
// map / vmax, opacity rising with the value from nothing at 0 to `max_alpha` at vmax, so anatomy stays visible
// where the model looked at nothing. vmax <= 0 gives a fully transparent layer.
cv::Mat saliency_layer(const cv::Mat& map, double vmax, double max_alpha = 0.6);

// `layer` (RGBA, same size) alpha-composited over `image` (read_image's output, gray or RGB); RGB 8-bit.
cv::Mat composite(const cv::Mat& image, const cv::Mat& layer);

// Each region's outline (its contour) and a label beside its box, on an RGB or RGBA 8-bit image (RGBA
// outlines are opaque). `labels[i]` captions regions[i] ("1: 12.3 mm").
void draw_region_outlines(cv::Mat& image, const std::vector<Region>& regions, const std::vector<std::string>& labels);

// `rgb` with a vertical colour bar to its right: JET from 0 (bottom) to vmax (top), three ticks, and `title`.
cv::Mat with_colour_bar(const cv::Mat& rgb, double vmax, const std::string& title);

// One detection to draw: COCO's box (x, y, width, height in the image's pixels, edges between pixels).
struct DrawnBox {
  cv::Rect2d box;
  int class_index = 0;  // picks the colour
  std::string label;
  double score = 0;
};

// `image` (read_image's output) as 8-bit RGB with each box outlined and captioned "label 0.93" on a filled
// tag above it (inside the image when the box touches its top). Line width and text grow with the image so
// that they stay legible on large photos and do not swamp 128-pixel scenes.
cv::Mat overlay_boxes(const cv::Mat& image, const std::vector<DrawnBox>& boxes);

// Captioned panels side by side, `columns` to a row: each panel (8-bit RGB, all one size) with its title in a
// strip beneath it (a caption's words, one panel each: where the decoder looked for that word).
cv::Mat titled_grid(const std::vector<cv::Mat>& panels, const std::vector<std::string>& titles, int columns);

// The colour of class `index` (RGB): evenly spaced hues, so neighbouring classes differ.
cv::Scalar class_colour(int index);

}  // namespace attnvision::vision
