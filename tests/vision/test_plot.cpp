// Training charts: sizes, that curves and cells are drawn where they belong, and one-line errors.
#include "vision/plot.h"

#include <gtest/gtest.h>
#include <opencv2/core.hpp>

#include <cmath>

namespace av = attnvision::vision;

namespace {

// Pixels of `img` (RGB) inside `r` that are exactly `rgb`.
int count_colour(const cv::Mat& img, cv::Rect r, cv::Vec3b rgb) {
  int n = 0;
  for (int y = r.y; y < r.y + r.height; ++y)
    for (int x = r.x; x < r.x + r.width; ++x) n += img.at<cv::Vec3b>(y, x) == rgb;
  return n;
}

TEST(Plot, PanelsSideBySideWithEachSeriesInItsColour) {
  const av::Series rising{"train", {1, 2, 3, 4}, {0.1, 0.4, 0.6, 0.9}};
  const av::Series with_gap{"val", {1, 2, 3, 4}, {0.2, NAN, 0.5, 0.8}};
  const cv::Mat img = av::plot_panels({{"loss", {rising, with_gap}}, {"accuracy", {rising}}}, 400, 300);
  ASSERT_EQ(img.type(), CV_8UC3);
  EXPECT_EQ(img.cols, 800);
  EXPECT_EQ(img.rows, 300);
  const cv::Vec3b first(31, 119, 180), second(255, 127, 14);  // the palette's first two colours
  EXPECT_GT(count_colour(img, {0, 0, 400, 300}, first), 50);
  EXPECT_GT(count_colour(img, {0, 0, 400, 300}, second), 20);
  EXPECT_GT(count_colour(img, {400, 0, 400, 300}, first), 50);
  EXPECT_EQ(count_colour(img, {400, 0, 400, 300}, second), 0) << "the second panel has one series";
  EXPECT_THROW(av::plot_panels({}), std::invalid_argument);
  EXPECT_THROW(av::plot_panels({{"bad", {{"x", {1, 2}, {1}}}}}), std::invalid_argument);
}

TEST(Plot, ConfusionCellsDarkenWithTheRowFraction) {
  const std::vector<std::vector<int64_t>> counts = {{90, 10}, {0, 100}};
  const cv::Mat img = av::plot_confusion(counts, {"cat", "dog"});
  ASSERT_EQ(img.type(), CV_8UC3);
  // Cell (0, 0) holds 90% of its row, cell (0, 1) 10%: the first is the darker blue.
  const int cell = 44, left = 130, top = 40;
  const cv::Vec3b dark = img.at<cv::Vec3b>(top + 3, left + 3), light = img.at<cv::Vec3b>(top + 3, left + cell + 3);
  EXPECT_LT(dark[0], light[0]);
  EXPECT_THROW(av::plot_confusion(counts, {"cat"}), std::invalid_argument);
  EXPECT_THROW(av::plot_confusion({{1, 2}, {3}}, {"a", "b"}), std::invalid_argument);
}

}  // namespace
