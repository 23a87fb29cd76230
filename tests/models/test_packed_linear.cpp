// PackedLinear (models/kernels/): oneDNN's matmul on packed weights against torch's own Linear and GELU, in
// float32 (to float32 rounding) and bfloat16 (to bfloat16's), with the residual accumulated in place, for the
// row counts a ViT sees (one token, a batch of 197-token images) and for inputs torch hands over strided.
#include "models/kernels/packed_linear.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <stdexcept>

namespace attnvision::models {
namespace {

struct Layer {
  torch::Tensor weight, bias;
};

Layer random_layer(int64_t in, int64_t out) {
  torch::manual_seed(3);
  return {torch::randn({out, in}) / std::sqrt(static_cast<double>(in)), torch::randn({out})};
}

// Largest |a - b| relative to b's largest magnitude.
double relative_error(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.to(torch::kFloat64) - b.to(torch::kFloat64)).abs().max().item<double>() /
         b.to(torch::kFloat64).abs().max().item<double>();
}

TEST(PackedLinear, Float32MatchesTorchLinearAndGelu) {
  const Layer l = random_layer(64, 96);
  const PackedLinear plain(l.weight, l.bias, torch::kFloat32);
  const PackedLinear gelu(l.weight, l.bias, torch::kFloat32, LinearEpilogue::kGelu);
  for (int64_t rows : {1, 7, 2 * 197}) {
    SCOPED_TRACE(rows);
    const torch::Tensor x = torch::randn({rows, 64});
    const torch::Tensor expected = torch::linear(x, l.weight, l.bias);
    const torch::Tensor y = plain(x);
    EXPECT_EQ(y.scalar_type(), torch::kFloat32);
    EXPECT_LT(relative_error(y, expected), 1e-6);
    EXPECT_LT(relative_error(gelu(x), torch::gelu(expected)), 1e-6);
  }
  // Batched tokens keep their leading shape; a transposed (strided) input gives the same product.
  const torch::Tensor tokens = torch::randn({2, 5, 64});
  EXPECT_EQ(plain(tokens).sizes(), (std::vector<int64_t>{2, 5, 96}));
  EXPECT_LT(relative_error(plain(tokens), torch::linear(tokens, l.weight, l.bias)), 1e-6);
  const torch::Tensor strided = torch::randn({64, 9}).t();
  ASSERT_FALSE(strided.is_contiguous());
  EXPECT_LT(relative_error(plain(strided), torch::linear(strided, l.weight, l.bias)), 1e-6);
  // No rows: an empty result of the right width.
  EXPECT_EQ(plain(torch::zeros({0, 64})).sizes(), (std::vector<int64_t>{0, 96}));
}

TEST(PackedLinear, WithoutBiasAndCopiesItsWeights) {
  Layer l = random_layer(32, 16);
  const PackedLinear packed(l.weight, torch::Tensor(), torch::kFloat32);
  const torch::Tensor x = torch::randn({4, 32});
  const torch::Tensor expected = torch::linear(x, l.weight);
  l.weight.zero_();  // the layer packed a copy
  EXPECT_LT(relative_error(packed(x), expected), 1e-6);
}

TEST(PackedLinear, BFloat16WithinItsRounding) {
  const Layer l = random_layer(384, 192);
  const PackedLinear packed(l.weight, l.bias, torch::kBFloat16, LinearEpilogue::kGelu);
  const torch::Tensor x = torch::randn({197, 384});
  const torch::Tensor expected = torch::gelu(torch::linear(x, l.weight, l.bias));
  const torch::Tensor y = packed(x);  // a float32 input is converted
  EXPECT_EQ(y.scalar_type(), torch::kBFloat16);
  EXPECT_LT(relative_error(y, expected), 2e-2);
  const torch::Tensor wide = packed(x.to(torch::kBFloat16), torch::kFloat32);
  EXPECT_EQ(wide.scalar_type(), torch::kFloat32);
  EXPECT_LT(relative_error(wide, expected), 2e-2);
  // The float32 output is the same product before its rounding to bfloat16.
  EXPECT_LT(relative_error(y, wide), 1e-2);
  EXPECT_GT(relative_error(wide, expected), 0.0);
}

TEST(PackedLinear, AccumulatesIntoTheResidualInPlace) {
  const Layer l = random_layer(48, 24);
  const torch::Tensor x = torch::randn({3, 10, 48});
  for (torch::ScalarType dtype : {torch::kFloat32, torch::kBFloat16}) {
    SCOPED_TRACE(c10::toString(dtype));
    const PackedLinear packed(l.weight, l.bias, dtype);
    torch::Tensor residual = torch::randn({3, 10, 24});
    const torch::Tensor expected = residual + torch::linear(x, l.weight, l.bias);
    const void* storage = residual.data_ptr();
    packed.accumulate_into(residual, x);
    EXPECT_EQ(residual.data_ptr(), storage);
    EXPECT_LT(relative_error(residual, expected), dtype == torch::kFloat32 ? 1e-6 : 2e-2);
  }
}

TEST(PackedLinear, RejectsWhatItCannotRun) {
  const Layer l = random_layer(8, 4);
  const PackedLinear packed(l.weight, l.bias, torch::kFloat32);
  EXPECT_THROW(packed(torch::randn({2, 9})), std::invalid_argument);
  EXPECT_THROW(packed(torch::randn({2, 8}), torch::kFloat64), std::invalid_argument);
  torch::Tensor wrong = torch::zeros({2, 5});
  EXPECT_THROW(packed.accumulate_into(wrong, torch::randn({2, 8})), std::invalid_argument);
  torch::Tensor residual = torch::zeros({2, 4});
  const PackedLinear gelu(l.weight, l.bias, torch::kFloat32, LinearEpilogue::kGelu);
  EXPECT_THROW(gelu.accumulate_into(residual, torch::randn({2, 8})), std::logic_error);
  EXPECT_THROW(PackedLinear(l.weight, l.bias, torch::kFloat16), std::invalid_argument);
  EXPECT_THROW(PackedLinear(torch::randn({4}), torch::Tensor(), torch::kFloat32), std::invalid_argument);
}

}  // namespace
}  // namespace attnvision::models
