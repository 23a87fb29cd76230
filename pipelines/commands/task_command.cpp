#include "pipelines/commands/task_command.h"

#include "datasets/coco.h"
#include "pipelines/config.h"
#include "pipelines/report/progress.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <filesystem>

namespace attnvision::pipelines {

const char* const kDecodeHelp =
    "exact: JPEGs decoded in full, the model input bit-exact with Pillow + timm's transform (default); fast: "
    "a large JPEG decoded by libjpeg at 1/2, 1/4 or 1/8 scale, never below the model's resize, about twice as "
    "fast to decode and not bit-exact (top-1 agreement in the README); runs that draw overlays decode exactly";

void add_input_options(CLI::App& app, InputOptions& o, const std::string& json_help) {
  app.add_option("paths", o.paths,
                 "image files, DICOM files and folders (folders are searched recursively: images by extension, "
                 "DICOM by content)")
      ->required();
  add_thread_options(app, o.threads);
  app.add_option("--workers", o.workers, kWorkersHelp)
      ->capture_default_str()
      ->check(CLI::Range(0, 256));
  app.add_option("--max-pixels", o.max_pixels, "refuse images with more pixels than this, before decoding")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 40));
  app.add_option("--decode", o.decode, kDecodeHelp)->capture_default_str()->check(CLI::IsMember({"exact", "fast"}));
  app.add_flag("--json", o.json, json_help);
}

void print_input_error(const InputOptions& o, const std::string& path, const std::string& error) {
  std::fprintf(stderr, "%s\n", error.rfind(path, 0) == 0 ? error.c_str() : (path + ": " + error).c_str());
  if (o.json) std::printf("%s\n", nlohmann::json{{"path", path}, {"error", error}}.dump().c_str());
}

size_t run_task_command(const char* task, TaskRunner& runner, const InputOptions& o, const std::string& files_dir,
                        const char* verb, const std::function<bool(const InputResult&)>& handle) {
  const models::ThreadPlan plan = apply_thread_options(o.threads, runner.model());
  const vision::BatchInputScan scan = vision::scan_batch_inputs(o.paths);
  size_t failed = 0;
  for (const std::string& p : scan.missing) {
    print_input_error(o, p, "no such file or folder");
    ++failed;
  }
  if (scan.inputs.empty() && scan.missing.empty()) throw ConfigError("no images found in the given paths");

  RunOptions ro;
  ro.workers = o.workers;
  ro.torch_threads = plan.torch_threads;
  ro.decode.image.max_pixels = o.max_pixels;
  ro.decode.fast_jpeg = o.decode == "fast";
  ro.files_dir = files_dir;
  ro.task_subfolders = false;
  Progress progress(task, scan.inputs.size());
  run_tasks(scan.inputs, {{&task_named(task), &runner}}, ro, [&](const InputResult& r) {
    if (!r.ok()) print_input_error(o, r.input->path, r.error);
    if (handle(r)) ++failed;
    std::fflush(stdout);
    progress.advance(1, failed);
  });
  progress.finish();
  const size_t total = scan.inputs.size() + scan.missing.size();
  std::fprintf(stderr, "%s %zu images in %.2f s (%.2f images/s)\n", verb, total - failed, progress.elapsed_s(),
               (total - failed) / std::max(1e-9, progress.elapsed_s()));
  if (failed) std::fprintf(stderr, "%zu of %zu inputs failed\n", failed, total);
  return failed;
}

CocoImageIds::CocoImageIds(const std::string& coco_images, const std::string& results)
    : coco_images_(coco_images), results_(results) {
  if (results.empty() != coco_images.empty())
    throw ConfigError("--results and --coco-images go together: the image ids of a results file come from the "
                      "COCO images list");
  if (coco_images.empty()) return;
  for (const datasets::CocoImage& im : datasets::read_coco_instances(coco_images, datasets::CocoContent::kImagesOnly).images)
    if (!ids_.emplace(im.file_name, im.id).second)
      throw ConfigError(coco_images + ": file_name '" + im.file_name + "' is listed twice; inputs are matched by name");
}

std::optional<int64_t> CocoImageIds::of(const InputResult& r, const char* task, const char* key) {
  const std::string name = std::filesystem::path(r.input->path).filename().string();
  const auto id = ids_.find(name);
  if (id == ids_.end()) {
    std::fprintf(stderr, "%s: '%s' is not among the images of %s; left out of the results\n", r.input->path.c_str(),
                 name.c_str(), coco_images_.c_str());
    ++unmatched_;
    return std::nullopt;
  }
  if (!r.outputs[task].contains(key)) {
    std::fprintf(stderr, "%s: a multi-frame input is not one COCO image; left out of the results\n",
                 r.input->path.c_str());
    ++unmatched_;
    return std::nullopt;
  }
  return id->second;
}

size_t CocoImageIds::report(size_t written, const char* what) const {
  if (wanted()) std::fprintf(stderr, "wrote %zu %s to %s\n", written, what, results_.c_str());
  if (unmatched_) std::fprintf(stderr, "%zu inputs had no COCO image id\n", unmatched_);
  return unmatched_;
}

}  // namespace attnvision::pipelines
