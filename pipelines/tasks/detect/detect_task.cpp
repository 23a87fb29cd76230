#include "pipelines/tasks/detect/detect_task.h"

#include "datasets/detection_set.h"
#include "datasets/preprocess.h"
#include "models/heads/centernet.h"
#include "pipelines/metrics/detection.h"
#include "vision/image_write.h"
#include "vision/nms.h"
#include "vision/overlay.h"
#include "vision/transforms.h"

#include <torch/torch.h>

#include <algorithm>
#include <optional>

namespace attnvision::pipelines {

CommandRun define_detect(CLI::App& app);  // detect_command.cpp
const TaskRow& detect_task();

namespace {

struct Found {
  cv::Rect2d box;  // in the input image's pixels: x, y of the top-left corner, width, height
  int64_t class_index;
  float score;
};

nlohmann::json to_json(const std::vector<Found>& found, const LoadedModel& m) {
  nlohmann::json list = nlohmann::json::array();
  for (const Found& d : found)
    list.push_back({{"bbox", {d.box.x, d.box.y, d.box.width, d.box.height}},
                    {"category_id", m.cfg.category_id(d.class_index)},
                    {"label", m.labels[static_cast<size_t>(d.class_index)]},
                    {"score", d.score}});
  return list;
}

}  // namespace

models::Forward detector_forward(models::NetworkImpl& net, const torch::Tensor& x, bool flip_test) {
  models::Forward f = net.forward(x);
  if (flip_test) f = models::centernet_flip_average(std::move(f), net.forward(x.flip({3})));
  return f;
}

namespace {

class DetectRunner : public TaskRunner {
 public:
  explicit DetectRunner(DetectOptions o) : o_(std::move(o)), m_(load_task_model(o_.model, detect_task())) {
    transform_ = datasets::eval_transform_for(m_.cfg);
    classifier_ = make_second_stage(o_.classifier, m_);
  }

  const LoadedModel& model() const override { return m_; }
  int64_t batch_size() const override { return o_.batch; }
  bool needs_display() const override { return o_.overlay; }

  std::vector<TaskOutput> run(const datasets::SampleBatch& batch, const torch::Tensor& x) override {
    std::vector<TaskOutput> out(batch.samples.size());
    for (int64_t begin = 0; begin < x.size(0); begin += o_.batch) {
      const int64_t n = std::min(o_.batch, x.size(0) - begin);
      const models::Forward f = detector_forward(*m_.net, x.narrow(0, begin, n), o_.flip_test);
      torch::Tensor peaks = models::centernet_decode(f, m_.cfg.detection.max_detections, m_.cfg.detection.output_stride);
      if (classifier_) peaks = classifier_->rescore(peaks, x.narrow(0, begin, n));
      peaks = peaks.contiguous();
      for (int64_t r = 0; r < n; ++r) add_row(batch, begin + r, peaks[r], out);
    }
    return out;
  }

 private:
  // One model-input row's peaks (k x [x, y, w, h, score, class], by descending score) into its sample's output.
  void add_row(const datasets::SampleBatch& batch, int64_t row, const torch::Tensor& peaks,
               std::vector<TaskOutput>& out) const {
    const size_t sample = batch.sample_of[row];
    const int frame = batch.frame_of[row];
    const datasets::Sample& s = batch.samples[sample];
    const std::vector<Found> all = to_image(peaks, cv::Size(s.width, s.height));
    std::vector<Found> kept;
    for (const Found& d : all)
      if (d.score >= o_.score_thresh) kept.push_back(d);
    if (o_.nms_iou > 0) kept = suppress(kept);

    nlohmann::json entry = {{"detections", to_json(kept, m_)}};
    if (o_.all_detections) entry["all_detections"] = to_json(all, m_);
    TaskOutput& o = out[sample];
    const std::string frame_suffix = add_frame_entry(o, s, frame, std::move(entry));
    if (o_.overlay) add_overlay(o, s.display[static_cast<size_t>(frame)], kept, frame_suffix);
  }

  // Model-input pixels -> the image's: undo the eval transform's centre crop, then its resize; cut to the image.
  std::vector<Found> to_image(const torch::Tensor& peaks, cv::Size image) const {
    const cv::Size resized = vision::eval_resize_size(image, transform_);
    const cv::Rect window = vision::eval_crop_window(image, transform_);
    const double sx = static_cast<double>(image.width) / resized.width;
    const double sy = static_cast<double>(image.height) / resized.height;
    const auto p = peaks.accessor<float, 2>();
    std::vector<Found> found;
    for (int64_t k = 0; k < p.size(0); ++k) {
      const double x0 = std::clamp((p[k][0] + window.x) * sx, 0.0, static_cast<double>(image.width));
      const double y0 = std::clamp((p[k][1] + window.y) * sy, 0.0, static_cast<double>(image.height));
      const double x1 = std::clamp((p[k][0] + p[k][2] + window.x) * sx, 0.0, static_cast<double>(image.width));
      const double y1 = std::clamp((p[k][1] + p[k][3] + window.y) * sy, 0.0, static_cast<double>(image.height));
      // Every peak is kept, even one whose box has no extent: a results file holds all of them.
      found.push_back({cv::Rect2d(x0, y0, std::max(0.0, x1 - x0), std::max(0.0, y1 - y0)),
                       static_cast<int64_t>(p[k][5]), p[k][4]});
    }
    return found;
  }

