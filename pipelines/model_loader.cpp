#include "pipelines/model_loader.h"

#include "models/registry.h"
#include "models/weights/weights.h"
#include "pipelines/labels.h"

#include <cstdio>
#include <cstdlib>


namespace attnvision::pipelines {
using nlohmann::json;

namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

bool is_yaml_path(const std::string& s) { return ends_with(s, ".yaml") || ends_with(s, ".yml"); }

std::vector<std::string> label_names(const models::ModelCfg& cfg) {
  if (!cfg.labels.empty()) return cfg.labels;
  if (cfg.num_classes == 1000) return imagenet_labels();
  std::vector<std::string> names;
  for (int64_t i = 0; i < cfg.num_classes; ++i) names.push_back(std::to_string(i));
  return names;
}

}  // namespace

namespace {

Kind kind_of(const models::CfgField& f) {
  models::ModelCfg probe;
  const models::CfgFieldRef ref = f.ref(probe);
  // The variant's alternatives in order: string, int64, double, bool, int list, number list, string list.
  static const Kind kinds[] = {Kind::kString,  Kind::kInt,        Kind::kNumber,    Kind::kBool,
                               Kind::kIntList, Kind::kNumberList, Kind::kStringList};
  return kinds[ref.index()];
}

// Sets a ModelCfg field from a validated YAML value of its kind.
void take_field(const nlohmann::json& root, const models::CfgField& f, models::ModelCfg& cfg) {
  std::visit([&](auto* out) { take(root, f.key, *out); }, f.ref(cfg));
}

}  // namespace

const std::vector<KeySpec>& model_yaml_schema() {
  static const std::vector<KeySpec> schema = [] {
    std::vector<KeySpec> keys{{"base", Kind::kString, false, "registered model whose defaults this file overrides"}};
    for (const models::CfgField& f : models::model_cfg_fields())
      keys.push_back({f.key, kind_of(f), false, *f.section ? std::string(f.section) + ": " + f.help : f.help});
    keys.push_back({"labels_file", Kind::kString, false, "file with one class name per line"});
    return keys;
  }();
  return schema;
}

models::ModelCfg model_cfg_from_doc(const ConfigDoc& doc, models::ModelCfg cfg) {
  validate(doc, model_yaml_schema());
  const json& j = doc.root;
  if (j.contains("base")) cfg = models::default_cfg(j.at("base").get<std::string>());
  const int64_t old_chans = cfg.in_chans;
  for (const models::CfgField& f : models::model_cfg_fields()) take_field(j, f, cfg);
  // Keys that imply others when those are not given:
  if (cfg.in_chans != old_chans && !j.contains("input_size")) {
    // A gray model keeps its spatial size; mean/std fall back to the average of the RGB values.
    cfg.input_size[0] = cfg.in_chans;
    if (!j.contains("mean")) cfg.mean.assign(cfg.in_chans, cfg.in_chans == 1 ? 0.5 : cfg.mean[0]);
    if (!j.contains("std")) cfg.std.assign(cfg.in_chans, cfg.in_chans == 1 ? 0.5 : cfg.std[0]);
  }
  if (cfg.arch == "vit" && j.contains("img_size") && !j.contains("input_size"))
    cfg.input_size = {cfg.in_chans, cfg.vit.img_size, cfg.vit.img_size};
  if (j.contains("num_classes") && !j.contains("labels")) cfg.labels.clear();
  if (j.contains("labels_file")) cfg.labels = read_labels_file(j.at("labels_file").get<std::string>());
  if (cfg.name.empty()) cfg.name = doc.source;
  try {
    cfg.validate();
  } catch (const std::invalid_argument& e) {
    throw ConfigError(doc.source + ": " + e.what());
  }
  return cfg;
}

