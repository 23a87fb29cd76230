// `attnvision classify`: files and folders -> top-k classes per input, printed as text or JSON lines, through
// the batch runner (decode on worker threads while the model runs; DICOM windowed like any image).
#include "pipelines/commands/task_command.h"
#include "pipelines/tasks/classify/classify_task.h"

#include <CLI/CLI.hpp>

#include <cstdio>
#include <filesystem>
#include <memory>

namespace attnvision::pipelines {

namespace {

struct ClassifyCommandOptions {
  InputOptions inputs;
  ClassifyOptions task;
  std::string saliency_dir = "saliency";
};

void print_topk(const nlohmann::json& topk, const char* indent) {
  for (const nlohmann::json& t : topk)
    std::printf("%s%6.2f%%  %s (%ld)\n", indent, 100.0 * t["score"].get<double>(), t["label"].get<std::string>().c_str(),
                t["index"].get<long>());
}

void print_result(const ClassifyCommandOptions& o, const InputResult& r) {
  nlohmann::json row = {{"path", r.input->path}};
  row.update(r.outputs["classify"]);
  if (o.inputs.json) {
    std::printf("%s\n", row.dump().c_str());
    return;
  }
  std::printf("%s\n", r.input->path.c_str());
  if (row.contains("topk")) print_topk(row["topk"], "  ");
  for (const nlohmann::json& f : row.value("frames", nlohmann::json::array())) {
    std::printf("  frame %d\n", f["frame"].get<int>());
    print_topk(f["topk"], "    ");
  }
}

int run_classify(const ClassifyCommandOptions& o) {
  std::unique_ptr<TaskRunner> task = make_classify_runner(o.task);
  const size_t failed = run_task_command("classify", *task, o.inputs, o.saliency_dir, "classified", [&](const InputResult& r) {
    if (r.ok()) print_result(o, r);
    return !r.ok();
  });
  return failed ? 1 : 0;
}

}  // namespace

CommandRun define_classify(CLI::App& app) {
  auto o = std::make_shared<ClassifyCommandOptions>();
  add_input_options(app, o->inputs,
                    "one JSON object per input: {path, topk: [{index, label, score}]} (a multi-frame DICOM: {path, "
                    "frames: [{frame, topk}]}) or {path, error}");
  add_model_options(app, o->task.model);
  app.add_option("--topk,-k", o->task.topk, "classes to print per image")->capture_default_str()->check(CLI::Range(1, 1000));
  app.add_option("--batch,-b", o->task.batch, "images per forward pass")->capture_default_str()->check(CLI::Range(1, 4096));
  std::string methods;
  for (const std::string& line : models::saliency_method_help()) methods += "\n  " + line;
  app.add_option("--saliency", o->task.saliency,
                 "also write a saliency overlay (PNG) and its map (float TIFF) per image, as "
                 "<saliency-dir>/<input path below its argument>.<method>.png|tiff:" + methods);
  app.add_option("--saliency-dir", o->saliency_dir, "folder for saliency outputs")->capture_default_str();
  app.add_option("--saliency-class", o->task.saliency_class, "class to explain (-1: each image's top-1)")->capture_default_str();
  return [o] { return run_classify(*o); };
}

}  // namespace attnvision::pipelines
