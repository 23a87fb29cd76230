// `attnvision detect`: files and folders -> boxes, classes and scores per input, printed as text or JSON lines,
// optionally drawn (--out) and written as a COCO results file (--results, image ids from --coco-images), through
// the batch runner (decode on worker threads while the model runs).
#include "datasets/coco.h"
#include "pipelines/commands/task_command.h"
#include "pipelines/tasks/detect/detect_task.h"

#include <CLI/CLI.hpp>

#include <cstdio>
#include <memory>

namespace attnvision::pipelines {

namespace {

struct DetectCommandOptions {
  InputOptions inputs;
  DetectOptions task;
  std::string out_dir;
  std::string coco_images;
  std::string results;
};

void print_detections(const nlohmann::json& detections, const char* indent) {
  for (const nlohmann::json& d : detections) {
    const nlohmann::json& b = d["bbox"];
    std::printf("%s%6.2f%%  %-12s [x %.1f, y %.1f, w %.1f, h %.1f]\n", indent, 100.0 * d["score"].get<double>(),
                d["label"].get<std::string>().c_str(), b[0].get<double>(), b[1].get<double>(), b[2].get<double>(),
                b[3].get<double>());
  }
}

void print_result(const DetectCommandOptions& o, const InputResult& r) {
  nlohmann::json row = {{"path", r.input->path}};
  row.update(r.outputs["detect"]);
  row.erase("all_detections");  // for the results file only
  for (nlohmann::json& f : row.value("frames", nlohmann::json::array())) f.erase("all_detections");
  if (o.inputs.json) {
    std::printf("%s\n", row.dump().c_str());
    return;
  }
  std::printf("%s (%dx%d)\n", r.input->path.c_str(), row["width"].get<int>(), row["height"].get<int>());
  if (row.contains("detections")) print_detections(row["detections"], "  ");
  for (const nlohmann::json& f : row.value("frames", nlohmann::json::array())) {
    std::printf("  frame %d\n", f["frame"].get<int>());
    print_detections(f["detections"], "    ");
  }
}

// An input's every decoded peak as COCO results of image `id`.
void add_results(const InputResult& r, int64_t id, std::vector<datasets::CocoResult>& results) {
  for (const nlohmann::json& d : r.outputs["detect"]["all_detections"]) {
    const nlohmann::json& b = d["bbox"];
    results.push_back({id, d["category_id"].get<int64_t>(),
                       datasets::CocoBox{b[0].get<double>(), b[1].get<double>(), b[2].get<double>(), b[3].get<double>()},
                       d["score"].get<double>()});
  }
}

int run_detect(DetectCommandOptions o) {
  CocoImageIds ids(o.coco_images, o.results);
  o.task.overlay = !o.out_dir.empty();
  o.task.all_detections = ids.wanted();
  std::unique_ptr<TaskRunner> task = make_detect_runner(o.task);
  std::vector<datasets::CocoResult> results;
  const size_t failed = run_task_command("detect", *task, o.inputs, o.out_dir.empty() ? "." : o.out_dir, "detected in",
                                         [&](const InputResult& r) {
                                           if (!r.ok()) return true;
                                           print_result(o, r);
                                           if (!ids.wanted()) return false;
                                           if (const auto id = ids.of(r, "detect", "all_detections")) add_results(r, *id, results);
                                           return false;
                                         });
  if (ids.wanted()) datasets::write_coco_results(o.results, results);
  const size_t unmatched = ids.report(results.size(), "detections");
  return failed || unmatched ? 1 : 0;
}

}  // namespace

void add_crop_classifier_options(CLI::App& app, CropClassifierOptions& options) {
  app.add_option("--classifier", options.weights,
                 "the second stage: a crop classifier (trained on `attnvision synth crops`) names each detection "
                 "again from its crop, and the score becomes the geometric mean of the two. Default: the one the "
                 "detector's file carries (the shipped detector's does); FILE: this one instead; none: one stage");
  app.add_option("--classifier-min-score", options.min_score,
                 "crop only the detections scoring at least this (the rest keep their order below)")
      ->capture_default_str()
      ->check(CLI::Range(1e-6, 1.0));
}

CommandRun define_detect(CLI::App& app) {
  auto o = std::make_shared<DetectCommandOptions>();
  add_input_options(app, o->inputs,
                    "one JSON object per input: {path, width, height, detections: [{bbox: [x, y, w, h], category_id, "
                    "label, score}]} (a multi-frame DICOM: {path, width, height, frames: [{frame, detections}]}) or "
                    "{path, error}");
  add_model_options(app, o->task.model);
  app.get_option("--model")->description(
      "registered model name or a model YAML file; with neither --model nor --weights, the shipped scenes "
      "detector (models/pretrained/scenes_detector.safetensors)");
  app.add_option("--score-thresh", o->task.score_thresh, "print and draw detections scoring at least this")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--nms-iou", o->task.nms_iou,
                 "class-wise NMS at this IoU through cv::dnn::NMSBoxes (0: none; CenterNet's 3x3 peaks seldom need it)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0));
  app.add_flag("--flip-test", o->task.flip_test,
               "average the outputs with those for the mirrored image (CenterNet's flip test): twice the compute, "
               "about a point of COCO AP more on the scenes");
  add_crop_classifier_options(app, o->task.classifier);
  app.add_option("--batch,-b", o->task.batch, "images per forward pass")->capture_default_str()->check(CLI::Range(1, 4096));
  app.add_option("--out", o->out_dir,
                 "write each input with its detections drawn as <out>/<input path below its argument>.boxes.png");
  app.add_option("--coco-images", o->coco_images,
                 "COCO instances or image-info JSON whose `images` give the image id of each input, by file name");
  app.add_option("--results", o->results,
                 "write a COCO results file: every decoded peak (up to the model's max_detections per image, no score "
                 "threshold) as {image_id, category_id, bbox, score}; needs --coco-images");
  return [o] { return run_detect(*o); };
}

}  // namespace attnvision::pipelines