  std::vector<Found> suppress(const std::vector<Found>& found) const {
    std::vector<cv::Rect2d> boxes;
    std::vector<float> scores;
    std::vector<int> classes;
    for (const Found& d : found) {
      boxes.push_back(d.box);
      scores.push_back(d.score);
      classes.push_back(static_cast<int>(d.class_index));
    }
    std::vector<Found> kept;
    for (int i : vision::nms_per_class(boxes, scores, classes, static_cast<float>(o_.nms_iou)))
      kept.push_back(found[static_cast<size_t>(i)]);
    return kept;
  }

  void add_overlay(TaskOutput& o, const cv::Mat& display, const std::vector<Found>& found, const std::string& frame_suffix) const {
    std::vector<vision::DrawnBox> drawn;
    for (const Found& d : found)
      drawn.push_back({d.box, static_cast<int>(d.class_index), m_.labels[static_cast<size_t>(d.class_index)], d.score});
    o.files.push_back({frame_suffix + ".boxes.png", [display, drawn](const std::string& path) {
                         vision::write_png(path, vision::overlay_boxes(display, drawn));
                       }});
  }

  DetectOptions o_;
  LoadedModel m_;
  vision::EvalTransform transform_;
  std::optional<CropClassifier> classifier_;
};

const std::vector<KeySpec>& section_schema() {
  static const std::vector<KeySpec> schema = section_schema_with_model_keys(
      "the shipped scenes detector",
      {{"score_thresh", Kind::kNumber, false, "leave out detections scoring below this (0..1)"},
       {"nms_iou", Kind::kNumber, false, "class-wise NMS at this IoU (0: none; CenterNet's peaks rarely need it)"},
       {"overlay", Kind::kBool, false, "also write each image with its boxes drawn (<name>.boxes.png)"},
       {"flip_test", Kind::kBool, false, "average with the pass over the mirrored image (CenterNet's flip test: twice the compute)"},
       {"classifier", Kind::kString, false, "the second stage: a crop classifier (synth crops + train) that names each detection again from its crop, instead of the one the detector's file carries ('none': one stage)"},
       {"classifier_min_score", Kind::kNumber, false, "detections scoring below this are not cropped (default 0.1)"}});
  return schema;
}

std::unique_ptr<TaskRunner> runner_from_section(const ConfigDoc& section) {
  DetectOptions o;
  const nlohmann::json& j = section.root;
  take_model_keys(section, o.model, o.batch);
  take(j, "score_thresh", o.score_thresh);
  take(j, "nms_iou", o.nms_iou);
  take(j, "overlay", o.overlay);
  take(j, "flip_test", o.flip_test);
  take(j, "classifier", o.classifier.weights);
  take(j, "classifier_min_score", o.classifier.min_score);
  auto check = [&](bool ok, const std::string& key, const std::string& problem) {
    if (!ok) throw ConfigError(section.where(key) + ": 'detect." + key + "' " + problem);
  };
  check(o.batch >= 1 && o.batch <= 4096, "batch", "must be in 1..4096");
  check(o.score_thresh >= 0 && o.score_thresh <= 1, "score_thresh", "must be in 0..1");
  check(o.nms_iou >= 0 && o.nms_iou <= 1, "nms_iou", "must be in 0..1");
  check(o.classifier.min_score > 0 && o.classifier.min_score <= 1, "classifier_min_score", "must be in (0, 1]");
  return make_detect_runner(o);
}

datasets::LabeledImages load_data(const std::string& spec, const models::ModelCfg& cfg) {
  datasets::DetectionSet set = datasets::load_detection_set(spec, cfg.in_chans);
  return {set.images, set.boxes, set.classes, set.source, set.category_ids};
}

std::unique_ptr<Metric> make_metric(const models::ModelCfg& cfg, const std::vector<std::string>& labels) {
  return std::make_unique<DetectionMetric>(cfg, labels);
}

torch::Tensor centernet_total_loss(const models::ModelCfg& cfg, const models::Forward& f, const torch::Tensor& boxes,
                                   double /*label_smoothing: no class labels to smooth*/) {
  return models::centernet_loss(f, boxes, cfg.detection.output_stride, cfg.detection.center_class_loss).total;
}

// Each image's strongest detection: the largest heatmap logit (a detected box's class at its centre).
models::ScoreFn top_detection_score() {
  return [](const models::Forward& f) { return f.heatmap.flatten(1).amax(1); };
}

}  // namespace

std::unique_ptr<TaskRunner> make_detect_runner(const DetectOptions& options) {
  return std::make_unique<DetectRunner>(options);
}

const TaskRow& detect_task() {
  static const TaskRow row = {"detect",
                              "detection",
                              "detect objects in images and DICOM: boxes, classes and scores (COCO layout)",
                              section_schema,
                              runner_from_section,
                              define_detect,
                              load_data,
                              /*targets_follow_pixels=*/true,
                              make_metric,
                              centernet_total_loss,
                              top_detection_score,
                              /*classes_from_data=*/false};
  return row;
}

}  // namespace attnvision::pipelines
