#include "vision/nms.h"

#include <opencv2/dnn/dnn.hpp>

#include <algorithm>
#include <map>
#include <stdexcept>

namespace attnvision::vision {

std::vector<int> nms_per_class(const std::vector<cv::Rect2d>& boxes, const std::vector<float>& scores,
                               const std::vector<int>& classes, float iou_threshold, float score_threshold) {
  if (boxes.size() != scores.size() || boxes.size() != classes.size())
    throw std::invalid_argument("nms: boxes, scores and classes differ in length");
  if (!(iou_threshold >= 0 && iou_threshold <= 1) || !(score_threshold >= 0 && score_threshold <= 1))
    throw std::invalid_argument("nms: thresholds must be in [0, 1]");
  std::map<int, std::vector<int>> members;  // class -> indices into the inputs
  for (size_t i = 0; i < boxes.size(); ++i) members[classes[i]].push_back(static_cast<int>(i));
  std::vector<int> kept;
  for (const auto& [cls, index] : members) {
    std::vector<cv::Rect2d> b;
    std::vector<float> s;
    for (int i : index) {
      b.push_back(boxes[static_cast<size_t>(i)]);
      s.push_back(scores[static_cast<size_t>(i)]);
    }
    std::vector<int> keep;
    cv::dnn::NMSBoxes(b, s, score_threshold, iou_threshold, keep);
    for (int k : keep) kept.push_back(index[static_cast<size_t>(k)]);
  }
  // Equal scores keep their input order, so the result does not depend on the classes' map order.
  std::stable_sort(kept.begin(), kept.end(), [&](int a, int b) {
    return scores[static_cast<size_t>(a)] != scores[static_cast<size_t>(b)] ? scores[static_cast<size_t>(a)] > scores[static_cast<size_t>(b)] : a < b;
  });
  return kept;
}

}  // namespace attnvision::vision
