// Class-wise NMS: suppression only within a class, by IoU above the threshold, scores ranked.
#include "vision/nms.h"

#include <gtest/gtest.h>

namespace attnvision::vision {
namespace {

TEST(Nms, SuppressesOnlyOverlapsWithinAClass) {
  // Boxes 0 and 1: [0, 0, 10, 10] and [2, 0, 10, 10] overlap on 8 x 10 = 80 pixels of a 120-pixel union:
  // IoU 0.667. Box 2 is box 1's twin in another class. Box 3 is far away in class 0.
  const std::vector<cv::Rect2d> boxes{{0, 0, 10, 10}, {2, 0, 10, 10}, {2, 0, 10, 10}, {50, 50, 5, 5}};
  const std::vector<float> scores{0.9f, 0.8f, 0.7f, 0.6f};
  const std::vector<int> classes{0, 0, 1, 0};
  EXPECT_EQ(nms_per_class(boxes, scores, classes, 0.5f), (std::vector<int>{0, 2, 3}));
  // At a threshold above their IoU both class-0 boxes stay.
  EXPECT_EQ(nms_per_class(boxes, scores, classes, 0.7f), (std::vector<int>{0, 1, 2, 3}));
  // The score threshold drops the low ones first.
  EXPECT_EQ(nms_per_class(boxes, scores, classes, 0.5f, 0.65f), (std::vector<int>{0, 2}));
  // The higher score wins whatever the input order.
  EXPECT_EQ(nms_per_class({{2, 0, 10, 10}, {0, 0, 10, 10}}, {0.3f, 0.95f}, {4, 4}, 0.5f), (std::vector<int>{1}));
  EXPECT_TRUE(nms_per_class({}, {}, {}, 0.5f).empty());
  EXPECT_THROW(nms_per_class(boxes, scores, {0}, 0.5f), std::invalid_argument);
  EXPECT_THROW(nms_per_class(boxes, scores, classes, 1.5f), std::invalid_argument);
}

}  // namespace
}  // namespace attnvision::vision
