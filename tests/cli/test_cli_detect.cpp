// Detection end to end with the real binary: scenes from Debian's Fashion-MNIST, a tiny detector trained by
// `train`, then `detect` (JSON lines, overlays, a COCO results file), `eval-detect` on those results and in one
// go with --data, and `eval`: the same detections give the same mAP every way they are measured.
#include "models/weights/weights.h"
#include "test_util.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

namespace attnvision {
namespace {
using testing::have_fashion_mnist;
using testing::json_lines;

using testing::run_attnvision;
using testing::ScratchDir;

nlohmann::json read_json(const std::string& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in);
}

class CliDetect : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!have_fashion_mnist()) return;
    dir_ = new ScratchDir;
    const std::string d = dir_->path().string();
    auto r = run_attnvision("synth scenes --out '" + d + "/train' --images 40 --seed 1 --split train");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    r = run_attnvision("synth scenes --out '" + d + "/test' --images 10 --seed 2 --split test");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    r = run_attnvision(std::string("train '") + ATTNVISION_SOURCE_DIR + "/configs/train/scenes_detect.yaml' " +
                       "--set data.train='" + d + "/train' --set data.test='" + d + "/test' --set data.val_count=8 " +
                       "--set batch_size=16 --set schedule.epochs=2 --set 'model.layers=[1, 1, 1, 1]' " +
                       "--set 'model.channels=[8, 16, 16, 16]' --set model.stem_width=8 --set model.head_width=16 " +
                       "--set precision=fp32 --set output='" + d + "/run'");
    train_ok_ = r.exit_code == 0;
    train_err_ = r.err;
  }
  static void TearDownTestSuite() { delete dir_; }

  void SetUp() override {
    if (!have_fashion_mnist()) GTEST_SKIP() << "Debian's dataset-fashion-mnist is not installed";
    ASSERT_TRUE(train_ok_) << train_err_;
  }
  static std::string path(const std::string& rel) { return (dir_->path() / rel).string(); }
  static std::string weights() { return "--weights '" + path("run/best.safetensors") + "'"; }
  // eval-detect's --json object for `args`, after asserting the command succeeded.
  static nlohmann::json eval_detect_json(const std::string& args) {
    const auto r = run_attnvision("eval-detect " + args + " --json");
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r.exit_code == 0 ? nlohmann::json::parse(r.out) : nlohmann::json::object();
  }

  static ScratchDir* dir_;
  static bool train_ok_;
  static std::string train_err_;
};

ScratchDir* CliDetect::dir_ = nullptr;
bool CliDetect::train_ok_ = false;
std::string CliDetect::train_err_;

TEST_F(CliDetect, TrainingWritesADetectorCheckpointAndItsTestMap) {
  const nlohmann::json test = read_json(path("run/test.json"));
  for (const char* key : {"AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl"})
    EXPECT_TRUE(test.contains(key)) << key;
  EXPECT_EQ(test["count"], 10);
  EXPECT_TRUE(test["per_class"].contains("Ankle boot"));
  const nlohmann::json recipe = read_json(path("run/config.json"));
  EXPECT_EQ(recipe["model"]["task"], "detection");
  // The checkpoint names the data's COCO categories, so `--weights` alone reports them as the data did.
  models::ModelCfg cfg;
  ASSERT_TRUE(models::read_checkpoint_cfg(models::read_weights(path("run/best.safetensors")), cfg));
  EXPECT_EQ(cfg.detection.category_ids, (std::vector<int64_t>{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}));
}

TEST_F(CliDetect, EvaluatingOnDataWithOtherCategoriesIsRefused) {
  // The test scenes with every category id times ten: the same images, categories the detector never saw.
  std::filesystem::create_directories(path("renumbered"));
  std::filesystem::create_directory_symlink(path("test/images"), path("renumbered/images"));
  nlohmann::json instances = read_json(path("test/instances.json"));
  for (nlohmann::json& c : instances["categories"]) c["id"] = c["id"].get<int64_t>() * 10;
  for (nlohmann::json& a : instances["annotations"]) a["category_id"] = a["category_id"].get<int64_t>() * 10;
  std::ofstream(path("renumbered/instances.json")) << instances.dump();
  const auto r = run_attnvision("eval-detect --data '" + path("renumbered") + "' " + weights());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("category ids differ"), std::string::npos) << r.err;
}

