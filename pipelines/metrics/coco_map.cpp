#include "pipelines/metrics/coco_map.h"

#include "pipelines/metrics/numpy_sum.h"

#include <algorithm>
#include <cfloat>
#include <cstdio>
#include <iterator>
#include <numeric>
#include <stdexcept>

namespace attnvision::pipelines {

const std::array<const char*, kCocoStatCount> kCocoStatNames = {"AP",  "AP50", "AP75",  "APs", "APm", "APl",
                                                                "AR1", "AR10", "AR100", "ARs", "ARm", "ARl"};

namespace {

using datasets::CocoBox;

constexpr size_t kT = 10;   // IoU thresholds
constexpr size_t kR = 101;  // recall thresholds
constexpr size_t kA = 4;    // area ranges
constexpr size_t kM = 3;    // max detections

// numpy.linspace(start, stop, n) as numpy computes it: i * step + start, then the last set to stop exactly.
// The thresholds must be the same doubles as pycocotools' (its 9th IoU threshold is 0.8999999999999999) for
// an IoU at a threshold's edge to match or not match alike.
template <size_t N>
std::array<double, N> numpy_linspace(double start, double stop) {
  std::array<double, N> y{};
  const double step = (stop - start) / static_cast<double>(N - 1);
  for (size_t i = 0; i < N; ++i) y[i] = static_cast<double>(i) * step + start;
  y[N - 1] = stop;
  return y;
}

const std::array<double, kT> kIouThresholds = numpy_linspace<kT>(0.5, 0.95);
const std::array<double, kR> kRecallThresholds = numpy_linspace<kR>(0.0, 1.0);
constexpr size_t kMaxDets[kM] = {1, 10, 100};

struct AreaRange {
  const char* label;
  double lo, hi;  // closed: an area equal to a bound is inside
};
constexpr AreaRange kAreas[kA] = {
    {"all", 0, 1e10}, {"small", 0, 32 * 32}, {"medium", 32 * 32, 96 * 96}, {"large", 96 * 96, 1e10}};

bool outside(double area, const AreaRange& r) { return area < r.lo || area > r.hi; }

// maskApi.c's bbIou, operation for operation, so an IoU lands on the same double (the build contracts no
// multiply-add into an FMA: ISO C++ mode, no -march). A crowd divides by the detection's area alone: a
// detection inside a crowd matches it however large the crowd.
double box_iou(const CocoBox& d, const CocoBox& g, bool crowd) {
  const double w = std::min(d[2] + d[0], g[2] + g[0]) - std::max(d[0], g[0]);
  if (w <= 0) return 0;
  const double h = std::min(d[3] + d[1], g[3] + g[1]) - std::max(d[1], g[1]);
  if (h <= 0) return 0;
  const double inter = w * h;
  return inter / (crowd ? d[2] * d[3] : d[2] * d[3] + g[2] * g[3] - inter);
}

// One (category, image, area range) of pycocotools' evalImgs, reduced to what accumulate() reads.
struct ImageEval {
  std::vector<double> scores;    // the detections best first (at most the largest max detections)
  std::vector<uint8_t> matched;  // [t * D + d]: dtMatches != 0
  std::vector<uint8_t> ignored;  // [t * D + d]: dtIgnore
  int64_t counted = 0;           // ground truths with gtIgnore == 0
};

// pycocotools' eval['precision'] [T x R x K x A x M] and eval['recall'] [T x K x A x M], the same layout, so
// the summary's means visit the entries in numpy's order. -1 where a category has no counted ground truth.
struct Tables {
  explicit Tables(size_t k) : K(k), precision(kT * kR * k * kA * kM, -1.0), recall(kT * k * kA * kM, -1.0) {}
  size_t p(size_t t, size_t r, size_t k, size_t a, size_t m) const {
    return (((t * kR + r) * K + k) * kA + a) * kM + m;
  }
  size_t rc(size_t t, size_t k, size_t a, size_t m) const { return ((t * K + k) * kA + a) * kM + m; }

