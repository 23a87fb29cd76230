// The trainer: its schedule, its recipe validation, and that --resume continues a run exactly.
#include "models/weights/weights.h"
#include "pipelines/train/trainer.h"
#include "test_util.h"

#include <torch/torch.h>

#include <cmath>

namespace attnvision::pipelines {
namespace {
using testing::have_fashion_mnist;

using testing::ScratchDir;

const std::string kRecipe = std::string(ATTNVISION_SOURCE_DIR) + "/configs/train/fmnist_resnet.yaml";

// A run small enough for a unit test: 256 training images, a narrow net, 2 epochs of 8 steps.
TrainCfg tiny_recipe(const std::string& output) {
  return load_train_cfg(kRecipe, {"data.limit=256", "data.val_count=64", "data.test=''", "batch_size=32",
                                  "schedule.epochs=2", "model.channels=[8, 16, 16, 16]", "model.stem_width=8",
                                  "output=" + output});
}

TEST(Trainer, ScheduleWarmsUpLinearlyThenDecaysByCosine) {
  TrainCfg c;
  c.optim.lr = 0.2;
  c.schedule.epochs = 10;
  c.schedule.warmup_epochs = 2;
  c.schedule.warmup_lr = 0.0;
  c.schedule.min_lr = 0.01;
  const int64_t spe = 5;  // steps per epoch
  EXPECT_DOUBLE_EQ(scheduled_lr(c, 0, spe), 0.0);
  EXPECT_DOUBLE_EQ(scheduled_lr(c, 5, spe), 0.1);  // half-way through the warm-up
  EXPECT_DOUBLE_EQ(scheduled_lr(c, 10, spe), 0.2);  // the peak, then cosine
  EXPECT_NEAR(scheduled_lr(c, 30, spe), 0.01 + 0.5 * 0.19, 1e-12);  // half-way through the decay
  EXPECT_NEAR(scheduled_lr(c, 50, spe), 0.01, 1e-12);
  for (int64_t s = 10; s < 50; ++s) EXPECT_GT(scheduled_lr(c, s, spe), scheduled_lr(c, s + 1, spe)) << s;
}

TEST(Trainer, RecipeErrorsNameTheKeyAndLine) {
  ScratchDir dir;
  testing::write_text(dir / "r.yaml", "model:\n  arch: resnet\n  attn: se\n  num_classes: 10\noptim:\n  nmae: sgd\n");
  try {
    load_train_cfg(dir / "r.yaml", {});
    FAIL() << "an unknown key was accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("r.yaml:6"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("optim.nmae"), std::string::npos) << e.what();
  }
  testing::write_text(dir / "m.yaml", "model:\n  arch: resnet\n  atn: se\n");
  try {
    load_train_cfg(dir / "m.yaml", {});
    FAIL() << "an unknown model key was accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("m.yaml:3"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("'atn'"), std::string::npos) << e.what();
  }
  EXPECT_THROW(load_train_cfg(kRecipe, {"optim.name=rmsprop"}), ConfigError);
  EXPECT_THROW(load_train_cfg(kRecipe, {"batch_size=1"}), ConfigError);
  EXPECT_THROW(load_train_cfg(kRecipe, {"precision=fp16"}), ConfigError);
  EXPECT_EQ(load_train_cfg(kRecipe, {"precision=fp32"}).precision, models::Precision::kFloat32);
  const TrainCfg ok = load_train_cfg(kRecipe, {"model.attn=eca", "schedule.epochs=3"});
  EXPECT_EQ(ok.model.resnet.attn, "eca");
  EXPECT_EQ(ok.schedule.epochs, 3);
  // A patch (augment.crop_size) must fit the model's input and its strides.
  const std::string anomaly = std::string(ATTNVISION_SOURCE_DIR) + "/configs/train/phantom_anomaly.yaml";
  EXPECT_EQ(load_train_cfg(anomaly, {"augment.crop_size=128"}).augment.crop_size, 128);
  EXPECT_EQ(load_train_cfg(anomaly, {"augment.crop_size=0"}).augment.crop_size, 0);
  EXPECT_THROW(load_train_cfg(anomaly, {"augment.crop_size=200"}), ConfigError);  // not a multiple of 32
  const std::string grid_256 = "model.input_size=[2, 256, 256]";
  EXPECT_EQ(load_train_cfg(anomaly, {grid_256, "augment.crop_size=256"}).augment.crop_size, 256);
  EXPECT_THROW(load_train_cfg(anomaly, {grid_256, "augment.crop_size=288"}), ConfigError);  // larger than 256
  EXPECT_THROW(load_train_cfg(kRecipe, {"augment.crop_size=32"}), ConfigError);   // larger than 28
}

TEST(Trainer, ResumeContinuesExactly) {
  if (!have_fashion_mnist()) GTEST_SKIP() << "Debian's dataset-fashion-mnist is not installed";
  ScratchDir dir;
  const TrainSummary straight = train(tiny_recipe(dir / "straight"), {});
  EXPECT_EQ(straight.epochs_done, 2);
  TrainOptions first_half;
  first_half.stop_after = 1;
  EXPECT_EQ(train(tiny_recipe(dir / "pieces"), first_half).epochs_done, 1);
  TrainOptions resume;
  resume.resume = true;
  EXPECT_EQ(train(tiny_recipe(dir / "pieces"), resume).epochs_done, 2);

  const auto a = models::read_weights(dir / "straight/last.safetensors").tensors;
  const auto b = models::read_weights(dir / "pieces/last.safetensors").tensors;
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [name, t] : a) EXPECT_TRUE(torch::equal(t, b.at(name))) << name << " differs after resume";

