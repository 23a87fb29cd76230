// `attnvision eval-saliency`: saliency measured against a phantom set's known lesions (DIR/lesions.json), per
// method: pointing game, IoU and Dice, RISE deletion and insertion AUC, lesion-level sensitivity and false
// regions per slice, time per slice; and the model's slice-level AUROC. The maps are exactly those
// `attnvision saliency` reports (find_on_slices), the regions their thresholded components (as it finds them,
// without its cap of 32 per slice), so the table describes what a user sees.
// `--region-levels` sweeps the region threshold (a fraction of each map's peak) to calibrate it on
// validation phantoms: the level kept is the most sensitive one at <= 0.5 false regions per slice.
// `--operating-thresholds` sweeps the p(lesion) from which a slice gets regions as well, every threshold with
// every level, and keeps the most sensitive pair under the same constraint.
#include "datasets/batch.h"
#include "datasets/lesion_truth.h"
#include "datasets/samples.h"
#include "pipelines/commands/cli_options.h"
#include "pipelines/commands/command.h"
#include "pipelines/metrics/saliency.h"
#include "pipelines/report/progress.h"
#include "pipelines/tasks/saliency/slice_findings.h"
#include "pipelines/tasks/task.h"

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <opencv2/imgproc.hpp>
#include <torch/torch.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <optional>

namespace attnvision::pipelines {

namespace {

// The calibration's constraint: the operating point for lesion-level sensitivity.
constexpr double kMaxFalseRegionsPerSlice = 0.5;

struct EvalSaliencyOptions {
  std::string data;
  ModelChoice model;
  ThreadOptions threads;
  std::vector<std::string> methods;
  std::vector<double> region_levels;
  std::vector<double> operating_thresholds;
  int64_t batch = 8;
  int rise_steps = 16;
  double tolerance_px = 15.0;
  int64_t limit = 0;
  bool flip_test = false;
  bool json = false;
};

// One slice of the set with its truth loaded: the union mask and one mask per lesion, at the slice's grid.
struct TruthMasks {
  cv::Mat all;
  std::vector<cv::Mat> lesions;
};

TruthMasks read_masks(const datasets::TruthSlice& slice, cv::Size size) {
  TruthMasks t;
  t.all = cv::Mat::zeros(size, CV_8UC1);
  for (const datasets::TruthLesion& lesion : slice.lesions) {
    t.lesions.push_back(datasets::read_lesion_mask(lesion.mask, size));
    t.all |= t.lesions.back();
  }
  return t;
}

// What one method scored, summed over the set.
struct MethodTally {
  int64_t lesion_slices = 0, hits = 0;
  double iou = 0, dice = 0;
  int64_t rise_slices = 0;
  double deletion = 0, insertion = 0;
  double seconds = 0;
  // Per operating point (Evaluation::point: an operating threshold and a region level evaluated): lesions
  // found, regions, false regions.
  std::vector<int64_t> found, regions, false_regions;
};

struct PointRow {
  double threshold, level, sensitivity, false_per_slice;
};

// The most sensitive row at <= kMaxFalseRegionsPerSlice (ties: the fewer false regions), if any.
void keep_best(std::optional<PointRow>& best, const PointRow& row) {
  if (row.false_per_slice > kMaxFalseRegionsPerSlice) return;
  if (!best || row.sensitivity > best->sensitivity ||
      (row.sensitivity == best->sensitivity && row.false_per_slice < best->false_per_slice))
    best = row;
}

class Evaluation {
 public:
  Evaluation(const EvalSaliencyOptions& o, const LoadedModel& m) : o_(o), m_(m) {
    std::vector<std::string> methods = o.methods.empty() ? std::vector<std::string>{m.cfg.ct.saliency_method} : o.methods;
    for (const std::string& method : methods) {
      try {
        readings_.push_back(saliency_reading_for(m.cfg, method));
      } catch (const std::invalid_argument& e) {
        throw ConfigError(std::string("eval-saliency: ") + e.what());
      }
      readings_.back().flip_test = o.flip_test;
    }
    // The model's own threshold and level first: the headline sensitivity and false regions are at them.
    levels_ = o.region_levels;
    levels_.insert(levels_.begin(), m.cfg.ct.region_level);
    thresholds_ = o.operating_thresholds;
    thresholds_.insert(thresholds_.begin(), m.cfg.ct.operating_threshold);
    tallies_.resize(readings_.size());
    for (MethodTally& t : tallies_)
      t.found.assign(thresholds_.size() * levels_.size(), 0), t.regions = t.false_regions = t.found;
  }

