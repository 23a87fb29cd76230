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

}  // namespace attnvision::datasets
