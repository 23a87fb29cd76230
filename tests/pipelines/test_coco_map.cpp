// COCO box mAP against answers worked out by hand (each test's comment shows the working), one pycocotools
// rule per test; and the strict COCO readers' one-line errors.
//
// How to work an AP out: rank the detections by score; walk them counting true and false positives (ignored
// ones count neither); recall = tp / counted objects, precision = tp / (tp + fp); make precision monotone
// from the right; AP at one IoU threshold is the mean over the 101 recall thresholds 0, .01, ..., 1 of the
// precision at the first rank whose recall reaches the threshold (0 when none does). AP is the mean over the
// 10 IoU thresholds.
#include "datasets/coco.h"
#include "pipelines/metrics/coco_map.h"
#include "test_util.h"

#include <functional>
#include <stdexcept>

namespace attnvision::pipelines {
namespace {

using datasets::CocoAnnotation;
using datasets::CocoBox;
using datasets::CocoError;
using datasets::CocoInstances;
using datasets::CocoResult;

// pycocotools' precision is tp / (tp + fp + 2^-52), so a lone true positive scores one ulp below 1: the exact
// fractions below are compared to 1e-12.
constexpr double kTol = 1e-12;
enum Stat { AP, AP50, AP75, APs, APm, APl, AR1, AR10, AR100, ARs, ARm, ARl };

// A ground-truth object whose area is its box's (a test that needs another area sets it).
CocoAnnotation object(int64_t id, const CocoBox& b, bool crowd = false, int64_t image = 1,
                      int64_t category = 1) {
  return {id, image, category, b, b[2] * b[3], crowd};
}

CocoResult det(const CocoBox& b, double score, int64_t image = 1, int64_t category = 1) {
  return {image, category, b, score};
}

CocoInstances instances(std::vector<CocoAnnotation> objects, std::vector<int64_t> images = {1},
                        std::vector<int64_t> categories = {1}) {
  CocoInstances gt;
  for (int64_t id : images) gt.images.push_back({id, std::to_string(id) + ".png", 640, 480});
  for (int64_t id : categories) gt.categories.push_back({id, "c" + std::to_string(id)});
  gt.annotations = std::move(objects);
  return gt;
}

void expect_stats(const CocoEvalResult& r, const std::array<double, kCocoStatCount>& expected) {
  for (size_t s = 0; s < kCocoStatCount; ++s) EXPECT_NEAR(r.stats[s], expected[s], kTol) << kCocoStatNames[s];
}

// Boxes used throughout: 100 x 100 (area 10000: large) side by side.
const CocoBox kA{0, 0, 100, 100}, kB{200, 0, 100, 100}, kC{400, 0, 100, 100};

TEST(CocoMap, PerfectDetectionsScoreOne) {
  // A large object and a medium one (50 x 50 = 2500), each found exactly: every rank is a true positive,
  // recall 1 at precision 1 at every IoU threshold. No small object: APs and ARs are -1. AR1 keeps only the
  // best detection per image: 1 of 2 objects.
  const CocoBox medium{200, 200, 50, 50};
  const auto r =
      evaluate_coco_bbox(instances({object(1, kA), object(2, medium)}), {det(kA, .9), det(medium, .8)});
  expect_stats(r, {1, 1, 1, -1, 1, 1, .5, 1, 1, -1, 1, 1});
}

TEST(CocoMap, MissedObject) {
  // Two objects, one found: recall .5 at precision 1, so the 51 recall thresholds 0 .. .5 score 1 and the 50
  // above score 0: AP = 51/101 at every IoU threshold; AR = .5.
  const auto r = evaluate_coco_bbox(instances({object(1, kA), object(2, kB)}), {det(kA, .9)});
  const double ap = 51.0 / 101;
  expect_stats(r, {ap, ap, ap, -1, -1, ap, .5, .5, .5, -1, -1, .5});
}

TEST(CocoMap, DuplicateDetectionIsAFalsePositive) {
  // A (.9) true, A again (.8) false (A is taken), B (.7) true: tp 1 1 2, fp 0 1 1, recall .5 .5 1, precision
  // 1 1/2 2/3, monotone 1 2/3 2/3. Thresholds 0 .. .5 (51) score 1, .51 .. 1 (50) score 2/3:
  // AP = (51 + 50 * 2/3) / 101 = 253/303. Recall still reaches 1; AR1 keeps only A: .5.
  const auto gt = instances({object(1, kA), object(2, kB)});
  const auto r = evaluate_coco_bbox(gt, {det(kA, .9), det(kA, .8), det(kB, .7)});
  EXPECT_NEAR(r.stats[AP], 253.0 / 303, kTol);
  EXPECT_NEAR(r.stats[AP50], 253.0 / 303, kTol);
  EXPECT_NEAR(r.stats[AR100], 1, kTol);
  EXPECT_NEAR(r.stats[AR1], .5, kTol);
  // Without the duplicate both ranks are true positives: AP 1.
  EXPECT_NEAR(evaluate_coco_bbox(gt, {det(kA, .9), det(kB, .7)}).stats[AP], 1, kTol);
}

TEST(CocoMap, CrowdRegionIsNeitherHitNorMiss) {
  // Two detections inside a crowd region (IoU with a crowd = intersection / detection area = 1) rank above
  // the true positive on A. Matched to the crowd they are ignored, any number of them; the crowd is not an
  // object to find. Left: ranks ignored, ignored, tp: recall 0 0 1, precision monotone 1 1 1: AP 1, AR 1.
  const CocoBox crowd{200, 0, 200, 200}, in1{210, 10, 50, 50}, in2{300, 100, 50, 50};
  const std::vector<CocoResult> dets = {det(in1, .95), det(in2, .9), det(kA, .8)};
  auto r = evaluate_coco_bbox(instances({object(1, kA), object(2, crowd, /*crowd=*/true)}), dets);
  EXPECT_NEAR(r.stats[AP], 1, kTol);
  EXPECT_NEAR(r.stats[AR100], 1, kTol);
  // The same region as an ordinary object: the two detections are false positives (IoU 2500/40000) and it is
  // missed. fp fp tp: recall 0 0 .5, precision 0 0 1/3, monotone 1/3 throughout: AP = 51 * (1/3) / 101 =
  // 17/101.
  r = evaluate_coco_bbox(instances({object(1, kA), object(2, crowd)}), dets);
  EXPECT_NEAR(r.stats[AP], 17.0 / 101, kTol);
  EXPECT_NEAR(r.stats[AR100], .5, kTol);
}

TEST(CocoMap, DetectionPrefersACountedObjectToACrowd) {
  // The crowd comes first in the file, but counted objects are tried first. The detection has IoU 6000/10000
  // = .6 (exactly a threshold) with A and 1 with the crowd that covers it. At .5, .55, .6 it takes A, then
  // stops (only ignored objects left): a true positive, AP 1. From .65 on A is out of reach, it falls to the
  // crowd and is ignored, A is missed: AP 0. AP = 3/10; AP50 1; AP75 0; recall 1 at three thresholds: AR =
  // .3.
  const CocoBox crowd{0, 0, 400, 400};
  const auto r = evaluate_coco_bbox(instances({object(1, crowd, /*crowd=*/true), object(2, kA)}),
                                    {det({0, 0, 100, 60}, .9)});
  EXPECT_NEAR(r.stats[AP], .3, kTol);
  EXPECT_NEAR(r.stats[AP50], 1, kTol);
  EXPECT_NEAR(r.stats[AP75], 0, kTol);
  EXPECT_NEAR(r.stats[AR100], .3, kTol);
}

TEST(CocoMap, IouExactlyAtAThresholdMatches) {
  // IoU 7500/10000 = .75 exactly: a match at .5 .55 .6 .65 .7 .75 (6 of 10 thresholds, AP 1 each), none
  // above.
  auto r = evaluate_coco_bbox(instances({object(1, kA)}), {det({0, 0, 100, 75}, .9)});
  EXPECT_NEAR(r.stats[AP], .6, kTol);
  EXPECT_NEAR(r.stats[AP75], 1, kTol);
  EXPECT_NEAR(r.stats[AR100], .6, kTol);
  // IoU .9: numpy's 9th threshold is 0.8999999999999999, below it: 9 of 10.
  r = evaluate_coco_bbox(instances({object(1, kA)}), {det({0, 0, 100, 90}, .9)});
  EXPECT_NEAR(r.stats[AP], .9, kTol);
}

TEST(CocoMap, EqualIouGoesToTheLaterObject) {
  // G1 = rows 0..80 and G2 = rows 20..100 of a 100-wide column; the detection d1 covers rows 0..100 (.9): IoU
  // 8000/10000 = .8 with both, and the later object, G2, takes it. d2 = G2's box (.8): IoU 1 with G2 (taken)
  // and 6000/10000 = .6 with G1.
  //   t = .5 .55 .6:        d1 -> G2, d2 -> G1: tp tp, AP 1.
  //   t = .65 .7 .75 .8:    d1 -> G2, d2 misses: tp fp, recall .5 .5, precision 1 1/2: AP 51/101.
  //   t = .85 .9 .95:       d1 misses, d2 -> G2: fp tp, recall 0 .5, precision 0 1/2 -> 1/2 1/2: AP 25.5/101.
  // AP = (3 + 4 * 51/101 + 3 * 25.5/101) / 10 = 583.5/1010 (were the first object to win: 783.5/1010).
  const CocoBox g1{0, 0, 100, 80}, g2{0, 20, 100, 80};
  const auto r = evaluate_coco_bbox(instances({object(1, g1), object(2, g2)}), {det(kA, .9), det(g2, .8)});
  EXPECT_NEAR(r.stats[AP], 583.5 / 1010, kTol);
  EXPECT_NEAR(r.stats[AP50], 1, kTol);
  EXPECT_NEAR(r.stats[AP75], 51.0 / 101, kTol);
}

TEST(CocoMap, CategoriesWithoutGroundTruthAreLeftOut) {
  // Category 2 is listed but has no object: -1, and left out of the mean (counted as 0 it would halve AP).
  // Category 7 is not listed: its detection, on A with the best score, is dropped, not held against
  // category 1.
  const auto gt = instances({object(1, kA)}, {1}, {1, 2});
  const auto r =
      evaluate_coco_bbox(gt, {det(kA, .99, 1, 7), det({300, 300, 50, 50}, .95, 1, 2), det(kA, .9)});
  EXPECT_NEAR(r.stats[AP], 1, kTol);
  EXPECT_NEAR(r.stats[AR100], 1, kTol);
  ASSERT_EQ(r.per_category.size(), 2u);
  EXPECT_EQ(r.per_category[0].category_id, 1);
  EXPECT_NEAR(r.per_category[0].ap, 1, kTol);
  EXPECT_EQ(r.per_category[1].category_id, 2);
  EXPECT_EQ(r.per_category[1].ap, -1);
  // No counted object anywhere: nothing to average, every number is -1.
  const auto none = evaluate_coco_bbox(instances({}), {det(kA, .9)});
  for (size_t s = 0; s < kCocoStatCount; ++s) EXPECT_EQ(none.stats[s], -1) << kCocoStatNames[s];
}

TEST(CocoMap, EqualScoresKeepResultsOrderWithinAnImage) {
  // A false positive and a true positive with the same score. In results order fp, tp: recall 0 1, precision
  // 0 1/2 -> 1/2 1/2: AP .5. In order tp, fp: recall 1 1, precision 1 1/2: AP 1.
  const CocoBox elsewhere{500, 300, 50, 50};
  const auto gt = instances({object(1, kA)});
  EXPECT_NEAR(evaluate_coco_bbox(gt, {det(elsewhere, .8), det(kA, .8)}).stats[AP], .5, kTol);
  EXPECT_NEAR(evaluate_coco_bbox(gt, {det(kA, .8), det(elsewhere, .8)}).stats[AP], 1, kTol);
}

TEST(CocoMap, EqualScoresAcrossImagesRankByImageId) {
  // Image 2 has no object but is a ground-truth image, so its detection is a false positive. Equal scores
  // across images rank by image id, whatever the results order: image 1's true positive first (AP 1), and
  // when the object is in image 2 instead, the false positive in image 1 first (AP .5, as above).
  const std::vector<CocoResult> dets = {det(kA, .8, 2), det(kA, .8, 1)};
  EXPECT_NEAR(evaluate_coco_bbox(instances({object(1, kA, false, 1)}, {1, 2}), dets).stats[AP], 1, kTol);
  EXPECT_NEAR(evaluate_coco_bbox(instances({object(1, kA, false, 2)}, {1, 2}), dets).stats[AP], .5, kTol);
}

TEST(CocoMap, AreaRangesUseTheGroundTruthArea) {
  // S: a 40 x 40 box whose `area` says 400 (small; by its box it would be medium), missed. L: 200 x 200,
  // found
  // (.9). F: a 10 x 10 false positive (.95, area 100: small).
  //   all:    F fp, L tp; 2 objects: recall 0 .5, precision 0 1/2 -> 1/2 1/2: AP = 51 * .5 / 101; AR .5; AR1
  //           keeps only F: 0.
  //   small:  S counted, L ignored: F fp, L's match ignored: AP 0, AR 0.
  //   medium: no counted object: -1.
  //   large:  L counted, S ignored; F, unmatched and outside the range, is ignored: AP 1, AR 1.
  CocoAnnotation small = object(1, {0, 0, 40, 40});
  small.area = 400;
  const CocoBox large{100, 100, 200, 200};
  const auto r = evaluate_coco_bbox(instances({small, object(2, large)}),
                                    {det(large, .9), det({500, 300, 10, 10}, .95)});
  const double ap = 25.5 / 101;
  expect_stats(r, {ap, ap, ap, 0, -1, 1, 0, .5, .5, 0, -1, 1});
}

TEST(CocoMap, MaxDetectionsArePerImage) {
  // Three objects found with scores .9 .8 .7: one detection per image finds 1 of 3, ten find all.
  auto r = evaluate_coco_bbox(instances({object(1, kA), object(2, kB), object(3, kC)}),
                              {det(kA, .9), det(kB, .8), det(kC, .7)});
  EXPECT_NEAR(r.stats[AR1], 1.0 / 3, kTol);
  EXPECT_NEAR(r.stats[AR10], 1, kTol);
  EXPECT_NEAR(r.stats[AP], 1, kTol);
  // 100 false positives outscore the true one, which is the 101st and cut: nothing found, AP 0, AR 0.
  std::vector<CocoResult> dets(100, det({500, 300, 10, 10}, .9));
  dets.push_back(det(kA, .1));
  r = evaluate_coco_bbox(instances({object(1, kA)}), dets);
  EXPECT_EQ(r.stats[AP], 0);
  EXPECT_EQ(r.stats[AR100], 0);
}

TEST(CocoMap, ProcessingPerImageEqualsOneCall) {
  // The duplicate case of above over two images, processed image by image as a detector would.
  const auto gt = instances({object(1, kA, false, 1), object(2, kB, false, 2)}, {1, 2});
  const std::vector<CocoResult> image1 = {det(kA, .9), det(kA, .8)}, image2 = {det(kB, .7, 2)};
  CocoBboxEvaluator evaluator(gt);
  evaluator.process(image1);
  evaluator.process(image2);
  std::vector<CocoResult> all = image1;
  all.insert(all.end(), image2.begin(), image2.end());
  EXPECT_EQ(evaluator.evaluate().stats, evaluate_coco_bbox(gt, all).stats);
  EXPECT_THROW(evaluator.process({det(kA, .5, 3)}), std::invalid_argument);  // image 3 is not in gt
}

TEST(CocoMap, SummaryPrintsLikePycocotools) {
  CocoEvalResult r;
  r.stats = {.5, .75, .25, -1, .1234, 1, 0, .0625, .9996, -1, .5, 1};
  // COCOeval.summarize()'s format: ' {:<18} {} @[ IoU={:<9} | area={:>6s} | maxDets={:>3d} ] = {:0.3f}'.
  EXPECT_EQ(format_coco_summary(r),
            " Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 0.500\n"
            " Average Precision  (AP) @[ IoU=0.50      | area=   all | maxDets=100 ] = 0.750\n"
            " Average Precision  (AP) @[ IoU=0.75      | area=   all | maxDets=100 ] = 0.250\n"
            " Average Precision  (AP) @[ IoU=0.50:0.95 | area= small | maxDets=100 ] = -1.000\n"
            " Average Precision  (AP) @[ IoU=0.50:0.95 | area=medium | maxDets=100 ] = 0.123\n"
            " Average Precision  (AP) @[ IoU=0.50:0.95 | area= large | maxDets=100 ] = 1.000\n"
            " Average Recall     (AR) @[ IoU=0.50:0.95 | area=   all | maxDets=  1 ] = 0.000\n"
            " Average Recall     (AR) @[ IoU=0.50:0.95 | area=   all | maxDets= 10 ] = 0.062\n"
            " Average Recall     (AR) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 1.000\n"
            " Average Recall     (AR) @[ IoU=0.50:0.95 | area= small | maxDets=100 ] = -1.000\n"
            " Average Recall     (AR) @[ IoU=0.50:0.95 | area=medium | maxDets=100 ] = 0.500\n"
            " Average Recall     (AR) @[ IoU=0.50:0.95 | area= large | maxDets=100 ] = 1.000\n");
}

// ---- readers ----

// what() of the CocoError `f` throws ("" when it throws none).
std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const CocoError& e) {
    return e.what();
  }
  return "";
}