  void add(const datasets::SampleBatch& batch, const std::vector<const datasets::TruthSlice*>& truth) {
    const torch::Tensor x = batch.inputs.front();
    std::vector<vision::CtPlacement> placements;
    std::vector<vision::SliceGeometry> geometries;
    std::vector<TruthMasks> masks;
    for (size_t r = 0; r < batch.sample_of.size(); ++r) {
      const datasets::Sample& s = batch.samples[batch.sample_of[r]];
      placements.push_back(s.ct_placements.at(static_cast<size_t>(batch.frame_of[r])));
      geometries.push_back(slice_geometry(s, batch.frame_of[r]));
      masks.push_back(read_masks(*truth[batch.sample_of[r]], cv::Size(s.width, s.height)));
    }
    for (size_t m = 0; m < readings_.size(); ++m) {
      const auto start = std::chrono::steady_clock::now();
      const std::vector<SliceFindings> found = find_on_slices(*m_.net, x, placements, geometries, readings_[m]);
      tallies_[m].seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      for (size_t r = 0; r < found.size(); ++r) {
        if (m == 0) scores_.push_back(found[r].score), labels_.push_back(masks[r].lesions.empty() ? 0 : 1);
        add_slice(m, found[r], masks[r], x[static_cast<int64_t>(r)]);
      }
    }
    slices_ += static_cast<int64_t>(batch.sample_of.size());
  }

  int print(bool json) const {
    const double auroc = exact_auroc(scores_, labels_);
    const int64_t lesions = lesion_count_;
    int64_t lesion_slices = 0;
    for (const int label : labels_) lesion_slices += label;
    nlohmann::ordered_json j = {{"data", o_.data},
                                {"slices", slices_},
                                {"lesion_slices", lesion_slices},
                                {"lesions", lesions},
                                {"auroc", auroc},
                                {"flip_test", o_.flip_test},
                                {"operating_threshold", m_.cfg.ct.operating_threshold},
                                {"region_level", m_.cfg.ct.region_level},
                                {"region_level_of", m_.cfg.ct.region_level_of},
                                {"methods", nlohmann::ordered_json::object()}};
    for (size_t m = 0; m < readings_.size(); ++m) j["methods"][readings_[m].method] = method_json(m);
    if (json) {
      std::printf("%s\n", j.dump().c_str());
      return 0;
    }
    std::printf("%s: %lld slices (%lld with lesions, %lld lesions), slice AUROC %.4f%s\n", o_.data.c_str(),
                static_cast<long long>(slices_), static_cast<long long>(lesion_slices), static_cast<long long>(lesions),
                auroc, o_.flip_test ? " (flip test)" : "");
    std::printf("regions at %.2f of %s, on slices with p(lesion) >= %.2f\n\n", m_.cfg.ct.region_level,
                m_.cfg.ct.region_level_of == "peak" ? "each map's peak" : "the map's own scale",
                m_.cfg.ct.operating_threshold);
    std::printf("%-16s %8s %7s %7s %9s %9s %11s %13s %9s\n", "method", "pointing", "IoU", "Dice", "deletion",
                "insertion", "sensitivity", "false/slice", "s/slice");
    for (size_t m = 0; m < readings_.size(); ++m) {
      const nlohmann::ordered_json& r = j["methods"][readings_[m].method];
      std::printf("%-16s %7.1f%% %7.3f %7.3f %9.3f %9.3f %10.1f%% %13.3f %9.3f\n", readings_[m].method.c_str(),
                  100.0 * r["pointing_game"].get<double>(), r["iou"].get<double>(), r["dice"].get<double>(),
                  r["deletion_auc"].get<double>(), r["insertion_auc"].get<double>(),
                  100.0 * r["sensitivity"].get<double>(), r["false_regions_per_slice"].get<double>(),
                  r["seconds_per_slice"].get<double>());
    }
    if (levels_.size() > 1) {
      std::printf("\nregion level sweep (sensitivity / false regions per slice):\n");
      for (size_t m = 0; m < readings_.size(); ++m) {
        const nlohmann::ordered_json& r = j["methods"][readings_[m].method];
        std::printf("%-16s", readings_[m].method.c_str());
        for (const auto& row : r["region_levels"])
          std::printf("  %.2f: %.1f%% / %.2f", row["level"].get<double>(), 100.0 * row["sensitivity"].get<double>(),
                      row["false_regions_per_slice"].get<double>());
        std::printf("\n%-16s  calibrated level: %s\n", "", r["calibrated_region_level"].dump().c_str());
      }
    }
    if (thresholds_.size() > 1) {
      std::printf("\noperating point sweep (p(lesion) >= threshold, region level: sensitivity / false regions per slice):\n");
      for (size_t m = 0; m < readings_.size(); ++m) {
        const nlohmann::ordered_json& r = j["methods"][readings_[m].method];
        std::printf("%s\n", readings_[m].method.c_str());
        for (const auto& row : r["operating_points"])
          std::printf("  p >= %.3f, level %.2f: %5.1f%% / %.3f\n", row["operating_threshold"].get<double>(),
                      row["region_level"].get<double>(), 100.0 * row["sensitivity"].get<double>(),
                      row["false_regions_per_slice"].get<double>());
        std::printf("  calibrated: %s\n", r["calibrated_operating_point"].dump().c_str());
      }
    }
    return 0;
  }