  size_t K;
  std::vector<double> precision, recall;
};

// evaluateImg(): greedy matching, detections best first, at each IoU threshold. `dts` come sorted and cut to
// the largest max detections; ious is [d * G + g] with the ground truth in the file's order.
// (A template only because the evaluator's box records are private to it.)
template <typename Gt, typename Dt>
ImageEval evaluate_image(const std::vector<Gt>& gts, const std::vector<Dt>& dts,
                         const std::vector<double>& ious, const AreaRange& range) {
  const size_t G = gts.size(), D = dts.size();
  std::vector<uint8_t> gt_ignored(G);
  for (size_t g = 0; g < G; ++g) gt_ignored[g] = gts[g].iscrowd || outside(gts[g].area, range);
  // Counted objects first (a stable sort, as pycocotools' mergesort): a detection stops looking once it holds
  // a counted match and only ignored objects are left.
  std::vector<size_t> order(G);
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return gt_ignored[a] < gt_ignored[b]; });

  ImageEval e;
  for (const Dt& d : dts) e.scores.push_back(d.score);
  e.matched.assign(kT * D, 0);
  e.ignored.assign(kT * D, 0);
  e.counted = std::count(gt_ignored.begin(), gt_ignored.end(), uint8_t{0});
  for (size_t t = 0; t < kT; ++t) {
    std::vector<uint8_t> taken(G, 0);  // by position in `order`
    for (size_t d = 0; d < D; ++d) {
      double best = kIouThresholds[t];
      ptrdiff_t m = -1;
      for (size_t j = 0; j < G; ++j) {
        const size_t g = order[j];
        if (taken[j] && !gts[g].iscrowd) continue;
        if (m >= 0 && !gt_ignored[order[m]] && gt_ignored[g]) break;
        if (ious[d * G + g] < best) continue;
        best = ious[d * G + g];  // an equal IoU further on takes the match over, as in pycocotools
        m = static_cast<ptrdiff_t>(j);
      }
      if (m < 0) continue;
      const size_t g = order[m];
      taken[m] = 1;
      e.ignored[t * D + d] = gt_ignored[g];
      // pycocotools records the match as the object's id and tests it for != 0, so a match to an object with
      // id 0 reads as none (read_coco_instances refuses id 0; kept here so in-memory input scores alike).
      e.matched[t * D + d] = gts[g].id != 0;
    }
    // An unmatched detection outside the area range belongs to another range's evaluation: ignored here.
    for (size_t d = 0; d < D; ++d) {
      const CocoBox& b = dts[d].bbox;
      if (!e.matched[t * D + d] && outside(b[2] * b[3], range)) e.ignored[t * D + d] = 1;
    }
  }
  return e;
}

// accumulate() for one category, area range and max detections: every image's first max_dets detections
// ranked together, then precision at each recall threshold and the recall reached, at each IoU threshold.
void accumulate(const std::vector<ImageEval>& evals, size_t max_dets, Tables& out, size_t k, size_t a,
                size_t m) {
  int64_t counted = 0;
  for (const ImageEval& e : evals) counted += e.counted;
  if (counted == 0) return;  // no counted ground truth: stays -1, left out of the means

  struct Ref {
    double score;
    const ImageEval* image;
    size_t d;
  };
  std::vector<Ref> ranked;
  for (const ImageEval& e : evals)
    for (size_t d = 0; d < std::min(e.scores.size(), max_dets); ++d) ranked.push_back({e.scores[d], &e, d});
  std::stable_sort(ranked.begin(), ranked.end(),
                   [](const Ref& x, const Ref& y) { return x.score > y.score; });

  const size_t nd = ranked.size();
  std::vector<double> rc(nd), pr(nd);
  for (size_t t = 0; t < kT; ++t) {
    double tp = 0, fp = 0;
    for (size_t j = 0; j < nd; ++j) {
      const size_t i = t * ranked[j].image->scores.size() + ranked[j].d;
      if (!ranked[j].image->ignored[i]) (ranked[j].image->matched[i] ? tp : fp) += 1;
      rc[j] = tp / static_cast<double>(counted);
      pr[j] = tp / (fp + tp + DBL_EPSILON);  // numpy's spacing(1), in pycocotools' order of operations
    }
    out.recall[out.rc(t, k, a, m)] = nd ? rc[nd - 1] : 0;
    for (size_t j = nd; j-- > 1;) pr[j - 1] = std::max(pr[j - 1], pr[j]);
    for (size_t r = 0; r < kR; ++r) {
      const size_t j = std::lower_bound(rc.begin(), rc.end(), kRecallThresholds[r]) - rc.begin();
      out.precision[out.p(t, r, k, a, m)] = j < nd ? pr[j] : 0;
    }
  }
}

