// The only cv::Mat <-> torch::Tensor bridge: decoded images become one preprocessed NCHW batch,
// written in place (no per-image tensor copies).
#pragma once

#include "vision/transforms.h"

#include <opencv2/core/mat.hpp>
#include <torch/types.h>


namespace attnvision::datasets {

// An empty batch to be filled slot by slot (by decode workers) with fill_slot.
torch::Tensor empty_batch(int64_t n, const vision::EvalTransform& transform);
void fill_slot(torch::Tensor& batch, int64_t index, const cv::Mat& image, const vision::EvalTransform& transform);

// A 2-D float tensor (a saliency map, h x w) as a CV_32F Mat that owns a copy of its values.
cv::Mat map_to_mat(const torch::Tensor& map);
// The way back: a CV_32F map (h x w) as a float tensor that owns a copy of its values.
torch::Tensor mat_to_map(const cv::Mat& map);

}  // namespace attnvision::datasets
