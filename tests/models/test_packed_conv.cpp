// PackedConv2d (models/kernels/): oneDNN's convolution on packed weights against torch's own conv2d, ReLU and
// residual add, in float32 (to float32 rounding) and bfloat16 (to bfloat16's), for the geometries a ResNet and
// the CenterNet head use (3x3, strided, dilated, 1x1, a 7x7 stem, grouped) and inputs in either memory format.
#include "models/kernels/packed_conv.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <ostream>
#include <stdexcept>
#include <string>
#include <vector>

namespace attnvision::models {

std::string algorithm_name(ConvAlgorithm a) { return a == ConvAlgorithm::kDirect ? "Direct" : "Fastest"; }

// How gtest prints a parameter in its output (found by argument-dependent lookup).
void PrintTo(ConvAlgorithm a, std::ostream* os) { *os << algorithm_name(a); }

namespace {

struct Case {
  int64_t in, out, kernel;
  ConvGeometry geometry;
};

// Largest |a - b| relative to b's largest magnitude.
double relative_error(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.to(torch::kFloat64) - b.to(torch::kFloat64)).abs().max().item<double>() /
         b.to(torch::kFloat64).abs().max().item<double>();
}

torch::Tensor reference(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& b, const ConvGeometry& g) {
  return torch::conv2d(x, w, b, {g.stride[0], g.stride[1]}, {g.padding[0], g.padding[1]},
                       {g.dilation[0], g.dilation[1]}, g.groups);
}

std::vector<Case> cases() {
  std::vector<Case> c;
  c.push_back({16, 32, 3, {{1, 1}, {1, 1}, {1, 1}, 1}});
  c.push_back({64, 64, 3, {{1, 1}, {1, 1}, {1, 1}, 1}});  // a block's 3x3 at a ResNet's width
  c.push_back({16, 32, 3, {{2, 2}, {1, 1}, {1, 1}, 1}});  // a stage's first, strided conv
  c.push_back({32, 32, 3, {{1, 1}, {2, 2}, {2, 2}, 1}});  // dilated (feature_stride)
  c.push_back({16, 48, 1, {{2, 2}, {0, 0}, {1, 1}, 1}});  // a downsample
  c.push_back({3, 16, 7, {{2, 2}, {3, 3}, {1, 1}, 1}});   // a stem
  c.push_back({32, 32, 3, {{1, 1}, {1, 1}, {1, 1}, 4}});  // grouped
  return c;
}

// The direct product to float32 rounding; Winograd (kFastest on the 3x3 stride-1 cases) transforms its operands
// and so rounds differently: measured about 2e-6 of the output's range on a ResNet's layer shapes.
class PackedConv2dFloat32 : public ::testing::TestWithParam<ConvAlgorithm> {};

TEST_P(PackedConv2dFloat32, MatchesTorchConvReluAndResidual) {
  torch::manual_seed(5);
  const double tolerance = GetParam() == ConvAlgorithm::kDirect ? 1e-6 : 1e-5;
  for (const Case& k : cases()) {
    SCOPED_TRACE(std::to_string(k.in) + "->" + std::to_string(k.out) + " k" + std::to_string(k.kernel) + " s" +
                 std::to_string(k.geometry.stride[0]) + " d" + std::to_string(k.geometry.dilation[0]) + " g" +
                 std::to_string(k.geometry.groups));
    const torch::Tensor w =
        torch::randn({k.out, k.in / k.geometry.groups, k.kernel, k.kernel}) / std::sqrt(9.0 * k.in);
    const torch::Tensor b = torch::randn({k.out});
    const PackedConv2d conv(w, b, k.geometry, torch::kFloat32, GetParam());
    for (int64_t n : {1, 4}) {  // Winograd starts at 4 images
      SCOPED_TRACE(n);
      const torch::Tensor x = torch::randn({n, k.in, 13, 11});  // odd sizes: padding and stride at the edges
      const torch::Tensor expected = reference(x, w, b, k.geometry);
      const torch::Tensor y = conv(x);
      EXPECT_EQ(y.sizes(), expected.sizes());
      EXPECT_TRUE(y.is_contiguous(at::MemoryFormat::ChannelsLast));
      EXPECT_LT(relative_error(y, expected), tolerance);
      EXPECT_LT(relative_error(conv(x.contiguous(at::MemoryFormat::ChannelsLast), /*relu=*/true), expected.relu()),
                tolerance);
      // The residual block's end: relu(shortcut + conv(x) + b), in place; and the sum without the ReLU.
      const torch::Tensor shortcut = torch::randn(expected.sizes()).contiguous(at::MemoryFormat::ChannelsLast);
      torch::Tensor r = shortcut.clone();
      conv.accumulate_into(r, x, /*relu=*/true);
      EXPECT_LT(relative_error(r, (shortcut + expected).relu()), tolerance);
      r = shortcut.clone();
      conv.accumulate_into(r, x, /*relu=*/false);
      EXPECT_LT(relative_error(r, shortcut + expected), tolerance);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Algorithms, PackedConv2dFloat32, ::testing::Values(ConvAlgorithm::kDirect, ConvAlgorithm::kFastest),
                         [](const ::testing::TestParamInfo<ConvAlgorithm>& i) { return algorithm_name(i.param); });

TEST(PackedConv2d, Bfloat16MatchesTorchToItsRounding) {
  torch::manual_seed(6);
  const Case k = cases()[0];
  const torch::Tensor w = torch::randn({k.out, k.in, 3, 3}) / 12.0;
  const PackedConv2d conv(w, torch::Tensor(), k.geometry, torch::kBFloat16);
  const torch::Tensor x = torch::randn({2, k.in, 9, 9});
  // The reference on the same bfloat16-rounded operands, accumulated in float32.
  const torch::Tensor expected = reference(x.to(torch::kBFloat16).to(torch::kFloat32),
                                           w.to(torch::kBFloat16).to(torch::kFloat32), torch::Tensor(), k.geometry);
  const torch::Tensor y = conv(x, /*relu=*/true);
  EXPECT_EQ(y.scalar_type(), torch::kBFloat16);
  EXPECT_LT(relative_error(y, expected.relu()), 1e-2);  // bfloat16 keeps 8 bits of mantissa
}

TEST(PackedConv2d, CopiesItsWeightsAndRefusesWhatItCannotRun) {
  torch::manual_seed(7);
  torch::Tensor w = torch::randn({8, 4, 3, 3});
  const ConvGeometry same{{1, 1}, {1, 1}, {1, 1}, 1};
  const PackedConv2d conv(w, torch::Tensor(), same, torch::kFloat32);
  const torch::Tensor x = torch::randn({1, 4, 6, 6});
  const torch::Tensor expected = reference(x, w, torch::Tensor(), same);
  w.zero_();  // the layer packed a copy
  EXPECT_LT(relative_error(conv(x), expected), 1e-6);
  EXPECT_EQ(conv(torch::zeros({0, 4, 6, 6})).size(0), 0);
  EXPECT_THROW(conv(torch::randn({1, 5, 6, 6})), std::invalid_argument);  // wrong channel count
  torch::Tensor wrong = torch::zeros({1, 8, 5, 5}).contiguous(at::MemoryFormat::ChannelsLast);
  EXPECT_THROW(conv.accumulate_into(wrong, x, false), std::invalid_argument);  // not the output's shape
  EXPECT_THROW(PackedConv2d(w, torch::Tensor(), same, torch::kFloat16), std::invalid_argument);
  EXPECT_THROW(PackedConv2d(w.flatten(1), torch::Tensor(), same, torch::kFloat32), std::invalid_argument);
}

}  // namespace
}  // namespace attnvision::models
