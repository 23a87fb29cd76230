// Saliency regions against maps whose answers follow from their construction: discs and squares of known
// size, placement and values, on slices with known spacing and patient geometry.
#include "vision/regions.h"

#include <gtest/gtest.h>
#include <opencv2/imgproc.hpp>

#include <cmath>

namespace attnvision::vision {
namespace {

TEST(Regions, SquaresGiveTheirExactBoxesCentroidsAreasAndValues) {
  // Two squares on a 0.1 background: 5x5 of value 0.8 with top-left (10, 20); 3x3 of 0.6 at (40, 5) with a
  // 0.9 pixel at its centre. Spacing 0.5 mm between rows, 0.25 mm between columns.
  cv::Mat map(64, 64, CV_32F, cv::Scalar(0.1));
  map(cv::Rect(10, 20, 5, 5)).setTo(0.8);
  map(cv::Rect(40, 5, 3, 3)).setTo(0.6);
  map.at<float>(6, 41) = 0.9f;
  SliceGeometry g;
  g.pixel_spacing = std::array<double, 2>{0.5, 0.25};
  const std::vector<Region> r = find_regions(map, 0.5, g);
  ASSERT_EQ(r.size(), 2u);
  // By descending peak: the small square (0.9) first.
  EXPECT_EQ(r[0].bbox_px, cv::Rect(40, 5, 3, 3));
  EXPECT_EQ(r[0].area_px, 9);
  EXPECT_NEAR(r[0].centroid_px.x, 41, 1e-12);
  EXPECT_NEAR(r[0].centroid_px.y, 6, 1e-12);
  EXPECT_NEAR(r[0].peak, 0.9, 1e-6);
  EXPECT_NEAR(r[0].mean, (8 * 0.6 + 0.9) / 9, 1e-6);
  EXPECT_EQ(r[1].bbox_px, cv::Rect(10, 20, 5, 5));
  EXPECT_EQ(r[1].area_px, 25);
  EXPECT_NEAR(r[1].centroid_px.x, 12, 1e-12);
  EXPECT_NEAR(r[1].centroid_px.y, 22, 1e-12);
  ASSERT_TRUE(r[1].area_mm2.has_value());
  EXPECT_NEAR(*r[1].area_mm2, 25 * 0.5 * 0.25, 1e-12);
  // Longest extent of a 5x5 square: its diagonal across the outer pixel edges, 5 px wide and 5 px tall.
  EXPECT_NEAR(r[1].diameter_px, 5 * std::sqrt(2.0), 1e-5);
  EXPECT_NEAR(*r[1].diameter_mm, std::hypot(5 * 0.25, 5 * 0.5), 1e-5);
  EXPECT_FALSE(r[1].centroid_mm.has_value()) << "no orientation or position: no patient coordinates";
  EXPECT_EQ(r[1].contour.size(), 16u) << "the boundary ring of a 5x5 square";
}

TEST(Regions, ADiscMeasuresItsDiameterAndArea) {
  // The pixels within 10 px of (30, 40): 317 of them (the lattice points of a radius-10 disc), 21 across.
  cv::Mat map = cv::Mat::zeros(80, 80, CV_32F);
  int64_t inside = 0;
  for (int y = 0; y < 80; ++y)
    for (int x = 0; x < 80; ++x)
      if ((x - 30) * (x - 30) + (y - 40) * (y - 40) <= 100) map.at<float>(y, x) = 1.0f, ++inside;
  ASSERT_EQ(inside, 317);
  SliceGeometry g;
  g.pixel_spacing = std::array<double, 2>{0.7, 0.7};
  const std::vector<Region> r = find_regions(map, 0.5, g);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].bbox_px, cv::Rect(20, 30, 21, 21));
  EXPECT_EQ(r[0].area_px, 317);
  EXPECT_NEAR(*r[0].area_mm2, 317 * 0.49, 1e-9);
  // Across the outer pixel edges: 21 px along an axis, a little more along the diagonals of the digital disc.
  EXPECT_GE(r[0].diameter_px, 21.0);
  EXPECT_LT(r[0].diameter_px, 22.0);
  EXPECT_NEAR(*r[0].diameter_mm, r[0].diameter_px * 0.7, 1e-4);
  EXPECT_NEAR(r[0].centroid_px.x, 30, 1e-9);  // symmetric about its centre
  EXPECT_NEAR(r[0].centroid_px.y, 40, 1e-9);
}