// The mean of the entries > -1, or -1 when there are none: summarize()'s np.mean(s[s > -1]).
double mean_of_defined(const std::vector<double>& values) {
  std::vector<double> v;
  std::copy_if(values.begin(), values.end(), std::back_inserter(v), [](double x) { return x > -1; });
  return v.empty() ? -1 : numpy_mean(v);  // numpy's pairwise order, so even the last bits agree
}

// One summarize() line: AP or AR, at one IoU threshold (iou 0: all of them), an area range, max detections.
struct StatSpec {
  bool ap;
  double iou;
  size_t area;
  size_t max_dets;
};
constexpr StatSpec kStats[kCocoStatCount] = {{true, 0, 0, 100},  {true, .5, 0, 100}, {true, .75, 0, 100},
                                             {true, 0, 1, 100},  {true, 0, 2, 100},  {true, 0, 3, 100},
                                             {false, 0, 0, 1},   {false, 0, 0, 10},  {false, 0, 0, 100},
                                             {false, 0, 1, 100}, {false, 0, 2, 100}, {false, 0, 3, 100}};

// The entries one summarize() line averages, in numpy's order (the selected arrays flattened row-major).
std::vector<double> selected(const Tables& tables, const StatSpec& s) {
  const size_t m = std::find(std::begin(kMaxDets), std::end(kMaxDets), s.max_dets) - std::begin(kMaxDets);
  std::vector<double> v;
  for (size_t t = 0; t < kT; ++t) {
    // pycocotools picks the threshold by equality (np.where(iouThr == p.iouThrs)): .5 and .75 are exact.
    if (s.iou != 0 && kIouThresholds[t] != s.iou) continue;
    if (s.ap) {
      for (size_t r = 0; r < kR; ++r)
        for (size_t k = 0; k < tables.K; ++k) v.push_back(tables.precision[tables.p(t, r, k, s.area, m)]);
    } else {
      for (size_t k = 0; k < tables.K; ++k) v.push_back(tables.recall[tables.rc(t, k, s.area, m)]);
    }
  }
  return v;
}

}  // namespace

CocoBboxEvaluator::CocoBboxEvaluator(const datasets::CocoInstances& gt) {
  for (const datasets::CocoImage& image : gt.images) image_ids_.push_back(image.id);
  std::sort(image_ids_.begin(), image_ids_.end());
  image_ids_.erase(std::unique(image_ids_.begin(), image_ids_.end()), image_ids_.end());
  for (size_t i = 0; i < image_ids_.size(); ++i) image_index_[image_ids_[i]] = i;

  categories_ = gt.categories;
  std::stable_sort(categories_.begin(), categories_.end(),
                   [](const auto& a, const auto& b) { return a.id < b.id; });
  categories_.erase(std::unique(categories_.begin(), categories_.end(),
                                [](const auto& a, const auto& b) { return a.id == b.id; }),
                    categories_.end());
  for (size_t k = 0; k < categories_.size(); ++k) category_index_[categories_[k].id] = k;

  for (const datasets::CocoAnnotation& a : gt.annotations) {
    const auto image = image_index_.find(a.image_id);
    const auto category = category_index_.find(a.category_id);
    if (image == image_index_.end() || category == category_index_.end()) continue;
    cells_[{category->second, image->second}].gts.push_back({a.bbox, a.area, a.iscrowd, a.id});
  }
}

