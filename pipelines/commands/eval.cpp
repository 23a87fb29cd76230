// `attnvision eval`: accuracy, per-class accuracy and the confusion matrix of a classifier on a labelled set.
#include "datasets/labeled_images.h"
#include "pipelines/commands/cli_options.h"
#include "pipelines/commands/command.h"
#include "pipelines/metrics/evaluation.h"
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
  datasets::LabeledImages data = datasets::load_labeled_images(o.data, folder_options_for(m.cfg));
  if (o.limit > 0) data = datasets::limit(data, o.limit);
  check_data_fits(data, m.cfg);
  const EvalResult r = evaluate(*m.net, m.cfg, data, o.batch);
  if (o.json) std::printf("%s\n", to_json(r, m.labels).dump().c_str());
  else std::printf("%s", format_report(r, m.labels).c_str());
  if (!o.confusion_png.empty()) write_confusion_png(o.confusion_png, r, m.labels);
  return 0;
}

}  // namespace

CommandRun define_eval(CLI::App& app) {
  auto o = std::make_shared<EvalOptions>();
  add_model_options(app, o->model);
  add_thread_options(app, o->threads);
  app.add_option("--data,-d", o->data, "fashion-mnist:test | fashion-mnist:train | a folder with one sub-folder per class")
      ->capture_default_str();
  app.add_option("--limit", o->limit, "only the first N images (0: all)")->capture_default_str()->check(CLI::NonNegativeNumber);
  app.add_option("--batch,-b", o->batch, "images per forward pass")->capture_default_str()->check(CLI::Range(1, 65536));
  app.add_option("--confusion-png", o->confusion_png, "write the confusion matrix chart here ('' for none)")
      ->capture_default_str();
  app.add_flag("--json", o->json, "print {count, accuracy, loss, per_class, confusion} as one JSON object");
  return [o] { return run_eval(*o); };
}

}  // namespace attnvision::pipelines
