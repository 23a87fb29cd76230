// `attnvision eval`: accuracy, per-class accuracy and the confusion matrix of a classifier on a labelled set.
#include "datasets/labeled_images.h"
#include "pipelines/cli_options.h"
#include "pipelines/command.h"
#include "pipelines/evaluation.h"
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
  datasets::ImageFolderOptions folder;
  folder.channels = m.cfg.in_chans;
  folder.height = m.cfg.input_size[1];
  folder.width = m.cfg.input_size[2];
  folder.interpolation = m.cfg.interpolation;
  datasets::LabeledImages data = datasets::load_labeled_images(o.data, folder);
  if (o.limit > 0) data = datasets::limit(data, o.limit);
  if (static_cast<int64_t>(data.classes.size()) != m.cfg.num_classes)
    throw ConfigError(o.data + ": " + std::to_string(data.classes.size()) + " classes, the model has " +
                      std::to_string(m.cfg.num_classes));
  const auto s = data.images.sizes();
  if (s[1] != m.cfg.input_size[0] || s[2] != m.cfg.input_size[1] || s[3] != m.cfg.input_size[2])
    throw ConfigError(o.data + ": images are " + std::to_string(s[1]) + "x" + std::to_string(s[2]) + "x" +
                      std::to_string(s[3]) + ", the model takes " + std::to_string(m.cfg.input_size[0]) + "x" +
                      std::to_string(m.cfg.input_size[1]) + "x" + std::to_string(m.cfg.input_size[2]));
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
