// `attnvision train` (one process and data-parallel over loopback) and `attnvision eval`, end to end.
#include "test_util.h"

#include <nlohmann/json.hpp>

#include <algorithm>

namespace attnvision {
namespace {
using testing::have_fashion_mnist;

using testing::run_attnvision;
using testing::ScratchDir;

std::string tiny_train_args(const std::string& output) {
  return std::string("train '") + ATTNVISION_SOURCE_DIR +
         "/configs/train/fmnist_resnet.yaml' --set data.limit=512 --set data.val_count=128 --set batch_size=32 "
         "--set schedule.epochs=2 --set 'model.channels=[8, 16, 16, 16]' --set model.stem_width=8 "
         "--set data.test=fashion-mnist:test --set output='" + output + "'";
}

TEST(CliTrain, TwoProcessesKeepIdenticalReplicasAndEvalReadsTheResult) {
  if (!have_fashion_mnist()) GTEST_SKIP() << "Debian's dataset-fashion-mnist is not installed";
  ScratchDir dir;
  auto r = run_attnvision(tiny_train_args(dir / "run") + " --nproc 2");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // Every epoch the ranks compare a digest of all their weights and buffers; a difference fails the run.
  EXPECT_NE(r.err.find("replicas identical after epoch 1"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("replicas identical after epoch 2"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("2 processes"), std::string::npos) << r.err;
  const auto summary = nlohmann::json::parse(r.out);
  EXPECT_EQ(summary["epochs_done"], 2);
  for (const char* f : {"best.safetensors", "last.safetensors", "log.csv", "curves.png", "state.pt", "test.json",
                        "test_confusion.png"})
    EXPECT_TRUE(std::filesystem::exists(dir.path() / "run" / f)) << f;

  // eval on the same test set gives the accuracy the trainer reported, and writes the confusion chart.
  r = run_attnvision("eval --weights '" + (dir / "run/best.safetensors") + "' --data fashion-mnist:test --json " +
                     "--confusion-png '" + (dir / "cm.png") + "'");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto eval = nlohmann::json::parse(r.out);
  EXPECT_EQ(eval["count"], 10000);
  EXPECT_DOUBLE_EQ(eval["accuracy"].get<double>(), summary["test_accuracy"].get<double>());
  EXPECT_EQ(eval["confusion"].size(), 10u);
  EXPECT_EQ(eval["per_class"][9]["label"], "Ankle boot");
  EXPECT_TRUE(std::filesystem::exists(dir / "cm.png"));
}

TEST(CliTrain, BadRecipeAndBadDataAreOneLineErrors) {
  ScratchDir dir;
  testing::write_text(dir / "r.yaml", "model:\n  base: resnet18\nschedule:\n  epochs: many\n");
  auto r = run_attnvision("train '" + (dir / "r.yaml") + "'");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("r.yaml:4"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("schedule.epochs"), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;

  r = run_attnvision("eval --model resnet18 --random-init --data '" + (dir / "no-such-folder") + "'");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("no-such-folder"), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
}

}  // namespace
}  // namespace attnvision
