// models::square_crops: the pixels a detector's second stage sees of each box.
#include "models/box_crops.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

namespace attnvision::models {
namespace {

// A linear ramp: bilinear sampling reproduces it exactly, so a crop at the image's own scale must be the
// image's own pixels (the 2 x 2 supersamples of a pixel average to its centre).
torch::Tensor ramp(int64_t channels, int64_t h, int64_t w) {
  const torch::Tensor y = torch::arange(h, torch::kFloat32).view({1, h, 1});
  const torch::Tensor x = torch::arange(w, torch::kFloat32).view({1, 1, w});
  const torch::Tensor c = torch::arange(channels, torch::kFloat32).view({channels, 1, 1});
  return (3 * x + 7 * y + 100 * c).expand({channels, h, w}).contiguous();
}

TEST(BoxCrops, ACropAtTheImagesOwnScaleIsItsPixels) {
  const torch::Tensor image = ramp(3, 64, 64);
  const torch::Tensor boxes = torch::tensor({{10.0, 20.0, 16.0, 16.0}, {40.0, 30.0, 8.0, 8.0}});
  const torch::Tensor a = square_crops(image, boxes.narrow(0, 0, 1), 16, 1.0);
  ASSERT_EQ(a.sizes(), (std::vector<int64_t>{1, 3, 16, 16}));
  EXPECT_TRUE(torch::allclose(a[0], image.slice(1, 20, 36).slice(2, 10, 26), 0, 1e-3));
  // Both boxes in one call, each at its own scale: the first halved (a ramp stays a ramp, two pixels a step),
  // the second as it is.
  const torch::Tensor b = square_crops(image, boxes, 8, 1.0);
  EXPECT_TRUE(torch::allclose(b[1], image.slice(1, 30, 38).slice(2, 40, 48), 0, 1e-3));
  EXPECT_TRUE(torch::allclose(b[0].select(2, 1) - b[0].select(2, 0), torch::full({3, 8}, 6.0f), 0, 1e-3));
}

TEST(BoxCrops, TheSquareIsCentredOnTheBoxAndSizedByItsLongerSideTimesTheMargin) {
  const torch::Tensor image = ramp(1, 64, 64);
  // A 4 x 16 box centred at (22, 28): with margin 1.5 the square is 24 px, x 10..34, y 16..40.
  const torch::Tensor crop = square_crops(image, torch::tensor({{20.0, 20.0, 4.0, 16.0}}), 24, 1.5);
  EXPECT_TRUE(torch::allclose(crop[0], image.slice(1, 16, 40).slice(2, 10, 34), 0, 1e-3));
}

TEST(BoxCrops, PastTheImageTheEdgePixelsRepeat) {
  const torch::Tensor image = ramp(1, 32, 32);
  const torch::Tensor crop = square_crops(image, torch::tensor({{-8.0, 4.0, 16.0, 16.0}}), 16, 1.0)[0][0];
  // Columns left of the image hold column 0's values; those inside it, a pixel in from its edge (where the
  // supersamples straddle it), the image's.
  for (int64_t col = 0; col < 8; ++col)
    EXPECT_TRUE(torch::allclose(crop.select(1, col), image[0].slice(0, 4, 20).select(1, 0), 0, 1e-3)) << col;
  EXPECT_TRUE(torch::allclose(crop.slice(1, 9, 16), image[0].slice(0, 4, 20).slice(1, 1, 8), 0, 1e-3));
}

TEST(BoxCrops, ShrinkingByTwoAveragesInsteadOfAliasing) {
  // One-pixel checks: plain bilinear sampling at half resolution would hit one colour only.
  const torch::Tensor check = ((torch::arange(32).view({32, 1}) + torch::arange(32).view({1, 32})) % 2).to(torch::kFloat32);
  const torch::Tensor crop = square_crops(check.unsqueeze(0), torch::tensor({{0.0, 0.0, 32.0, 32.0}}), 16, 1.0);
  EXPECT_TRUE(torch::allclose(crop, torch::full_like(crop, 0.5), 0, 1e-5));
}

TEST(BoxCrops, NoBoxesGiveNoCropsAndBadArgumentsAreRefused) {
  const torch::Tensor image = ramp(3, 16, 16);
  EXPECT_EQ(square_crops(image, torch::zeros({0, 4}), 8, 1.0).sizes(), (std::vector<int64_t>{0, 3, 8, 8}));
  EXPECT_THROW(square_crops(image[0], torch::zeros({1, 4}), 8, 1.0), std::invalid_argument);
  EXPECT_THROW(square_crops(image, torch::zeros({1, 5}), 8, 1.0), std::invalid_argument);
  EXPECT_THROW(square_crops(image, torch::zeros({1, 4}), 0, 1.0), std::invalid_argument);
  // A box without extent still gets a (one-pixel) square, not a division by zero.
  const torch::Tensor point = square_crops(image, torch::tensor({{5.0, 6.0, 0.0, 0.0}}), 4, 1.0);
  EXPECT_TRUE(torch::isfinite(point).all().item<bool>());
}

}  // namespace
}  // namespace attnvision::models
