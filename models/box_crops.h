// Square crops around boxes, resampled to a fixed size: how a detection's second stage (a crop classifier that
// names each detected item from its own pixels) sees a box, and how its training crops are cut, so that both
// see the same pixels.
#pragma once

#include <torch/types.h>

#include <cstdint>

namespace attnvision::models {

// The second stage's square: its side over the box's longer side, for the training crops (`synth crops`) and
// the detections (`detect --classifier`) alike; a classifier records its crop size (input_size), not this.
inline constexpr double kSecondStageCropMargin = 1.15;

// The square of side max(w, h) * margin centred on each box, resampled to size x size, from `image`
// (C x H x W, floating; boxes K x 4 rows of [x, y, w, h] in its pixels, a pixel i spanning [i, i + 1)):
// K x C x size x size. Bilinear at twice the output resolution, then averaged 2 x 2, so that a box up to
// twice the crop's side is shrunk without aliasing; outside the image the edge pixels repeat (OpenCV's
// BORDER_REPLICATE). A box without extent gets a one-pixel square. Works under autograd and InferenceMode.
torch::Tensor square_crops(const torch::Tensor& image, const torch::Tensor& boxes, int64_t size, double margin);

}  // namespace attnvision::models
