// `attnvision classify`: files and folders -> top-k classes per input, printed as text or JSON lines, through
// the batch runner (decode on worker threads while the model runs; DICOM windowed like any image).
#include "pipelines/batch/runner.h"
#include "pipelines/commands/cli_options.h"
#include "pipelines/report/progress.h"
#include "pipelines/tasks/classify/classify_task.h"

#include <CLI/CLI.hpp>

#include <cstdio>
#include <filesystem>
#include <memory>

namespace attnvision::pipelines {

namespace {

struct ClassifyCommandOptions {
  std::vector<std::string> paths;
  ClassifyOptions task;
  ThreadOptions threads;
  int workers = 0;
  int64_t max_pixels = 200'000'000;
  bool json = false;
  std::string saliency_dir = "saliency";
};

void print_topk(const nlohmann::json& topk, const char* indent) {
  for (const nlohmann::json& t : topk)
    std::printf("%s%6.2f%%  %s (%ld)\n", indent, 100.0 * t["score"].get<double>(), t["label"].get<std::string>().c_str(),
                t["index"].get<long>());
}

void print_result(const ClassifyCommandOptions& o, const InputResult& r) {
  if (!r.ok()) {
    std::fprintf(stderr, "%s\n", r.error.c_str());
    if (o.json) std::printf("%s\n", nlohmann::json{{"path", r.input->path}, {"error", r.error}}.dump().c_str());
    return;
  }
  nlohmann::json row = {{"path", r.input->path}};
  row.update(r.outputs["classify"]);
  if (o.json) {
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
  const models::ThreadPlan plan = apply_thread_options(o.threads, task->model_cfg().arch);
  const vision::BatchInputScan scan = vision::scan_batch_inputs(o.paths);
  size_t failed = 0;
  for (const std::string& p : scan.missing) {
    std::fprintf(stderr, "%s: no such file or folder\n", p.c_str());
    if (o.json) std::printf("%s\n", nlohmann::json{{"path", p}, {"error", "no such file or folder"}}.dump().c_str());
    ++failed;
  }
  if (scan.inputs.empty() && scan.missing.empty()) throw ConfigError("no images found in the given paths");

  RunOptions ro;
  ro.workers = o.workers;
  ro.torch_threads = plan.torch_threads;
  ro.decode.image.max_pixels = o.max_pixels;
  ro.files_dir = o.saliency_dir;
  ro.task_subfolders = false;
  Progress progress("classify", scan.inputs.size());
  run_tasks(scan.inputs, {{&task_named("classify"), task.get()}}, ro, [&](const InputResult& r) {
    print_result(o, r);
    if (!r.ok()) ++failed;
    std::fflush(stdout);
    progress.advance(1, failed);
  });
  progress.finish();
  const size_t total = scan.inputs.size() + scan.missing.size();
  std::fprintf(stderr, "classified %zu images in %.2f s (%.2f images/s)\n", total - failed, progress.elapsed_s(),
               (total - failed) / std::max(1e-9, progress.elapsed_s()));
  if (failed) std::fprintf(stderr, "%zu of %zu inputs failed\n", failed, total);
  return failed ? 1 : 0;
}

}  // namespace

CommandRun define_classify(CLI::App& app) {
  auto o = std::make_shared<ClassifyCommandOptions>();
  app.add_option("paths", o->paths,
                 "image files, DICOM files and folders (folders are searched recursively: images by extension, "
                 "DICOM by content)")
      ->required();
  add_model_options(app, o->task.model);
  add_thread_options(app, o->threads);
  app.add_option("--topk,-k", o->task.topk, "classes to print per image")->capture_default_str()->check(CLI::Range(1, 1000));
  app.add_option("--batch,-b", o->task.batch, "images per forward pass")->capture_default_str()->check(CLI::Range(1, 4096));
  app.add_option("--workers", o->workers, "decode threads (0: the cores the model leaves free, at least 1)")->capture_default_str()->check(CLI::Range(0, 256));
  app.add_option("--max-pixels", o->max_pixels, "refuse images with more pixels than this, before decoding")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 40));
  app.add_flag("--json", o->json,
               "one JSON object per input: {path, topk: [{index, label, score}]} (a multi-frame DICOM: {path, frames: "
               "[{frame, topk}]}) or {path, error}");
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
