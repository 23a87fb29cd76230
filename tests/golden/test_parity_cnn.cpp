// timm parity for the ResNet family: every public CNN fixture, weights from both safetensors and
// torch.save, logits / features / last feature map and every recorded intermediate within
// |cpp - ref| <= 1e-4 * max(1, max|ref|) (../shared/fixtures/parity/README.md).
#include "models/registry.h"
#include "models/weights/weights.h"
#include "pipelines/model_loader.h"
#include "parity_util.h"
#include "test_util.h"

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <fstream>

namespace attnvision {
namespace {

using testing::expect_close;

using testing::require_fixture;

const std::vector<std::string> kCnnFixtures = {"resnet_basic_none", "resnet_basic_se",      "resnet_basic_eca",
                                               "resnet_basic_cbam", "resnet_basic_none_gray28",
                                               "resnet_bottleneck_se", "resnet_bottleneck_eca_tiered"};

nlohmann::json read_json(const std::filesystem::path& p) {
  std::ifstream in(p);
  return nlohmann::json::parse(in);
}

// timm constructor kwargs -> our model YAML keys (the same mapping a user writes by hand).
pipelines::ConfigDoc model_doc_from_timm(const nlohmann::json& config) {
  const nlohmann::json& kw = config.at("constructor").at("kwargs");
  pipelines::ConfigDoc doc;
  doc.source = config.at("name").get<std::string>();
  nlohmann::json& y = doc.root;
  y["arch"] = "resnet";
  y["block"] = kw.at("block") == "BasicBlock" ? "basic" : "bottleneck";
  for (const char* key : {"layers", "channels", "num_classes", "in_chans", "stem_type", "stem_width", "avg_down"})
    if (kw.contains(key)) y[key] = kw.at(key);
  if (kw.contains("block_args") && kw.at("block_args").is_object()) y["attn"] = kw.at("block_args").at("attn_layer");
  const auto& norm = config.at("input").at("normalization");
  y["mean"] = norm.at("mean");
  y["std"] = norm.at("std");
  return doc;
}


class CnnParity : public ::testing::TestWithParam<std::string> {};

TEST_P(CnnParity, MatchesTimm) {
  const auto dir = require_fixture(GetParam());
  const nlohmann::json config = read_json(dir / "config.json");
  const models::ModelCfg cfg = pipelines::model_cfg_from_doc(model_doc_from_timm(config));
  const torch::Tensor input = models::read_safetensors((dir / "input.safetensors").string()).tensors.at("input");
  const auto expected = models::read_safetensors((dir / "expected.safetensors").string()).tensors;
  const auto intermediates = models::read_safetensors((dir / "intermediates.safetensors").string()).tensors;

  for (const char* weights : {"weights.safetensors", "weights.pt"}) {
    SCOPED_TRACE(weights);
    models::Network net = models::build_model(cfg);
    models::load_state_dict(*net, models::read_weights((dir / weights).string()).tensors, weights);
    net->eval();
    torch::NoGradGuard no_grad;
    models::Forward f = net->forward(input, models::ForwardRequest::asking(/*activations=*/true, /*attention=*/true));
    expect_close(f.logits, expected.at("logits"), "logits");
    expect_close(f.pre_logits, expected.at("features"), "features");
    expect_close(f.feature_map, expected.at("last_feature_map"), "last_feature_map");
    testing::expect_intermediates_close(f.activations, intermediates);
    // The inference layout (channels-last on ResNets) gives the same outputs within the same tolerance.
    net->prepare_for_inference();
    models::Forward prepared = net->forward(input);
    expect_close(prepared.logits, expected.at("logits"), "logits, prepared for inference");
    expect_close(prepared.pre_logits, expected.at("features"), "features, prepared for inference");
    expect_close(prepared.feature_map, expected.at("last_feature_map"), "last_feature_map, prepared for inference");
    // That small batch took the blocked path (weights packed for oneDNN); with autograd on, the prepared network
    // runs its folded channels-last path instead (ResNetImpl::runs_blocked), which must agree as well.
    {
      torch::AutoGradMode grad(true);
      expect_close(net->forward(input).logits.detach(), expected.at("logits"), "logits, prepared, channels-last path");
    }
    // bf16 inference (autocast through oneDNN) stays near timm's float32 logits and keeps every top-1 class.
    net->prepare_for_inference(models::Precision::kBFloat16);
    testing::expect_bf16_logits_close(net->forward(input).logits, expected.at("logits"), GetParam() + " logits");
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, CnnParity, ::testing::ValuesIn(kCnnFixtures));

}  // namespace
}  // namespace attnvision
