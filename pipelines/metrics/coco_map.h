// COCO box mAP, number for number what pycocotools' COCOeval (iouType "bbox") gives with its default
// parameters, so that our detectors' scores compare with published ones. What that takes, from cocoeval.py
// and maskApi.c:
//   - IoU thresholds numpy.linspace(.5, .95, 10) (0.8999999999999999, not 0.9), a match needs IoU >= t;
//     recall thresholds linspace(0, 1, 101); max detections 1, 10, 100 per image and category; closed area
//     ranges all [0, 1e10], small [0, 32^2], medium [32^2, 96^2], large [96^2, 1e10] on the ground truth's
//     `area` (a detection's area is its box's w * h);
//   - every ground-truth image and category is evaluated (by sorted id), detections of other categories are
//     left out; detections rank by score, ties keeping their order (the results file's, within an image;
//     image id order across images: numpy's stable mergesort);
//   - crowd regions (iscrowd 1) and objects outside the area range are ignored: a detection matched to one is
//     neither a true nor a false positive; any number of detections may match a crowd, whose IoU divides by
//     the detection's area; a detection prefers a counted object to an ignored one, and the best IoU, the
//     later object winning an equal IoU;
//   - 101-point interpolated precision (made monotone from the right, 0 beyond the highest recall reached);
//     a category without counted ground truth gives -1 and is left out of the means, a mean with nothing to
//     average is -1; the means sum the way numpy does, so even the last bits agree.
// Shaped like detectron2's evaluators: construct with the ground truth, process() detections as they come,
// evaluate() at the end.
#pragma once

#include "datasets/coco.h"

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace attnvision::pipelines {

// COCOeval.summarize()'s twelve numbers, in its order.
constexpr size_t kCocoStatCount = 12;
extern const std::array<const char*, kCocoStatCount> kCocoStatNames;  // AP AP50 AP75 APs APm APl AR1 ...

struct CocoCategoryAP {
  int64_t category_id = 0;
  std::string name;
  double ap = -1;  // AP@[.5:.95], all areas, 100 detections (detectron2's per-category AP); -1: no counted gt
};

struct CocoEvalResult {
  // AP AP50 AP75 APs APm APl AR1 AR10 AR100 ARs ARm ARl; -1 where pycocotools gives -1 (nothing to average).
  std::array<double, kCocoStatCount> stats{};
  std::vector<CocoCategoryAP> per_category;  // the ground truth's categories by id
};

class CocoBboxEvaluator {
 public:
  // Keeps what the evaluation needs of `gt` (a copy: gt need not outlive the evaluator). Annotations of
  // images or categories that gt does not list are left out, as pycocotools does (read_coco_instances refuses
  // them).
  explicit CocoBboxEvaluator(const datasets::CocoInstances& gt);

  // Adds detections, in any grouping (per image as a detector produces them, or a whole results file). Within
  // an image equal scores rank in the order processed. Throws std::invalid_argument for an image_id that is
  // not one of gt's images; detections of categories gt does not list are dropped.
  void process(const std::vector<datasets::CocoResult>& detections);

  CocoEvalResult evaluate() const;

 private:
  struct GtBox {
    datasets::CocoBox bbox;
    double area;
    bool iscrowd;
    int64_t id;
  };
  struct DtBox {
    datasets::CocoBox bbox;
    double score;
  };
  // The ground truth and detections of one (category, image) pair: pycocotools' _gts / _dts.
  struct Cell {
    std::vector<GtBox> gts;
    std::vector<DtBox> dts;
  };

  std::vector<int64_t> image_ids_;                      // sorted
  std::vector<datasets::CocoCategory> categories_;      // sorted by id
  std::unordered_map<int64_t, size_t> image_index_;     // id -> position in image_ids_
  std::unordered_map<int64_t, size_t> category_index_;  // id -> position in categories_
  // Keyed (category position, image position): iterating it walks each category's images in id order, which
  // is the order pycocotools concatenates them in before its stable sort by score.
  std::map<std::pair<size_t, size_t>, Cell> cells_;
};

// The whole evaluation of a results list against its ground truth in one call.
CocoEvalResult evaluate_coco_bbox(const datasets::CocoInstances& gt,
                                  const std::vector<datasets::CocoResult>& detections);

// The twelve lines COCOeval.summarize() prints, character for character:
// " Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 0.xxx" ...
std::string format_coco_summary(const CocoEvalResult& result);

}  // namespace attnvision::pipelines
