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

TEST(Overlay, BoxesOutlineTheirPixelsInTheirClassColour) {
  // A gray 128x128 image, one box [20, 40, 30, 50]: its outline runs along columns 20 and 49 and rows 40 and
  // 89 (COCO's edges lie between pixels; the last pixel inside is x + w - 1). The tag sits above row 40.
  const cv::Mat gray(128, 128, CV_8UC1, cv::Scalar(90));
  const cv::Mat out = overlay_boxes(gray, {{cv::Rect2d(20, 40, 30, 50), 3, "bag", 0.93}});
  ASSERT_EQ(out.type(), CV_8UC3);
  const cv::Scalar c = class_colour(3);
  const cv::Vec3b want(static_cast<uchar>(c[0]), static_cast<uchar>(c[1]), static_cast<uchar>(c[2]));
  EXPECT_EQ(out.at<cv::Vec3b>(65, 20), want);  // left edge, below the tag
  EXPECT_EQ(out.at<cv::Vec3b>(65, 49), want);  // right edge
  EXPECT_EQ(out.at<cv::Vec3b>(89, 35), want);  // bottom edge
  EXPECT_EQ(out.at<cv::Vec3b>(65, 35), cv::Vec3b(90, 90, 90)) << "inside the box is untouched";
  EXPECT_EQ(out.at<cv::Vec3b>(65, 50), cv::Vec3b(90, 90, 90)) << "one past the right edge is untouched";
  EXPECT_EQ(out.at<cv::Vec3b>(120, 120), cv::Vec3b(90, 90, 90));
  // Something of the tag (its fill or its text) is drawn in the rows just above the box.
  EXPECT_GT(cv::norm(out(cv::Rect(20, 30, 20, 9)) - cv::Scalar(90, 90, 90), cv::NORM_L1), 0.0);
  // Classes next to each other get clearly different colours.
  EXPECT_GT(cv::norm(class_colour(0) - class_colour(1)), 100.0);
  // A box at the top edge keeps its tag inside the image, and the input is not modified.
  const cv::Mat again = overlay_boxes(gray, {{cv::Rect2d(0, 0, 10, 10), 0, "top", 0.5}});
  EXPECT_EQ(gray.at<uchar>(0, 0), 90);
  EXPECT_EQ(again.size(), gray.size());
}

TEST(Overlay, TwoClassesOnOneBoxGetLabelsThatDoNotCoverEachOther) {
  // A detector may report one object twice, as two classes on the same box. Each label is a filled tag in
  // its class colour: both colours must show, one above the box, the other moved below it.
  const cv::Mat gray(128, 128, CV_8UC1, cv::Scalar(90));
  const cv::Rect2d box(30, 40, 60, 60);
  const cv::Mat out = overlay_boxes(gray, {{box, 0, "shirt", 0.6}, {box, 1, "coat", 0.3}});
  auto count_colour = [&](int class_index, const cv::Rect& area) {
    const cv::Scalar c = class_colour(class_index);
    const cv::Vec3b want(static_cast<uchar>(c[0]), static_cast<uchar>(c[1]), static_cast<uchar>(c[2]));
    int n = 0;
    for (int y = area.y; y < area.y + area.height; ++y)
      for (int x = area.x; x < area.x + area.width; ++x) n += out.at<cv::Vec3b>(y, x) == want;
    return n;
  };
  const cv::Rect above(30, 25, 40, 15), inside_top(31, 41, 40, 15);
  EXPECT_GT(count_colour(0, above), 100) << "the first label's tag above the box";
  EXPECT_GT(count_colour(1, inside_top), 100) << "the second label moved down, not drawn over the first";
  EXPECT_LT(count_colour(1, above), 20) << "the second label does not cover the first";
}

TEST(Overlay, ColourBarPanelIsWideEnoughForItsTitle) {
  // A small slice with a long title: the panel widens so that no column of the title is cut off, i.e. the
  // rightmost column of the panel stays black (the text ends before it).
  const cv::Mat rgb(256, 256, CV_8UC3, cv::Scalar(40, 40, 40));
  const std::string title = "layercam p=0.999 and a longer title";
  const cv::Mat out = with_colour_bar(rgb, 2.5, title);
  int baseline = 0;
  const double font_scale = std::max(0.35, rgb.rows / 1100.0);
  EXPECT_GE(out.cols - rgb.cols, cv::getTextSize(title, cv::FONT_HERSHEY_SIMPLEX, font_scale, 1, &baseline).width);
  cv::Mat last_column;
  cv::extractChannel(out.col(out.cols - 1), last_column, 0);
  EXPECT_EQ(cv::countNonZero(last_column), 0);
}

}  // namespace
}  // namespace attnvision::vision
