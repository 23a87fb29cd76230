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

// timm's output_stride (our feature_stride): the last stages dilate instead of downsampling. References from
// tests/data/resnet/make_dilated_ref.py, a float64 ResNet written from timm's definition and checked there
// against the timm fixtures above; two blocks per stage, so that blocks after a stage's first are covered.
class DilatedResNet : public ::testing::TestWithParam<std::string> {};

TEST_P(DilatedResNet, MatchesTimmsOutputStride) {
  const std::string path = std::string(ATTNVISION_TEST_DATA_DIR) + "/resnet/dilated_" + GetParam() + ".safetensors";
  const models::TensorFile ref = models::read_safetensors(path);
  models::ModelCfg cfg;
  cfg.name = "dilated_" + GetParam();
  cfg.arch = "resnet";
  cfg.resnet.block = ref.metadata.at("block");
  cfg.resnet.layers = nlohmann::json::parse(ref.metadata.at("layers")).get<std::vector<int64_t>>();
  cfg.resnet.channels = {8, 16, 24, 32};
  cfg.resnet.attn = ref.metadata.at("attn");
  cfg.resnet.feature_stride = std::stoll(ref.metadata.at("feature_stride"));
  cfg.num_classes = 10;
  cfg.input_size = {3, 72, 88};
  cfg.validate();
  std::map<std::string, torch::Tensor> weights;
  for (const auto& [name, t] : ref.tensors)
    if (name.rfind("weights.", 0) == 0) weights[name.substr(8)] = t;
  models::Network net = models::build_model(cfg);
  models::load_state_dict(*net, weights, GetParam());
  net->eval();
  torch::NoGradGuard no_grad;
  const torch::Tensor& input = ref.tensors.at("input");
  const models::Forward f = net->forward(input);
  expect_close(f.logits, ref.tensors.at("logits"), "logits");
  expect_close(f.feature_map, ref.tensors.at("last_feature_map"), "last_feature_map");
  const std::vector<models::FeatureInfo> info = net->backbone().feature_info();
  EXPECT_EQ(info.back().stride, cfg.resnet.feature_stride) << "feature_info reports the dilated stride";
  // Prepared for inference, on the blocked path (this small batch) and on the folded channels-last one.
  net->prepare_for_inference();
  expect_close(net->forward(input).logits, ref.tensors.at("logits"), "logits, prepared for inference");
  torch::AutoGradMode grad(true);
  expect_close(net->forward(input).logits.detach(), ref.tensors.at("logits"), "logits, prepared, channels-last path");
}

INSTANTIATE_TEST_SUITE_P(Cases, DilatedResNet,
                         ::testing::Values("basic_none_os16", "basic_none_os8", "bottleneck_se_os8"));

}  // namespace
}  // namespace attnvision