TEST_F(CliDetect, JsonLinesCarryBoxesInTheImagesPixels) {
  const auto r = run_attnvision("detect '" + path("test/images") + "' " + weights() + " --json --score-thresh 0");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto rows = json_lines(r.out);
  ASSERT_EQ(rows.size(), 10u);
  for (const nlohmann::json& row : rows) {
    EXPECT_EQ(row["width"], 128);
    EXPECT_EQ(row["height"], 128);
    EXPECT_FALSE(row.contains("all_detections"));
    const auto& dets = row["detections"];
    EXPECT_EQ(dets.size(), 100u) << "score threshold 0 keeps every peak (max_detections 100)";
    double last = 1.0;
    for (const auto& d : dets) {
      const auto& b = d["bbox"];
      ASSERT_EQ(b.size(), 4u);
      EXPECT_GE(b[0].get<double>(), 0.0);
      EXPECT_LE(b[0].get<double>() + b[2].get<double>(), 128.0 + 1e-9);
      EXPECT_GE(d["category_id"].get<int>(), 1);
      EXPECT_LE(d["category_id"].get<int>(), 10);
      EXPECT_TRUE(d["label"].is_string());
      EXPECT_LE(d["score"].get<double>(), last) << "by descending score";
      last = d["score"].get<double>();
    }
  }
}

TEST_F(CliDetect, ResultsFileEvaluatesAsEvalDetectDataDoes) {
  const std::string results = path("results.json");
  auto r = run_attnvision("detect '" + path("test/images") + "' " + weights() + " --coco-images '" +
                          path("test/instances.json") + "' --results '" + results + "' --out '" + path("overlays") + "'");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const nlohmann::json list = read_json(results);
  EXPECT_EQ(list.size(), 1000u) << "100 peaks per image, no threshold";
  size_t overlays = 0;
  // Named as every task output is: the input's path below its argument, prefixed with the argument's name.
  for (const auto& e : std::filesystem::recursive_directory_iterator(path("overlays")))
    overlays += e.path().parent_path().filename() == "images" && e.path().string().find(".boxes.png") != std::string::npos;
  EXPECT_EQ(overlays, 10u);

  const nlohmann::json from_file =
      eval_detect_json("--gt '" + path("test/instances.json") + "' --results '" + results + "'");
  const nlohmann::json in_one_go = eval_detect_json("--data '" + path("test") + "' " + weights());
  ASSERT_FALSE(from_file.empty() || in_one_go.empty());
  r = run_attnvision("eval --data '" + path("test") + "' " + weights() + " --json --confusion-png ''");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const nlohmann::json eval = nlohmann::json::parse(r.out);
  // The same pixels and the same network: the same numbers (AP over all areas does not depend on how an
  // object's area is counted, which is where `eval`'s box areas differ from instances.json's pixel counts).
  for (const char* key : {"AP", "AP50", "AP75", "AR1", "AR10", "AR100"}) {
    EXPECT_NEAR(from_file[key].get<double>(), in_one_go[key].get<double>(), 1e-9) << key;
    EXPECT_NEAR(from_file[key].get<double>(), eval[key].get<double>(), 1e-9) << key;
  }
}

// --flip-test reaches both commands alike: detect's results evaluate as eval-detect --data --flip-test scores,
// and they are not the plain pass's.
TEST_F(CliDetect, FlipTestResultsEvaluateAsEvalDetectFlipTestDoes) {
  const std::string results = path("results_flip.json");
  auto r = run_attnvision("detect '" + path("test/images") + "' " + weights() + " --flip-test --coco-images '" +
                          path("test/instances.json") + "' --results '" + results + "'");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const nlohmann::json from_file =
      eval_detect_json("--gt '" + path("test/instances.json") + "' --results '" + results + "'");
  const nlohmann::json in_one_go = eval_detect_json("--data '" + path("test") + "' " + weights() + " --flip-test");
  ASSERT_FALSE(from_file.empty() || in_one_go.empty());
  for (const char* key : {"AP", "AP50", "AP75", "AR100"})
    EXPECT_NEAR(from_file[key].get<double>(), in_one_go[key].get<double>(), 1e-9) << key;

  const std::string plain = path("results_plain.json");
  r = run_attnvision("detect '" + path("test/images") + "' " + weights() + " --coco-images '" +
                     path("test/instances.json") + "' --results '" + plain + "'");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(read_json(plain), read_json(results));
}

