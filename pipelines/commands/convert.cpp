// `attnvision convert`: any checkpoint the loader reads (ours, or timm / torchvision weights with --model)
// rewritten as our own checkpoint, so that `--weights FILE` alone runs it from then on; `--dtype float16`
// halves a file that is shipped or sent around, `--dtype int8` quarters its weight matrices (the loader widens
// both back to float32).
#include "models/registry.h"
#include "models/weights/weights.h"
#include "pipelines/commands/cli_options.h"
#include "pipelines/commands/command.h"
#include "pipelines/model_loader.h"
#include "pipelines/tasks/detect/crop_classifier.h"

#include <CLI/CLI.hpp>
#include <torch/torch.h>

#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <utility>
#include <vector>

namespace attnvision::pipelines {

namespace {

struct ConvertOptions {
  ModelChoice model;
  std::string out;
  std::string dtype = "float32";
  std::string second_stage;  // a detector's crop classifier to store inside it; "none" drops the one it carries
};

// The networks the written file carries beside `m`'s own: those its checkpoint carried, with the second stage
// added, replaced or dropped as --second-stage asks.
std::vector<std::pair<std::string, LoadedModel>> parts_to_write(const ConvertOptions& o, const LoadedModel& m,
                                                                const ModelChoice& choice) {
  std::vector<std::pair<std::string, LoadedModel>> parts;
  for (const models::TensorFile& part : m.parts)
    if (o.second_stage.empty() || part.part != kSecondStagePart) parts.emplace_back(part.part, load_part(part, choice));
  if (o.second_stage.empty() || o.second_stage == "none") return parts;
  if (m.cfg.task != "detection")
    throw ConfigError("convert: --second-stage is a detector's, and " + m.cfg.name + " is a " + m.cfg.task + " model");
  ModelChoice classifier;  // our checkpoint alone, in its trained form as the detector is stored
  classifier.weights = o.second_stage;
  classifier.prepare_for_inference = false;
  LoadedModel c = load_model(classifier);
  check_second_stage(c, o.second_stage, m);
  parts.emplace_back(kSecondStagePart, std::move(c));
  return parts;
}

int run_convert(const ConvertOptions& o) {
  if (o.model.weights.empty() && !o.model.random_init)
    throw ConfigError("convert: --weights FILE is required (the checkpoint to convert), or --model with --random-init "
                      "for freshly initialised weights");
  static const std::map<std::string, torch::ScalarType> dtypes = {
      {"float32", torch::kFloat32}, {"float16", torch::kFloat16}, {"bfloat16", torch::kBFloat16}, {"int8", torch::kChar}};
  ModelChoice choice = o.model;
  choice.prepare_for_inference = false;  // store the trained form, BatchNorm unfolded, as the trainer does
  const LoadedModel m = load_model(choice);
  models::ModelCfg cfg = m.cfg;
  cfg.labels = m.labels;  // names given by --labels or defaulted travel with the file
  std::vector<std::pair<std::string, LoadedModel>> parts = parts_to_write(o, m, choice);
  std::vector<models::CheckpointPart> stored;
  std::string carried;
  for (auto& [name, part] : parts) {
    models::ModelCfg part_cfg = part.cfg;
    part_cfg.labels = part.labels;
    stored.push_back({name, part.net.get(), part_cfg});
    carried += ", with " + name + " (" + part_cfg.name + ", " +
               std::to_string(models::count_parameters(*part.net)) + " parameters)";
  }
  models::save_checkpoint(o.out, *m.net, cfg, dtypes.at(o.dtype), stored);
  std::printf("wrote %s: %s, task %s, %lld parameters%s, stored as %s, %.2f MB\n", o.out.c_str(), cfg.name.c_str(),
              cfg.task.c_str(), static_cast<long long>(models::count_parameters(*m.net)), carried.c_str(),
              o.dtype.c_str(), static_cast<double>(std::filesystem::file_size(o.out)) / 1e6);
  return 0;
}

}  // namespace

CommandRun define_convert(CLI::App& app) {
  auto o = std::make_shared<ConvertOptions>();
  add_model_options(app, o->model, /*inference=*/false);
  app.add_option("--out,-o", o->out, "the checkpoint to write (safetensors with the model config in its metadata)")
      ->required();
  app.add_option("--dtype", o->dtype, "storage type of floating tensors")
      ->capture_default_str()
      ->check(CLI::IsMember({"float32", "float16", "bfloat16", "int8"}));
  app.add_option("--second-stage", o->second_stage,
                 "for a detector: store this crop classifier (`attnvision train configs/train/scenes_crop_classifier.yaml`) "
                 "inside it as its second stage, so that `detect --weights OUT` runs both; none: drop the one it "
                 "carries (default: keep what the file carries)");
  app.footer(
      "Loads --weights as every command does (our checkpoint alone, or a timm/torchvision state_dict with "
      "--model NAME|FILE.yaml), checks every tensor against the architecture, and writes one self-describing "
      "checkpoint: `--weights OUT` alone runs it afterwards. float16 storage halves the file; float32 "
      "computation is unchanged, the weights round to 11 significant bits. int8 stores each weight matrix as "
      "int8 rows with a float32 scale per row (a quarter of float32; biases and norms float16), widened back to "
      "float32 when read: each weight moves by at most half a step of its row's largest magnitude / 127. "
      "--model with --random-init writes freshly initialised weights instead: one fixed set of untrained weights "
      "that several runs (tests, benchmarks) can share, where each --random-init run draws its own.");
  return [o] { return run_convert(*o); };
}

}  // namespace attnvision::pipelines
