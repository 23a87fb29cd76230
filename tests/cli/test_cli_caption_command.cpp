// Captioning end to end with the real binary: scenes from Debian's Fashion-MNIST, a tiny captioner trained by
// `train` (its vocabulary travels in the checkpoint), then `caption` (text, JSON lines, per-word attention
// strips, a COCO results file) and `eval-caption --data`: the same captions score the same either way.
#include "test_util.h"

#include "models/registry.h"
#include "models/weights/weights.h"
#include "crop_classifier_testing.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>
#include <torch/torch.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace attnvision {
namespace {
using testing::have_fashion_mnist;
using testing::json_lines;

using testing::run_attnvision;
using testing::ScratchDir;

class CliCaption : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!have_fashion_mnist()) return;
    dir_ = new ScratchDir;
    const std::string d = dir_->path().string();
    auto r = run_attnvision("synth scenes --out '" + d + "/train' --images 40 --seed 1 --split train");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    r = run_attnvision("synth scenes --out '" + d + "/test' --images 6 --seed 2 --split test");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    r = run_attnvision(tiny_recipe() + " --set schedule.epochs=2 --set output='" + d + "/run'");
    train_ok_ = r.exit_code == 0;
    train_err_ = r.err;
  }
  static void TearDownTestSuite() { delete dir_; }

  // `train` with the shipped recipe shrunk to a tiny captioner on the suite's scenes.
  static std::string tiny_recipe() {
    const std::string d = dir_->path().string();
    return std::string("train '") + ATTNVISION_SOURCE_DIR + "/configs/train/scenes_caption.yaml' " +
           "--set data.train='" + d + "/train' --set data.test='" + d + "/test' --set data.val_count=8 " +
           "--set batch_size=16 --set 'model.layers=[1, 1, 1, 1]' " +
           "--set 'model.channels=[8, 16, 16, 16]' --set model.stem_width=8 --set model.decoder_dim=32 " +
           "--set model.word_dim=16 --set model.attention_dim=16 --set model.max_words=8 --set precision=fp32";
  }

  void SetUp() override {
    if (!have_fashion_mnist()) GTEST_SKIP() << "Debian's dataset-fashion-mnist is not installed";
    ASSERT_TRUE(train_ok_) << train_err_;
  }
  static std::string path(const std::string& rel) { return (dir_->path() / rel).string(); }
  static std::string weights() { return "--weights '" + path("run/best.safetensors") + "'"; }

  static ScratchDir* dir_;
  static bool train_ok_;
  static std::string train_err_;
};

ScratchDir* CliCaption::dir_ = nullptr;
bool CliCaption::train_ok_ = false;
std::string CliCaption::train_err_;

TEST_F(CliCaption, TrainingScoresCidErDAndTheCheckpointCarriesItsVocabulary) {
  const nlohmann::json summary = nlohmann::json::parse(testing::read_text(path("run/config.json")));
  const nlohmann::json labels = summary.at("model").at("labels");
  ASSERT_GE(labels.size(), 5u);
  EXPECT_EQ(labels[0], "<pad>");
  EXPECT_EQ(labels[1], "<start>");
  EXPECT_EQ(labels[2], "<end>");
  EXPECT_EQ(labels[3], "<unk>");
  EXPECT_EQ(summary.at("model").at("num_classes"), labels.size());
  EXPECT_NE(train_err_.find("CIDEr-D"), std::string::npos) << train_err_;
}

