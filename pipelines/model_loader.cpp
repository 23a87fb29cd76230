#include "pipelines/model_loader.h"

#include "models/registry.h"
#include "models/weights/weights.h"
#include "pipelines/labels.h"

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

const std::vector<KeySpec>& model_yaml_schema() {
  static const std::vector<KeySpec> schema = {
      {"name", Kind::kString, false, "a name for the model"},
      {"base", Kind::kString, false, "registered model whose defaults this file overrides"},
      {"arch", Kind::kString, false, "resnet | vit"},
      {"task", Kind::kString, false, "classification"},
      {"block", Kind::kString, false, "resnet: basic | bottleneck"},
      {"layers", Kind::kIntList, false, "resnet: blocks per stage, 4 values"},
      {"channels", Kind::kIntList, false, "resnet: stage widths, 4 values"},
      {"attn", Kind::kString, false, "resnet: none | se | eca | cbam"},
      {"stem_type", Kind::kString, false, "resnet: '' | deep | deep_tiered | cifar (small inputs)"},
      {"stem_width", Kind::kInt, false, "resnet: deep stem width"},
      {"avg_down", Kind::kBool, false, "resnet: avg-pool downsampling"},
      {"img_size", Kind::kInt, false, "vit: training image size"},
      {"patch_size", Kind::kInt, false, "vit: patch size"},
      {"embed_dim", Kind::kInt, false, "vit: token width"},
      {"depth", Kind::kInt, false, "vit: number of blocks"},
      {"num_heads", Kind::kInt, false, "vit: attention heads"},
      {"mlp_ratio", Kind::kNumber, false, "vit: MLP width / embed_dim"},
      {"qkv_bias", Kind::kBool, false, "vit: bias on the qkv projection"},
      {"in_chans", Kind::kInt, false, "input channels"},
      {"num_classes", Kind::kInt, false, "classifier outputs (0: no classifier)"},
      {"input_size", Kind::kIntList, false, "[C, H, W] the model is fed"},
      {"crop_pct", Kind::kNumber, false, "centre-crop fraction of the resized image"},
      {"interpolation", Kind::kString, false, "bilinear | bicubic | nearest"},
      {"mean", Kind::kNumberList, false, "per-channel normalisation mean"},
      {"std", Kind::kNumberList, false, "per-channel normalisation std"},
      {"labels", Kind::kStringList, false, "class names, num_classes of them"},
      {"labels_file", Kind::kString, false, "file with one class name per line"},
  };
  return schema;
}

models::ModelCfg model_cfg_from_doc(const ConfigDoc& doc, models::ModelCfg cfg) {
  validate(doc, model_yaml_schema());
  const json& j = doc.root;
  if (j.contains("base")) cfg = models::default_cfg(j.at("base").get<std::string>());
  take(j, "name", cfg.name);
  take(j, "arch", cfg.arch);
  take(j, "task", cfg.task);
  take(j, "block", cfg.resnet.block);
  take(j, "layers", cfg.resnet.layers);
  take(j, "channels", cfg.resnet.channels);
  take(j, "attn", cfg.resnet.attn);
  take(j, "stem_type", cfg.resnet.stem_type);
  take(j, "stem_width", cfg.resnet.stem_width);
  take(j, "avg_down", cfg.resnet.avg_down);
  take(j, "img_size", cfg.vit.img_size);
  take(j, "patch_size", cfg.vit.patch_size);
  take(j, "embed_dim", cfg.vit.embed_dim);
  take(j, "depth", cfg.vit.depth);
  take(j, "num_heads", cfg.vit.num_heads);
  take(j, "mlp_ratio", cfg.vit.mlp_ratio);
  take(j, "qkv_bias", cfg.vit.qkv_bias);
  const int64_t old_chans = cfg.in_chans;
  take(j, "in_chans", cfg.in_chans);
  take(j, "num_classes", cfg.num_classes);
  if (cfg.in_chans != old_chans && !j.contains("input_size")) {
    // A gray model keeps its spatial size; mean/std fall back to the average of the RGB values.
    cfg.input_size[0] = cfg.in_chans;
    if (!j.contains("mean")) cfg.mean.assign(cfg.in_chans, cfg.in_chans == 1 ? 0.5 : cfg.mean[0]);
    if (!j.contains("std")) cfg.std.assign(cfg.in_chans, cfg.in_chans == 1 ? 0.5 : cfg.std[0]);
  }
  if (cfg.arch == "vit" && j.contains("img_size") && !j.contains("input_size"))
    cfg.input_size = {cfg.in_chans, cfg.vit.img_size, cfg.vit.img_size};
  take(j, "input_size", cfg.input_size);
  take(j, "crop_pct", cfg.crop_pct);
  take(j, "interpolation", cfg.interpolation);
  take(j, "mean", cfg.mean);
  take(j, "std", cfg.std);
  if (j.contains("num_classes") && !j.contains("labels")) cfg.labels.clear();
  take(j, "labels", cfg.labels);
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

std::string default_weights_path() {
  if (const char* env = std::getenv("ATTNVISION_DEFAULT_WEIGHTS"); env && *env) return env;
  return std::string(ATTNVISION_SOURCE_DIR) + "/models/pretrained/fmnist_resnet.safetensors";
}

LoadedModel load_model(const ModelChoice& given) {
  ModelChoice choice = given;
  // Neither a model nor weights: the classifier the project ships (it carries its own config).
  if (choice.model.empty() && choice.weights.empty() && !choice.random_init) choice.weights = default_weights_path();
  LoadedModel m;
  models::TensorFile file;
  if (!choice.weights.empty()) file = models::read_weights(choice.weights);
  else if (!choice.random_init)
    throw ConfigError("no --weights given (pass --random-init to run with untrained weights on purpose)");
  m.cfg = resolve(choice, choice.weights.empty() ? nullptr : &file);
  m.net = models::build_model(m.cfg);
  if (!choice.weights.empty()) models::load_state_dict(*m.net, file.tensors, choice.weights);
  m.net->eval();
  m.labels = label_names(m.cfg);
  return m;
}

}  // namespace attnvision::pipelines
