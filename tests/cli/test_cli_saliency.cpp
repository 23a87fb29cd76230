// `attnvision saliency` end to end on generated CT phantoms with an untrained anomaly model (what is checked here
// is the plumbing, not the model's skill): one JSON line per slice with the contract's fields, coordinates on
// the source grid, outputs that exist and that other tools read (float TIFF at rows x columns, PNG, a DICOM
// Secondary Capture in the source's study that dciodvfy accepts), report.html, and one-line errors for bad input.
#include "test_util.h"
#include "vision/dicom.h"
#include "vision/image_io.h"

#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <fstream>

#include <filesystem>
#include <set>
#include <sstream>

namespace attnvision {
namespace {
using testing::json_lines;

namespace fs = std::filesystem;
using testing::run_attnvision;
using testing::ScratchDir;

// The anomaly recipe's model, small: the plumbing does not depend on the width.
constexpr const char* kModelYaml = R"(name: tiny_anomaly
arch: resnet
task: anomaly
block: basic
layers: [1, 1, 1, 1]
channels: [8, 16, 16, 16]
attn: cbam
global_pool: max
in_chans: 2
num_classes: 2
labels: [clean, lesion]
input_size: [2, 128, 128]
ct_spacing_mm: 3.0
ct_windows: [lung, abdomen]
crop_pct: 1.0
mean: [0.3, 0.3]
std: [0.3, 0.3]
)";

class SaliencyCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new ScratchDir();
    testing::write_text(*dir_ / "model.yaml", kModelYaml);
    const auto r = run_attnvision("synth phantoms --out '" + (*dir_ / "ph") + "' --series 2 --seed 7 --size 256");
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  static void TearDownTestSuite() { delete dir_; }
  static std::string model() { return "--model '" + (*dir_ / "model.yaml") + "' --random-init"; }
  static ScratchDir* dir_;
};
ScratchDir* SaliencyCli::dir_ = nullptr;

TEST_F(SaliencyCli, WritesOneJsonLinePerSliceWithMapsOverlaysDicomAndTheReport) {
  const std::string out = *dir_ / "out";
  const auto r = run_attnvision("saliency '" + (*dir_ / "ph") + "' " + model() + " --json --out '" + out + "'");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::vector<nlohmann::json> rows = json_lines(r.out);
  const nlohmann::json truth = nlohmann::json::parse(std::ifstream(*dir_ / "ph/lesions.json"));
  size_t slices = 0;
  for (const auto& s : truth["series"]) slices += s["slices"].size();
  ASSERT_EQ(rows.size(), slices) << "the masks' PNGs beside the series are not inputs";
  std::set<std::string> outputs;
  for (const nlohmann::json& row : rows) {
    for (const char* key : {"path", "frame", "sop_instance_uid", "series_instance_uid", "score", "method", "peak_px",
                            "regions", "map", "overlay", "dicom"})
      ASSERT_TRUE(row.contains(key)) << key << " missing in " << row.dump();
    EXPECT_EQ(row["method"], "gradcam");
    EXPECT_EQ(row["frame"], 0);
    const double score = row["score"];
    EXPECT_TRUE(score >= 0 && score <= 1);
    const vision::DicomInfo info = vision::read_dicom_info(row["path"].get<std::string>());
    EXPECT_EQ(row["sop_instance_uid"], info.sop_instance_uid);
    EXPECT_EQ(row["series_instance_uid"], info.series_instance_uid);
    // The raw map lies on the source slice's own grid, and its maximum is where peak_px says.
    const std::string map_path = (fs::path(out) / row["map"].get<std::string>()).string();
    const cv::Mat map = cv::imread(map_path, cv::IMREAD_UNCHANGED);  // float32 TIFF as written
    ASSERT_EQ(map.rows, info.rows);
    ASSERT_EQ(map.cols, info.columns);
    ASSERT_EQ(map.type(), CV_32F);
    double lo = 0, hi = 0;
    cv::Point at;
    cv::minMaxLoc(map, &lo, &hi, nullptr, &at);
    EXPECT_EQ(row["peak_px"][0].get<int>(), at.x);
    EXPECT_EQ(row["peak_px"][1].get<int>(), at.y);
    for (const nlohmann::json& region : row["regions"]) {
      const auto& b = region["bbox_px"];
      EXPECT_GE(b[0].get<int>(), 0);
      EXPECT_LE(b[0].get<int>() + b[2].get<int>(), info.columns);
      EXPECT_LE(b[1].get<int>() + b[3].get<int>(), info.rows);
      EXPECT_FALSE(region["area_mm2"].is_null()) << "phantoms carry PixelSpacing: sizes are in mm";
      EXPECT_EQ(region["centroid_mm"].size(), 3u);
    }
    EXPECT_TRUE(fs::exists(fs::path(out) / row["overlay"].get<std::string>()));
    // The Secondary Capture joins the source's study in a series of its own.
    const vision::DicomInfo sc = vision::read_dicom_info((fs::path(out) / row["dicom"].get<std::string>()).string());
    EXPECT_EQ(sc.study_instance_uid, info.study_instance_uid);
    EXPECT_NE(sc.series_instance_uid, info.series_instance_uid);
    EXPECT_EQ(sc.samples_per_pixel, 3);
    outputs.insert(row["map"].get<std::string>());
  }
  EXPECT_EQ(outputs.size(), rows.size()) << "two slices never share an output name";
  EXPECT_TRUE(fs::file_size(fs::path(out) / "report.html") > 1000);
  const std::string tool = testing::run_shell("command -v dciodvfy");
  if (!tool.empty()) {
    const std::string verdict = testing::run_shell("dciodvfy '" + (fs::path(out) / rows.front()["dicom"].get<std::string>()).string() + "'");
    EXPECT_EQ(verdict.find("Error"), std::string::npos) << verdict;
  }
}