void CocoBboxEvaluator::process(const std::vector<datasets::CocoResult>& detections) {
  for (const datasets::CocoResult& d : detections) {
    const auto image = image_index_.find(d.image_id);
    if (image == image_index_.end())
      throw std::invalid_argument("detection for image_id " + std::to_string(d.image_id) +
                                  ", which is not an image of the ground truth");
    const auto category = category_index_.find(d.category_id);
    if (category == category_index_.end())
      continue;  // pycocotools evaluates the ground truth's categories only
    cells_[{category->second, image->second}].dts.push_back({d.bbox, d.score});
  }
}

CocoEvalResult CocoBboxEvaluator::evaluate() const {
  const size_t K = categories_.size();
  Tables tables(K);
  auto cell = cells_.begin();
  for (size_t k = 0; k < K; ++k) {
    std::array<std::vector<ImageEval>, kA> evals;
    // The category's images that hold ground truth or detections, in id order (pycocotools' non-None
    // evalImgs).
    for (; cell != cells_.end() && cell->first.first == k; ++cell) {
      const Cell& c = cell->second;
      std::vector<DtBox> dts = c.dts;
      std::stable_sort(dts.begin(), dts.end(),
                       [](const DtBox& x, const DtBox& y) { return x.score > y.score; });
      if (dts.size() > kMaxDets[kM - 1]) dts.resize(kMaxDets[kM - 1]);
      std::vector<double> ious(dts.size() * c.gts.size());
      for (size_t d = 0; d < dts.size(); ++d)
        for (size_t g = 0; g < c.gts.size(); ++g)
          ious[d * c.gts.size() + g] = box_iou(dts[d].bbox, c.gts[g].bbox, c.gts[g].iscrowd);
      for (size_t a = 0; a < kA; ++a) evals[a].push_back(evaluate_image(c.gts, dts, ious, kAreas[a]));
    }
    for (size_t a = 0; a < kA; ++a)
      for (size_t m = 0; m < kM; ++m) accumulate(evals[a], kMaxDets[m], tables, k, a, m);
  }

  CocoEvalResult result;
  for (size_t s = 0; s < kCocoStatCount; ++s) result.stats[s] = mean_of_defined(selected(tables, kStats[s]));
  for (size_t k = 0; k < K; ++k) {
    std::vector<double> ap;  // detectron2's per-category AP: precision[:, :, k, all, 100 detections]
    for (size_t t = 0; t < kT; ++t)
      for (size_t r = 0; r < kR; ++r) ap.push_back(tables.precision[tables.p(t, r, k, 0, kM - 1)]);
    result.per_category.push_back({categories_[k].id, categories_[k].name, mean_of_defined(ap)});
  }
  return result;
}

CocoEvalResult evaluate_coco_bbox(const datasets::CocoInstances& gt,
                                  const std::vector<datasets::CocoResult>& detections) {
  CocoBboxEvaluator evaluator(gt);
  evaluator.process(detections);
  return evaluator.evaluate();
}

std::string format_coco_summary(const CocoEvalResult& result) {
  std::string out;
  for (size_t s = 0; s < kCocoStatCount; ++s) {
    const StatSpec& spec = kStats[s];
    char iou[32], line[160];
    if (spec.iou == 0)
      std::snprintf(iou, sizeof(iou), "%0.2f:%0.2f", kIouThresholds[0], kIouThresholds[kT - 1]);
    else
      std::snprintf(iou, sizeof(iou), "%0.2f", spec.iou);
    std::snprintf(line, sizeof(line), " %-18s %s @[ IoU=%-9s | area=%6s | maxDets=%3zu ] = %0.3f\n",
                  spec.ap ? "Average Precision" : "Average Recall", spec.ap ? "(AP)" : "(AR)", iou,
                  kAreas[spec.area].label, spec.max_dets, result.stats[s]);
    out += line;
  }
  return out;
}

}  // namespace attnvision::pipelines
