// Self-critical sequence training for the captioning task row (self_critical.cpp says how it rewards).
#pragma once

#include "pipelines/tasks/task.h"

#include <cstdint>
#include <memory>

namespace attnvision::pipelines {

// For a captioner of `cfg` (its vocabulary in its labels), with CIDEr-D's document frequencies over the
// training references `train_targets` (N x R x L word ids); `samples` (>= 2) captions drawn per image.
std::unique_ptr<SequenceObjective> make_caption_self_critical(const models::ModelCfg& cfg,
                                                              const torch::Tensor& train_targets, int64_t samples);

}  // namespace attnvision::pipelines