TEST_F(SaliencyCli, NamedNonCtInputsAndMissingFilesAreOneLineErrorsAndTheRunGoesOn) {
  const std::string png = *dir_ / "photo.png";
  const cv::Mat img(16, 16, CV_8UC3, cv::Scalar(10, 20, 30));
  ASSERT_TRUE(cv::imwrite(png, img));
  const std::string slice = *dir_ / "ph/series_7_0000/slice_000.dcm";
  const auto r = run_attnvision("saliency '" + png + "' '" + slice + "' '" + (*dir_ / "nothing.dcm") + "' " + model() +
                                " --json --no-outputs");
  EXPECT_EQ(r.exit_code, 1);
  const std::vector<nlohmann::json> rows = json_lines(r.out);
  ASSERT_EQ(rows.size(), 3u);
  size_t errors = 0, ok = 0;
  for (const nlohmann::json& row : rows) {
    if (row.contains("error")) {
      ++errors;
      EXPECT_NE(row["error"].get<std::string>().find(row["path"].get<std::string>()), std::string::npos);
    } else {
      ++ok;
      EXPECT_FALSE(row.contains("map")) << "--no-outputs writes no files";
    }
  }
  EXPECT_EQ(errors, 2u);
  EXPECT_EQ(ok, 1u);
  EXPECT_NE(r.err.find("not a DICOM CT slice"), std::string::npos) << r.err;
}

