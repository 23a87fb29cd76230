// `attnvision eval`: a model's task metric on a labelled set (the task row the model's task names supplies it;
// classification: accuracy, per-class accuracy and the confusion matrix).
#include "datasets/labeled_images.h"
#include "pipelines/commands/cli_options.h"
#include "pipelines/commands/command.h"
#include "datasets/preprocess.h"
#include "pipelines/metrics/evaluation.h"
#include "pipelines/tasks/task.h"

#include <nlohmann/json.hpp>
#include "pipelines/model_loader.h"

#include <cstdio>
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
  bool json = false;
};

int run_eval(const EvalOptions& o) {
  LoadedModel m = load_model(o.model);
  apply_thread_options(o.threads, m.cfg.arch);
  const TaskRow& task = task_for_model(m.cfg.task);
  datasets::LabeledImages data = task.load_data(o.data, m.cfg);
  if (o.limit > 0) data = datasets::limit(data, o.limit);
  check_data_fits(data, m.cfg);
  const std::unique_ptr<Metric> metric = task.make_metric(m.cfg, m.labels);
  evaluate(*m.net, m.cfg, data, o.batch, *metric);
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
                 "detector: a scenes folder (images/ and instances.json)")
      ->capture_default_str();
  app.add_option("--limit", o->limit, "only the first N images (0: all)")->capture_default_str()->check(CLI::NonNegativeNumber);
  app.add_option("--batch,-b", o->batch, "images per forward pass")->capture_default_str()->check(CLI::Range(1, 65536));
  app.add_option("--confusion-png", o->confusion_png, "write the metric's chart here: a classifier's confusion matrix, a detector's per-class AP ('' for none)")
      ->capture_default_str();
  app.add_flag("--json", o->json, "print the metric as one JSON object (a classifier: {count, accuracy, loss, per_class, confusion}; a "
               "detector: {count, loss, AP, AP50, ..., per_class})");
  return [o] { return run_eval(*o); };
}

}  // namespace attnvision::pipelines
