// Class-wise non-maximum suppression for detectors that want it (CenterNet's 3x3 peak picking usually makes
// it unnecessary; `detect` offers it as an option). OpenCV's cv::dnn::NMSBoxes does the work, one call per
// class: OpenCV 4.6 has no batched form.
#pragma once

#include <opencv2/core/types.hpp>

#include <vector>

namespace attnvision::vision {

// Indices of the boxes kept, by descending score: within each class, a box is dropped when a higher-scoring
// box of that class overlaps it with IoU > iou_threshold; boxes scoring below score_threshold are dropped
// first. Boxes are COCO's (x, y, width, height). Throws std::invalid_argument when the three lists differ
// in length or a threshold is outside [0, 1].
std::vector<int> nms_per_class(const std::vector<cv::Rect2d>& boxes, const std::vector<float>& scores,
                               const std::vector<int>& classes, float iou_threshold, float score_threshold = 0.0f);

}  // namespace attnvision::vision
