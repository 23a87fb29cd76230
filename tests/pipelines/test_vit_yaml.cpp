// A ViT described in model YAML (`arch: vit` with timm's constructor keys) builds the network it describes:
// the parity fixture's VisionTransformer from YAML alone takes the fixture's weights and reproduces timm.
#include "models/registry.h"
#include "models/weights/weights.h"
#include "pipelines/config.h"
#include "pipelines/model_loader.h"
#include "test_util.h"

#include <torch/torch.h>

namespace attnvision::pipelines {
namespace {

TEST(VitYaml, ArchVitBuildsTheFixtureNetwork) {
  const auto dir = testing::require_fixture("vit_custom_p4_d64");
  if (HasFailure()) return;
  const models::ModelCfg cfg = model_cfg_from_doc(parse_yaml(
      "arch: vit\nimg_size: 32\npatch_size: 4\nembed_dim: 64\ndepth: 2\nnum_heads: 2\nnum_classes: 10\n"
      "mean: [0.5, 0.5, 0.5]\nstd: [0.5, 0.5, 0.5]\n",
      "vit.yaml"));
  EXPECT_EQ(cfg.arch, "vit");
  EXPECT_EQ(cfg.input_size, (std::vector<int64_t>{3, 32, 32}));  // follows img_size
  models::Network net = models::build_model(cfg);
  EXPECT_EQ(models::count_parameters(*net), 108'106);
  models::load_state_dict(*net, models::read_weights((dir / "weights.safetensors").string()).tensors,
                          "weights");
  net->eval();
  torch::NoGradGuard no_grad;
  const torch::Tensor input =
      models::read_safetensors((dir / "input.safetensors").string()).tensors.at("input");
  const torch::Tensor ref =
      models::read_safetensors((dir / "expected.safetensors").string()).tensors.at("logits");
  EXPECT_LE((net->forward(input).logits - ref).abs().max().item<double>(), 1e-4);
}

TEST(VitYaml, RegisteredVitIsOverriddenKeyByKey) {
  const models::ModelCfg cfg = model_cfg_from_doc(
      parse_yaml("base: vit_small_patch16_224\nimg_size: 384\nnum_classes: 5\n", "m.yaml"));
  EXPECT_EQ(cfg.vit.embed_dim, 384);
  EXPECT_EQ(cfg.vit.img_size, 384);
  EXPECT_EQ(cfg.input_size, (std::vector<int64_t>{3, 384, 384}));
  EXPECT_EQ(cfg.num_classes, 5);
  EXPECT_EQ(cfg.interpolation, "bicubic");
  EXPECT_THROW(model_cfg_from_doc(parse_yaml("arch: vit\nembed_dim: 100\nnum_heads: 3\n", "m.yaml")),
               ConfigError);
}

}  // namespace
}  // namespace attnvision::pipelines
