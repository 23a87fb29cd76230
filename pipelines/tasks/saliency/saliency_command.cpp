// `attnvision saliency`: CT slices (files and folders, several series at once) -> per slice the anomaly model's
// p(lesion), a saliency map on the slice's own grid and the regions it lights in millimetres, printed as text or
// JSON lines, written as raw maps, overlays and DICOM Secondary Captures in the scan's study, and gathered in an
// inspection report (report.html) a clinician opens in a browser. Runs through the batch runner.
#include "pipelines/batch/runner.h"
#include "pipelines/commands/cli_options.h"
#include "pipelines/report/progress.h"
#include "pipelines/tasks/saliency/saliency_task.h"
#include "vision/dicom.h"

#include <CLI/CLI.hpp>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <sstream>

namespace attnvision::pipelines {

namespace {

struct SaliencyCommandOptions {
  std::vector<std::string> paths;
  SaliencyTaskOptions task;
  std::string methods;  // comma-separated
  std::string window = kDefaultSaliencyWindow;
  std::string out = "saliency";
  bool no_outputs = false;
  bool json = false;
  ThreadOptions threads;
  int workers = 0;
};

std::vector<std::string> split_commas(const std::string& text) {
  std::vector<std::string> parts;
  std::stringstream in(text);
  for (std::string part; std::getline(in, part, ',');)
    if (!part.empty()) parts.push_back(part);
  return parts;
}

void print_text(const std::string& path, const nlohmann::json& slice) {
  std::printf("%s", path.c_str());
  if (slice["frame"].get<int>() > 0) std::printf(" [frame %d]", slice["frame"].get<int>());
  std::printf("  %s p(lesion) %.3f%s", slice["method"].get<std::string>().c_str(), slice["score"].get<double>(),
              slice["anomalous"].get<bool>() ? "  ANOMALY" : "");
  const nlohmann::json& regions = slice["regions"];
  if (!regions.empty()) std::printf(", %zu region%s", regions.size(), regions.size() == 1 ? "" : "s");
  std::printf("\n");
  for (size_t i = 0; i < regions.size(); ++i) {
    const nlohmann::json& r = regions[i];
    const auto& box = r["bbox_px"];
    if (!r["diameter_mm"].is_null())
      std::printf("  %zu: %.1f mm across, %.1f mm^2", i + 1, r["diameter_mm"].get<double>(), r["area_mm2"].get<double>());
    else
      std::printf("  %zu: %.0f px across, %lld px (no PixelSpacing)", i + 1, r["diameter_px"].get<double>(),
                  r["area_px"].get<long long>());
    std::printf(" at x %d..%d, y %d..%d", box[0].get<int>(), box[0].get<int>() + box[2].get<int>() - 1, box[1].get<int>(),
                box[1].get<int>() + box[3].get<int>() - 1);
    if (!r["centroid_mm"].is_null())
      std::printf(", centre (%.1f, %.1f, %.1f) mm", r["centroid_mm"][0].get<double>(), r["centroid_mm"][1].get<double>(),
                  r["centroid_mm"][2].get<double>());
    std::printf(", peak %.3g\n", r["peak"].get<double>());
  }
}

// Paths in the JSON are relative to --out; said so once, in the help.
int run_saliency(SaliencyCommandOptions& o) {
  o.task.methods = split_commas(o.methods);
  o.task.write_files = !o.no_outputs;
  std::unique_ptr<InspectionReport> report;
  if (!o.no_outputs) {
    report = std::make_unique<InspectionReport>(ReportInfo{});
    o.task.report = report.get();
    // The display window first, then the other presets a reader of chest and abdomen CT switches between.
    std::vector<std::string> windows = {o.window};
    for (const char* w : {"abdomen", "lung", "bone"})
      if (std::find(windows.begin(), windows.end(), w) == windows.end()) windows.emplace_back(w);
    const auto& presets = vision::window_preset_names();
    windows.erase(std::remove_if(windows.begin(), windows.end(),
                                 [&](const std::string& w) { return std::find(presets.begin(), presets.end(), w) == presets.end(); }),
                  windows.end());
    o.task.report_windows = windows;
  }
  std::unique_ptr<TaskRunner> task = make_saliency_runner(o.task);
  if (report) {
    ReportInfo info;
    info.generated_by = "attnvision saliency";
    for (const std::string& p : o.paths) info.generated_by += " " + p;
    const models::ModelCfg& cfg = task->model_cfg();
    info.model = cfg.name + " (" + (o.task.model.weights.empty() ? std::string("shipped weights") : o.task.model.weights) + ")";
    info.operating_threshold = cfg.ct.operating_threshold;
    report->set_info(info);
  }
  const models::ThreadPlan plan = apply_thread_options(o.threads, task->model());
  vision::BatchInputScan scan = vision::scan_batch_inputs(o.paths);
  // A CT model reads DICOM: images found inside folders (masks, screenshots beside a series) are not inputs;
  // an image named on the command line still is, and is then reported as not a CT slice.
  scan.inputs.erase(std::remove_if(scan.inputs.begin(), scan.inputs.end(),
                                   [&](const vision::BatchInput& in) {
                                     return in.kind != vision::InputKind::kDicom &&
                                            std::find(o.paths.begin(), o.paths.end(), in.path) == o.paths.end();
                                   }),
                    scan.inputs.end());
  size_t failed = 0, slices = 0;
  auto fail_line = [&](const std::string& path, const std::string& error) {
    std::fprintf(stderr, "%s\n", error.c_str());
    if (o.json) std::printf("%s\n", nlohmann::json{{"path", path}, {"error", error}}.dump().c_str());
    ++failed;
  };
  for (const std::string& p : scan.missing) fail_line(p, p + ": no such file or folder");
  if (scan.inputs.empty() && scan.missing.empty()) throw ConfigError("no images or DICOM files found in the given paths");

  RunOptions ro;
  ro.workers = o.workers;
  ro.torch_threads = plan.torch_threads;
  ro.decode.dicom_window = o.window;
  ro.files_dir = o.out;
  ro.task_subfolders = false;
  ro.files_relative_to = o.out;
  Progress progress("saliency", scan.inputs.size());
  run_tasks(scan.inputs, {{&task_named("saliency"), task.get()}}, ro, [&](const InputResult& r) {
    if (!r.ok()) {
      fail_line(r.input->path, r.error);
    } else {
      for (const nlohmann::json& slice : r.outputs["saliency"]["slices"]) {
        ++slices;
        if (o.json) {
          nlohmann::json row = {{"path", r.input->path}};
          row.update(slice);
          std::printf("%s\n", row.dump().c_str());
        } else {
          print_text(r.input->path, slice);
        }
      }
    }
    std::fflush(stdout);
    progress.advance(1, failed);
  });
  progress.finish();
  if (report && report->size() > 0) {
    const std::string path = (std::filesystem::path(o.out) / "report.html").string();
    report->write(path);
    std::fprintf(stderr, "report: %s\n", path.c_str());
  }
  std::fprintf(stderr, "saliency on %zu slices in %.2f s (%.2f slices/s)\n", slices, progress.elapsed_s(),
               slices / std::max(1e-9, progress.elapsed_s()));
  const size_t total = scan.inputs.size() + scan.missing.size();
  if (failed) std::fprintf(stderr, "%zu of %zu inputs failed\n", failed, total);
  return failed ? 1 : 0;
}

}  // namespace

CommandRun define_saliency(CLI::App& app) {
  auto o = std::make_shared<SaliencyCommandOptions>();
  app.add_option("paths", o->paths,
                 "CT DICOM files and folders (folders are searched recursively; DICOM is recognised by content, "
                 "with or without .dcm; several series at once)")
      ->required();
  add_model_options(app, o->task.model);
  add_thread_options(app, o->threads);
  std::string methods;
  for (const std::string& line : models::saliency_method_help()) methods += "\n  " + line;
  app.add_option("--method", o->methods,
                 "saliency method, or several separated by commas (the report switches between them); default: "
                 "the model's own (its config's saliency_method, the best measured under 2 s per slice):" + methods);
  app.add_option("--window", o->window,
                 "display window of the overlays: a preset (lung, mediastinum, abdomen, bone, brain), \"C,W\" in HU, "
                 "or auto (the file's own)")
      ->capture_default_str();
  app.add_option("--out,-o", o->out,
                 "output folder: per slice <input path below its argument>.<method>.map.tiff (the raw map, float32, "
                 "at the slice's rows x columns), .overlay.png and .dcm (an RGB Secondary Capture in the source's "
                 "study, a new series per source series and method), and report.html; JSON paths are relative to it")
      ->capture_default_str();
  app.add_flag("--flip-test", o->task.flip_test,
               "also explain each slice mirrored left to right and average p(lesion) and the maps (the mirror's map "
               "mirrored back): twice the compute, for about a thousandth of slice AUROC on the phantoms");
  app.add_flag("--no-outputs", o->no_outputs, "write no files and no report: scores, peaks and regions only");
  app.add_option("--batch,-b", o->task.batch, "slices per forward pass")->capture_default_str()->check(CLI::Range(1, 1024));
  app.add_option("--workers", o->workers, kWorkersHelp)
      ->capture_default_str()
      ->check(CLI::Range(0, 256));
  app.add_flag("--json", o->json,
               "stdout holds only JSON lines, one per slice (per frame, per method): path, frame, sop_instance_uid, "
               "series_instance_uid, score (p(lesion)), anomalous, method, units (mm, or px without PixelSpacing), "
               "peak_px [x, y], peak, regions [{bbox_px [x, y, w, h], centroid_px, centroid_mm [x, y, z], area_px, "
               "area_mm2, diameter_px, diameter_mm, peak, mean}], map, overlay, dicom; a failed input: {path, error}");
  return [o] { return run_saliency(*o); };
}

}  // namespace attnvision::pipelines