TEST_F(CliCaption, PrintsPathTabCaptionAndJsonLinesWithTokensAndLogprob) {
  const auto text = run_attnvision("caption '" + path("test/images") + "' " + weights() + " --beam 2");
  ASSERT_EQ(text.exit_code, 0) << text.err;
  std::istringstream lines(text.out);
  int n = 0;
  for (std::string line; std::getline(lines, line); ++n) {
    const size_t tab = line.find('\t');
    ASSERT_NE(tab, std::string::npos) << line;
    EXPECT_EQ(line.rfind(path("test/images") + "/", 0), 0u) << line;
  }
  EXPECT_EQ(n, 6);

  const auto json = run_attnvision("caption '" + path("test/images") + "' " + weights() + " --beam 2 --json");
  ASSERT_EQ(json.exit_code, 0) << json.err;
  const std::vector<nlohmann::json> rows = json_lines(json.out);
  ASSERT_EQ(rows.size(), 6u);
  std::istringstream again(text.out);
  for (const nlohmann::json& row : rows) {
    std::string line;
    std::getline(again, line);
    const std::string caption = row.at("caption");
    EXPECT_EQ(line, row.at("path").get<std::string>() + "\t" + caption);  // the same captions both ways
    std::string joined;
    for (const auto& t : row.at("tokens")) joined += (joined.empty() ? "" : " ") + t.get<std::string>();
    EXPECT_EQ(joined, caption);
    double sum = 0;
    for (const auto& lp : row.at("word_logprobs")) sum += lp.get<double>();
    EXPECT_NEAR(row.at("logprob").get<double>(), sum, 1e-6);
    EXPECT_LT(row.at("logprob").get<double>(), 0.0);
    EXPECT_EQ(row.at("word_logprobs").size(), row.at("tokens").size() + 1);  // and <end>'s
  }
}

TEST_F(CliCaption, AttentionDirHoldsAStripOfOnePanelPerWord) {
  const std::string out = path("attention");
  const auto r = run_attnvision("caption '" + path("test/images") + "' " + weights() + " --json --attention-dir '" + out + "'");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const nlohmann::json& row : json_lines(r.out)) {
    const std::string name = std::filesystem::path(row.at("path").get<std::string>()).filename().string();
    const std::string strip = out + "/images/" + name + ".words.png";
    const size_t words = row.at("tokens").size();
    if (words == 0) {
      EXPECT_FALSE(std::filesystem::exists(strip)) << strip;
      continue;
    }
    const cv::Mat png = cv::imread(strip, cv::IMREAD_UNCHANGED);
    ASSERT_FALSE(png.empty()) << strip;
    EXPECT_EQ(png.cols, static_cast<int>(128 * words)) << strip;
    EXPECT_GT(png.rows, 128) << "a title strip under the panels";
  }
}

TEST_F(CliCaption, ResultsFileScoresAsEvalCaptionDataDoes) {
  const std::string results = path("results.json");
  const auto r = run_attnvision("caption '" + path("test/images") + "' " + weights() + " --beam 3 --coco-images '" +
                                path("test/captions.json") + "' --results '" + results + "'");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto from_file = run_attnvision("eval-caption --gt '" + path("test/captions.json") + "' --results '" + results + "' --json");
  const auto in_one_go = run_attnvision("eval-caption --data '" + path("test") + "' " + weights() + " --beam 3 --json");
  ASSERT_EQ(from_file.exit_code, 0) << from_file.err;
  ASSERT_EQ(in_one_go.exit_code, 0) << in_one_go.err;
  EXPECT_EQ(from_file.out, in_one_go.out);
  EXPECT_EQ(nlohmann::json::parse(in_one_go.out).at("images"), 6);
}

TEST_F(CliCaption, AnUnreadableImageIsOneLineAndTheOthersGoOn) {
  const std::string bad = path("bad");
  std::filesystem::create_directories(bad);
  std::filesystem::copy_file(path("test/images") + "/" + std::filesystem::directory_iterator(path("test/images"))->path().filename().string(),
                             bad + "/good.png");
  testing::write_text(bad + "/broken.png", "not a png at all");
  const auto r = run_attnvision("caption '" + bad + "' " + weights());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find(bad + "/broken.png"), std::string::npos) << r.err;
  EXPECT_NE(r.out.find(bad + "/good.png\t"), std::string::npos) << r.out;
}

