// `attnvision convert`: a checkpoint rewritten (float16 or int8 here) still carries its config, stores what was asked,
// and scores as the original.
#include "models/weights/weights.h"
#include "test_util.h"

#include <nlohmann/json.hpp>

#include <filesystem>

namespace attnvision {
namespace {
using testing::have_fashion_mnist;

using testing::run_attnvision;
using testing::ScratchDir;

const std::string kShipped = std::string(ATTNVISION_SOURCE_DIR) + "/models/pretrained/fmnist_resnet.safetensors";

// Top-1 accuracy of a checkpoint on the first 1,000 Fashion-MNIST test images.
double accuracy_on_1000(const ScratchDir& dir, const std::string& weights) {
  const auto r = run_attnvision("eval --weights '" + weights + "' --data fashion-mnist:test --limit 1000 --json "
                                "--confusion-png '" + (dir / "cm.png") + "'");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return nlohmann::json::parse(r.out)["accuracy"].get<double>();
}

TEST(Convert, Float16CheckpointHalvesTheFileKeepsItsConfigAndScoresAsTheOriginal) {
  ScratchDir dir;
  const std::string half = dir / "half.safetensors";
  const auto c = run_attnvision("convert --weights '" + kShipped + "' --out '" + half + "' --dtype float16");
  ASSERT_EQ(c.exit_code, 0) << c.err;

  const models::TensorFile original = models::read_weights(kShipped), converted = models::read_weights(half);
  ASSERT_EQ(converted.tensors.size(), original.tensors.size());
  for (const auto& [name, t] : original.tensors) {
    const torch::Tensor& u = converted.tensors.at(name);
    if (!t.is_floating_point()) {
      EXPECT_TRUE(torch::equal(t, u)) << name;  // BatchNorm's counters stay integers
      continue;
    }
    EXPECT_EQ(u.scalar_type(), torch::kFloat16) << name;
    // float16 keeps 11 significant bits: each weight within half a unit in the last place (relative 2^-11),
    // the smallest ones within float16's subnormal spacing.
    EXPECT_TRUE(torch::allclose(u.to(torch::kFloat32), t.to(torch::kFloat32), 1.0 / 2048, 6e-8)) << name;
  }
  models::ModelCfg a, b;
  ASSERT_TRUE(models::read_checkpoint_cfg(original, a));
  ASSERT_TRUE(models::read_checkpoint_cfg(converted, b));
  EXPECT_EQ(models::to_json(a).dump(), models::to_json(b).dump());
  EXPECT_LT(std::filesystem::file_size(half), std::filesystem::file_size(kShipped) * 0.55);

  if (!have_fashion_mnist()) GTEST_SKIP() << "Debian's dataset-fashion-mnist is not installed";
  EXPECT_NEAR(accuracy_on_1000(dir, half), accuracy_on_1000(dir, kShipped), 0.002);  // at most two of the 1,000 images change
}

TEST(Convert, Int8CheckpointQuartersTheWeightsAndScoresAsTheOriginal) {
  ScratchDir dir;
  const std::string int8 = dir / "int8.safetensors";
  const auto c = run_attnvision("convert --weights '" + kShipped + "' --out '" + int8 + "' --dtype int8");
  ASSERT_EQ(c.exit_code, 0) << c.err;
  // The shipped classifier is float32: its weight matrices shrink to a quarter plus a scale per row.
  EXPECT_LT(std::filesystem::file_size(int8), std::filesystem::file_size(kShipped) * 0.3);
  const models::TensorFile original = models::read_weights(kShipped), converted = models::read_weights(int8);
  ASSERT_EQ(converted.tensors.size(), original.tensors.size());  // read back without the scales

  if (!have_fashion_mnist()) GTEST_SKIP() << "Debian's dataset-fashion-mnist is not installed";
  EXPECT_NEAR(accuracy_on_1000(dir, int8), accuracy_on_1000(dir, kShipped), 0.005);  // at most five of the 1,000 images change
}

TEST(Convert, RefusesWithoutWeightsAndUnknownStorageTypes) {
  ScratchDir dir;
  const auto no_weights = run_attnvision("convert --model resnet18 --out '" + (dir / "x.safetensors") + "'");
  EXPECT_EQ(no_weights.exit_code, 1);
  EXPECT_NE(no_weights.err.find("--weights"), std::string::npos) << no_weights.err;
  const auto int4 = run_attnvision("convert --weights '" + kShipped + "' --out '" + (dir / "x.safetensors") +
                                   "' --dtype int4");
  EXPECT_EQ(int4.exit_code, 2) << int4.err;
  EXPECT_FALSE(std::filesystem::exists(dir / "x.safetensors"));
}

}  // namespace
}  // namespace attnvision
