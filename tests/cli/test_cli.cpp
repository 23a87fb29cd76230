// The real binary: help, version, usage errors, and the classify / forward / models commands end to end.
#include "models/weights/weights.h"
#include "test_util.h"

#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>
#include <torch/torch.h>

#include <sstream>

namespace attnvision {
namespace {

using testing::run_attnvision;
using testing::ScratchDir;

std::vector<std::string> lines_of(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream in(s);
  for (std::string l; std::getline(in, l);)
    if (!l.empty()) out.push_back(l);
  return out;
}

TEST(Cli, HelpAndVersion) {
  auto r = run_attnvision("--help");
  EXPECT_EQ(r.exit_code, 0);
  for (const char* cmd : {"models", "classify", "forward", "bench"}) EXPECT_NE(r.out.find(cmd), std::string::npos) << cmd;
  r = run_attnvision("--version");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("attnvision "), std::string::npos);
  r = run_attnvision("classify --help");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("--topk"), std::string::npos);
  EXPECT_NE(r.out.find("16"), std::string::npos) << "defaults are shown";
}

TEST(Cli, UsageErrorsAreOneLineAndExit2) {
  for (const char* args : {"frobnicate", "classify --no-such-option x", "", "classify"}) {
    auto r = run_attnvision(args);
    EXPECT_EQ(r.exit_code, 2) << args;
    EXPECT_EQ(lines_of(r.err).size(), 1u) << args << ": " << r.err;
  }
}

