// CT model input: a lesion keeps its physical size and place whatever the scan's pixel spacing, windows
// become channels in order, and maps go back onto the source grid where they came from.
#include "vision/ct_input.h"

#include <gtest/gtest.h>
#include <opencv2/imgproc.hpp>

#include <cmath>

namespace attnvision::vision {
namespace {

// A soft-tissue slice (40 HU) with a round 200 HU lesion of `diameter_mm` centred at `centre_mm` from the
// slice's top-left corner, sampled at `spacing` mm (pixel centres at (i + 0.5) * spacing).
cv::Mat slice_with_lesion(int side, double spacing, cv::Point2d centre_mm, double diameter_mm) {
  cv::Mat hu(side, side, CV_16S, cv::Scalar(40));
  for (int y = 0; y < side; ++y)
    for (int x = 0; x < side; ++x)
      if (std::hypot((x + 0.5) * spacing - centre_mm.x, (y + 0.5) * spacing - centre_mm.y) <= diameter_mm / 2)
        hu.at<int16_t>(y, x) = 200;
  return hu;
}

CtInputSpec soft_tissue_spec() {
  CtInputSpec spec;
  spec.spacing_mm = 1.0;
  spec.size = 384;
  spec.windows = {window_preset("abdomen")};  // 50 / 400: 40 HU is mid-gray, 200 HU bright
  return spec;
}

// Centroid and pixel count of the channel-0 pixels brighter than `level`.
std::pair<cv::Point2d, double> bright_blob(const cv::Mat& image, int level) {
  cv::Mat channel;
  cv::extractChannel(image, channel, 0);
  const cv::Moments m = cv::moments(channel > level, true);
  return {{m.m10 / m.m00, m.m01 / m.m00}, m.m00};
}

TEST(CtInput, ALesionKeepsItsSizeInModelPixelsWhateverTheScanSpacing) {
  // The same 14 mm lesion 200 mm right and 150 mm down of the corner, scanned at 0.7 mm (512 px, 358 mm) and
  // at 1.4 mm (256 px, 358 mm): at 1 mm per model pixel it covers about pi * 7^2 = 154 pixels both times.
  const CtInputSpec spec = soft_tissue_spec();
  const CtInput fine = ct_input(slice_with_lesion(512, 0.7, {200, 150}, 14), {0.7, 0.7}, spec);
  const CtInput coarse = ct_input(slice_with_lesion(256, 1.4, {200, 150}, 14), {1.4, 1.4}, spec);
  ASSERT_EQ(fine.image.size(), cv::Size(384, 384));
  ASSERT_EQ(fine.image.type(), CV_8UC1);
  EXPECT_EQ(fine.placement.resized, cv::Size(358, 358));  // 512 * 0.7 = 358.4
  EXPECT_EQ(fine.placement.offset, cv::Point(13, 13));
  const auto [fine_centre, fine_area] = bright_blob(fine.image, 200);
  const auto [coarse_centre, coarse_area] = bright_blob(coarse.image, 200);
  const double expected_area = 3.14159265 * 49;
  EXPECT_NEAR(fine_area, expected_area, 0.15 * expected_area);
  EXPECT_NEAR(coarse_area, expected_area, 0.15 * expected_area);
  // Its centre where the placement says: source pixel centre of the lesion centre -> model grid.
  const cv::Point2d want = fine.placement.to_model(200 / 0.7 - 0.5, 150 / 0.7 - 0.5);
  EXPECT_NEAR(fine_centre.x, want.x, 0.5);
  EXPECT_NEAR(fine_centre.y, want.y, 0.5);
  EXPECT_NEAR(coarse_centre.x, fine_centre.x, 1.0);
  EXPECT_NEAR(coarse_centre.y, fine_centre.y, 1.0);
}

TEST(CtInput, ALesionMaskLandsOnItsLesionOnTheModelGrid) {
  // The lesion's mask, resampled like its HU, covers the lesion's bright model pixels and at most a pixel's rim
  // more; a lesion far smaller than a model pixel still leaves one.
  const CtInputSpec spec = soft_tissue_spec();
  for (const double spacing : {0.7, 1.4}) {
    const int side = spacing < 1 ? 512 : 256;
    const cv::Mat hu = slice_with_lesion(side, spacing, {200, 150}, 14);
    const CtInput in = ct_input(hu, {spacing, spacing}, spec);
    const cv::Mat mask = mask_to_model(hu > 100, in.placement);
    ASSERT_EQ(mask.type(), CV_8UC1);
    ASSERT_EQ(mask.size(), cv::Size(spec.size, spec.size));
    cv::Mat bright;
    cv::extractChannel(in.image > 200, bright, 0);
    EXPECT_EQ(cv::countNonZero(bright & ~mask), 0) << spacing;
    cv::Mat rim;
    cv::dilate(bright, rim, cv::getStructuringElement(cv::MORPH_RECT, {5, 5}));
    EXPECT_EQ(cv::countNonZero(mask & ~rim), 0) << spacing;
  }
  const cv::Mat speck = slice_with_lesion(512, 0.2, {50, 50}, 0.3) > 100;
  ASSERT_GT(cv::countNonZero(speck), 0);
  const CtInput in = ct_input(cv::Mat(512, 512, CV_16S, cv::Scalar(40)), {0.2, 0.2}, soft_tissue_spec());
  EXPECT_GE(cv::countNonZero(mask_to_model(speck, in.placement)), 1);
  EXPECT_THROW(mask_to_model(cv::Mat(10, 10, CV_8UC1), in.placement), std::invalid_argument);
}

TEST(CtInput, AnisotropicSpacingStretchesEachAxisByItsOwnSpacing) {
  // Rows 2 mm apart, columns 1 mm apart: 100 rows x 200 columns is 200 mm x 200 mm, square on a 1 mm grid.
  CtInputSpec spec = soft_tissue_spec();
  spec.size = 256;
  const CtInput in = ct_input(cv::Mat(100, 200, CV_32F, cv::Scalar(40)), {2.0, 1.0}, spec);
  EXPECT_EQ(in.placement.resized, cv::Size(200, 200));
  EXPECT_EQ(in.placement.offset, cv::Point(28, 28));
}

TEST(CtInput, WindowsBecomeChannelsAndOutsideTheSliceIsAir) {
  CtInputSpec spec = soft_tissue_spec();
  spec.size = 64;
  spec.windows = {window_preset("lung"), window_preset("abdomen"), window_preset("bone")};
  const CtInput in = ct_input(cv::Mat(32, 32, CV_32F, cv::Scalar(40)), {1.0, 1.0}, spec);
  ASSERT_EQ(in.image.type(), CV_8UC3);
  auto windowed = [](double hu, const Window& w) {
    return window_to_8bit(cv::Mat(1, 1, CV_32F, cv::Scalar(hu)), w, false).at<uint8_t>(0, 0);
  };
  const cv::Vec3b centre = in.image.at<cv::Vec3b>(32, 32), corner = in.image.at<cv::Vec3b>(0, 0);
  for (int c = 0; c < 3; ++c) {
    EXPECT_EQ(centre[c], windowed(40, spec.windows[static_cast<size_t>(c)])) << "channel " << c;
    EXPECT_EQ(corner[c], windowed(-1000, spec.windows[static_cast<size_t>(c)])) << "channel " << c;
  }
  EXPECT_NE(centre[0], centre[1]) << "different windows give different channels";
}

TEST(CtInput, MapsGoBackToTheSourceGrid) {
  // A map that is the model grid's column coordinate u: back on the source, each pixel reads the u its centre
  // maps to (bilinear interpolation is exact on a linear function), away from the borders.
  const CtInputSpec spec = soft_tissue_spec();
  const CtInput in = ct_input(cv::Mat(512, 512, CV_16S, cv::Scalar(40)), {0.7, 0.7}, spec);
  cv::Mat ramp(spec.size, spec.size, CV_32F);
  for (int v = 0; v < spec.size; ++v)
    for (int u = 0; u < spec.size; ++u) ramp.at<float>(v, u) = static_cast<float>(u);
  const cv::Mat back = map_to_source(ramp, in.placement);
  ASSERT_EQ(back.size(), cv::Size(512, 512));
  for (const int x : {5, 100, 255, 400, 506}) {
    const double want = in.placement.to_model(x, 200).x;
    EXPECT_NEAR(back.at<float>(200, x), want, 1e-3) << "column " << x;
  }
  // A slice larger than the grid: its border falls outside and comes back as `outside`.
  CtInputSpec small = spec;
  small.size = 128;
  const CtInput cut = ct_input(cv::Mat(512, 512, CV_16S, cv::Scalar(40)), {0.7, 0.7}, small);
  EXPECT_LT(cut.placement.offset.x, 0);
  const cv::Mat ones = map_to_source(cv::Mat(128, 128, CV_32F, cv::Scalar(1.0)), cut.placement, -1.0f);
  EXPECT_EQ(ones.at<float>(0, 0), -1.0f);
  EXPECT_EQ(ones.at<float>(256, 256), 1.0f);
}

TEST(CtInput, RefusesWhatItCannotPlace) {
  const CtInputSpec spec = soft_tissue_spec();
  const cv::Mat slice(16, 16, CV_16S, cv::Scalar(0));
  EXPECT_THROW(ct_input(slice, {0.0, 0.7}, spec), std::invalid_argument);
  EXPECT_THROW(ct_input(slice, {0.7, -1.0}, spec), std::invalid_argument);
  EXPECT_THROW(ct_input(cv::Mat(16, 16, CV_8UC3), {0.7, 0.7}, spec), std::invalid_argument);
  EXPECT_THROW(ct_input(slice, {1e6, 1e6}, spec), std::invalid_argument)
      << "a corrupt spacing, no giant canvas";
  CtInputSpec none = spec;
  none.windows.clear();
  EXPECT_THROW(ct_input(slice, {0.7, 0.7}, none), std::invalid_argument);
  EXPECT_THROW(map_to_source(cv::Mat(10, 10, CV_32F), ct_input(slice, {0.7, 0.7}, spec).placement),
               std::invalid_argument);
}

}  // namespace
}  // namespace attnvision::vision
