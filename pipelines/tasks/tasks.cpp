#include "pipelines/tasks/task.h"

#include <stdexcept>
#include <utility>

namespace attnvision::pipelines {

const TaskRow& classify_task();  // pipelines/tasks/classify/
const TaskRow& detect_task();    // pipelines/tasks/detect/
const TaskRow& saliency_task();  // pipelines/tasks/saliency/
const TaskRow& caption_task();   // pipelines/tasks/caption/

const std::vector<TaskRow>& task_table() {
  static const std::vector<TaskRow> table = {classify_task(), detect_task(), saliency_task(), caption_task()};
  return table;
}

namespace {

std::string known_tasks() {
  std::string known;
  for (const TaskRow& row : task_table()) known += (known.empty() ? "" : ", ") + std::string(row.name);
  return known;
}

}  // namespace

std::string add_frame_entry(TaskOutput& out, const datasets::Sample& sample, int frame, nlohmann::json entry) {
  out.json["width"] = sample.width;
  out.json["height"] = sample.height;
  if (sample.frames <= 1) {
    out.json.update(entry);
    return "";
  }
  entry["frame"] = frame;
  out.json["frames"].push_back(std::move(entry));
  return ".frame" + std::to_string(frame);
}

const TaskRow& task_named(const std::string& name) {
  for (const TaskRow& row : task_table())
    if (name == row.name) return row;
  throw std::invalid_argument("unknown task '" + name + "' (known: " + known_tasks() + ")");
}

std::vector<KeySpec> section_schema_with_model_keys(const std::string& shipped, std::vector<KeySpec> own) {
  std::vector<KeySpec> schema = {
      {"model", Kind::kString, false, "registered model name or model YAML (default: " + shipped + ")"},
      {"weights", Kind::kString, false, "weights file (our checkpoint carries its config)"},
      {"set", Kind::kStringList, false, "model config overrides, e.g. [num_classes=10]"},
      {"labels", Kind::kString, false, "class names file, one per line"},
      {"random_init", Kind::kBool, false, "run untrained weights on purpose (benchmarks)"},
      {"batch", Kind::kInt, false, "images per forward pass"},
      {"precision", Kind::kString, false, "fp32 | bf16 (bfloat16 through oneDNN where the CPU has AVX512-BF16)"},
  };
  for (KeySpec& k : own) schema.push_back(std::move(k));
  return schema;
}

void take_model_keys(const ConfigDoc& section, ModelChoice& choice, int64_t& batch) {
  const nlohmann::json& j = section.root;
  take(j, "model", choice.model);
  take(j, "weights", choice.weights);
  take(j, "set", choice.sets);
  take(j, "labels", choice.labels_file);
  take(j, "random_init", choice.random_init);
  take(j, "batch", batch);
  std::string precision = models::to_string(choice.precision);
  take(j, "precision", precision);
  try {
    choice.precision = models::parse_precision(precision);
  } catch (const std::invalid_argument& e) {
    throw ConfigError(section.where("precision") + ": " + e.what());
  }
}

LoadedModel load_task_model(ModelChoice choice, const TaskRow& task) {
  choice.shipped_task = task.model_task;
  LoadedModel m = load_model(choice);
  if (m.cfg.task != task.model_task)
    throw ConfigError(std::string(task.name) + ": the model '" + m.cfg.name + "' is built for " + m.cfg.task +
                      ", not " + task.model_task + " (its config's `task`)");
  return m;
}

const TaskRow& task_for_model(const std::string& model_task) {
  for (const TaskRow& row : task_table())
    if (model_task == row.model_task) return row;
  throw std::invalid_argument("no task runs models with task '" + model_task + "' (tasks: " + known_tasks() + ")");
}

}  // namespace attnvision::pipelines
