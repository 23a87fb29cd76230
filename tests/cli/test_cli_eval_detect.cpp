// `attnvision eval-detect` end to end: the summary as text and as JSON on a hand-made ground truth, and one
// clear line for a bad file.
#include "test_util.h"

#include <nlohmann/json.hpp>

#include <algorithm>

namespace attnvision {
namespace {

using testing::run_attnvision;
using testing::ScratchDir;

// Two large objects in image 1 (image 2 has none), one found exactly: recall .5 at precision 1 at every IoU
// threshold, so AP = 51/101 (the recall thresholds 0 .. .5 of 101), AR = .5; nothing small or medium: -1.
void write_pair(const ScratchDir& dir) {
  testing::write_text(dir / "gt.json", R"({
    "images": [{"id": 1, "file_name": "1.png", "width": 640, "height": 480},
               {"id": 2, "file_name": "2.png", "width": 640, "height": 480}],
    "categories": [{"id": 1, "name": "shirt"}],
    "annotations": [
      {"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 100, 100], "area": 10000, "iscrowd": 0},
      {"id": 2, "image_id": 1, "category_id": 1, "bbox": [200, 0, 100, 100], "area": 10000, "iscrowd": 0}]})");
  testing::write_text(dir / "results.json",
                      R"([{"image_id": 1, "category_id": 1, "bbox": [0, 0, 100, 100], "score": 0.9}])");
}

TEST(CliEvalDetect, PrintsTheTwelveNumbers) {
  ScratchDir dir;
  write_pair(dir);
  const std::string args = "eval-detect --gt " + dir / "gt.json" + " --results " + dir / "results.json";
  auto r = run_attnvision(args + " --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  const std::vector<std::pair<const char*, double>> expected = {
      {"AP", 51.0 / 101}, {"AP50", 51.0 / 101}, {"AP75", 51.0 / 101}, {"APs", -1},
      {"APm", -1},        {"APl", 51.0 / 101},  {"AR1", .5},          {"AR10", .5},
      {"AR100", .5},      {"ARs", -1},          {"ARm", -1},          {"ARl", .5}};
  ASSERT_EQ(j.size(), expected.size()) << r.out;
  for (const auto& [key, value] : expected) EXPECT_NEAR(j.at(key).get<double>(), value, 1e-12) << key;

  r = run_attnvision(args);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(
      r.out.rfind(" Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 0.505\n", 0), 0u)
      << r.out;
  EXPECT_NE(r.out.find(" Average Recall     (AR) @[ IoU=0.50:0.95 | area= small | maxDets=100 ] = -1.000\n"),
            std::string::npos)
      << r.out;
}

TEST(CliEvalDetect, BadFileIsOneLine) {
  ScratchDir dir;
  write_pair(dir);
  testing::write_text(dir / "results.json",
                      R"([{"image_id": 5, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 1}])");
  const auto r = run_attnvision("eval-detect --gt " + dir / "gt.json" + " --results " + dir / "results.json");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(r.out.empty()) << r.out;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_NE(r.err.find(dir / "results.json" + ": entry 0: image_id 5"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace attnvision
