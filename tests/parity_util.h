// The parity rule of ../shared/fixtures/parity/README.md, shared by every test that compares with timm.
#pragma once

#include "models/backbones/backbone.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

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

}  // namespace attnvision::testing