// A one-line message that starts with the file and holds every piece in `parts`.
void expect_message(const std::string& message, const std::string& path,
                    const std::vector<std::string>& parts) {
  EXPECT_EQ(message.rfind(path + ": ", 0), 0u) << message;
  EXPECT_EQ(message.find('\n'), std::string::npos) << message;
  for (const std::string& p : parts)
    EXPECT_NE(message.find(p), std::string::npos) << "'" << p << "' in: " << message;
}

const char* const kImages = R"("images": [{"id": 7, "file_name": "a.png", "width": 640, "height": 480},
                                          {"id": 9, "file_name": "b.png", "width": 320, "height": 240}])";
const char* const kCategories = R"("categories": [{"id": 1, "name": "shirt"}, {"id": 3, "name": "bag"}])";

std::string instances_json(const std::string& annotations) {
  return std::string("{") + kImages + ", " + kCategories + ", \"annotations\": [" + annotations + "]}";
}

TEST(CocoReader, ReadsInstancesAndResults) {
  testing::ScratchDir dir;
  const std::string gt_path = dir / "gt.json", res_path = dir / "res.json";
  testing::write_text(gt_path, instances_json(R"({"id": 5, "image_id": 9, "category_id": 3,
      "bbox": [1.5, 2, 30, 40], "area": 1000.5, "iscrowd": 1, "segmentation": {"counts": "x", "size": [2, 2]}})"));
  const CocoInstances gt = datasets::read_coco_instances(gt_path);
  ASSERT_EQ(gt.images.size(), 2u);
  EXPECT_EQ(gt.images[1].id, 9);
  EXPECT_EQ(gt.images[1].file_name, "b.png");
  EXPECT_EQ(gt.images[1].width, 320);
  ASSERT_EQ(gt.categories.size(), 2u);
  EXPECT_EQ(gt.categories[1].name, "bag");
  ASSERT_EQ(gt.annotations.size(), 1u);
  const CocoAnnotation& a = gt.annotations[0];
  EXPECT_EQ(a.id, 5);
  EXPECT_EQ(a.image_id, 9);
  EXPECT_EQ(a.category_id, 3);
  EXPECT_EQ(a.bbox, (CocoBox{1.5, 2, 30, 40}));
  EXPECT_EQ(a.area, 1000.5);
  EXPECT_TRUE(a.iscrowd);

  // Results of a category gt does not list are read (the evaluation leaves them out).
  const std::vector<CocoResult> written = {{7, 1, {0.1, 0.2, 10.25, 1e-3}, 0.123456789012345},
                                           {9, 42, {0, 0, 0, 0}, 1}};
  datasets::write_coco_results(res_path, written);
  const std::vector<CocoResult> read = datasets::read_coco_results(res_path, gt);
  ASSERT_EQ(read.size(), written.size());
  for (size_t i = 0; i < read.size(); ++i) {
    EXPECT_EQ(read[i].image_id, written[i].image_id);
    EXPECT_EQ(read[i].category_id, written[i].category_id);
    EXPECT_EQ(read[i].bbox, written[i].bbox);
    EXPECT_EQ(read[i].score, written[i].score);
  }
}

