// Saliency maps made visible: a [0, 1] map on the model-input grid is placed back on the image it came
// from (undoing the eval transform's resize and centre crop), coloured with a colour map, and blended.
#pragma once

#include "vision/transforms.h"

#include <opencv2/core/mat.hpp>

namespace attnvision::vision {

// `map` (CV_32F, any size, values in [0, 1]) covers the model input; returns a CV_32F map the size of
// `image_size` that is zero outside the crop window the model saw.
cv::Mat map_to_image(const cv::Mat& map, cv::Size image_size, const EvalTransform& t);

// JET-coloured `map` blended over `image` (read_image's output: gray / RGB / RGBA, 8 or 16 bit) with the
// map's weight `alpha`; RGB 8-bit result.
cv::Mat overlay_heatmap(const cv::Mat& image, const cv::Mat& map, double alpha = 0.45);

}  // namespace attnvision::vision
