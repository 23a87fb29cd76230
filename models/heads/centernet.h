// CenterNet ("Objects as Points", Zhou et al. 2019), the detection head's training targets, loss and decoding,
// kept apart from its forward (models/heads/centernet.cpp) as mmdetection's centernet_head.py keeps them.
// Boxes travel as one padded tensor per batch so the trainer stays task-agnostic: N x M x 5 rows of
// [class, x, y, w, h] in input pixels (COCO's box: left, top, width, height), class -1 for padding.
#pragma once

#include "models/backbones/backbone.h"

#include <torch/types.h>

namespace attnvision::models {

// What CenterNet regresses, on the head's grid (h x w cells of `stride` input pixels).
struct CenterNetTargets {
  torch::Tensor heatmap;  // N x num_classes x h x w: a Gaussian peak of 1 at each box's centre cell
  torch::Tensor size;     // N x M x 2: box width and height in cells
  torch::Tensor offset;   // N x M x 2: the centre's position within its cell, in [0, 1)
  torch::Tensor index;    // N x M (int64): the centre cell, y * w + x
  torch::Tensor mask;     // N x M: 1 for a real box whose centre falls on the grid, 0 for padding
  torch::Tensor classes;  // N x M (int64): each box's class, 0 for padding
};

CenterNetTargets centernet_targets(const torch::Tensor& boxes, int64_t num_classes, int64_t h, int64_t w,
                                   int64_t stride);

// CenterNet's Gaussian radius for a box of `height` x `width` cells: the largest shift of its corners that
// keeps IoU >= min_overlap in the worst of the three cases the paper's code considers.
double centernet_gaussian_radius(double height, double width, double min_overlap = 0.7);

struct CenterNetLoss {
  torch::Tensor total;    // heatmap + size_weight * size + offset + class_weight * classes
  torch::Tensor heatmap;  // penalty-reduced focal loss (alpha 2, beta 4), per object
  torch::Tensor classes;  // softmax cross-entropy of the class logits at each centre cell, per object
  torch::Tensor size;     // L1 on width and height in cells, per coordinate of an object
  torch::Tensor offset;   // L1 on the sub-cell centre, per coordinate of an object
};

// class_weight: ModelCfg's center_class_loss (0 leaves CenterNet's loss as published).
CenterNetLoss centernet_loss(const Forward& f, const torch::Tensor& boxes, int64_t stride, double class_weight = 0.0,
                             double size_weight = 0.1);

// The top `k` peaks of every image (a peak: the maximum of its 3x3 neighbourhood, over all classes), as
// N x k x 6 rows of [x, y, w, h, score, class] in input pixels, by descending score. Boxes are cut to the
// input (h * stride x w * stride pixels); a negative predicted size counts as 0, so a box may have no extent.
torch::Tensor centernet_decode(const Forward& f, int64_t k, int64_t stride);
// centernet_decode's peaks and, for each, every class's probability at its cell (N x k x num_classes): what a
// captioner that attends to a detector's findings reads of a detection beside its box.
std::pair<torch::Tensor, torch::Tensor> centernet_decode_with_classes(const Forward& f, int64_t k, int64_t stride);

// CenterNet's flip test: the outputs `f` for an image averaged with `mirrored`, the outputs for the image flipped
// left to right, flipped back. Class probabilities (the heatmap comes back as logits) and box sizes are averaged
// cell by cell; the sub-cell offsets stay f's, since a mirrored offset is measured from the other side of its
// cell. Mirroring keeps the grid's cells (the input is a whole number of cells wide), so each cell meets its own.
Forward centernet_flip_average(Forward f, const Forward& mirrored);

}  // namespace attnvision::models