namespace {

models::ModelCfg resolve(const ModelChoice& choice, const models::TensorFile* weights) {
  ConfigDoc doc;
  models::ModelCfg base;
  bool have_base = false;
  if (!choice.model.empty()) {
    if (is_yaml_path(choice.model)) {
      doc = load_yaml_file(choice.model);
    } else {
      base = models::default_cfg(choice.model);
      have_base = true;
      doc.source = choice.model;
    }
  } else if (weights && models::read_checkpoint_cfg(*weights, base)) {
    have_base = true;
    doc.source = choice.weights;
  } else if (!choice.weights.empty()) {
    throw ConfigError(choice.weights + ": carries no model config (a timm or torchvision checkpoint); name the "
                      "architecture with --model NAME or --model FILE.yaml");
  } else {
    throw ConfigError("no model given: use --model NAME|FILE.yaml and --weights FILE (`attnvision models` lists names)");
  }
  for (const std::string& s : choice.sets) apply_set(doc, s);
  models::ModelCfg cfg = model_cfg_from_doc(doc, have_base ? base : models::ModelCfg{});
  if (!choice.labels_file.empty()) {
    cfg.labels = read_labels_file(choice.labels_file);
    if (static_cast<int64_t>(cfg.labels.size()) != cfg.num_classes)
      throw ConfigError(choice.labels_file + ": " + std::to_string(cfg.labels.size()) + " labels for a model with " +
                        std::to_string(cfg.num_classes) + " classes");
  }
  return cfg;
}

}  // namespace

std::string default_weights_path(const std::string& task) {
  struct Shipped {
    const char* task;
    const char* env;
    const char* file;
  };
  static const Shipped shipped[] = {
      {"classification", "ATTNVISION_DEFAULT_WEIGHTS", "fmnist_resnet.safetensors"},
      {"detection", "ATTNVISION_DEFAULT_DETECTOR", "scenes_detector.safetensors"},
      {"anomaly", "ATTNVISION_DEFAULT_ANOMALY_MODEL", "phantom_anomaly.safetensors"},
      {"captioning", "ATTNVISION_DEFAULT_CAPTIONER", "scenes_captioner.safetensors"},
  };
  for (const Shipped& s : shipped) {
    if (task != s.task) continue;
    if (const char* env = std::getenv(s.env); env && *env) return env;
    return std::string(ATTNVISION_SOURCE_DIR) + "/models/pretrained/" + s.file;
  }
  throw std::invalid_argument("no shipped model for task '" + task + "': pass --model or --weights");
}

namespace {

// The network `choice` describes, with `file` its weights (nullptr: choice.random_init).
LoadedModel build_loaded(const ModelChoice& choice, const models::TensorFile* file) {
  LoadedModel m;
  m.cfg = resolve(choice, file);
  // load_state_dict replaces every parameter and buffer or fails, so weights make random ones moot.
  m.net = models::build_model(m.cfg, file ? models::Initialisation::kNone : models::Initialisation::kRandom);
  if (file) {
    models::load_state_dict(*m.net, file->tensors, file->path);
    m.parts = file->parts;
  }
  if (choice.prepare_for_inference) {
    std::string note;
    m.precision = models::inference_precision(choice.precision, note);
    // Said once per process: a batch loads one network per task.
    static bool said = false;
    if (!note.empty() && !said) std::fprintf(stderr, "%s\n", note.c_str());
    said = said || !note.empty();
    m.net->prepare_for_inference(m.precision);
  } else {
    m.net->eval();
  }
  m.labels = label_names(m.cfg);
  return m;
}

}  // namespace

LoadedModel load_model(const ModelChoice& given) {
  ModelChoice choice = given;
  // Neither a model nor weights: the model the project ships for the task (it carries its own config).
  if (choice.model.empty() && choice.weights.empty() && !choice.random_init)
    choice.weights = default_weights_path(choice.shipped_task);
  if (choice.weights.empty()) {
    if (!choice.random_init)
      throw ConfigError("no --weights given (pass --random-init to run with untrained weights on purpose)");
    return build_loaded(choice, nullptr);
  }
  const models::TensorFile file = models::read_weights(choice.weights);
  return build_loaded(choice, &file);
}

LoadedModel load_part(const models::TensorFile& part, const ModelChoice& like) {
  ModelChoice choice;
  choice.weights = part.path;  // named in messages only: the tensors come from `part`
  choice.precision = like.precision;
  choice.prepare_for_inference = like.prepare_for_inference;
  return build_loaded(choice, &part);
}

}  // namespace attnvision::pipelines
