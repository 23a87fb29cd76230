#include "pipelines/train/train_config.h"

#include "pipelines/model_loader.h"

namespace attnvision::pipelines {
using nlohmann::json;

namespace {

void check(bool ok, const ConfigDoc& doc, const std::string& key, const std::string& problem) {
  if (!ok) throw ConfigError(doc.where(key) + ": '" + key + "' " + problem);
}

}  // namespace

const std::vector<KeySpec>& train_yaml_schema() {
  static const std::vector<KeySpec> schema = {
      {"model", Kind::kObject, true, "the model: a model YAML mapping (arch, layers, attn, ... or base: NAME)"},
      {"data", Kind::kObject, false, "where the images come from"},
      {"data.train", Kind::kString, false, "a classifier: fashion-mnist:train or a folder with one sub-folder per class; a detector: a scenes folder"},
      {"data.test", Kind::kString, false, "evaluated with the best checkpoint at the end (fashion-mnist:test, a class folder or a scenes folder)"},
      {"data.val_count", Kind::kInt, false, "images held out of data.train for validation (fixed-seed split)"},
      {"data.limit", Kind::kInt, false, "use only the first N training images (0: all)"},
      {"augment", Kind::kObject, false, "training augmentation"},
      {"augment.crop_padding", Kind::kInt, false, "random crop from the image zero-padded by this many pixels"},
      {"augment.crop_size", Kind::kInt, false, "side of the random crop (a square patch of the input; 0: the input's size)"},
      {"augment.foreground_crops", Kind::kNumber, false, "with lesion masks: the share of crops placed over a lesion (0..1)"},
      {"augment.hflip", Kind::kBool, false, "random horizontal flip"},
      {"augment.random_erasing", Kind::kNumber, false, "probability of erasing a random rectangle (timm mode 'pixel')"},
      {"optim", Kind::kObject, false, "optimiser"},
      {"optim.name", Kind::kString, false, "sgd | adamw"},
      {"optim.lr", Kind::kNumber, false, "peak learning rate"},
      {"optim.momentum", Kind::kNumber, false, "sgd momentum"},
      {"optim.nesterov", Kind::kBool, false, "sgd Nesterov momentum"},
      {"optim.betas", Kind::kNumberList, false, "adamw betas [beta1, beta2]"},
      {"optim.eps", Kind::kNumber, false, "adamw epsilon"},
      {"optim.weight_decay", Kind::kNumber, false, "decoupled (adamw) or L2 (sgd) decay of weights; norms and biases are exempt"},
      {"schedule", Kind::kObject, false, "learning-rate schedule: linear warm-up, then cosine decay"},
      {"schedule.epochs", Kind::kInt, false, "training epochs"},
      {"schedule.warmup_epochs", Kind::kNumber, false, "epochs of linear warm-up (fractions allowed)"},
      {"schedule.warmup_lr", Kind::kNumber, false, "learning rate at the first step"},
      {"schedule.min_lr", Kind::kNumber, false, "learning rate at the last step"},
      {"schedule.patience", Kind::kInt, false, "early stopping: end the run after this many epochs without a better validation score (0: never)"},
      {"batch_size", Kind::kInt, false, "images per step and process"},
      {"label_smoothing", Kind::kNumber, false, "cross-entropy label smoothing (0..1)"},
      {"clip_grad_norm", Kind::kNumber, false, "clip the global gradient norm to this (0: off)"},
      {"precision", Kind::kString, false, "training forward pass: fp32, or bf16 (autocast: convolutions and matrix products in bfloat16)"},
      {"seed", Kind::kInt, false, "seeds initialisation, split, sample order and augmentation"},
      {"output", Kind::kString, false, "run folder: checkpoints, log.csv, curves.png"},
      {"init", Kind::kString, false, "weights the run starts from instead of a fresh initialisation: a checkpoint (ours or timm's) of this very model, e.g. a previous run's best.safetensors to train on with a new schedule"},
      {"init_backbone", Kind::kString, false, "weights the backbone alone starts from: a checkpoint of any model with this backbone (e.g. a detector trained on the same images); the head starts fresh"},
      {"init_partial", Kind::kBool, false, "init may lack some of the model's tensors (parts the model adds, e.g. a captioner's detection tokens): those start fresh, listed when the run starts"},
      {"init_detector", Kind::kString, false, "a captioner with an embedded detector (model.detector_classes > 0): the detector checkpoint (e.g. the scenes detector) its frozen detector is loaded from"},
      {"self_critical_samples", Kind::kInt, false, "a captioner: self-critical sequence training, this many captions drawn per image and rewarded by CIDEr-D against the mean of the image's others (start from a teacher-forced run's weights with init); 0: teacher forcing"},
  };
  return schema;
}

TrainCfg train_cfg_from_doc(const ConfigDoc& doc) {
  validate(doc, train_yaml_schema());
  TrainCfg c;
  c.source = doc.source;
  c.model = model_cfg_from_doc(doc.subtree("model"));
  const json& j = doc.root;
  take(j, "data.train", c.train_data);
  take(j, "data.test", c.test_data);
  take(j, "data.val_count", c.val_count);
  take(j, "data.limit", c.limit);
  take(j, "augment.crop_padding", c.augment.crop_padding);
  take(j, "augment.crop_size", c.augment.crop_size);
  take(j, "augment.foreground_crops", c.augment.foreground_crops);
  take(j, "augment.hflip", c.augment.hflip);
  take(j, "augment.random_erasing", c.augment.erase_prob);
  take(j, "optim.name", c.optim.name);
  take(j, "optim.lr", c.optim.lr);
  take(j, "optim.momentum", c.optim.momentum);
  take(j, "optim.nesterov", c.optim.nesterov);
  take(j, "optim.eps", c.optim.eps);
  take(j, "optim.weight_decay", c.optim.weight_decay);
  std::vector<double> betas{c.optim.beta1, c.optim.beta2};
  take(j, "optim.betas", betas);
  take(j, "schedule.epochs", c.schedule.epochs);
  take(j, "schedule.warmup_epochs", c.schedule.warmup_epochs);
  take(j, "schedule.warmup_lr", c.schedule.warmup_lr);
  take(j, "schedule.min_lr", c.schedule.min_lr);
  take(j, "schedule.patience", c.schedule.patience);
  take(j, "batch_size", c.batch_size);
  take(j, "label_smoothing", c.label_smoothing);
  take(j, "clip_grad_norm", c.clip_grad_norm);
  std::string precision = models::to_string(c.precision);
  take(j, "precision", precision);
  check(precision == "fp32" || precision == "bf16", doc, "precision", "must be fp32 or bf16");
  c.precision = models::parse_precision(precision);
  int64_t seed = 0;
  take(j, "seed", seed);
  c.seed = static_cast<uint64_t>(seed);
  take(j, "output", c.output);
  take(j, "init", c.init);
  take(j, "init_backbone", c.init_backbone);
  take(j, "init_partial", c.init_partial);
  take(j, "init_detector", c.init_detector);
  take(j, "self_critical_samples", c.self_critical_samples);

  check(c.optim.name == "sgd" || c.optim.name == "adamw", doc, "optim.name", "must be sgd or adamw");
  check(c.optim.lr > 0, doc, "optim.lr", "must be positive");
  check(betas.size() == 2, doc, "optim.betas", "must hold two numbers");
  c.optim.beta1 = betas[0], c.optim.beta2 = betas[1];
  check(c.optim.weight_decay >= 0, doc, "optim.weight_decay", "must not be negative");
  check(c.schedule.epochs >= 1 && c.schedule.epochs <= 100000, doc, "schedule.epochs", "must be in 1..100000");
  check(c.schedule.warmup_epochs >= 0, doc, "schedule.warmup_epochs", "must not be negative");
  check(c.schedule.patience >= 0, doc, "schedule.patience", "must not be negative");
  check(c.batch_size >= 2 && c.batch_size <= 65536, doc, "batch_size", "must be in 2..65536 (BatchNorm needs 2)");
  check(c.label_smoothing >= 0 && c.label_smoothing < 1, doc, "label_smoothing", "must be in [0, 1)");
  check(c.clip_grad_norm >= 0, doc, "clip_grad_norm", "must not be negative");
  check(c.val_count >= 0, doc, "data.val_count", "must not be negative");
  check(c.limit >= 0, doc, "data.limit", "must not be negative");
  check(c.augment.crop_padding >= 0 && c.augment.crop_padding <= 64, doc, "augment.crop_padding", "must be in 0..64");
  const int64_t input_side = std::min(c.model.input_size[1], c.model.input_size[2]);
  check(c.augment.crop_size == 0 || (c.augment.crop_size <= input_side && c.augment.crop_size % 32 == 0), doc,
        "augment.crop_size",
        "must be 0 or a multiple of 32 (the networks' largest stride) no larger than model.input_size's " +
            std::to_string(input_side));
  check(c.augment.erase_prob >= 0 && c.augment.erase_prob <= 1, doc, "augment.random_erasing", "must be in 0..1");
  check(c.augment.foreground_crops >= 0 && c.augment.foreground_crops <= 1, doc, "augment.foreground_crops",
        "must be in 0..1");
  check(c.model.num_classes > 0, doc, "model.num_classes", "must be positive to train a classifier");
  check(!c.output.empty(), doc, "output", "must name a folder");
  check(c.self_critical_samples == 0 || (c.self_critical_samples >= 2 && c.self_critical_samples <= 64), doc,
        "self_critical_samples", "must be 0 (off) or in 2..64 (each draw's baseline is the mean of the others)");
  return c;
}

TrainCfg load_train_cfg(const std::string& path, const std::vector<std::string>& sets) {
  ConfigDoc doc = load_yaml_file(path);
  for (const std::string& s : sets) apply_set(doc, s);
  return train_cfg_from_doc(doc);
}

json to_json(const TrainCfg& c) {
  json j = {
      {"model", models::to_json(c.model)},
      {"data",
       {{"train", c.train_data}, {"test", c.test_data}, {"val_count", c.val_count}, {"limit", c.limit}}},
      {"augment",
       {{"crop_padding", c.augment.crop_padding},
        {"crop_size", c.augment.crop_size},
        {"foreground_crops", c.augment.foreground_crops},
        {"hflip", c.augment.hflip},
        {"random_erasing", c.augment.erase_prob}}},
      {"optim",
       {{"name", c.optim.name},
        {"lr", c.optim.lr},
        {"momentum", c.optim.momentum},
        {"nesterov", c.optim.nesterov},
        {"betas", {c.optim.beta1, c.optim.beta2}},
        {"eps", c.optim.eps},
        {"weight_decay", c.optim.weight_decay}}},
      {"schedule",
       {{"epochs", c.schedule.epochs},
        {"warmup_epochs", c.schedule.warmup_epochs},
        {"warmup_lr", c.schedule.warmup_lr},
        {"min_lr", c.schedule.min_lr},
        {"patience", c.schedule.patience}}},
      {"batch_size", c.batch_size},
      {"label_smoothing", c.label_smoothing},
      {"clip_grad_norm", c.clip_grad_norm},
      {"precision", models::to_string(c.precision)},
      {"seed", c.seed},
      {"output", c.output},
      {"init", c.init}};
  // Written only when set, so the recipe of a run started before the key existed still matches on --resume.
  if (!c.init_backbone.empty()) j["init_backbone"] = c.init_backbone;
  if (c.init_partial) j["init_partial"] = true;
  if (!c.init_detector.empty()) j["init_detector"] = c.init_detector;
  if (c.self_critical_samples > 0) j["self_critical_samples"] = c.self_critical_samples;
  return j;
}

}  // namespace attnvision::pipelines