TEST_F(SaliencyCli, EvalSaliencyScoresEveryMethodAgainstTheMasksAndCalibratesTheRegionLevel) {
  const auto r = run_attnvision("eval-saliency --data '" + (*dir_ / "ph") + "' " + model() +
                                " --methods gradcam,occlusion --region-levels 0.3,0.6 --rise-steps 4 --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::vector<nlohmann::json> rows = json_lines(r.out);
  ASSERT_EQ(rows.size(), 1u);
  const nlohmann::json& j = rows.front();
  // Counted from lesions.json independently of the command.
  const nlohmann::json truth = nlohmann::json::parse(testing::read_text(*dir_ / "ph/lesions.json"));
  int64_t slices = 0, lesion_slices = 0, lesions = 0;
  for (const auto& series : truth["series"])
    for (const auto& slice : series["slices"]) {
      ++slices;
      lesion_slices += !slice["lesions"].empty();
      lesions += static_cast<int64_t>(slice["lesions"].size());
    }
  EXPECT_EQ(j["slices"], slices);
  EXPECT_EQ(j["lesion_slices"], lesion_slices);
  EXPECT_EQ(j["lesions"], lesions);
  ASSERT_GT(lesion_slices, 0);
  EXPECT_GE(j["auroc"].get<double>(), 0.0);
  EXPECT_LE(j["auroc"].get<double>(), 1.0);
  for (const std::string method : {"gradcam", "occlusion"}) {
    const nlohmann::json& m = j["methods"][method];
    for (const char* key : {"pointing_game", "iou", "dice", "deletion_auc", "insertion_auc", "sensitivity"}) {
      EXPECT_GE(m[key].get<double>(), 0.0) << method << " " << key;
      EXPECT_LE(m[key].get<double>(), 1.0) << method << " " << key;
    }
    EXPECT_GE(m["false_regions_per_slice"].get<double>(), 0.0);
    EXPECT_GT(m["seconds_per_slice"].get<double>(), 0.0);
    ASSERT_EQ(m["region_levels"].size(), 2u);
    // A lower threshold grows regions: they cover at least the lesions a higher one finds.
    EXPECT_GE(m["region_levels"][0]["sensitivity"].get<double>(), m["region_levels"][1]["sensitivity"].get<double>());
  }
}

// --flip-test reaches both commands: each slice is scored again with its mirror image (the scores move, the
// rows and their order do not), and eval-saliency says it ran so.
TEST_F(SaliencyCli, TheFlipTestReachesSaliencyAndEvalSaliency) {
  const std::string cmd = "saliency '" + (*dir_ / "ph") + "' " + model() + " --method cam --no-outputs --json";
  const auto plain = run_attnvision(cmd), flipped = run_attnvision(cmd + " --flip-test");
  ASSERT_EQ(plain.exit_code, 0) << plain.err;
  ASSERT_EQ(flipped.exit_code, 0) << flipped.err;
  const std::vector<nlohmann::json> a = json_lines(plain.out), b = json_lines(flipped.out);
  ASSERT_EQ(a.size(), b.size());
  ASSERT_FALSE(a.empty());
  size_t moved = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i]["path"], b[i]["path"]);
    const double score = b[i]["score"];
    EXPECT_TRUE(score >= 0 && score <= 1);
    moved += a[i]["score"] != b[i]["score"];
  }
  EXPECT_GT(moved, 0u);
  const auto r = run_attnvision("eval-saliency --data '" + (*dir_ / "ph") + "' " + model() +
                                " --methods cam --rise-steps 0 --flip-test --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::vector<nlohmann::json> rows = json_lines(r.out);
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows.front()["flip_test"], true);
}

// Each swept operating threshold scores exactly as a model whose own threshold it is; a higher one flags fewer
// slices, so it finds no more lesions and draws no more false regions.
TEST_F(SaliencyCli, EvalSaliencySweepsOperatingThresholdsAsIfEachWereTheModels) {
  // One set of random weights for every run (each --random-init draws its own).
  const std::string weights = *dir_ / "sweep.safetensors";
  const auto made = run_attnvision("convert " + model() + " --out '" + weights + "'");
  ASSERT_EQ(made.exit_code, 0) << made.err;
  auto eval = [&](const std::string& extra) {
    const auto r = run_attnvision("eval-saliency --data '" + (*dir_ / "ph") + "' --weights '" + weights +
                                  "' --methods gradcam --region-levels 0.3 --rise-steps 0 --json " + extra);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    const std::vector<nlohmann::json> rows = json_lines(r.out);
    return rows.size() == 1 ? rows.front()["methods"]["gradcam"] : nlohmann::json();
  };
  const nlohmann::json swept = eval("--operating-thresholds 0,0.011,1");
  const nlohmann::json& points = swept["operating_points"];
  ASSERT_EQ(points.size(), 3u) << swept.dump();
  for (size_t i = 0; i < 2; ++i) {
    const double threshold = points[i]["operating_threshold"].get<double>();
    const nlohmann::json own = eval("--set operating_threshold=" + std::to_string(threshold));
    EXPECT_EQ(points[i]["region_level"].get<double>(), 0.3);
    EXPECT_EQ(points[i]["sensitivity"], own["region_levels"][0]["sensitivity"]) << threshold;
    EXPECT_EQ(points[i]["false_regions_per_slice"], own["region_levels"][0]["false_regions_per_slice"]) << threshold;
  }
  for (size_t i = 1; i < points.size(); ++i) {
    EXPECT_LE(points[i]["sensitivity"].get<double>(), points[i - 1]["sensitivity"].get<double>());
    EXPECT_LE(points[i]["false_regions_per_slice"].get<double>(), points[i - 1]["false_regions_per_slice"].get<double>());
  }
  const nlohmann::json& best = swept["calibrated_operating_point"];
  if (!best.is_null()) {
    bool listed = false;
    for (const auto& p : points)
      listed = listed || (p["operating_threshold"] == best["operating_threshold"] &&
                          p["region_level"] == best["region_level"] && p["false_regions_per_slice"].get<double>() <= 0.5);
    EXPECT_TRUE(listed) << best.dump();
  }
  const auto bad = run_attnvision("eval-saliency --data '" + (*dir_ / "ph") + "' --weights '" + weights +
                                  "' --operating-thresholds 1.5 --rise-steps 0");
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.err.find("--operating-thresholds must lie in [0, 1]"), std::string::npos) << bad.err;
}

