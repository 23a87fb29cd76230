// `attnvision eval`: a model's task metric on a labelled set (the task row the model's task names supplies it;
// classification: accuracy, per-class accuracy and the confusion matrix).
#include "datasets/labeled_images.h"
#include "pipelines/commands/cli_options.h"
#include "pipelines/commands/command.h"
#include "datasets/preprocess.h"
#include "pipelines/metrics/evaluation.h"
#include "pipelines/tasks/task.h"
#include "vision/files/atomic_write.h"

#include <nlohmann/json.hpp>
#include "pipelines/model_loader.h"

#include <cstdio>
#include <filesystem>
#include <memory>

namespace attnvision::pipelines {

namespace {

struct EvalOptions {
  ModelChoice model;
  ThreadOptions threads;
  std::string data = "fashion-mnist:test";
  int64_t limit = 0;
  int64_t batch = 256;
  std::string confusion_png = "confusion.png";
  std::string predictions;
  bool json = false;
};

// The task's metric, with each image's top-1 class and its softmax probability kept on the way (what
// --predictions writes: enough to compare two runs image by image, e.g. bf16 against fp32).
class RecordingPredictions : public Metric {
 public:
  explicit RecordingPredictions(Metric& inner) : inner_(inner) {}
  void add(const models::Forward& f, const torch::Tensor& targets) override {
    const auto [score, predicted] = torch::softmax(f.logits, 1).max(1);
    scores_.push_back(score);
    predicted_.push_back(predicted);
    labels_.push_back(targets);
    inner_.add(f, targets);
  }
  torch::Tensor& counts() override { return inner_.counts(); }
  int64_t count() const override { return inner_.count(); }
  double score() const override { return inner_.score(); }
  const char* score_name() const override { return inner_.score_name(); }
  double loss() const override { return inner_.loss(); }
  nlohmann::json summary() const override { return inner_.summary(); }
  std::string report() const override { return inner_.report(); }
  void write_chart(const std::string& path) const override { inner_.write_chart(path); }

  // One JSON line per image, in the set's order: {index, label, predicted, score}.
  void write(const std::string& path) const {
    const torch::Tensor label = torch::cat(labels_), predicted = torch::cat(predicted_), score = torch::cat(scores_);
    const auto l = label.accessor<int64_t, 1>();
    const auto p = predicted.accessor<int64_t, 1>();
    const auto s = score.accessor<float, 1>();
    std::string text;
    for (int64_t i = 0; i < label.size(0); ++i)
      text += nlohmann::json{{"index", i}, {"label", l[i]}, {"predicted", p[i]}, {"score", s[i]}}.dump() + "\n";
    vision::write_text_atomically(path, text);
  }

 private:
  Metric& inner_;
  std::vector<torch::Tensor> scores_, predicted_, labels_;
};

// With neither --model nor --weights, the shipped model of the task the data is for: a phantom set (its
// lesions.json) the anomaly model, a scenes folder (its instances.json) the detector, anything else the classifier.
std::string shipped_task_for(const std::string& data) {
  std::error_code ec;
  if (std::filesystem::is_regular_file(std::filesystem::path(data) / "lesions.json", ec)) return "anomaly";
  if (std::filesystem::is_regular_file(std::filesystem::path(data) / "instances.json", ec)) return "detection";
  return "classification";
}

int run_eval(const EvalOptions& o) {
  ModelChoice choice = o.model;
  choice.shipped_task = shipped_task_for(o.data);
  LoadedModel m = load_model(choice);
  apply_thread_options(o.threads, m);
  const TaskRow& task = task_for_model(m.cfg.task);
  datasets::LabeledImages data = task.load_data(o.data, m.cfg);
  if (o.limit > 0) data = datasets::limit(data, o.limit);
  check_data_fits(data, m.cfg);
  const std::unique_ptr<Metric> metric = task.make_metric(m.cfg, m.labels);
  // The metric sees the network's own outputs, as the trainer's validation does; a part its file carries (a
  // detector's second stage) runs in the task's own commands.
  for (const models::TensorFile& part : m.parts)
    std::fprintf(stderr, "note: eval scores the network alone; %s is not run (`eval-detect --data` runs a "
                 "detector's second stage)\n", part.path.c_str());
  if (!o.predictions.empty() && m.cfg.task != "classification")
    throw ConfigError("--predictions: per-image classes come from a classifier; '" + m.cfg.name + "' is built for " +
                      m.cfg.task);
  RecordingPredictions recording(*metric);
  evaluate(*m.net, m.cfg, data, o.batch, o.predictions.empty() ? *metric : recording);
  if (!o.predictions.empty()) recording.write(o.predictions);
  if (o.json) std::printf("%s\n", metric->summary().dump().c_str());
  else std::printf("%s", metric->report().c_str());
  if (!o.confusion_png.empty()) metric->write_chart(o.confusion_png);
  return 0;
}

}  // namespace

CommandRun define_eval(CLI::App& app) {
  auto o = std::make_shared<EvalOptions>();
  add_model_options(app, o->model);
  add_thread_options(app, o->threads);
  app.add_option("--data,-d", o->data, "a classifier: fashion-mnist:test | fashion-mnist:train | a folder with one sub-folder per class; a "
                 "detector: a scenes folder (images/ and instances.json); an anomaly model: a phantom set (lesions.json). "
                 "With neither --model nor --weights, the shipped model for that kind of data")
      ->capture_default_str();
  app.add_option("--limit", o->limit, "only the first N images (0: all)")->capture_default_str()->check(CLI::NonNegativeNumber);
  app.add_option("--batch,-b", o->batch, "images per forward pass")->capture_default_str()->check(CLI::Range(1, 65536));
  app.add_option("--confusion-png", o->confusion_png, "write the metric's chart here: a classifier's confusion matrix, a detector's per-class AP ('' for none)")
      ->capture_default_str();
  app.add_option("--predictions", o->predictions,
                 "a classifier: also write each image's top-1 class, one JSON line {index, label, predicted, score} "
                 "per image in the set's order");
  app.add_flag("--json", o->json, "print the metric as one JSON object (a classifier: {count, accuracy, loss, per_class, confusion}; a "
               "detector: {count, loss, AP, AP50, ..., per_class})");
  return [o] { return run_eval(*o); };
}

}  // namespace attnvision::pipelines
