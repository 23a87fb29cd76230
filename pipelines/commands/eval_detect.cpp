// `attnvision eval-detect`: COCO box mAP of a results file against a COCO instances file, the twelve numbers
// pycocotools' COCOeval prints (pipelines/metrics/coco_map.h says how exactly they agree); or, with
// `--data SCENES_DIR`, a detector run over the folder's images and evaluated against its instances.json in one go.
#include "datasets/coco.h"
#include "datasets/detection_set.h"
#include "datasets/augment.h"
#include "models/heads/centernet.h"
#include "pipelines/commands/cli_options.h"
#include "pipelines/commands/command.h"
#include "pipelines/metrics/coco_map.h"
#include "pipelines/metrics/detection.h"
#include "pipelines/metrics/evaluation.h"
#include "pipelines/model_loader.h"
#include "pipelines/tasks/detect/detect_task.h"
#include "pipelines/tasks/task.h"
#include "pipelines/report/progress.h"

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <cstdio>
#include <filesystem>
#include <memory>
#include <optional>

namespace attnvision::pipelines {

namespace {

struct EvalDetectOptions {
  std::string gt;
  std::string results;
  std::string data;
  ModelChoice model;
  ThreadOptions threads;
  int64_t batch = 32;
  std::string write_results;
  bool json = false;
  bool flip_test = false;
  CropClassifierOptions classifier;
};

// Every image of a scenes folder through the detector, as COCO results: image ids from instances.json, class
// index i -> the i-th category by id (the order load_detection_set gives the classes).
std::vector<datasets::CocoResult> detect_folder(const EvalDetectOptions& o) {
  const LoadedModel m = load_task_model(o.model, task_named("detect"));
  apply_thread_options(o.threads, m);
  const datasets::DetectionSet set = datasets::load_detection_set(o.data, m.cfg.in_chans);
  check_data_fits({set.images, set.boxes, set.classes, set.source, set.category_ids}, m.cfg);
  const std::vector<int64_t>& ids = m.cfg.detection.category_ids;
  if (!ids.empty() && ids != set.category_ids)
    throw ConfigError(o.data + ": the categories of its instances.json are not the ones the detector was trained on "
                      "(category ids differ)");

  const std::optional<CropClassifier> classifier = make_second_stage(o.classifier, m);

  std::vector<datasets::CocoResult> results;
  Progress progress("detect", static_cast<size_t>(set.size()));
  torch::InferenceMode guard;
  for (int64_t begin = 0; begin < set.size(); begin += o.batch) {
    const int64_t n = std::min(o.batch, set.size() - begin);
    const torch::Tensor x = datasets::normalize_batch(set.images.narrow(0, begin, n), m.cfg.mean, m.cfg.std);
    torch::Tensor peaks = models::centernet_decode(detector_forward(*m.net, x, o.flip_test),
                                                   m.cfg.detection.max_detections, m.cfg.detection.output_stride);
    if (classifier) peaks = classifier->rescore(peaks, x);
    for (int64_t i = 0; i < n; ++i)
      append_coco_results(peaks[i], set.image_ids[static_cast<size_t>(begin + i)], set.category_ids, results);
    progress.advance(static_cast<size_t>(n), size_t{0});
  }
  progress.finish();
  return results;
}

int run_eval_detect(const EvalDetectOptions& o) {
  if (o.data.empty() == o.results.empty())
    throw ConfigError("eval-detect: give --gt with --results, or --data SCENES_DIR (not both)");
  if (o.data.empty() && o.gt.empty()) throw ConfigError("eval-detect: --results needs --gt");
  const std::string gt_path = o.gt.empty() ? (std::filesystem::path(o.data) / "instances.json").string() : o.gt;
  // Reader errors are one line "PATH: ENTRY: problem"; run_cli prints it and exits 1.
  const datasets::CocoInstances gt = datasets::read_coco_instances(gt_path);
  const std::vector<datasets::CocoResult> results =
      o.data.empty() ? datasets::read_coco_results(o.results, gt) : detect_folder(o);
  if (!o.write_results.empty()) datasets::write_coco_results(o.write_results, results);
  const CocoEvalResult r = evaluate_coco_bbox(gt, results);
  if (o.json) {
    nlohmann::ordered_json j;  // summarize()'s order; doubles print with enough digits to read back exactly
    for (size_t s = 0; s < kCocoStatCount; ++s) j[kCocoStatNames[s]] = r.stats[s];
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("%s", format_coco_summary(r).c_str());
  }
  return 0;
}

}  // namespace

CommandRun define_eval_detect(CLI::App& app) {
  auto o = std::make_shared<EvalDetectOptions>();
  app.add_option("--gt", o->gt,
                 "COCO instances JSON: images, annotations (bbox, area, iscrowd), categories (with --data: "
                 "SCENES_DIR/instances.json unless given)");
  app.add_option("--results", o->results, "COCO results JSON: a list of {image_id, category_id, bbox, score}");
  app.add_option("--data", o->data,
                 "a scenes folder (images/ and instances.json): run the detector on its images and evaluate them");
  add_model_options(app, o->model);
  app.get_option("--model")->description(
      "with --data: a registered model name or model YAML; with neither --model nor --weights, the shipped scenes "
      "detector");
  add_thread_options(app, o->threads);
  app.add_option("--batch,-b", o->batch, "with --data: images per forward pass")
      ->capture_default_str()
      ->check(CLI::Range(1, 4096));
  app.add_option("--write-results", o->write_results, "with --data: also write the detections as a COCO results file");
  app.add_flag("--flip-test", o->flip_test,
               "with --data: average the outputs with those for the mirrored image (CenterNet's flip test)");
  add_crop_classifier_options(app, o->classifier);
  app.add_flag("--json", o->json,
               "print {AP, AP50, AP75, APs, APm, APl, AR1, AR10, AR100, ARs, ARm, ARl} as one JSON object "
               "(-1 where undefined)");
  return [o] { return run_eval_detect(*o); };
}

}  // namespace attnvision::pipelines
