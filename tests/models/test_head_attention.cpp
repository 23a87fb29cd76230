// attend_heads (models/kernels/): oneDNN's strided per-head products and torch's softmax against timm's
// attention written out in torch, for the shapes a ViT sees and for one token.
#include "models/kernels/head_attention.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <stdexcept>

namespace attnvision::models {
namespace {

// timm's Attention after the qkv Linear, in float64.
torch::Tensor reference(const torch::Tensor& qkv, int64_t heads, double scale) {
  const int64_t n = qkv.size(0), t = qkv.size(1), width = qkv.size(2) / 3;
  const torch::Tensor parts = qkv.to(torch::kFloat64).view({n, t, 3, heads, width / heads}).permute({2, 0, 3, 1, 4});
  const torch::Tensor attn = (torch::matmul(parts[0], parts[1].transpose(-2, -1)) * scale).softmax(-1);
  return torch::matmul(attn, parts[2]).transpose(1, 2).reshape({n, t, width});
}

TEST(HeadAttention, MatchesTimmsAttention) {
  torch::manual_seed(5);
  for (const auto& [n, tokens, heads, head_dim] :
       std::vector<std::tuple<int64_t, int64_t, int64_t, int64_t>>{{2, 197, 6, 64}, {3, 17, 2, 8}, {1, 1, 3, 4}}) {
    SCOPED_TRACE(std::to_string(n) + " x " + std::to_string(tokens) + " tokens, " + std::to_string(heads) + " heads");
    const torch::Tensor qkv = torch::randn({n, tokens, 3 * heads * head_dim});
    const double scale = 1.0 / std::sqrt(static_cast<double>(head_dim));
    const torch::Tensor out = attend_heads(qkv, heads, scale);
    EXPECT_EQ(out.sizes(), (std::vector<int64_t>{n, tokens, heads * head_dim}));
    const torch::Tensor expected = reference(qkv, heads, scale);
    EXPECT_LT((out.to(torch::kFloat64) - expected).abs().max().item<double>(), 1e-5 * expected.abs().max().item<double>());
  }
}

TEST(HeadAttention, RejectsWhatItCannotRun) {
  EXPECT_THROW(attend_heads(torch::randn({2, 5, 12}).transpose(0, 1), 2, 1.0), std::invalid_argument);
  EXPECT_THROW(attend_heads(torch::randn({2, 5, 13}), 2, 1.0), std::invalid_argument);
  EXPECT_THROW(attend_heads(torch::randn({2, 5, 12}, torch::kFloat64), 2, 1.0), std::invalid_argument);
  EXPECT_THROW(attend_heads(torch::randn({2, 5, 12}), 0, 1.0), std::invalid_argument);
  EXPECT_THROW(attend_heads(torch::randn({5, 12}), 2, 1.0), std::invalid_argument);
}

}  // namespace
}  // namespace attnvision::models