  void count_lesions(int64_t n) { lesion_count_ += n; }

 private:
  size_t point(size_t threshold, size_t level) const { return threshold * levels_.size() + level; }

  // A slice's regions at each level count at every operating threshold its p(lesion) reaches (below it a
  // slice gets no region); IoU and Dice are at the model's own threshold and level.
  void add_slice(size_t m, const SliceFindings& f, const TruthMasks& truth, const torch::Tensor& input) {
    MethodTally& t = tallies_[m];
    const bool lesion = !truth.lesions.empty();
    const bool has_map = f.peak > 0;
    const bool flagged = has_map && f.score >= thresholds_[0];
    bool reaches_any = false;
    for (double threshold : thresholds_) reaches_any = reaches_any || f.score >= threshold;
    for (size_t l = 0; l < levels_.size(); ++l) {
      cv::Mat predicted = cv::Mat::zeros(f.source_map.size(), CV_8UC1);
      if (has_map && reaches_any) {
        predicted = f.source_map >= readings_[m].region_threshold(levels_[l], f.peak);
        cv::Mat labels;
        const int count = cv::connectedComponents(predicted, labels, 8, CV_32S) - 1;
        const RegionMatch match = match_regions(labels, count, truth.lesions, o_.tolerance_px);
        for (size_t k = 0; k < thresholds_.size(); ++k) {
          if (f.score < thresholds_[k]) continue;
          const size_t i = point(k, l);
          t.found[i] += match.found, t.regions[i] += match.regions, t.false_regions[i] += match.false_regions;
        }
      }
      if (l == 0 && lesion) {
        const Overlap overlap = mask_overlap(flagged ? predicted : cv::Mat::zeros(f.source_map.size(), CV_8UC1), truth.all);
        t.iou += overlap.iou, t.dice += overlap.dice;
      }
    }
    if (!lesion) return;
    ++t.lesion_slices;
    t.hits += pointing_hit(truth.all, f.peak_px, o_.tolerance_px);
    if (o_.rise_steps > 0) {
      const RiseCurves c = rise_curves(input, rise_substrate(input.unsqueeze(0))[0], datasets::mat_to_map(f.model_map),
                                       o_.rise_steps,
                                       [this](const torch::Tensor& batch) { return lesion_probability(batch); });
      t.deletion += c.deletion_auc, t.insertion += c.insertion_auc;
      ++t.rise_slices;
    }
  }

  torch::Tensor lesion_probability(const torch::Tensor& x) const {
    torch::NoGradGuard no_grad;
    return torch::softmax(m_.net->forward(x).logits.to(torch::kFloat32), 1).select(1, 1);
  }