// --classifier, the second stage, reaches both commands alike (detect's results evaluate as eval-detect --data
// --classifier scores, and differ from the plain pass's); stored inside the detector by `convert
// --second-stage`, it runs by default and scores the same; a classifier of other classes is one line naming it.
TEST_F(CliDetect, ACropClassifierRescoresInBothCommandsTravelsInsideTheDetectorAndMustNameItsClasses) {
  auto r = run_attnvision("synth crops --from '" + path("train") + "' --out '" + path("crops") + "'");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = run_attnvision(std::string("train '") + ATTNVISION_SOURCE_DIR + "/configs/train/scenes_crop_classifier.yaml' " +
                     "--set data.train='" + path("crops") + "' --set data.val_count=8 --set batch_size=16 " +
                     "--set schedule.epochs=1 --set 'model.channels=[8, 8, 8, 8]' --set model.stem_width=8 " +
                     "--set precision=fp32 --set output='" + path("crop_run") + "'");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string classifier = " --classifier '" + path("crop_run/best.safetensors") + "' --classifier-min-score 0.01";
  const std::string results = path("results_crops.json");
  r = run_attnvision("detect '" + path("test/images") + "' " + weights() + classifier + " --coco-images '" +
                     path("test/instances.json") + "' --results '" + results + "'");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const nlohmann::json from_file =
      eval_detect_json("--gt '" + path("test/instances.json") + "' --results '" + results + "'");
  const nlohmann::json in_one_go = eval_detect_json("--data '" + path("test") + "' " + weights() + classifier);
  ASSERT_FALSE(from_file.empty() || in_one_go.empty());
  for (const char* key : {"AP", "AP50", "AP75", "AR100"})
    EXPECT_NEAR(from_file[key].get<double>(), in_one_go[key].get<double>(), 1e-9) << key;
  const std::string plain = path("results_plain_2.json");
  r = run_attnvision("detect '" + path("test/images") + "' " + weights() + " --coco-images '" +
                     path("test/instances.json") + "' --results '" + plain + "'");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(read_json(plain), read_json(results));

  // Inside the detector's file: its default second stage, the same scores; --classifier none: one stage again.
  const std::string two_stage = path("two_stage.safetensors");
  r = run_attnvision("convert " + weights() + " --second-stage '" + path("crop_run/best.safetensors") + "' --out '" +
                     two_stage + "'");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string data = "--data '" + path("test") + "' --weights '" + two_stage + "'";
  const nlohmann::json carried = eval_detect_json(data + " --classifier-min-score 0.01");
  const nlohmann::json one_stage = eval_detect_json(data + " --classifier none");
  const nlohmann::json plain_eval = eval_detect_json("--data '" + path("test") + "' " + weights());
  ASSERT_FALSE(carried.empty() || one_stage.empty() || plain_eval.empty());
  for (const char* key : {"AP", "AP50", "AP75", "AR100"}) {
    EXPECT_NEAR(carried[key].get<double>(), in_one_go[key].get<double>(), 1e-12) << key;
    EXPECT_NEAR(one_stage[key].get<double>(), plain_eval[key].get<double>(), 1e-12) << key;
  }
  r = run_attnvision("detect '" + path("test/images") + "' --weights '" + two_stage + "' --classifier-min-score 0.01" +
                     " --coco-images '" + path("test/instances.json") + "' --results '" + path("results_carried.json") + "'");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(read_json(path("results_carried.json")), read_json(results));
  // Converted again it keeps its second stage (in the new storage); --second-stage none drops it.
  const std::string half = path("two_stage_f16.safetensors"), dropped = path("dropped.safetensors");
  ASSERT_EQ(run_attnvision("convert --weights '" + two_stage + "' --dtype float16 --out '" + half + "'").exit_code, 0);
  ASSERT_EQ(run_attnvision("convert --weights '" + half + "' --second-stage none --out '" + dropped + "'").exit_code, 0);
  ASSERT_EQ(models::read_weights(half).parts.size(), 1u);
  EXPECT_EQ(models::read_weights(half).parts[0].part, "second_stage");
  EXPECT_TRUE(models::read_weights(dropped).parts.empty());

  const std::string imagenet = path("imagenet.safetensors");
  ASSERT_EQ(run_attnvision("convert --model resnet18 --random-init --out '" + imagenet + "'").exit_code, 0);
  r = run_attnvision("eval-detect --data '" + path("test") + "' " + weights() + " --classifier '" + imagenet + "'");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_NE(r.err.find(imagenet), std::string::npos) << r.err;
  r = run_attnvision("convert " + weights() + " --second-stage '" + imagenet + "' --out '" + path("never.safetensors") + "'");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_NE(r.err.find(imagenet), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(path("never.safetensors")));
  r = run_attnvision("convert --weights '" + imagenet + "' --second-stage '" + path("crop_run/best.safetensors") +
                     "' --out '" + path("never.safetensors") + "'");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("--second-stage is a detector's"), std::string::npos) << r.err;
}

