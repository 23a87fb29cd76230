// A training run as data: which model, which data, which augmentation, optimiser and schedule. Read from a
// YAML recipe (configs/train/*.yaml) with --set overrides; the `model:` section is a model YAML (the same
// keys as `--model FILE.yaml`, including `base: NAME`).
#pragma once

#include "datasets/augment.h"
#include "models/model_cfg.h"
#include "models/runtime.h"
#include "pipelines/config.h"

#include <cstdint>
#include <string>
#include <vector>

namespace attnvision::pipelines {

struct OptimCfg {
  std::string name = "sgd";  // sgd (with momentum, Nesterov by default) | adamw
  double lr = 0.1;           // peak learning rate, reached at the end of the warm-up
  double momentum = 0.9;     // sgd
  bool nesterov = true;      // sgd
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;  // adamw
  double weight_decay = 5e-4;  // applied to weights only: norms and biases (1-D tensors) are left alone
};

struct ScheduleCfg {
  int64_t epochs = 10;
  double warmup_epochs = 1;  // linear from warmup_lr to optim.lr, step by step
  double warmup_lr = 0.0;
  double min_lr = 0.0;       // the cosine decay's floor at the last step
  // Early stopping: the run ends when the validation score has not improved for this many epochs (0: never);
  // the schedule still decays over `epochs`, so a stopped run ends at a higher learning rate.
  int64_t patience = 0;
};

struct TrainCfg {
  std::string source;  // the recipe file, for messages
  models::ModelCfg model;
  std::string train_data = "fashion-mnist:train";  // fashion-mnist:train | a folder with a sub-folder per class
  std::string test_data;   // evaluated with the best checkpoint after training; empty: none
  int64_t val_count = 5000;  // held out of train_data with a fixed-seed split; 0: no validation
  int64_t limit = 0;         // use only the first N training images (quick runs and tests); 0: all
  datasets::AugmentOptions augment;
  OptimCfg optim;
  ScheduleCfg schedule;
  int64_t batch_size = 128;   // per process
  double label_smoothing = 0.0;
  double clip_grad_norm = 0.0;  // 0: no clipping
  models::Precision precision = models::Precision::kFloat32;  // of the training forward pass
  uint64_t seed = 0;
  std::string output = "runs/train";
  // Weights to start from (every tensor of the model, matched by timm name); empty: a fresh initialisation.
  // Lets a run go on from another's result under a new schedule, which --resume (the same run) does not.
  std::string init;
  // `init` may lack tensors of the model (parts it adds to the model the file was trained as, e.g. a captioner's
  // detection tokens): those start fresh, and the run says which.
  bool init_partial = false;
  // Weights the backbone alone starts from: any checkpoint holding this model's backbone under the same names
  // (e.g. a detector trained on the same images, for a captioner); its other tensors are not read, and the
  // head starts fresh. Applied after `init`.
  std::string init_backbone;
  // A captioner that attends to a detector's findings (caption.detector_classes): the detector checkpoint its
  // embedded, frozen detector is loaded from. Applied after `init`; without it, `init` must hold the detector.
  std::string init_detector;
  // Self-critical sequence training (a captioner, after teacher forcing): this many captions drawn per image
  // and rewarded by their CIDEr-D against the mean of the image's other draws, instead of the task's loss.
  // 0: the task's own loss (teacher forcing for a captioner).
  int64_t self_critical_samples = 0;
};

const std::vector<KeySpec>& train_yaml_schema();
// Validates the document (unknown keys, types, the model section) and fills a TrainCfg; ConfigError on problems.
TrainCfg train_cfg_from_doc(const ConfigDoc& doc);
TrainCfg load_train_cfg(const std::string& path, const std::vector<std::string>& sets);

nlohmann::json to_json(const TrainCfg& cfg);

}  // namespace attnvision::pipelines