  nlohmann::ordered_json method_json(size_t m) const {
    const MethodTally& t = tallies_[m];
    auto ratio = [](double a, double b) { return b > 0 ? a / b : 0.0; };
    auto row_at = [&](size_t k, size_t l) {
      const size_t i = point(k, l);
      return PointRow{thresholds_[k], levels_[l], ratio(t.found[i], lesion_count_), ratio(t.false_regions[i], slices_)};
    };
    // The level sweep, at the model's own threshold.
    nlohmann::ordered_json sweep = nlohmann::ordered_json::array();
    std::optional<PointRow> best;
    for (size_t l = 1; l < levels_.size(); ++l) {
      const PointRow row = row_at(0, l);
      sweep.push_back({{"level", row.level},
                       {"sensitivity", row.sensitivity},
                       {"false_regions_per_slice", row.false_per_slice},
                       {"regions_per_slice", ratio(t.regions[point(0, l)], slices_)}});
      keep_best(best, row);
    }
    // Every swept threshold with every swept level (the model's own level when none is swept).
    nlohmann::ordered_json points = nlohmann::ordered_json::array();
    std::optional<PointRow> best_point;
    for (size_t k = 1; k < thresholds_.size(); ++k)
      for (size_t l = levels_.size() > 1 ? 1 : 0; l < levels_.size(); ++l) {
        const PointRow row = row_at(k, l);
        points.push_back({{"operating_threshold", row.threshold},
                          {"region_level", row.level},
                          {"sensitivity", row.sensitivity},
                          {"false_regions_per_slice", row.false_per_slice},
                          {"regions_per_slice", ratio(t.regions[point(k, l)], slices_)}});
        keep_best(best_point, row);
      }
    nlohmann::ordered_json j = {{"pointing_game", ratio(t.hits, t.lesion_slices)},
                                {"iou", ratio(t.iou, t.lesion_slices)},
                                {"dice", ratio(t.dice, t.lesion_slices)},
                                {"deletion_auc", ratio(t.deletion, t.rise_slices)},
                                {"insertion_auc", ratio(t.insertion, t.rise_slices)},
                                {"sensitivity", ratio(t.found[0], lesion_count_)},
                                {"false_regions_per_slice", ratio(t.false_regions[0], slices_)},
                                {"regions_per_slice", ratio(t.regions[0], slices_)},
                                {"seconds_per_slice", ratio(t.seconds, slices_)},
                                {"stage", readings_[m].options.stage}};
    if (!sweep.empty()) {
      j["region_levels"] = sweep;
      j["calibrated_region_level"] = best ? nlohmann::ordered_json(best->level) : nlohmann::ordered_json(nullptr);
    }
    if (!points.empty()) {
      j["operating_points"] = points;
      j["calibrated_operating_point"] =
          best_point ? nlohmann::ordered_json{{"operating_threshold", best_point->threshold},
                                              {"region_level", best_point->level}}
                     : nlohmann::ordered_json(nullptr);
    }
    return j;
  }

