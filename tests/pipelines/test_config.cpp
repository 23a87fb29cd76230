// Config loading: YAML -> validated model config; every mistake names the key and its line.
#include "pipelines/config.h"
#include "pipelines/model_loader.h"
#include "test_util.h"

namespace attnvision::pipelines {
namespace {

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

TEST(Config, ModelYamlBuildsTheConfigItDescribes) {
  const ConfigDoc doc = parse_yaml(
      "arch: resnet\nblock: bottleneck\nlayers: [1, 2, 3, 4]\nchannels: [8, 16, 32, 64]\n"
      "attn: eca\nstem_type: deep_tiered\nstem_width: 16\navg_down: true\nnum_classes: 3\n"
      "labels: [cat, dog, 'null']\n",
      "m.yaml");
  const models::ModelCfg cfg = model_cfg_from_doc(doc);
  EXPECT_EQ(cfg.resnet.block, "bottleneck");
  EXPECT_EQ(cfg.resnet.layers, (std::vector<int64_t>{1, 2, 3, 4}));
  EXPECT_EQ(cfg.resnet.attn, "eca");
  EXPECT_TRUE(cfg.resnet.avg_down);
  EXPECT_EQ(cfg.labels, (std::vector<std::string>{"cat", "dog", "null"}));  // quoted stays a string
}

TEST(Config, BaseModelIsOverriddenKeyByKey) {
  const models::ModelCfg cfg = model_cfg_from_doc(parse_yaml("base: seresnet50\nnum_classes: 5\n", "m.yaml"));
  EXPECT_EQ(cfg.resnet.attn, "se");
  EXPECT_EQ(cfg.resnet.layers, (std::vector<int64_t>{3, 4, 6, 3}));
  EXPECT_EQ(cfg.num_classes, 5);
}

TEST(Config, UnknownKeyNamesKeyAndLine) {
  const std::string e = error_of([] { model_cfg_from_doc(parse_yaml("arch: resnet\n\natn: se\n", "m.yaml")); });
  EXPECT_NE(e.find("m.yaml:3"), std::string::npos) << e;
  EXPECT_NE(e.find("'atn'"), std::string::npos) << e;
}

TEST(Config, WrongTypeNamesKeyAndLine) {
  const std::string e = error_of([] { model_cfg_from_doc(parse_yaml("arch: resnet\nlayers: two\n", "m.yaml")); });
  EXPECT_NE(e.find("m.yaml:2"), std::string::npos) << e;
  EXPECT_NE(e.find("'layers'"), std::string::npos) << e;
  EXPECT_NE(e.find("list of integers"), std::string::npos) << e;
}

TEST(Config, MissingRequiredKeyIsNamed) {
  ConfigDoc doc = parse_yaml("b: 1\n", "p.yaml");
  const std::string e = error_of([&] { validate(doc, {{"a", Kind::kString, true, "needed"}, {"b", Kind::kInt, false, "optional"}}); });
  EXPECT_NE(e.find("missing required key 'a'"), std::string::npos) << e;
}

TEST(Config, InvalidYamlReportsLine) {
  const std::string e = error_of([] { parse_yaml("a: [1, 2\nb: 3\n", "bad.yaml"); });
  EXPECT_NE(e.find("bad.yaml:"), std::string::npos) << e;
}

TEST(Config, SetOverridesAndCreatesNestedKeys) {
  ConfigDoc doc = parse_yaml("arch: resnet\nlayers: [1, 1, 1, 1]\n", "m.yaml");
  apply_set(doc, "layers=[2, 2, 2, 2]");
  apply_set(doc, "train.lr=0.1");
  EXPECT_EQ(doc.root["layers"], nlohmann::json({2, 2, 2, 2}));
  EXPECT_DOUBLE_EQ(doc.root["train"]["lr"].get<double>(), 0.1);
  EXPECT_EQ(doc.where("train.lr"), "--set train.lr");
  EXPECT_THROW(apply_set(doc, "novalue"), ConfigError);
}

TEST(Config, InconsistentModelIsRejectedWithTheFile) {
  const std::string e =
      error_of([] { model_cfg_from_doc(parse_yaml("base: resnet18\nnum_classes: 2\nlabels: [a]\n", "m.yaml")); });
  EXPECT_NE(e.find("m.yaml"), std::string::npos) << e;
  EXPECT_NE(e.find("labels"), std::string::npos) << e;
}

}  // namespace
}  // namespace attnvision::pipelines