// A model whose lesion map is drawn at stride 4 by its upsampling neck: its own map (cam) is a method like the
// others, scored and calibrated the same way, and `saliency` writes it at the source's grid.
TEST_F(SaliencyCli, TheFineLesionMapIsScoredAsTheCamMethod) {
  const auto r = run_attnvision("eval-saliency --data '" + (*dir_ / "ph") + "' " + model() +
                                " --set lesion_map_stride=4 --methods cam,layercam --region-levels 0.3 --rise-steps 0 --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::vector<nlohmann::json> rows = json_lines(r.out);
  ASSERT_EQ(rows.size(), 1u);
  for (const std::string method : {"cam", "layercam"}) {
    const nlohmann::json& m = rows.front()["methods"][method];
    EXPECT_GE(m["pointing_game"].get<double>(), 0.0) << method;
    EXPECT_LE(m["pointing_game"].get<double>(), 1.0) << method;
    EXPECT_EQ(m["region_levels"].size(), 1u) << method;
  }
  const auto s = run_attnvision("saliency '" + (*dir_ / "ph/series_7_0000") + "' " + model() +
                                " --set lesion_map_stride=4 --method cam --json --out '" + (*dir_ / "cam_out") + "'");
  ASSERT_EQ(s.exit_code, 0) << s.err;
  const std::vector<nlohmann::json> lines = json_lines(s.out);
  ASSERT_FALSE(lines.empty());
  const cv::Mat map =
      cv::imread((*dir_ / "cam_out") + "/" + lines.front()["map"].get<std::string>(), cv::IMREAD_UNCHANGED);
  ASSERT_EQ(map.type(), CV_32F);
  EXPECT_EQ(map.rows, 256);
  EXPECT_EQ(map.cols, 256);
  double lo = 0, hi = 0;
  cv::minMaxLoc(map, &lo, &hi);
  EXPECT_GE(lo, 0.0) << "probabilities";
  EXPECT_LE(hi, 1.0) << "probabilities";
}

// A slice's regions are the 8-connected components of its raw map (the float TIFF written beside it) at the
// model's region level: a fraction of that map's peak by default, of the map's own scale (p(lesion) for cam)
// with region_level_of: map. With one absolute level the slices whose peaks differ get different thresholds,
// which a level of each peak would not give.
TEST_F(SaliencyCli, RegionsAreTheMapsComponentsAtALevelOfItsPeakOrOfItsScale) {
  const std::string weights = *dir_ / "levels.safetensors";
  const auto made = run_attnvision("convert " + model() + " --set lesion_map_stride=4 --out '" + weights + "'");
  ASSERT_EQ(made.exit_code, 0) << made.err;
  const std::string series = *dir_ / "ph/series_7_0000";
  auto run = [&](const std::string& out, const std::string& level_set) {
    const auto r = run_attnvision("saliency '" + series + "' --weights '" + weights +
                                  "' --method cam --set operating_threshold=0 " + level_set + " --json --out '" + out + "'");
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return json_lines(r.out);
  };
  // The bounding boxes of map >= threshold's 8-connected components, sorted.
  auto components = [](const cv::Mat& map, double threshold) {
    cv::Mat values;
    map.convertTo(values, CV_64F);
    const cv::Mat mask = values >= threshold;
    cv::Mat labels, stats, centroids;
    const int count = cv::connectedComponentsWithStats(mask, labels, stats, centroids, 8, CV_32S);
    std::vector<std::vector<int>> boxes;
    for (int c = 1; c < count; ++c)
      boxes.push_back({stats.at<int>(c, cv::CC_STAT_LEFT), stats.at<int>(c, cv::CC_STAT_TOP),
                       stats.at<int>(c, cv::CC_STAT_WIDTH), stats.at<int>(c, cv::CC_STAT_HEIGHT)});
    std::sort(boxes.begin(), boxes.end());
    return boxes;
  };
  auto boxes_of = [](const nlohmann::json& line) {
    std::vector<std::vector<int>> boxes;
    for (const auto& region : line["regions"]) boxes.push_back(region["bbox_px"].get<std::vector<int>>());
    std::sort(boxes.begin(), boxes.end());
    return boxes;
  };

  const std::string peak_out = *dir_ / "levels_peak";
  const std::vector<nlohmann::json> by_peak = run(peak_out, "--set region_level=0.9");
  ASSERT_GE(by_peak.size(), 2u);
  std::vector<cv::Mat> maps;
  std::vector<double> peaks;
  for (const auto& line : by_peak) {
    maps.push_back(cv::imread(peak_out + "/" + line["map"].get<std::string>(), cv::IMREAD_UNCHANGED));
    ASSERT_EQ(maps.back().type(), CV_32F);
    double lo = 0, hi = 0;
    cv::minMaxLoc(maps.back(), &lo, &hi);
    peaks.push_back(hi);
    EXPECT_EQ(boxes_of(line), components(maps.back(), 0.9 * hi)) << line["path"];
  }
  // An absolute level between the lowest and the highest peak: some slices get no region at all.
  const double level = 0.5 * (*std::min_element(peaks.begin(), peaks.end()) + *std::max_element(peaks.begin(), peaks.end()));
  ASSERT_GT(level, 0.0);
  ASSERT_LT(level, 1.0);
  std::ostringstream set;
  set.precision(17);
  set << "--set region_level_of=map --set region_level=" << level;
  const std::vector<nlohmann::json> by_map = run(*dir_ / "levels_map", set.str());
  ASSERT_EQ(by_map.size(), by_peak.size());
  bool some_slice_without = false, some_slice_with = false;
  for (size_t i = 0; i < by_map.size(); ++i) {
    EXPECT_EQ(boxes_of(by_map[i]), components(maps[i], level)) << by_map[i]["path"];
    (by_map[i]["regions"].empty() ? some_slice_without : some_slice_with) = true;
  }
  if (*std::min_element(peaks.begin(), peaks.end()) < *std::max_element(peaks.begin(), peaks.end())) {
    EXPECT_TRUE(some_slice_without && some_slice_with);
  }

  const auto bad = run_attnvision("saliency '" + series + "' --weights '" + weights +
                                  "' --set region_level_of=max --no-outputs");
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.err.find("region_level_of must be peak or map"), std::string::npos) << bad.err;
}

TEST_F(SaliencyCli, EvalSaliencyRefusesAFolderWithoutLesionTruth) {
  const auto r = run_attnvision("eval-saliency --data '" + (*dir_ / "ph/series_7_0000") + "' " + model());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("lesions.json"), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
}

TEST_F(SaliencyCli, ANetworkBuiltForAnotherTaskIsRefused) {
  const auto r = run_attnvision("saliency '" + (*dir_ / "ph") + "' --model resnet18 --random-init --no-outputs");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("built for classification"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace attnvision