  // The run learned something: both halves' curves are in the log, and the loss went down.
  std::ifstream log(dir / "pieces/log.csv");
  std::string header, e1, e2;
  std::getline(log, header), std::getline(log, e1), std::getline(log, e2);
  EXPECT_EQ(e1.substr(0, 2), "1,");
  EXPECT_EQ(e2.substr(0, 2), "2,");
  EXPECT_TRUE(std::filesystem::exists(dir / "pieces/curves.png"));
  EXPECT_TRUE(std::filesystem::exists(dir / "pieces/best.safetensors"));
}

TEST(Trainer, RefusesToOverwriteOrToResumeAnotherRecipe) {
  if (!have_fashion_mnist()) GTEST_SKIP() << "Debian's dataset-fashion-mnist is not installed";
  ScratchDir dir;
  TrainOptions one;
  one.stop_after = 1;
  train(tiny_recipe(dir / "run"), one);
  EXPECT_THROW(train(tiny_recipe(dir / "run"), one), std::invalid_argument);  // no --resume: refuse
  TrainCfg changed = tiny_recipe(dir / "run");
  changed.optim.lr = 0.05;
  TrainOptions resume;
  resume.resume = true;
  try {
    train(changed, resume);
    FAIL() << "resumed with another recipe";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("'optim' differs"), std::string::npos) << e.what();
  }
}

// A run started before a key existed resumes under today's build: the key had its default then.
TEST(Trainer, AStoredRecipeWithoutANewerKeyStillMatches) {
  const TrainCfg cfg = tiny_recipe("runs/unused");
  const nlohmann::json today = to_json(cfg);
  nlohmann::json older = today;
  size_t erased = 0;
  for (auto& [section, fields] : older["model"].items())
    if (fields.is_object()) erased += fields.erase("feature_stride");
  ASSERT_EQ(erased, 1u) << "the model JSON carries feature_stride in one section";
  ASSERT_EQ(older["augment"].erase("crop_size"), 1u);
  ASSERT_EQ(older["augment"].erase("foreground_crops"), 1u);
  ASSERT_NE(older.dump(), today.dump());
  EXPECT_EQ(with_todays_defaults(older.dump()), today.dump());
  // A real difference stays one.
  nlohmann::json other = older;
  other["optim"]["lr"] = 0.5;
  EXPECT_NE(with_todays_defaults(other.dump()), today.dump());
  nlohmann::json patches = today;
  patches["augment"]["crop_size"] = 32;
  EXPECT_NE(with_todays_defaults(patches.dump()), today.dump());
  nlohmann::json foreground = today;
  foreground["augment"]["foreground_crops"] = 0.5;
  EXPECT_NE(with_todays_defaults(foreground.dump()), today.dump());
}

TEST(Trainer, InitAndInitBackboneStartTheRunFromAnotherRunsWeights) {
  if (!have_fashion_mnist()) GTEST_SKIP() << "Debian's dataset-fashion-mnist is not installed";
  ScratchDir dir;
  TrainOptions one;
  one.stop_after = 1;
  train(tiny_recipe(dir / "first"), one);
  const std::string start = dir / "first/last.safetensors";
  const auto first = models::read_weights(start).tensors;

  // At a learning rate of 1e-9 an epoch moves no weight measurably: what a run ends with is what it began
  // with. `init` begins with all of the first run's weights; `init_backbone` with its backbone and a head
  // initialised afresh (which the first run's epoch of training moved away from). BatchNorm's running
  // statistics, which follow the data, aside.
  for (const bool backbone_only : {false, true}) {
    SCOPED_TRACE(backbone_only ? "init_backbone" : "init");
    const std::string name = backbone_only ? "backbone" : "whole";
    TrainCfg next = tiny_recipe(dir / name);
    (backbone_only ? next.init_backbone : next.init) = start;
    next.optim.lr = 1e-9;
    train(next, one);
    const auto b = models::read_weights(dir / (name + "/last.safetensors")).tensors;
    ASSERT_EQ(first.size(), b.size());
    int heads = 0;
    for (const auto& [key, t] : first) {
      if (key.find("running_") != std::string::npos || key.find("num_batches") != std::string::npos) continue;
      const bool head = key.rfind("fc.", 0) == 0;
      heads += head;
      EXPECT_EQ(torch::allclose(t, b.at(key), 0, 1e-6), !(head && backbone_only)) << key;
    }
    EXPECT_EQ(heads, 2) << "fc.weight and fc.bias";
    EXPECT_EQ(to_json(next).contains("init_backbone"), backbone_only) << "the recipe records it when set";

    // Weights of another architecture are refused, naming the file, before any training.
    TrainCfg other = tiny_recipe(dir / (name + "_other"));
    (backbone_only ? other.init_backbone : other.init) = start;
    other.model.resnet.channels = {8, 16, 16, 32};
    try {
      train(other, one);
      ADD_FAILURE() << "trained from weights of another architecture";
    } catch (const std::exception& e) {
      EXPECT_NE(std::string(e.what()).find(start), std::string::npos) << e.what();
    }
  }
}

}  // namespace
}  // namespace attnvision::pipelines
