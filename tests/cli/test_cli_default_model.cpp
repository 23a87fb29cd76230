// The shipped default models (models/pretrained/): their measured scores hold, and `classify` / `detect` use
// them when no model is named.
#include "test_util.h"

#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>

#include <fstream>

namespace attnvision {
namespace {
using testing::have_fashion_mnist;

using testing::run_attnvision;
using testing::ScratchDir;

const std::string kCard = std::string(ATTNVISION_SOURCE_DIR) + "/models/pretrained/fmnist_resnet.json";
const std::string kDetectorCard = std::string(ATTNVISION_SOURCE_DIR) + "/models/pretrained/scenes_detector.json";

TEST(DefaultModel, AccuracyOnTheFirst2000TestImagesStaysWithinAPointOfTheRecordedFigure) {
  if (!have_fashion_mnist()) GTEST_SKIP() << "Debian's dataset-fashion-mnist is not installed";
  std::ifstream in(kCard);
  ASSERT_TRUE(in) << kCard;
  const auto card = nlohmann::json::parse(in);
  const double recorded = card.at("test_accuracy_first_2000").get<double>();
  ScratchDir dir;
  // No --model and no --weights: the shipped classifier.
  const auto r = run_attnvision("eval --data fashion-mnist:test --limit 2000 --json --confusion-png '" + (dir / "cm.png") + "'");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto eval = nlohmann::json::parse(r.out);
  EXPECT_EQ(eval["count"], 2000);
  EXPECT_NEAR(eval["accuracy"].get<double>(), recorded, 0.01) << "the shipped model no longer scores as recorded";
}

TEST(DefaultModel, DetectorMapOnTheFirst200TestScenesStaysWithinTwoPointsOfTheRecordedFigure) {
  if (!have_fashion_mnist()) GTEST_SKIP() << "Debian's dataset-fashion-mnist is not installed";
  std::ifstream in(kDetectorCard);
  ASSERT_TRUE(in) << kDetectorCard;
  const auto card = nlohmann::json::parse(in);
  const auto recorded = card.at("test_first_200");
  ScratchDir dir;
  // The first 200 of the card's 1,000 test scenes: a scene depends on (seed, split, index) only.
  const auto synth = run_attnvision("synth scenes --out '" + (dir / "scenes") + "' --images 200 --seed 2 --split test");
  ASSERT_EQ(synth.exit_code, 0) << synth.err;
  // No --model and no --weights: the shipped detector, with the second stage its file carries.
  const auto r = run_attnvision("eval-detect --data '" + (dir / "scenes") + "' --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto eval = nlohmann::json::parse(r.out);
  EXPECT_NEAR(eval["AP"].get<double>(), recorded.at("AP").get<double>(), 0.02) << "the shipped detector moved";
  EXPECT_NEAR(eval["AP50"].get<double>(), recorded.at("AP50").get<double>(), 0.02) << "the shipped detector moved";
  // `eval` too takes the shipped detector for a scenes folder when no model is named; it scores the network
  // alone, as `eval-detect --classifier none` does.
  const auto network_alone = card.at("test_first_200_network_alone");
  const auto plain = run_attnvision("eval --data '" + (dir / "scenes") + "' --json --confusion-png ''");
  ASSERT_EQ(plain.exit_code, 0) << plain.err;
  const auto task_eval = nlohmann::json::parse(plain.out);
  EXPECT_EQ(task_eval["count"], 200);
  EXPECT_NEAR(task_eval["AP"].get<double>(), network_alone.at("AP").get<double>(), 0.02) << "the shipped detector moved";
  const auto one_stage = run_attnvision("eval-detect --data '" + (dir / "scenes") + "' --classifier none --json");
  ASSERT_EQ(one_stage.exit_code, 0) << one_stage.err;
  EXPECT_NEAR(nlohmann::json::parse(one_stage.out)["AP"].get<double>(), task_eval["AP"].get<double>(), 1e-4)
      << "eval and eval-detect --classifier none score the same network";
}

TEST(DefaultModel, CaptionerCiderDOnTheFirst200TestScenesStaysNearTheRecordedFigure) {
  if (!have_fashion_mnist()) GTEST_SKIP() << "Debian's dataset-fashion-mnist is not installed";
  std::ifstream in(std::string(ATTNVISION_SOURCE_DIR) + "/models/pretrained/scenes_captioner.json");
  ASSERT_TRUE(in) << "models/pretrained/scenes_captioner.json";
  const auto recorded = nlohmann::json::parse(in).at("test_first_200_beam3");
  ScratchDir dir;
  // The first 200 of the card's 1,000 test scenes: a scene depends on (seed, split, index) only.
  const auto synth = run_attnvision("synth scenes --out '" + (dir / "scenes") + "' --images 200 --seed 2 --split test");
  ASSERT_EQ(synth.exit_code, 0) << synth.err;
  // No --model and no --weights: the shipped captioner.
  const auto r = run_attnvision("eval-caption --data '" + (dir / "scenes") + "' --beam 3 --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto eval = nlohmann::json::parse(r.out);
  EXPECT_EQ(eval["images"], 200);
  EXPECT_NEAR(eval["CIDEr"].get<double>(), recorded.at("CIDEr").get<double>(), 0.1) << "the shipped captioner moved";
  EXPECT_NEAR(eval["Bleu_4"].get<double>(), recorded.at("Bleu_4").get<double>(), 0.02) << "the shipped captioner moved";
}

TEST(DefaultModel, AnomalyAurocOnTheFirst10TestSeriesStaysWithinThreePointsOfTheRecordedFigure) {
  testing::ScratchDir dir;
  std::ifstream card(std::string(ATTNVISION_SOURCE_DIR) + "/models/pretrained/phantom_anomaly.json");
  const double recorded = nlohmann::json::parse(card)["test_first_10_series"]["auroc"].get<double>();
  // The card's test phantoms are keyed by (seed, series index): the first 10 of its 60 series.
  const auto synth = run_attnvision("synth phantoms --out '" + (dir / "ph") + "' --series 10 --seed 2");
  ASSERT_EQ(synth.exit_code, 0) << synth.err;
  // No --model and no --weights: a phantom set is evaluated with the shipped anomaly model.
  const auto r = run_attnvision("eval --data '" + (dir / "ph") + "' --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto eval = nlohmann::json::parse(r.out);
  EXPECT_EQ(eval["count"], 155);
  EXPECT_NEAR(eval["auroc"].get<double>(), recorded, 0.03) << "the shipped anomaly model moved";
}

TEST(DefaultModel, ClassifyWithoutAModelUsesTheShippedClassifier) {
  ScratchDir dir;
  // A dark trouser-like silhouette: two bright vertical legs on black, as Fashion-MNIST draws them.
  cv::Mat img(28, 28, CV_8UC1, cv::Scalar(0));
  img(cv::Rect(8, 2, 5, 25)).setTo(200);
  img(cv::Rect(15, 2, 5, 25)).setTo(200);
  img(cv::Rect(8, 2, 12, 6)).setTo(200);
  ASSERT_TRUE(cv::imwrite(dir / "x.png", img));
  const auto r = run_attnvision("classify '" + (dir / "x.png") + "' --json --topk 3");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto row = nlohmann::json::parse(r.out);
  ASSERT_EQ(row["topk"].size(), 3u);
  static const std::vector<std::string> kClasses = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                                     "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
  for (const auto& t : row["topk"])
    EXPECT_NE(std::find(kClasses.begin(), kClasses.end(), t["label"].get<std::string>()), kClasses.end()) << t;
}

}  // namespace
}  // namespace attnvision
