// The parity rule of ../shared/fixtures/parity/README.md, shared by every test that compares with timm.
#pragma once

#include "models/backbones/backbone.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdio>
#include <map>
#include <string>

namespace attnvision::testing {

// max |got - ref| <= rel * max(1, max |ref|), per tensor.
inline void expect_close(const torch::Tensor& got, const torch::Tensor& ref, const std::string& what,
                         double rel = 1e-4) {
  ASSERT_TRUE(got.defined()) << what << ": not produced";
  ASSERT_EQ(got.sizes(), ref.sizes()) << what;
  const double tol = rel * std::max(1.0, ref.abs().max().item<double>());
  const double diff = (got - ref).abs().max().item<double>();
  EXPECT_LE(diff, tol) << what << ": max |cpp - ref| = " << diff << " > " << tol;
}

// Every intermediate timm recorded has a counterpart among our named activations, and it matches.
inline void expect_intermediates_close(const models::NamedTensors& activations,
                                       const std::map<std::string, torch::Tensor>& intermediates) {
  size_t compared = 0;
  for (const auto& [name, t] : activations) {
    auto it = intermediates.find(name);
    if (it == intermediates.end()) continue;
    expect_close(t, it->second, "intermediate " + name);
    ++compared;
  }
  EXPECT_EQ(compared, intermediates.size()) << "every recorded timm intermediate has a counterpart";
}

// bf16 inference against the float32 reference. bfloat16 keeps 8 significant bits (a relative step of 2^-8
// = 0.4%), so logits move by 0.1-2.1% of their range through the fixtures' few layers; kBf16Rel bounds that
// with room. (The random fixtures' top two logits are too close for their top-1 to mean anything; top-1
// agreement is checked on the shipped model instead.)
// The difference is printed: it is the figure the README's bf16 table quotes for the parity fixtures.
constexpr double kBf16Rel = 0.05;
inline void expect_bf16_logits_close(const torch::Tensor& got, const torch::Tensor& ref, const std::string& what) {
  ASSERT_TRUE(got.defined()) << what << ": not produced";
  EXPECT_EQ(got.scalar_type(), torch::kFloat32) << what << ": a bf16 pass hands back float32";
  const double scale = std::max(1.0, ref.abs().max().item<double>());
  const double diff = (got - ref).abs().max().item<double>();
  std::printf("[ bf16     ] %s: max |bf16 - fp32 reference| = %.4g (%.2f%% of max(1, max|ref|) = %.4g)\n", what.c_str(),
              diff, 100 * diff / scale, scale);
  EXPECT_LE(diff, kBf16Rel * scale) << what;
}

}  // namespace attnvision::testing
