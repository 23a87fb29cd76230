// `attnvision batch INPUT... --out DIR`: run the config's tasks over files and folders (images and DICOM) into
// DIR: every task's files under DIR/<task>/, one manifest row per input in DIR/manifest.jsonl. A rerun with
// the same command resumes where a killed run stopped.
#include "pipelines/batch/manifest.h"
#include "pipelines/batch/runner.h"
#include "pipelines/commands/cli_options.h"
#include "pipelines/commands/command.h"
#include "pipelines/commands/task_command.h"
#include "pipelines/report/progress.h"
#include "pipelines/tasks/task.h"
#include "vision/files/atomic_write.h"

#include <CLI/CLI.hpp>

#include <cstdio>
#include <filesystem>
#include <memory>

namespace attnvision::pipelines {
namespace {
namespace fs = std::filesystem;

struct BatchOptions {
  std::vector<std::string> inputs;
  std::string out;
  std::string config;
  std::vector<std::string> tasks;
  std::vector<std::string> sets;
  ThreadOptions threads;
  std::string decode;  // --decode, over the config's `decode`
  bool quiet = false;
  bool retry_errors = false;
};

std::string default_config_path() {
  const std::string local = "configs/batch/default.yaml";
  std::error_code ec;
  if (fs::is_regular_file(local, ec)) return local;
  return std::string(ATTNVISION_SOURCE_DIR) + "/" + local;
}

// The batch config's schema: the run's own keys, then one section per task row.
std::vector<KeySpec> batch_schema() {
  std::vector<KeySpec> schema = {
      {"tasks", Kind::kStringList, true, "the tasks to run, in order (e.g. [classify])"},
      {"workers", Kind::kInt, false, kWorkersHelp},
      {"max_pixels", Kind::kInt, false, "refuse images with more pixels than this, before decoding"},
      {"dicom_window", Kind::kString, false, "DICOM window: auto | lung | mediastinum | bone | brain | abdomen | minmax | C,W"},
      {"precision", Kind::kString, false, "fp32 | bf16 for every task whose section sets none"},
      {"decode", Kind::kString, false, "exact | fast: how JPEGs are decoded (attnvision batch --help)"},
  };
  for (const TaskRow& row : task_table()) {
    schema.push_back({row.name, Kind::kObject, false, row.summary});
    for (const KeySpec& key : row.section_schema())
      schema.push_back({std::string(row.name) + "." + key.path, key.kind, key.required, key.help});
  }
  return schema;
}

struct Config {
  ConfigDoc doc;
  std::vector<std::string> tasks;
  int workers = 0;
  int64_t max_pixels = 200'000'000;
  std::string dicom_window = "auto";
  std::string decode = "exact";
};

Config load_config(const BatchOptions& o) {
  Config c;
  c.doc = load_yaml_file(o.config.empty() ? default_config_path() : o.config);
  for (const std::string& s : o.sets) apply_set(c.doc, s);
  if (!o.tasks.empty()) {
    c.doc.root["tasks"] = o.tasks;
    c.doc.lines["tasks"] = 0;
  }
  if (!o.decode.empty()) {
    c.doc.root["decode"] = o.decode;
    c.doc.lines["decode"] = 0;
  }
  validate(c.doc, batch_schema());
  const nlohmann::json& j = c.doc.root;
  take(j, "tasks", c.tasks);
  take(j, "workers", c.workers);
  take(j, "max_pixels", c.max_pixels);
  take(j, "dicom_window", c.dicom_window);
  take(j, "decode", c.decode);
  if (c.decode != "exact" && c.decode != "fast")
    throw ConfigError(c.doc.where("decode") + ": 'decode' must be exact or fast, not '" + c.decode + "'");
  if (c.tasks.empty()) throw ConfigError(c.doc.where("tasks") + ": 'tasks' names no task");
  for (const std::string& t : c.tasks) {
    try {
      task_named(t);
    } catch (const std::invalid_argument& e) {
      throw ConfigError(c.doc.where("tasks") + ": " + e.what());
    }
  }
  if (c.workers < 0 || c.workers > 256) throw ConfigError(c.doc.where("workers") + ": 'workers' must be in 0..256");
  if (c.max_pixels < 1) throw ConfigError(c.doc.where("max_pixels") + ": 'max_pixels' must be positive");
  return c;
}

nlohmann::ordered_json row_for(const InputResult& r) {
  nlohmann::ordered_json row = {{"path", r.input->path}, {"kind", vision::to_string(r.input->kind)},
                                {"status", r.ok() ? "ok" : "error"}, {"outputs", nlohmann::ordered_json(r.outputs)}};
  if (r.input->kind == vision::InputKind::kDicom && r.ok()) row["frames"] = r.frames;
  if (!r.ok()) row["error"] = r.error;
  return row;
}

int run_batch(const BatchOptions& o) {
  const Config cfg = load_config(o);
  // Every task's network is loaded (and its options checked) before any input is touched.
  std::vector<std::unique_ptr<TaskRunner>> runners;
  std::vector<TaskInRun> tasks;
  for (const std::string& name : cfg.tasks) {
    const TaskRow& row = task_named(name);
    ConfigDoc section = cfg.doc.subtree(name);
    // The run's precision reaches every task that does not choose its own.
    if (cfg.doc.root.contains("precision") && !section.root.contains("precision")) {
      if (!section.root.is_object()) section.root = nlohmann::json::object();
      section.root["precision"] = cfg.doc.root["precision"];
      if (auto line = cfg.doc.lines.find("precision"); line != cfg.doc.lines.end()) section.lines["precision"] = line->second;
    }
    runners.push_back(row.make_runner(section));
    tasks.push_back({&row, runners.back().get()});
  }
  const models::ThreadPlan plan = apply_thread_options(o.threads, runners.front()->model());

  fs::create_directories(o.out);
  const size_t stale = vision::remove_temporaries(o.out);
  Manifest manifest((fs::path(o.out) / "manifest.jsonl").string());
  if (o.retry_errors) manifest.drop_errors();

  const vision::BatchInputScan scan = vision::scan_batch_inputs(o.inputs);
  for (const std::string& p : scan.missing) {
    if (manifest.has(p)) continue;
    const bool dcm = vision::has_dicom_extension(p);
    manifest.append({{"path", p}, {"kind", dcm ? "dicom" : "image"}, {"status", "error"},
                     {"outputs", nlohmann::json::object()}, {"error", p + ": no such file or folder"}});
  }
  std::vector<vision::BatchInput> pending;
  for (const vision::BatchInput& in : scan.inputs)
    if (!manifest.has(in.path)) pending.push_back(in);
  if (scan.inputs.empty() && scan.missing.empty()) throw ConfigError("no images or DICOM files found in the given paths");
  if (!o.quiet) {
    std::fprintf(stderr, "batch: %zu inputs, %zu to run (%zu done before)%s; tasks:", scan.inputs.size(), pending.size(),
                 scan.inputs.size() - pending.size(),
                 stale ? (", removed " + std::to_string(stale) + " temporaries of a killed run").c_str() : "");
    for (const std::string& t : cfg.tasks) std::fprintf(stderr, " %s", t.c_str());
    std::fprintf(stderr, "\n");
  }

  RunOptions ro;
  ro.workers = cfg.workers;
  ro.torch_threads = plan.torch_threads;
  ro.decode.image.max_pixels = cfg.max_pixels;
  ro.decode.dicom_window = cfg.dicom_window;
  ro.decode.fast_jpeg = cfg.decode == "fast";
  ro.files_dir = o.out;
  ro.files_relative_to = o.out;
  Progress progress("batch", pending.size(), o.quiet ? Progress::Mode::kSilent : Progress::Mode::kAuto);
  size_t failed = 0;
  run_tasks(pending, tasks, ro, [&](const InputResult& r) {
    manifest.append(row_for(r));
    if (!r.ok()) {
      ++failed;
      if (!o.quiet) std::fprintf(stderr, "%s\n", r.error.c_str());
    }
    progress.advance(1, failed);
  });
  progress.finish();
  if (!o.quiet)
    std::fprintf(stderr, "batch: ran %zu inputs in %.2f s (%.2f inputs/s), %zu failed; manifest %s: %zu rows, %zu errors\n",
                 pending.size(), progress.elapsed_s(), pending.size() / std::max(1e-9, progress.elapsed_s()), failed,
                 manifest.path().c_str(), manifest.rows(), manifest.errors());
  return manifest.errors() ? 1 : 0;
}

}  // namespace

CommandRun define_batch(CLI::App& app) {
  auto o = std::make_shared<BatchOptions>();
  app.add_option("inputs", o->inputs,
                 "image files, DICOM files and folders (searched recursively: images by extension, DICOM by content)")
      ->required();
  app.add_option("--out,-o", o->out, "output folder: manifest.jsonl and one sub-folder per task")->required();
  app.add_option("--config,-c", o->config, "batch config YAML (default: configs/batch/default.yaml)");
  app.add_option("--tasks", o->tasks, "tasks to run, overriding the config's list (comma-separated)")->delimiter(',');
  app.add_option("--set", o->sets, "override a config key, e.g. --set classify.weights=FILE (repeatable)");
  add_thread_options(app, o->threads);
  app.add_option("--decode", o->decode, std::string(kDecodeHelp) + " (overrides the config's `decode`)")
      ->check(CLI::IsMember({"exact", "fast"}));
  app.add_flag("--quiet,-q", o->quiet, "no progress and no summary on stderr (errors still reach the manifest)");
  app.add_flag("--retry-errors", o->retry_errors, "run again the inputs whose manifest row is an error");
  std::string tasks;
  for (const TaskRow& row : task_table()) tasks += std::string(tasks.empty() ? "" : ", ") + row.name;
  app.footer("Tasks: " + tasks +
             ". Each input gets exactly one row in DIR/manifest.jsonl: {path, kind (image|dicom), status (ok|error), "
             "outputs: {task: ...}, error}. Files a task writes go to DIR/<task>/<input path below its argument>.<suffix> "
             "and are listed in its output, relative to DIR. A rerun of the same command skips inputs that have a row "
             "(errors too, unless --retry-errors). Exit status 1 when any row of the manifest is an error.");
  return [o] { return run_batch(*o); };
}

}  // namespace attnvision::pipelines
