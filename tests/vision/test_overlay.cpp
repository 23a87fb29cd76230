// Saliency maps land where the model looked: inside the centre-crop window, scaled back to the image.
#include "vision/overlay.h"

#include <gtest/gtest.h>
#include <opencv2/imgproc.hpp>

namespace attnvision::vision {
namespace {

TEST(Overlay, MapCoversOnlyTheCropWindow) {
  EvalTransform t;  // 224, crop 0.875: a 400x200 image is resized to 512x256 and cropped to 224x224
  t.height = t.width = 224;
  const cv::Size image(400, 200);
  cv::Mat ones(14, 14, CV_32F, cv::Scalar(1.0f));
  cv::Mat m = map_to_image(ones, image, t);
  ASSERT_EQ(m.size(), image);
  const cv::Rect crop = eval_crop_window(image, t);
  const cv::Size resized = eval_resize_size(image, t);
  const double sx = 400.0 / resized.width;
  const int left = static_cast<int>(crop.x * sx), right = static_cast<int>((crop.x + crop.width) * sx);
  EXPECT_NEAR(m.at<float>(100, (left + right) / 2), 1.0f, 1e-5);
  EXPECT_NEAR(m.at<float>(100, 2), 0.0f, 1e-5) << "left of the crop the model saw nothing";
  EXPECT_NEAR(m.at<float>(100, 397), 0.0f, 1e-5);
}

TEST(Overlay, BlendWeighsMapAndImage) {
  cv::Mat gray(10, 10, CV_8UC1, cv::Scalar(100));
  cv::Mat zero = cv::Mat::zeros(10, 10, CV_32F);
  cv::Mat out = overlay_heatmap(gray, zero, 0.5);
  ASSERT_EQ(out.type(), CV_8UC3);
  // JET at 0 is pure blue (0, 0, 128) in RGB order.
  const cv::Vec3b p = out.at<cv::Vec3b>(5, 5);
  EXPECT_NEAR(p[0], 50, 1);
  EXPECT_NEAR(p[1], 50, 1);
  EXPECT_NEAR(p[2], 114, 1);
}

}  // namespace
}  // namespace attnvision::vision