  const EvalSaliencyOptions& o_;
  const LoadedModel& m_;
  std::vector<SaliencyReading> readings_;
  std::vector<double> levels_;      // region levels: the model's own, then --region-levels
  std::vector<double> thresholds_;  // operating thresholds: the model's own, then --operating-thresholds
  std::vector<MethodTally> tallies_;
  std::vector<double> scores_;
  std::vector<int> labels_;
  int64_t slices_ = 0, lesion_count_ = 0;
};

int run_eval_saliency(const EvalSaliencyOptions& o) {
  const LoadedModel m = load_task_model(o.model, task_named("saliency"));
  apply_thread_options(o.threads, m);
  for (double level : o.region_levels)
    if (!(level > 0.0 && level < 1.0)) throw ConfigError("eval-saliency: --region-levels must lie in (0, 1)");
  for (double threshold : o.operating_thresholds)
    if (!(threshold >= 0.0 && threshold <= 1.0))
      throw ConfigError("eval-saliency: --operating-thresholds must lie in [0, 1]");

  std::vector<const datasets::TruthSlice*> slices;
  const std::vector<datasets::TruthSeries> truth = datasets::read_lesion_truth(o.data);
  for (const datasets::TruthSeries& s : truth)
    for (const datasets::TruthSlice& slice : s.slices) slices.push_back(&slice);
  if (o.limit > 0 && static_cast<int64_t>(slices.size()) > o.limit) slices.resize(static_cast<size_t>(o.limit));
  if (slices.empty()) throw ConfigError(o.data + "/lesions.json: lists no slices");

  Evaluation evaluation(o, m);
  const std::vector<datasets::Preprocess> preprocess = {datasets::preprocess_for(m.cfg)};
  Progress progress("eval-saliency", slices.size(), Progress::Mode::kAuto);
  for (size_t begin = 0; begin < slices.size(); begin += static_cast<size_t>(o.batch)) {
    const size_t end = std::min(slices.size(), begin + static_cast<size_t>(o.batch));
    std::vector<vision::BatchInput> inputs;
    std::vector<const datasets::TruthSlice*> truth_of;
    for (size_t i = begin; i < end; ++i) {
      inputs.push_back({slices[i]->file, vision::InputKind::kDicom, slices[i]->file});
      truth_of.push_back(slices[i]);
      evaluation.count_lesions(static_cast<int64_t>(slices[i]->lesions.size()));
    }
    const datasets::SampleBatch batch = datasets::decode_samples(inputs, preprocess, {});
    // A phantom set is data we made: a slice that does not decode is an error, not a slice to skip.
    for (const datasets::Sample& s : batch.samples)
      if (!s.ok()) throw std::runtime_error(s.error);
    evaluation.add(batch, truth_of);
    progress.advance(end - begin, size_t{0});
  }
  progress.finish();
  return evaluation.print(o.json);
}

}  // namespace

CommandRun define_eval_saliency(CLI::App& app) {
  auto o = std::make_shared<EvalSaliencyOptions>();
  app.add_option("--data", o->data,
                 "a phantom set (`attnvision synth phantoms`): its DICOM slices and lesions.json with the masks")
      ->required();
  add_model_options(app, o->model);
  app.get_option("--model")->description(
      "a registered model name or model YAML; with neither --model nor --weights, the shipped anomaly model");
  add_thread_options(app, o->threads);
  app.add_option("--methods", o->methods,
                 "saliency methods to compare, e.g. gradcam,gradcam++,layercam,cbam,occlusion (default: the model's "
                 "default method)")
      ->delimiter(',');
  app.add_option("--region-levels", o->region_levels,
                 "also sweep these region thresholds (fractions of each map's peak, e.g. 0.3,0.4,0.5,0.6, or of the map's "
                 "own scale with --set region_level_of=map) and report "
                 "the most sensitive one with <= 0.5 false regions per slice (calibrate on validation phantoms)")
      ->delimiter(',');
  app.add_option("--operating-thresholds", o->operating_thresholds,
                 "also sweep the p(lesion) from which a slice gets regions (e.g. 0.1,0.2,0.3), each with every region "
                 "level, and report the most sensitive pair with <= 0.5 false regions per slice")
      ->delimiter(',');
  app.add_option("--batch,-b", o->batch, "slices per forward pass")->capture_default_str()->check(CLI::Range(1, 256));
  app.add_option("--rise-steps", o->rise_steps,
                 "deletion / insertion curve steps per lesion slice (RISE; substrate: the Gaussian-blurred slice); "
                 "0 skips them")
      ->capture_default_str()
      ->check(CLI::Range(0, 256));
  app.add_option("--tolerance", o->tolerance_px,
                 "pointing game tolerance in pixels (TorchRay: 15); also how near its lesion a region's centroid must lie")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1000.0));
  app.add_flag("--flip-test", o->flip_test,
               "score and explain each slice with its mirror image, averaged, as `saliency --flip-test` does");
  app.add_option("--limit", o->limit, "evaluate only the first N slices (0: all)")->check(CLI::Range(int64_t{0}, int64_t{1} << 40));
  app.add_flag("--json", o->json,
               "print one JSON object: slices, lesion_slices, lesions, auroc, flip_test, and per method pointing_game, iou, "
               "dice, deletion_auc, insertion_auc, sensitivity, false_regions_per_slice, seconds_per_slice; with "
               "sweeps, region_levels and calibrated_region_level, operating_points and calibrated_operating_point");
  return [o] { return run_eval_saliency(*o); };
}

}  // namespace attnvision::pipelines