// Self-critical training goes on from the teacher-forced run's weights: it reports the reward of its drawn
// captions each epoch, keeps its best checkpoint by validation CIDEr-D and records the setting in its recipe.
// Weights whose word ids belong to another vocabulary are refused before any step.
TEST_F(CliCaption, SelfCriticalTrainingGoesOnFromTheTeacherForcedRunsWeights) {
  const std::string init = " --set init='" + path("run/best.safetensors") + "'";
  auto r = run_attnvision(tiny_recipe() + init + " --set schedule.epochs=1 --set schedule.warmup_epochs=0 " +
                          "--set optim.lr=1e-4 --set self_critical_samples=3 --set output='" + path("scst") + "'");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("draws' CIDEr-D "), std::string::npos) << r.err;
  EXPECT_TRUE(std::filesystem::exists(path("scst/best.safetensors")));
  const nlohmann::json recipe = nlohmann::json::parse(testing::read_text(path("scst/config.json")));
  EXPECT_EQ(recipe.at("self_critical_samples"), 3);
  const std::string log = testing::read_text(path("scst/log.csv"));
  EXPECT_EQ(std::count(log.begin(), log.end(), '\n'), 2) << log;  // the header and one epoch

  // A minimum word count of 4 leaves the rarer words out of the vocabulary: the ids of the init weights mean other words.
  r = run_attnvision(tiny_recipe() + init + " --set model.min_word_count=4 --set self_critical_samples=3 " +
                     "--set output='" + path("scst_other") + "'");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("differ from those of"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(path("scst_other/last.safetensors")));

  r = run_attnvision(tiny_recipe() + " --set self_critical_samples=1 --set output='" + path("scst_one") + "'");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("self_critical_samples"), std::string::npos) << r.err;
}

