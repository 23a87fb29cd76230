// Test helpers for the CenterNet head and what consumes its maps (decoding, the detection metric): padded
// box tensors, and the maps a perfect detector would predict for them.
#pragma once

#include "models/heads/centernet.h"

#include <torch/torch.h>

#include <vector>

namespace attnvision::models::testing {

// One image's boxes, rows of [class, x, y, w, h], padded with -1 rows to `pad_to`: a 1 x pad_to x 5 tensor.
inline torch::Tensor boxes_of(std::vector<std::vector<float>> rows, int64_t pad_to) {
  torch::Tensor t = torch::full({1, pad_to, 5}, -1.0f);
  for (size_t i = 0; i < rows.size(); ++i) t[0][static_cast<int64_t>(i)] = torch::tensor(rows[i]);
  return t;
}

// A Forward whose maps are exactly the targets' (logits of the Gaussian heatmap, sizes and offsets written
// at the centre cells): what a perfect detector would predict.
inline Forward perfect_forward(const torch::Tensor& boxes, int64_t classes, int64_t cells, int64_t stride) {
  const CenterNetTargets t = centernet_targets(boxes, classes, cells, cells, stride);
  Forward f;
  f.heatmap = torch::logit(t.heatmap.clamp(1e-6, 1 - 1e-6));
  f.box_size = torch::zeros({1, 2, cells * cells});
  f.box_offset = torch::zeros({1, 2, cells * cells});
  for (int64_t j = 0; j < boxes.size(1); ++j) {
    if (t.mask[0][j].item<float>() == 0) continue;
    const int64_t cell = t.index[0][j].item<int64_t>();
    f.box_size.select(2, cell)[0] = t.size[0][j];
    f.box_offset.select(2, cell)[0] = t.offset[0][j];
  }
  f.box_size = f.box_size.view({1, 2, cells, cells});
  f.box_offset = f.box_offset.view({1, 2, cells, cells});
  return f;
}

}  // namespace attnvision::models::testing
