// The runtime the models run on: at::parallel_for really parallel in our own code; mixed precision for
// training: the autocast scope switches bfloat16 on and off exactly, and every architecture trains under it
// with float32 weights and gradients and logits close to float32's.
#include "models/registry.h"
#include "models/runtime.h"
#include "models/backbones/vit.h"

#include <ATen/Parallel.h>
#include <ATen/autocast_mode.h>
#include <torch/torch.h>

#include <gtest/gtest.h>

#include <vector>

namespace attnvision::models {
namespace {

// at::parallel_for's `#pragma omp parallel` is compiled into its caller: a target built without OpenMP runs
// the whole range on the calling thread, silently (cmake/Dependencies.cmake gives every torch target OpenMP).
TEST(ParallelFor, SplitsItsRangeOverTheTorchThreads) {
  const int threads = at::get_num_threads();
  at::set_num_threads(2);
  std::vector<int> thread_of(2, -1);
  at::parallel_for(0, 2, 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) thread_of[static_cast<size_t>(i)] = at::get_thread_num();
  });
  at::set_num_threads(threads);
  EXPECT_EQ(thread_of, (std::vector<int>{0, 1}))
      << "at::parallel_for ran serially: is the target built with OpenMP?";
}

TEST(Precision, ParsesItsTwoNamesAndRefusesOthers) {
  EXPECT_EQ(parse_precision("fp32"), Precision::kFloat32);
  EXPECT_EQ(parse_precision("bf16"), Precision::kBFloat16);
  EXPECT_STREQ(to_string(Precision::kBFloat16), "bf16");
  EXPECT_THROW(parse_precision("fp16"), std::invalid_argument);
}

TEST(AutocastScope, TurnsBfloat16OnForItsLifetimeOnly) {
  torch::nn::Conv2d conv(torch::nn::Conv2dOptions(3, 4, 3));
  const torch::Tensor x = torch::randn({1, 3, 8, 8});
  ASSERT_FALSE(at::autocast::is_cpu_enabled());
  {
    const AutocastScope fp32(Precision::kFloat32);  // a float32 scope changes nothing
    EXPECT_FALSE(at::autocast::is_cpu_enabled());
    EXPECT_EQ(conv->forward(x).scalar_type(), torch::kFloat32);
  }
  {
    const AutocastScope outer(Precision::kBFloat16);
    EXPECT_EQ(conv->forward(x).scalar_type(), torch::kBFloat16);
    {
      const AutocastScope inner(Precision::kBFloat16);
      EXPECT_TRUE(at::autocast::is_cpu_enabled());
    }
    EXPECT_TRUE(at::autocast::is_cpu_enabled()) << "an inner scope switched the outer one off";
  }
  EXPECT_FALSE(at::autocast::is_cpu_enabled());
  EXPECT_EQ(conv->forward(x).scalar_type(), torch::kFloat32);
}

ModelCfg gray_28(ModelCfg c) {
  c.in_chans = 1, c.num_classes = 10, c.input_size = {1, 28, 28}, c.mean = {0.5}, c.std = {0.25};
  return c;
}

ModelCfg small_resnet(const std::string& attn) {
  ModelCfg c = default_cfg("resnet18");
  c.resnet.layers = {1, 1, 1, 1};
  c.resnet.channels = {16, 32, 32, 32};
  c.resnet.stem_type = "cifar";
  c.resnet.stem_width = 16;
  c.resnet.attn = attn;
  return gray_28(c);
}

ModelCfg small_vit() {
  ModelCfg c = default_cfg("vit_tiny_patch16_224");
  c.vit.img_size = 28, c.vit.patch_size = 4, c.vit.embed_dim = 32, c.vit.depth = 2, c.vit.num_heads = 2;
  return gray_28(c);
}

// "vit", or the attention of a ResNet.
class TrainsInBfloat16 : public ::testing::TestWithParam<std::string> {};

// One training forward and backward in each precision from the same weights: bfloat16 keeps 8 bits of
// mantissa, so the logits agree to a few percent of their scale, and the gradients stay float32.
TEST_P(TrainsInBfloat16, LogitsCloseToFloat32AndGradientsFloat32) {
  torch::manual_seed(0);
  Network net = build_model(GetParam() == "vit" ? small_vit() : small_resnet(GetParam()));
  net->train();
  const torch::Tensor x = torch::randn({8, 1, 28, 28});
  const torch::Tensor reference = net->logits(x);
  torch::Tensor logits;
  {
    const AutocastScope autocast(Precision::kBFloat16);
    logits = net->logits(x);
  }
  EXPECT_EQ(logits.scalar_type(), torch::kBFloat16) << "autocast did not reach the classifier";
  const double scale = reference.abs().max().item<double>();
  EXPECT_LT((logits.to(torch::kFloat32) - reference).abs().max().item<double>(), 0.05 * std::max(1.0, scale));
  logits.to(torch::kFloat32).logsumexp(1).sum().backward();
  for (const auto& p : net->named_parameters()) {
    ASSERT_TRUE(p.value().grad().defined()) << p.key() << " got no gradient";
    EXPECT_EQ(p.value().scalar_type(), torch::kFloat32) << p.key();
    EXPECT_EQ(p.value().grad().scalar_type(), torch::kFloat32) << p.key();
    EXPECT_TRUE(torch::isfinite(p.value().grad()).all().item<bool>()) << p.key();
  }
}

INSTANTIATE_TEST_SUITE_P(Architectures, TrainsInBfloat16,
                         ::testing::Values("none", "se", "eca", "cbam", "vit"),
                         [](const ::testing::TestParamInfo<std::string>& info) { return info.param; });

}  // namespace
}  // namespace attnvision::models
