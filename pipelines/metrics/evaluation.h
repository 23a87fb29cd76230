// Classification metrics on a labelled set: loss, accuracy, per-class accuracy and the confusion matrix.
// Shared by the trainer (validation every epoch, test at the end) and `attnvision eval`.
#pragma once

#include "datasets/labeled_images.h"
#include "models/backbones/backbone.h"
#include "models/model_cfg.h"
#include "models/runtime.h"

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace attnvision::pipelines {

class DataParallel;

// How an image folder becomes rows the model can take: its input channels and size, its resampling filter.
datasets::ImageFolderOptions folder_options_for(const models::ModelCfg& cfg);
// Throws std::invalid_argument naming the data when its image size or class count does not fit the model.
void check_data_fits(const datasets::LabeledImages& data, const models::ModelCfg& cfg);

struct EvalResult {
  int64_t count = 0;
  double loss = 0.0;      // mean cross-entropy (no label smoothing)
  double accuracy = 0.0;  // fraction correct
  std::vector<std::vector<int64_t>> confusion;  // [true][predicted]
  std::vector<double> per_class_accuracy() const;
};

// `net`'s logits for `x` as float32, the forward pass under autocast when `precision` is bf16 (the loss and
// the softmax stay in float32 whatever the precision). The trainer's step and `evaluate` both use it.
torch::Tensor float32_logits(models::BackboneImpl& net, const torch::Tensor& x, models::Precision precision);

// Runs `net` in eval mode under InferenceMode on every image (normalised with cfg's mean/std). With `dp`,
// each rank takes every world-th image and the counts are summed, so every rank returns the whole result.
// `precision` bf16 runs the forward pass under autocast (the trainer's validation, in its training precision).
EvalResult evaluate(models::BackboneImpl& net, const models::ModelCfg& cfg, const datasets::LabeledImages& data,
                    int64_t batch_size, DataParallel* dp = nullptr,
                    models::Precision precision = models::Precision::kFloat32);

// Accuracy, per-class accuracy and the confusion matrix as text, for people.
std::string format_report(const EvalResult& r, const std::vector<std::string>& labels);
nlohmann::json to_json(const EvalResult& r, const std::vector<std::string>& labels);

// Writes the confusion matrix as a PNG chart.
void write_confusion_png(const std::string& path, const EvalResult& r, const std::vector<std::string>& labels);

}  // namespace attnvision::pipelines
