// Every registered model builds, runs, reports consistent shapes, and survives a checkpoint round trip;
// parameter counts and FLOPs are checked against torchvision's published figures where they exist.
#include "anomaly_testing.h"
#include "models/heads/head.h"
#include "models/registry.h"
#include "models/weights/weights.h"
#include "test_util.h"

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <set>

namespace attnvision::models {
namespace {

class EveryModel : public ::testing::TestWithParam<std::string> {};

TEST_P(EveryModel, BuildsRunsAndRoundTrips) {
  ModelCfg cfg = default_cfg(GetParam());
  cfg.num_classes = 7;  // a small head keeps the test fast and checks num_classes is honoured
  cfg.labels.clear();
  Network net = build_model(cfg);
  net->eval();
  const int64_t size = cfg.arch == "vit" ? cfg.input_size[1] : 64;
  torch::Tensor x = torch::randn({2, cfg.in_chans, size, size});
  torch::NoGradGuard no_grad;
  Forward f = net->forward(x, ForwardRequest::asking(/*activations=*/true, /*attention=*/true));
  EXPECT_EQ(f.logits.sizes(), (std::vector<int64_t>{2, 7}));
  EXPECT_EQ(f.pre_logits.sizes(), (std::vector<int64_t>{2, net->backbone().num_features()}));
  ASSERT_EQ(f.feature_map.dim(), 4);
  const auto info = net->backbone().feature_info();
  ASSERT_FALSE(info.empty());
  EXPECT_EQ(f.feature_map.size(1), info.back().channels);
  EXPECT_EQ(f.feature_map.size(2), (size + info.back().stride - 1) / info.back().stride);
  EXPECT_FALSE(f.activations.empty());
  EXPECT_TRUE(torch::isfinite(f.logits).all().item<bool>());

  testing::ScratchDir dir;
  const std::string path = dir / "model.safetensors";
  save_checkpoint(path, *net, cfg);
  const TensorFile file = read_weights(path);
  ModelCfg restored;
  ASSERT_TRUE(read_checkpoint_cfg(file, restored));
  EXPECT_EQ(to_json(restored), to_json(cfg));
  Network again = build_model(restored);
  load_state_dict(*again, file.tensors, path);
  again->eval();
  // The same path as `f` (a ViT's explicit attention): the restored network must reproduce it bit for bit.
  EXPECT_TRUE(torch::equal(again->forward(x, ForwardRequest::asking(true, true)).logits, f.logits));
}

std::vector<std::string> all_names() {
  std::vector<std::string> names;
  for (const auto& m : registered_models()) names.push_back(m.name);
  return names;
}

INSTANTIATE_TEST_SUITE_P(Registry, EveryModel, ::testing::ValuesIn(all_names()));

// torchvision's documented parameter counts and GFLOPS (multiply-accumulates) for the same networks.
TEST(Registry, ParameterCountsAndFlopsMatchPublishedFigures) {
  struct Published {
    const char* name;
    int64_t params;
    double gmacs;
  };
  for (const Published& p : {Published{"resnet18", 11'689'512, 1.81}, Published{"resnet34", 21'797'672, 3.66},
                             Published{"resnet50", 25'557'032, 4.09}}) {
    const ModelCfg cfg = default_cfg(p.name);
    Network net = build_model(cfg);
    EXPECT_EQ(count_parameters(*net), p.params) << p.name;
    EXPECT_NEAR(forward_gflops(cfg) / 2, p.gmacs, 0.02 * p.gmacs) << p.name;
  }
  // timm's SE-ResNet-50 (rd = 16..128 per NAMING.md).
  Network se = build_model(default_cfg("seresnet50"));
  EXPECT_EQ(count_parameters(*se), 28'088'024);
}

TEST(Registry, ParameterNamesFollowTimm) {
  Network net = build_model(default_cfg("seresnet50"));
  const auto params = net->named_parameters();
  EXPECT_EQ(params["layer1.0.se.fc1.weight"].sizes(), (std::vector<int64_t>{16, 256, 1, 1}));
  EXPECT_EQ(params["layer4.2.se.fc2.weight"].sizes(), (std::vector<int64_t>{2048, 128, 1, 1}));
  EXPECT_EQ(params["layer1.0.downsample.0.weight"].sizes(), (std::vector<int64_t>{256, 64, 1, 1}));
  Network eca = build_model(default_cfg("ecaresnet50d"));
  const auto eparams = eca->named_parameters();
  EXPECT_EQ(eparams["conv1.0.weight"].sizes(), (std::vector<int64_t>{32, 3, 3, 3}));
  EXPECT_EQ(eparams["conv1.6.weight"].sizes(), (std::vector<int64_t>{64, 32, 3, 3}));
  EXPECT_EQ(eparams["layer2.0.downsample.1.weight"].sizes(), (std::vector<int64_t>{512, 256, 1, 1}));
  EXPECT_EQ(eparams["layer4.0.se.conv.weight"].sizes(), (std::vector<int64_t>{1, 1, 7}));
  Network cbam = build_model(default_cfg("cbam_resnet18"));
  const auto cparams = cbam->named_parameters();
  EXPECT_EQ(cparams["layer1.0.se.channel.fc1.weight"].sizes(), (std::vector<int64_t>{4, 64, 1, 1}));
  EXPECT_EQ(cparams["layer1.0.se.spatial.conv.conv.weight"].sizes(), (std::vector<int64_t>{1, 2, 7, 7}));
}

TEST(Registry, UnknownNamesAndAttentionAreClearErrors) {
  try {
    default_cfg("resnet5");
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("resnet50"), std::string::npos) << e.what();
  }
  ModelCfg cfg = default_cfg("resnet18");
  cfg.resnet.attn = "nope";
  EXPECT_THROW(build_model(cfg), std::invalid_argument);
  cfg = default_cfg("resnet18");
  cfg.resnet.layers = {1, 1};
  EXPECT_THROW(build_model(cfg), std::invalid_argument);
  cfg = default_cfg("resnet18");
  cfg.resnet.feature_stride = 4;
  EXPECT_THROW(build_model(cfg), std::invalid_argument);
  cfg = default_cfg("resnet50d");
  cfg.resnet.feature_stride = 16;  // avg_down's dilated shortcut pool is not built: an error, not a silent variant
  EXPECT_THROW(build_model(cfg), std::invalid_argument);
}

// A dilated ResNet keeps timm's parameters and names (dilation adds none) and reports its finer stride; its
// FLOPs grow with the cells its last stages now keep (timm's parity is checked in tests/golden).
TEST(Registry, FeatureStrideDilatesTheLastStagesWithTheSameParameters) {
  ModelCfg cfg = default_cfg("resnet50");
  const int64_t params = count_parameters(*build_model(cfg));
  const double gflops32 = forward_gflops(cfg);
  cfg.resnet.feature_stride = 16;
  Network net = build_model(cfg);
  EXPECT_EQ(count_parameters(*net), params);
  EXPECT_EQ(net->backbone().feature_info().back().stride, 16);
  torch::NoGradGuard no_grad;
  net->eval();
  EXPECT_EQ(net->forward(torch::randn({1, 3, 224, 224})).feature_map.sizes(), (std::vector<int64_t>{1, 2048, 14, 14}));
  // layer4 at 14 x 14 instead of 7 x 7, by hand: everything but the first 1x1 conv (which already ran at 14 x 14)
  // costs four times as much, 2,119,434,240 more multiply-accumulates, 4.2389 GFLOPs.
  EXPECT_NEAR(forward_gflops(cfg) - gflops32, 4.23886848, 1e-6);
}

}  // namespace
}  // namespace attnvision::models