TEST(Cli, ModelsListsTheRegistry) {
  auto r = run_attnvision("models --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  bool found = false;
  for (const std::string& l : lines_of(r.out)) {
    auto j = nlohmann::json::parse(l);
    if (j["name"] == "seresnet50") {
      found = true;
      EXPECT_NEAR(j["params_m"].get<double>(), 28.09, 0.01);
    }
  }
  EXPECT_TRUE(found);
}

// A small timm fixture network as a model YAML (what a user writes for a custom checkpoint).
std::string write_fixture_yaml(const ScratchDir& dir, int64_t size) {
  const std::string path = dir / "net.yaml";
  testing::write_text(path, "arch: resnet\nblock: basic\nlayers: [1, 1, 1, 1]\nchannels: [16, 32, 64, 128]\n"
                            "attn: se\nnum_classes: 10\ninput_size: [3, " + std::to_string(size) + ", " +
                            std::to_string(size) + "]\nlabels: [c0, c1, c2, c3, c4, c5, c6, c7, c8, c9]\n");
  return path;
}

TEST(Cli, ForwardWritesTimmComparableOutputs) {
  const auto fixture = testing::require_fixture("resnet_basic_se");
  ScratchDir dir;
  const std::string yaml = write_fixture_yaml(dir, 64);
  const std::string out = dir / "out.safetensors";
  auto r = run_attnvision("forward --model " + yaml + " --weights " + (fixture / "weights.pt").string() + " --input " +
                          (fixture / "input.safetensors").string() + " --output " + out);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto got = models::read_safetensors(out).tensors;
  const auto ref = models::read_safetensors((fixture / "expected.safetensors").string()).tensors;
  for (const char* name : {"logits", "features", "last_feature_map"}) {
    const double tol = 1e-4 * std::max(1.0, ref.at(name).abs().max().item<double>());
    EXPECT_LE((got.at(name) - ref.at(name)).abs().max().item<double>(), tol) << name;
  }
}

TEST(Cli, ClassifyFolderReportsBadFilesAndGoesOn) {
  const auto fixture = testing::require_fixture("resnet_basic_se");
  ScratchDir dir;
  const std::string yaml = write_fixture_yaml(dir, 64);
  std::filesystem::create_directories(dir.path() / "imgs" / "sub");
  cv::Mat img(90, 120, CV_8UC3);
  cv::randu(img, 0, 255);
  cv::imwrite(dir / "imgs/a.png", img);
  cv::imwrite(dir / "imgs/sub/b.jpg", img);
  testing::write_text(dir / "imgs/broken.jpg", "not a jpeg at all");
  testing::write_text(dir / "imgs/notes.txt", "ignored: not an image extension");

  auto r = run_attnvision("classify " + (dir.path() / "imgs").string() + " --model " + yaml + " --weights " +
                          (fixture / "weights.safetensors").string() + " --json --topk 3 --batch 2");
  EXPECT_EQ(r.exit_code, 1) << "one input failed";
  const auto rows = lines_of(r.out);
  ASSERT_EQ(rows.size(), 3u) << r.out;
  int errors = 0;
  for (const std::string& l : rows) {
    auto j = nlohmann::json::parse(l);
    if (j.contains("error")) {
      ++errors;
      EXPECT_NE(j["path"].get<std::string>().find("broken.jpg"), std::string::npos);
      continue;
    }
    ASSERT_EQ(j["topk"].size(), 3u);
    double prev = 1.0;
    for (const auto& t : j["topk"]) {
      EXPECT_LE(t["score"].get<double>(), prev);
      prev = t["score"].get<double>();
      EXPECT_EQ(t["label"], "c" + std::to_string(t["index"].get<int>()));
    }
  }
  EXPECT_EQ(errors, 1);
  EXPECT_NE(r.err.find("broken.jpg"), std::string::npos);
}

TEST(Cli, WrongWeightsNameTheFileAndTheKeys) {
  const auto fixture = testing::require_fixture("resnet_basic_se");
  ScratchDir dir;
  auto r = run_attnvision("classify " + (fixture / "config.json").string() + " --model resnet18 --weights " +
                          (fixture / "weights.safetensors").string());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(lines_of(r.err).size(), 1u) << r.err;
  EXPECT_NE(r.err.find("weights.safetensors"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("shape"), std::string::npos) << r.err;
}

TEST(Cli, MissingWeightsFileIsOneLine) {
  auto r = run_attnvision("classify x.jpg --model resnet18 --weights /nonexistent/w.safetensors");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(lines_of(r.err).size(), 1u) << r.err;
  EXPECT_NE(r.err.find("/nonexistent/w.safetensors"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace attnvision

namespace attnvision {
namespace {

TEST(Cli, SaliencyOverlaysAndMapsAreWritten) {
  const auto resnet = testing::require_fixture("resnet_basic_cbam");
  const auto vit = testing::require_fixture("vit_custom_p4_d64");
  ScratchDir dir;
  cv::Mat img(60, 80, CV_8UC3);
  cv::randu(img, 0, 255);
  cv::imwrite(dir / "scan.png", img);
  testing::write_text(dir / "cbam.yaml", "arch: resnet\nblock: basic\nlayers: [1, 1, 1, 1]\nchannels: [16, 32, 64, 128]\n"
                                         "attn: cbam\nnum_classes: 10\ninput_size: [3, 64, 64]\n");
  testing::write_text(dir / "vit.yaml", "arch: vit\nimg_size: 32\npatch_size: 4\nembed_dim: 64\ndepth: 2\nnum_heads: 2\n"
                                        "num_classes: 10\nmean: [0.5, 0.5, 0.5]\nstd: [0.5, 0.5, 0.5]\n");
  struct Case {
    std::string yaml, weights, method;
    int rows, cols;  // the raw map's grid
  };
  for (const Case& c : {Case{"cbam.yaml", (resnet / "weights.pt").string(), "gradcam", 2, 2},
                        Case{"cbam.yaml", (resnet / "weights.pt").string(), "cbam", 16, 16},
                        Case{"vit.yaml", (vit / "weights.safetensors").string(), "rollout", 8, 8},
                        Case{"vit.yaml", (vit / "weights.safetensors").string(), "grad-rollout", 8, 8}}) {
    SCOPED_TRACE(c.method);
    const std::string out = dir / ("out_" + c.method);
    auto r = run_attnvision("classify " + (dir / "scan.png") + " --model " + (dir / c.yaml) + " --weights " + c.weights +
                            " --saliency " + c.method + " --saliency-dir " + out);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const std::string flat = "scan.png";  // the input's path below its argument (here the file itself)
    const cv::Mat overlay = cv::imread(out + "/" + flat + "." + c.method + ".png");
    ASSERT_FALSE(overlay.empty()) << out;
    EXPECT_EQ(overlay.size(), cv::Size(80, 60)) << "overlay is on the original image";
    const cv::Mat raw = cv::imread(out + "/" + flat + "." + c.method + ".tiff", cv::IMREAD_UNCHANGED);
    ASSERT_EQ(raw.type(), CV_32F);
    EXPECT_EQ(raw.size(), cv::Size(c.cols, c.rows));
    double lo, hi;
    cv::minMaxLoc(raw, &lo, &hi);
    EXPECT_GE(lo, 0.0);
    EXPECT_LE(hi, 1.0);
    EXPECT_GT(hi, lo) << "a map that says something";
  }
  auto r = run_attnvision("classify " + (dir / "scan.png") + " --model " + (dir / "vit.yaml") + " --weights " +
                          (vit / "weights.safetensors").string() + " --saliency cbam --saliency-dir " + (dir / "x"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("CBAM"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace attnvision