TEST(CocoReader, ImagesOnlyNeedsOnlyImages) {
  testing::ScratchDir dir;
  const std::string path = dir / "images.json";
  testing::write_text(path, std::string("{") + kImages + "}");
  const CocoInstances images = datasets::read_coco_instances(path, datasets::CocoContent::kImagesOnly);
  EXPECT_EQ(images.images.size(), 2u);
  EXPECT_TRUE(images.annotations.empty());
  expect_message(error_of([&] { datasets::read_coco_instances(path); }), path, {"missing 'categories'"});
}

TEST(CocoReader, MalformedJsonNamesThePosition) {
  testing::ScratchDir dir;
  const std::string path = dir / "gt.json";
  testing::write_text(path, "{\"images\": [\n  {\"id\": 1,}\n]}");
  expect_message(error_of([&] { datasets::read_coco_instances(path); }), path,
                 {"malformed JSON", "line 2, column"});
  expect_message(error_of([&] { datasets::read_coco_instances(dir / "absent.json"); }), dir / "absent.json",
                 {"cannot open"});
}

TEST(CocoReader, BadEntriesNameTheEntry) {
  testing::ScratchDir dir;
  const std::string path = dir / "gt.json";
  const std::string ok =
      R"({"id": 1, "image_id": 7, "category_id": 1, "bbox": [0, 0, 10, 10], "area": 100, "iscrowd": 0})";
  const struct {
    std::string json;
    std::vector<std::string> parts;
  } cases[] = {
      {instances_json(ok + ", " + ok), {"annotations[1]", "duplicate id 1", "annotations[0]"}},
      {instances_json(
           R"({"id": 1, "image_id": 7, "category_id": 1, "bbox": [0, 0, -1, 10], "area": 0, "iscrowd": 0})"),
       {"annotations[0]", "negative width or height"}},
      {instances_json(
           R"({"id": 1, "image_id": 8, "category_id": 1, "bbox": [0, 0, 1, 1], "area": 1, "iscrowd": 0})"),
       {"annotations[0]", "image_id 8"}},
      {instances_json(
           R"({"id": 1, "image_id": 7, "category_id": 2, "bbox": [0, 0, 1, 1], "area": 1, "iscrowd": 0})"),
       {"annotations[0]", "category_id 2"}},
      {instances_json(R"({"id": 1, "image_id": 7, "category_id": 1, "bbox": [0, 0, 1, 1], "iscrowd": 0})"),
       {"annotations[0]", "missing 'area'"}},
      {instances_json(
           R"({"id": "1", "image_id": 7, "category_id": 1, "bbox": [0, 0, 1, 1], "area": 1, "iscrowd": 0})"),
       {"annotations[0]", "'id' must be a 64-bit integer", "\"1\""}},
      {instances_json(
           R"({"id": 1, "image_id": 7, "category_id": 1, "bbox": [0, 0, 1], "area": 1, "iscrowd": 0})"),
       {"annotations[0]", "'bbox' must be [x, y, width, height]"}},
      {instances_json(
           R"({"id": 0, "image_id": 7, "category_id": 1, "bbox": [0, 0, 1, 1], "area": 1, "iscrowd": 0})"),
       {"annotations[0]", "id 0"}},
      {R"({"images": [{"id": 7, "file_name": "a.png", "width": 1, "height": 1},
                      {"id": 7, "file_name": "b.png", "width": 1, "height": 1}], "categories": [], "annotations": []})",
       {"images[1]", "duplicate id 7"}},
      {R"({"images": [], "categories": [{"id": 1, "name": "a"}, {"id": 1, "name": "b"}], "annotations": []})",
       {"categories[1]", "duplicate id 1"}},
  };
  for (const auto& c : cases) {
    testing::write_text(path, c.json);
    expect_message(error_of([&] { datasets::read_coco_instances(path); }), path, c.parts);
  }
}