namespace attnvision::models {
namespace {

TEST(Registry, ATaskNoHeadServesIsAnErrorNotASilentClassifier) {
  ModelCfg cfg = default_cfg("resnet18");
  cfg.task = "segmentation";
  try {
    build_model(cfg);
    FAIL() << "built a network for a task without a head";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("segmentation"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("classification"), std::string::npos) << "names the tasks that have a head";
  }
}

TEST(Registry, DetectorCategoryIdsDefaultToOneBasedAndAreChecked) {
  ModelCfg cfg = default_cfg("resnet18");
  cfg.task = "detection";
  cfg.num_classes = 3;
  cfg.labels.clear();
  cfg.validate();
  EXPECT_EQ(cfg.category_id(0), 1);
  EXPECT_EQ(cfg.category_id(2), 3);
  cfg.detection.category_ids = {7, 3, 12};  // a COCO file's own ids, in class order
  cfg.validate();
  EXPECT_EQ(cfg.category_id(0), 7);
  EXPECT_EQ(cfg.category_id(2), 12);
  EXPECT_EQ(cfg_from_json(to_json(cfg)).detection.category_ids, cfg.detection.category_ids);
  auto rejects = [&](std::vector<int64_t> ids, const char* why) {
    ModelCfg bad = cfg;
    bad.detection.category_ids = std::move(ids);
    try {
      bad.validate();
      ADD_FAILURE() << "accepted " << why;
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find("category"), std::string::npos) << e.what();
    }
  };
  rejects({1, 2}, "two ids for three classes");
  rejects({1, 2, 2}, "a duplicate id");
  rejects({0, 1, 2}, "a non-positive id");
}

// Every head of the table on both backbone families: it plugs on through the Backbone interface alone, its
// parameters join the backbone's at the network's root (timm's names: fc / head; the anomaly head's own:
// lesion_head), and its FLOPs are counted.
class EveryHead : public ::testing::TestWithParam<std::tuple<std::string, std::string>> {};

TEST_P(EveryHead, PlugsOntoTheBackboneUnderTimmNames) {
  const auto& [head, model] = GetParam();
  ModelCfg cfg = default_cfg(model);
  for (const HeadRow& row : head_table())
    if (head == row.name) cfg.task = row.task;
  cfg.head = head;
  const std::string task = cfg.task;
  // An anomaly model is two-class with one input channel per CT window; the others take any class count.
  const bool anomaly = task == "anomaly";
  cfg.num_classes = anomaly ? 2 : 5;
  if (anomaly) cfg.ct.windows = {"lung", "abdomen", "400,1800"};
  cfg.labels.clear();
  Network net = build_model(cfg);
  std::set<std::string> backbone_keys;
  for (const auto& p : net->backbone().named_parameters()) backbone_keys.insert(p.key());
  size_t head_params = 0;
  for (const auto& p : net->named_parameters()) {
    EXPECT_EQ(p.key().rfind("backbone.", 0), std::string::npos) << p.key();
    if (!backbone_keys.count(p.key())) ++head_params;
  }
  EXPECT_EQ(head_params, net->head().parameters().size()) << "the head's parameters and no others are added";
  EXPECT_GT(forward_gflops(cfg), 0.0);
  net->eval();
  torch::NoGradGuard no_grad;
  const int64_t size = cfg.arch == "vit" ? cfg.input_size[1] : 64;
  const Forward f = net->forward(torch::randn({1, cfg.in_chans, size, size}));
  if (task == "detection") {  // one heatmap channel per class and the two box maps, on the stride-4 grid
    const int64_t cells = size / cfg.detection.output_stride;
    EXPECT_EQ(f.heatmap.sizes(), (std::vector<int64_t>{1, 5, cells, cells}));
    EXPECT_EQ(f.box_size.sizes(), (std::vector<int64_t>{1, 2, cells, cells}));
    EXPECT_EQ(f.box_offset.sizes(), (std::vector<int64_t>{1, 2, cells, cells}));
  } else if (task == "captioning") {  // eval mode: the greedy caption, word ids with the attention behind each
    EXPECT_EQ(f.caption_ids.size(0), 1);
    EXPECT_EQ(f.caption_attention.size(2), f.feature_map.size(2) * f.feature_map.size(3));
  } else {
    EXPECT_EQ(f.logits.sizes(), (std::vector<int64_t>{1, cfg.num_classes}));
  }
  if (anomaly) {  // a lesion logit per cell of the feature map; the slice's lesion logit is the largest
    EXPECT_EQ(f.anomaly_map.sizes(), (std::vector<int64_t>{1, 1, f.feature_map.size(2), f.feature_map.size(3)}));
    EXPECT_FLOAT_EQ(f.logits[0][0].item<float>(), 0.0f);
    EXPECT_FLOAT_EQ(f.logits[0][1].item<float>(), f.anomaly_map.max().item<float>());
  }
}

// With lesion_map_stride the anomaly head scores the cells of an upsampling neck over the backbone's stages (a
// ResNet's layer3, layer2 and layer1 join on the way down to stride 4), not those of the last feature map; the
// slice's logit is still the largest cell's, and the neck's cost is counted.
TEST(Registry, AFineLesionMapScoresTheCellsOfItsNeck) {
  ModelCfg cfg = testing::fine_lesion_map_model(default_cfg("resnet18"), 0, 16);
  const double coarse_gflops = forward_gflops(cfg);
  cfg.ct.lesion_map_stride = 4;
  Network net = build_model(cfg);
  std::set<std::string> head_keys;
  for (const auto& p : net->head().named_parameters()) head_keys.insert(p.key());
  for (const char* key : {"neck_reduce.0.weight", "neck_up.0.0.weight", "neck_up.2.0.weight", "neck_lateral.layer1.0.weight",
                          "neck_lateral.layer2.0.weight", "neck_lateral.layer3.0.weight", "lesion_head.weight"})
    EXPECT_TRUE(head_keys.count(key)) << key;
  EXPECT_EQ(net->head().named_parameters()["lesion_head.weight"].size(1), 16) << "the 1x1 reads the neck's width";
  // Three upsampling 3x3 convolutions at 16 wide on 4 x 4, 8 x 8 and 16 x 16 cells, the 512 -> 16 reduction on
  // 2 x 2 and the 16 -> 1 scoring on 16 x 16, in place of the 512 -> 1 scoring on 2 x 2: by hand.
  const double neck_macs = (16.0 + 64 + 256) * 16 * 16 * 9 + 4 * 512 * 16 + 256 * 16 - 4 * 512;
  EXPECT_NEAR(forward_gflops(cfg) - coarse_gflops, 2 * neck_macs / 1e9, 1e-9);
  net->eval();
  torch::NoGradGuard no_grad;
  const Forward f = net->forward(torch::randn({2, 2, 64, 64}));
  EXPECT_EQ(f.anomaly_map.sizes(), (std::vector<int64_t>{2, 1, 16, 16}));
  for (int64_t i = 0; i < 2; ++i)
    EXPECT_FLOAT_EQ(f.logits[i][1].item<float>(), f.anomaly_map[i].max().item<float>());

  auto rejects = [&](int64_t stride, const char* why) {
    ModelCfg bad = cfg;
    bad.ct.lesion_map_stride = stride;
    try {
      bad.validate();
      ADD_FAILURE() << "accepted " << why;
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find("lesion_map_stride"), std::string::npos) << e.what();
    }
  };
  rejects(6, "a stride that is not a power of two");
  rejects(64, "a stride coarser than the backbone's feature map");
  EXPECT_EQ(cfg_from_json(to_json(cfg)).ct.lesion_map_stride, 4);
  EXPECT_EQ(cfg_from_json(to_json(cfg)).ct.lesion_map_width, 16);

  cfg.ct.lesion_map_loss = "focal";
  EXPECT_EQ(cfg_from_json(to_json(cfg)).ct.lesion_map_loss, "focal");
  ModelCfg bad = cfg;
  bad.ct.lesion_map_loss = "dice";
  try {
    bad.validate();
    ADD_FAILURE() << "accepted lesion_map_loss dice";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("lesion_map_loss must be bce, focal or focal_per_lesion"), std::string::npos) << e.what();
  }
}

std::vector<std::string> head_names() {
  std::vector<std::string> names;
  for (const HeadRow& row : head_table()) names.emplace_back(row.name);
  return names;
}

INSTANTIATE_TEST_SUITE_P(Heads, EveryHead,
                         ::testing::Combine(::testing::ValuesIn(head_names()),
                                            ::testing::Values("resnet18", "vit_tiny_patch16_224")));

}  // namespace
}  // namespace attnvision::models