// Bottom-up attention (configs/train/scenes_caption_bottomup.yaml): a captioner that embeds a detector trains
// with that detector loaded from init_detector and frozen (its checkpoint holds the detector's tensors exactly
// as the detector's file does), captions, and draws each word's attention over cells and detected boxes. A
// model that embeds a detector without its weights, and init_detector for a model without one, are refused.
TEST_F(CliCaption, ABottomUpCaptionerTrainsOverItsFrozenDetectorsFindings) {
  const std::string d = dir_->path().string();
  const std::string tiny = "--set data.train='" + d + "/train' --set data.test='" + d + "/test' " +
                           "--set data.val_count=8 --set batch_size=16 --set 'model.layers=[1, 1, 1, 1]' " +
                           "--set 'model.channels=[8, 16, 16, 16]' --set model.stem_width=8 --set model.head_width=8 " +
                           "--set precision=fp32 --set schedule.epochs=1 --set schedule.warmup_epochs=0";
  auto r = run_attnvision(std::string("train '") + ATTNVISION_SOURCE_DIR + "/configs/train/scenes_detect.yaml' " + tiny +
                          " --set output='" + path("detector") + "'");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string detector = path("detector/best.safetensors");
  const std::string bottom_up = std::string("train '") + ATTNVISION_SOURCE_DIR +
                                "/configs/train/scenes_caption_bottomup.yaml' " + tiny +
                                " --set model.decoder_dim=32 --set model.max_words=8";
  // The recipe reads the detector's second stage, which this detector has not got yet (below).
  r = run_attnvision(bottom_up + " --set model.detector_second_stage=false --set init_detector='" + detector +
                     "' --set output='" + path("bottom_up") + "'");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("CIDEr-D"), std::string::npos) << r.err;

  const auto own = models::read_weights(detector).tensors;
  const auto embedded = models::read_weights(path("bottom_up/best.safetensors")).tensors;
  size_t compared = 0;
  for (const auto& [name, t] : own) {
    const auto it = embedded.find("detector." + name);
    ASSERT_NE(it, embedded.end()) << name;
    EXPECT_TRUE(torch::equal(it->second, t)) << name << " moved in training";
    ++compared;
  }
  EXPECT_GT(compared, 20u);

  const std::string out = path("bottom_up_attention");
  r = run_attnvision("caption '" + path("test/images") + "' --weights '" + path("bottom_up/best.safetensors") +
                     "' --json --attention-dir '" + out + "'");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const nlohmann::json& row : json_lines(r.out)) {
    const std::string name = std::filesystem::path(row.at("path").get<std::string>()).filename().string();
    const size_t words = row.at("tokens").size();
    if (words == 0) continue;
    const cv::Mat png = cv::imread(out + "/images/" + name + ".words.png", cv::IMREAD_UNCHANGED);
    ASSERT_FALSE(png.empty()) << name;
    EXPECT_EQ(png.cols, static_cast<int>(128 * words)) << name;
  }

  // With the detector's second stage (model.detector_second_stage): the crop classifier travels in
  // init_detector's checkpoint (`convert --second-stage`), is embedded frozen as `second_stage.*` with its config
  // in the captioner's, and the captioner captions; a detector file without one is refused, naming it.
  models::ModelCfg detector_cfg;
  ASSERT_TRUE(models::read_checkpoint_cfg(models::read_weights(detector), detector_cfg));
  const models::ModelCfg crops = models::testing::tiny_crop_classifier(detector_cfg.num_classes, detector_cfg.labels,
                                                                         detector_cfg.mean, detector_cfg.std);
  models::save_checkpoint(path("crops.safetensors"), *models::build_model(crops), crops);
  const std::string staged_detector = path("detector_second_stage.safetensors");
  r = run_attnvision("convert --weights '" + detector + "' --second-stage '" + path("crops.safetensors") + "' --out '" +
                     staged_detector + "'");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = run_attnvision(bottom_up + " --set model.detector_second_stage=true --set init_detector='" + staged_detector +
                     "' --set output='" + path("second_stage") + "'");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const models::TensorFile staged = models::read_weights(path("second_stage/best.safetensors"));
  const models::TensorFile staged_detector_file = models::read_weights(staged_detector);
  const models::TensorFile* part = models::find_part(staged_detector_file.parts, "second_stage");
  ASSERT_NE(part, nullptr);
  for (const auto& [name, t] : part->tensors) {
    const auto it = staged.tensors.find("second_stage." + name);
    ASSERT_NE(it, staged.tensors.end()) << name;
    EXPECT_TRUE(torch::equal(it->second, t)) << name << " moved in training";
  }
  models::ModelCfg staged_cfg;
  ASSERT_TRUE(models::read_checkpoint_cfg(staged, staged_cfg));
  EXPECT_TRUE(staged_cfg.caption.detector_second_stage);
  EXPECT_TRUE(staged_cfg.caption.detector_counts) << "the recipe's tokens read the scene's counts";
  EXPECT_EQ(staged_cfg.embedded_second_stage().labels, detector_cfg.labels);
  r = run_attnvision("caption '" + path("test/images") + "' --weights '" + path("second_stage/best.safetensors") +
                     "' --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(json_lines(r.out).size(), 6u);
  r = run_attnvision(bottom_up + " --set model.detector_second_stage=true --set init_detector='" + detector +
                     "' --set output='" + path("no_second_stage") + "'");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find(detector + ": carries no second stage"), std::string::npos) << r.err;

  r = run_attnvision(std::string("train '") + ATTNVISION_SOURCE_DIR + "/configs/train/scenes_caption.yaml' " + tiny +
                     " --set model.head=transformer --set model.detector_classes=10 --set output='" + path("no_detector") + "'");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("give its weights with init_detector"), std::string::npos) << r.err;
  r = run_attnvision(tiny_recipe() + " --set init_detector='" + detector + "' --set output='" + path("none_embedded") + "'");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("init_detector needs a captioner that embeds a detector"), std::string::npos) << r.err;
  r = run_attnvision(bottom_up + " --set init_detector='" + path("run/best.safetensors") + "' --set output='" +
                     path("captioner_as_detector") + "'");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("takes a detector's checkpoint, not a 'captioning' model's"), std::string::npos) << r.err;
}

TEST_F(CliCaption, AModelThatIsNotACaptionerIsRefusedSayingWhatItIs) {
  const auto r = run_attnvision("caption '" + path("test/images") + "' --weights '" + ATTNVISION_SOURCE_DIR +
                                "/models/pretrained/fmnist_resnet.safetensors'");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("is built for classification, not captioning"), std::string::npos) << r.err;
  const auto half = run_attnvision("caption '" + path("test/images") + "' " + weights() + " --results x.json");
  EXPECT_EQ(half.exit_code, 1);
  EXPECT_NE(half.err.find("--results and --coco-images go together"), std::string::npos) << half.err;
}

}  // namespace
}  // namespace attnvision
