// From what a user types (--model NAME|FILE.yaml, --weights FILE, --set key=value, --labels FILE) to a
// ready model: config resolved, weights loaded and checked, labels attached, eval mode.
#pragma once

#include "models/network.h"
#include "models/model_cfg.h"
#include "models/runtime.h"
#include "models/weights/weights.h"
#include "pipelines/config.h"

#include <string>
#include <vector>

namespace attnvision::pipelines {

struct ModelChoice {
  std::string model;                // registered name or model YAML; empty: taken from --weights
  std::string weights;              // safetensors or torch.save state_dict; empty: needs random_init
  std::vector<std::string> sets;    // key=value overrides of model YAML keys
  std::string labels_file;          // overrides the config's labels
  bool random_init = false;         // allow running without weights (benchmarks, smoke tests)
  // Fold BatchNorm and pick inference layouts (NetworkImpl::prepare_for_inference); false keeps the
  // module in its trained form, as a checkpoint stores it (convert).
  bool prepare_for_inference = true;
  // The precision asked for inference (--precision, a task section's `precision`); bf16 falls back to fp32,
  // with a line on stderr, on a CPU without native bf16 (models::inference_precision).
  models::Precision precision = models::Precision::kFloat32;
  // Whose shipped model runs when neither model nor weights is given: a ModelCfg task ("classification").
  std::string shipped_task = "classification";
};

struct LoadedModel {
  models::ModelCfg cfg;
  models::Network net;
  std::vector<std::string> labels;  // num_classes names (indices as text when nothing better is known)
  models::Precision precision = models::Precision::kFloat32;  // what the network runs in, after any fallback
  // The further networks its checkpoint carries (models::TensorFile::parts), not loaded: the task that runs
  // this model loads the ones it uses (a detector's second stage) with load_part.
  std::vector<models::TensorFile> parts;
};

// The model YAML schema: timm's constructor keys plus preprocessing and labels.
const std::vector<KeySpec>& model_yaml_schema();

// Applies a model YAML document to `base` (which `base: NAME` in the document replaces).
models::ModelCfg model_cfg_from_doc(const ConfigDoc& doc, models::ModelCfg base = {});

// The shipped model of a task, used when neither --model nor --weights is given. Classification:
// $ATTNVISION_DEFAULT_WEIGHTS, else models/pretrained/fmnist_resnet.safetensors in the source tree;
// detection: $ATTNVISION_DEFAULT_DETECTOR, else models/pretrained/scenes_detector.safetensors; anomaly and
// captioning likewise ($ATTNVISION_DEFAULT_ANOMALY_MODEL, $ATTNVISION_DEFAULT_CAPTIONER). Throws
// std::invalid_argument for a task that ships no model.
std::string default_weights_path(const std::string& task = "classification");

// Throws ConfigError / models::WeightsError / std::invalid_argument with one-line messages.
LoadedModel load_model(const ModelChoice& choice);

// A network a checkpoint carries as a part (LoadedModel::parts), loaded as load_model loads a file: `like`'s
// precision and prepare_for_inference apply, its model, weights and sets do not.
LoadedModel load_part(const models::TensorFile& part, const ModelChoice& like);

}  // namespace attnvision::pipelines