TEST(Regions, PatientCoordinatesFollowPositionOrientationAndSpacing) {
  // DICOM PS3.3 C.7.6.2.1.1: P = S + X * column spacing * column + Y * row spacing * row. An axial slice
  // (X = +x, Y = +y) at S = (-100, -120, 35), rows 0.5 mm apart, columns 0.25 mm apart.
  SliceGeometry axial;
  axial.pixel_spacing = std::array<double, 2>{0.5, 0.25};
  axial.orientation = std::array<double, 6>{1, 0, 0, 0, 1, 0};
  axial.position = std::array<double, 3>{-100, -120, 35};
  const auto p = patient_point(axial, 40, 8);
  ASSERT_TRUE(p.has_value());
  EXPECT_NEAR((*p)[0], -100 + 40 * 0.25, 1e-12);
  EXPECT_NEAR((*p)[1], -120 + 8 * 0.5, 1e-12);
  EXPECT_NEAR((*p)[2], 35, 1e-12);
  // A coronal slice: columns run along +x, rows along -z (X = (1, 0, 0), Y = (0, 0, -1)).
  SliceGeometry coronal = axial;
  coronal.orientation = std::array<double, 6>{1, 0, 0, 0, 0, -1};
  const auto q = patient_point(coronal, 40, 8);
  EXPECT_NEAR((*q)[0], -100 + 40 * 0.25, 1e-12);
  EXPECT_NEAR((*q)[1], -120, 1e-12);
  EXPECT_NEAR((*q)[2], 35 - 8 * 0.5, 1e-12);
  // And a region's centroid_mm is the point of its centroid.
  cv::Mat map = cv::Mat::zeros(32, 64, CV_32F);
  map(cv::Rect(39, 7, 3, 3)).setTo(1.0);
  const std::vector<Region> r = find_regions(map, 0.5, coronal);
  ASSERT_EQ(r.size(), 1u);
  ASSERT_TRUE(r[0].centroid_mm.has_value());
  EXPECT_NEAR((*r[0].centroid_mm)[2], (*q)[2], 1e-9);
  EXPECT_NEAR((*r[0].centroid_mm)[0], (*q)[0], 1e-9);
  // No geometry at all: no patient point.
  EXPECT_FALSE(patient_point(SliceGeometry{}, 1, 1).has_value());
}

TEST(Regions, SpeckleAndLimitsAndConnectivity) {
  cv::Mat map = cv::Mat::zeros(32, 32, CV_32F);
  map.at<float>(2, 2) = 1.0f;              // one speckle pixel
  map(cv::Rect(10, 10, 4, 4)).setTo(0.7);  // a 16-pixel region
  map.at<float>(14, 14) = 0.7f;            // touches it by a corner only
  RegionOptions o;
  o.min_area_px = 2;
  std::vector<Region> r = find_regions(map, 0.5, {}, o);
  ASSERT_EQ(r.size(), 1u) << "the lone pixel is dropped";
  EXPECT_EQ(r[0].area_px, 17) << "8-connected: the corner pixel belongs";
  o.connectivity = 4;
  r = find_regions(map, 0.5, {}, o);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].area_px, 16) << "4-connected: it does not (and alone it is speckle)";
  o.max_regions = 0;
  EXPECT_TRUE(find_regions(map, 0.5, {}, o).empty());
  EXPECT_TRUE(find_regions(map, 2.0).empty()) << "nothing reaches the threshold";
  EXPECT_FALSE(r[0].area_mm2.has_value()) << "no spacing: pixels only";
  EXPECT_THROW(find_regions(cv::Mat::zeros(4, 4, CV_8U), 0.5), std::invalid_argument);
  o.connectivity = 6;
  EXPECT_THROW(find_regions(map, 0.5, {}, o), std::invalid_argument);
}

TEST(Regions, AFloatMapMeetsTheThresholdAsGivenNotAsAFloat) {
  // 0.7 has no float: 0.7f lies just below it. Pixels of 0.7f are below a threshold of 0.7 and at one of
  // 0.7f.
  cv::Mat map = cv::Mat::zeros(16, 16, CV_32F);
  map(cv::Rect(3, 4, 2, 2)).setTo(0.7f);
  ASSERT_LT(static_cast<double>(0.7f), 0.7);
  EXPECT_TRUE(find_regions(map, 0.7).empty());
  ASSERT_EQ(find_regions(map, static_cast<double>(0.7f)).size(), 1u);
  cv::Mat doubles;
  map.convertTo(doubles, CV_64F);
  EXPECT_TRUE(find_regions(doubles, 0.7).empty()) << "float64 maps compare as they are";
  EXPECT_EQ(find_regions(doubles, static_cast<double>(0.7f)).front().bbox_px, cv::Rect(3, 4, 2, 2));
}

TEST(Regions, OtsuSplitsTwoModes) {
  // Half the pixels near 0.2, half near 0.9 (a little spread): the threshold lands between the modes.
  cv::Mat map(40, 40, CV_32F);
  cv::RNG rng(7);
  for (int y = 0; y < 40; ++y)
    for (int x = 0; x < 40; ++x)
      map.at<float>(y, x) = static_cast<float>((x < 20 ? 0.2 : 0.9) + rng.gaussian(0.03));
  const double t = otsu_threshold(map);
  EXPECT_GT(t, 0.35);
  EXPECT_LT(t, 0.75);
  const std::vector<Region> r = find_regions(map, t);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].bbox_px, cv::Rect(20, 0, 20, 40));
  EXPECT_EQ(otsu_threshold(cv::Mat(5, 5, CV_32F, cv::Scalar(0.3))), 0.3f) << "a constant map: its value";
}

}  // namespace
}  // namespace attnvision::vision