// `bench --second-stage` times the detector with a fixed number of crops an image, and counts their GFLOPs: the
// crops' share grows with their number, a classifier's forward per crop.
TEST_F(CliDetect, BenchTimesTheSecondStageOnAFixedNumberOfCropsAndRefusesItForAClassifier) {
  const std::string crops = path("bench_crop_classifier.safetensors");
  ASSERT_EQ(run_attnvision("convert --model resnet18 --random-init --out '" + crops + "' --set 'layers=[1, 1, 1, 1]' "
                           "--set 'channels=[16, 32, 64, 128]' --set stem_type=cifar --set stem_width=16 --set attn=eca "
                           "--set num_classes=10 --set 'input_size=[3, 32, 32]'").exit_code, 0);
  const std::string detector = "bench --model resnet18 --set task=detection --set num_classes=10 --set head_width=16 "
                               "--set output_stride=4 --size 64 --batch 2 --iters 1 --warmup 0 --json";
  auto gflops = [&](const std::string& extra) {
    const auto r = run_attnvision(detector + extra);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    const nlohmann::json j = nlohmann::json::parse(r.out);
    EXPECT_GT(j["images_per_s"].get<double>(), 0);
    return std::make_pair(j["gflops_per_image"].get<double>(), j["crops_per_image"].get<int64_t>());
  };
  const auto [plain, none] = gflops("");
  const auto [one, one_crop] = gflops(" --second-stage '" + crops + "' --crops-per-image 1");
  const auto [three, three_crops] = gflops(" --second-stage '" + crops + "' --crops-per-image 3");
  EXPECT_EQ(none, 0);
  EXPECT_EQ(one_crop, 1);
  EXPECT_EQ(three_crops, 3);
  EXPECT_GT(one, plain);
  EXPECT_NEAR(three - plain, 3 * (one - plain), 1e-9);

  const auto r = run_attnvision("bench --model resnet18 --iters 1 --warmup 0 --second-stage '" + crops + "'");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_NE(r.err.find("--second-stage is a detector's"), std::string::npos) << r.err;
}

// `batch --tasks detect` with the shipped detector runs the second stage its file carries, as `detect` does, and
// `detect.classifier=none` the network alone, as `detect --classifier none` does.
TEST_F(CliDetect, BatchDetectRunsTheCarriedSecondStageAsDetectDoes) {
  const std::string images = path("test/images");
  auto detections_by_name = [](const std::vector<nlohmann::json>& rows, const char* detections_key) {
    std::map<std::string, nlohmann::json> out;
    for (const nlohmann::json& row : rows) {
      const nlohmann::json& d = detections_key ? row["outputs"]["detect"]["detections"] : row["detections"];
      out[std::filesystem::path(row["path"].get<std::string>()).filename().string()] = d;
    }
    return out;
  };
  std::map<std::string, nlohmann::json> by_mode[2][2];  // [none?][batch?]
  for (int none = 0; none < 2; ++none) {
    const std::string out = path(none ? "batch_one_stage" : "batch_two_stages");
    auto r = run_attnvision("batch '" + images + "' --out '" + out + "' --tasks detect --quiet" +
                            (none ? " --set detect.classifier=none" : ""));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    std::vector<nlohmann::json> rows;
    std::ifstream manifest(out + "/manifest.jsonl");
    for (std::string line; std::getline(manifest, line);) rows.push_back(nlohmann::json::parse(line));
    ASSERT_EQ(rows.size(), 10u);
    by_mode[none][1] = detections_by_name(rows, "batch");
    r = run_attnvision("detect '" + images + "' --json" + (none ? " --classifier none" : ""));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    by_mode[none][0] = detections_by_name(json_lines(r.out), nullptr);
  }
  EXPECT_EQ(by_mode[0][1], by_mode[0][0]) << "batch and detect differ with the carried second stage";
  EXPECT_EQ(by_mode[1][1], by_mode[1][0]) << "batch and detect differ with the network alone";
  EXPECT_NE(by_mode[0][0], by_mode[1][0]) << "the second stage changed no score";
}

TEST_F(CliDetect, AnInputWithoutAnImageIdIsReportedAndTheRestWritten) {
  std::filesystem::create_directories(path("extra"));
  const auto first = *std::filesystem::directory_iterator(path("test/images"));
  std::filesystem::copy_file(first.path(), path("extra/not-listed.png"));
  const std::string results = path("partial.json");
  const auto r = run_attnvision("detect '" + path("test/images") + "' '" + path("extra/not-listed.png") + "' " +
                                weights() + " --coco-images '" + path("test/instances.json") + "' --results '" +
                                results + "'");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("not-listed.png: 'not-listed.png' is not among the images of"), std::string::npos) << r.err;
  EXPECT_EQ(read_json(results).size(), 1000u);
}

TEST_F(CliDetect, AClassifierIsNotADetectorNorADetectorAClassifierAndResultsNeedImageIds) {
  auto r = run_attnvision("detect '" + path("test/images") + "' --model resnet18 --random-init");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("'resnet18' is built for classification, not detection"), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  r = run_attnvision("classify '" + path("test/images") + "' " + weights());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("is built for detection, not classification"), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  r = run_attnvision("detect '" + path("test/images") + "' " + weights() + " --results '" + path("x.json") + "'");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("--coco-images"), std::string::npos) << r.err;
  r = run_attnvision("eval-detect --data '" + path("test") + "' --results '" + path("x.json") + "'");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("not both"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace attnvision
