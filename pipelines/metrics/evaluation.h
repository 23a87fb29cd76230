// Running a network over a labelled set into a task's Metric: the trainer's validation every epoch, its test
// at the end, and `attnvision eval`.
#pragma once

#include "datasets/labeled_images.h"
#include "models/model_cfg.h"
#include "models/network.h"
#include "models/runtime.h"
#include "pipelines/metrics/metric.h"

#include <cstdint>

namespace attnvision::pipelines {

class DataParallel;

// Throws std::invalid_argument naming the data when its image size or class count does not fit the model.
void check_data_fits(const datasets::LabeledImages& data, const models::ModelCfg& cfg);

// `net`'s forward pass for `x`, under autocast when `precision` is bf16, with every floating output (the
// head's logits, maps and word logits, the feature maps) as float32 whatever the precision: losses and metrics
// are computed in float32. `targets` (the batch's) reach a head that learns from them in its forward pass.
models::Forward float32_forward(models::NetworkImpl& net, const torch::Tensor& x, models::Precision precision,
                                const torch::Tensor& targets = {});

// Runs `net` in eval mode under InferenceMode on every image (normalised with cfg's mean/std) and adds each
// batch to `metric`. With `dp`, each rank takes every world-th image and the metric's counts are summed, so
// every rank holds the whole result (a metric that does not merge by summing runs over every image instead). `precision` bf16 runs the forward pass under autocast.
void evaluate(models::NetworkImpl& net, const models::ModelCfg& cfg, const datasets::LabeledImages& data,
              int64_t batch_size, Metric& metric, DataParallel* dp = nullptr,
              models::Precision precision = models::Precision::kFloat32);

}  // namespace attnvision::pipelines