TEST(CocoReader, ResultsMustNameGroundTruthImages) {
  testing::ScratchDir dir;
  const std::string gt_path = dir / "gt.json", path = dir / "res.json";
  testing::write_text(gt_path, instances_json(""));
  const CocoInstances gt = datasets::read_coco_instances(gt_path);
  testing::write_text(path, R"([{"image_id": 7, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 0.5},
                                {"image_id": 99, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 0.5}])");
  expect_message(error_of([&] { datasets::read_coco_results(path, gt); }), path, {"entry 1", "image_id 99"});
  testing::write_text(path, R"([{"image_id": 7, "category_id": 1, "bbox": [0, 0, 1, -2], "score": 0.5}])");
  expect_message(error_of([&] { datasets::read_coco_results(path, gt); }), path, {"entry 0", "negative"});
  testing::write_text(path, R"({"image_id": 7})");
  expect_message(error_of([&] { datasets::read_coco_results(path, gt); }), path, {"must be a JSON list"});
}

TEST(CocoReader, ReadsCaptionsAndOneResultPerImage) {
  testing::ScratchDir dir;
  const std::string gt_path = dir / "captions.json", path = dir / "res.json";
  testing::write_text(gt_path, std::string("{") + kImages + R"(, "annotations": [
      {"id": 1, "image_id": 9, "caption": "A red Bag."}, {"id": 2, "image_id": 7, "caption": "two shirts"}]})");
  const datasets::CocoCaptions gt = datasets::read_coco_captions(gt_path);
  ASSERT_EQ(gt.images.size(), 2u);
  ASSERT_EQ(gt.annotations.size(), 2u);
  EXPECT_EQ(gt.annotations[0].image_id, 9);
  EXPECT_EQ(gt.annotations[0].caption, "A red Bag.");  // as written; the evaluation tokenises

  const std::vector<datasets::CocoCaptionResult> written = {{9, "a red bag"}, {7, "a \"quoted\" shirt"}};
  datasets::write_caption_results(path, written);
  const std::vector<datasets::CocoCaptionResult> read = datasets::read_caption_results(path, gt);
  ASSERT_EQ(read.size(), 2u);
  EXPECT_EQ(read[1].image_id, 7);
  EXPECT_EQ(read[1].caption, written[1].caption);

  testing::write_text(path, R"([{"image_id": 9, "caption": "a"}, {"image_id": 9, "caption": "b"}])");
  expect_message(error_of([&] { datasets::read_caption_results(path, gt); }), path,
                 {"entry 1", "image_id 9 has a caption already (entry 0)"});
  testing::write_text(path, R"([{"image_id": 8, "caption": "a"}])");
  expect_message(error_of([&] { datasets::read_caption_results(path, gt); }), path, {"entry 0", "image_id 8"});
  testing::write_text(path, R"([{"image_id": 9, "caption": 3}])");
  expect_message(error_of([&] { datasets::read_caption_results(path, gt); }), path, {"'caption' must be a string"});
  testing::write_text(gt_path, std::string("{") + kImages + R"(, "annotations": [{"id": 1, "image_id": 5, "caption": "x"}]})");
  expect_message(error_of([&] { datasets::read_coco_captions(gt_path); }), gt_path,
                 {"annotations[0]", "image_id 5 is not in 'images'"});
}

}  // namespace
}  // namespace attnvision::pipelines
