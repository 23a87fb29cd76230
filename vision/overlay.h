// Model outputs made visible. Saliency maps: a [0, 1] map on the model-input grid is placed back on the image
// it came from (undoing the eval transform's resize and centre crop), coloured with a colour map, and
// blended. Detections: boxes with their label and score, one colour per class.
#pragma once

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

// The colour of class `index` (RGB): evenly spaced hues, so neighbouring classes differ.
cv::Scalar class_colour(int index);

}  // namespace attnvision::vision
