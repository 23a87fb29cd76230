// A detector's second stage small enough for tests (models/second_stage.h): the crop classifier's shape as
// configs/train/scenes_crop_classifier.yaml has it (a CIFAR-stem ResNet, one basic block a stage), 8 channels
// wide, on 16 x 16 crops of 3 channels.
#pragma once

#include "models/model_cfg.h"

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace attnvision::models::testing {

// `classes` outputs named `labels` (empty: unnamed), normalising its crops with `mean` and `std`.
inline ModelCfg tiny_crop_classifier(int64_t classes, std::vector<std::string> labels, std::vector<double> mean,
                                     std::vector<double> std) {
  ModelCfg c;
  c.name = "tiny_crop_classifier";
  c.arch = "resnet";
  c.resnet.block = "basic";
  c.resnet.layers = {1, 1, 1, 1};
  c.resnet.channels = {8, 8, 8, 8};
  c.resnet.stem_type = "cifar";
  c.resnet.stem_width = 8;
  c.in_chans = 3;
  c.num_classes = classes;
  c.labels = std::move(labels);
  c.input_size = {3, 16, 16};
  c.crop_pct = 1.0;
  c.mean = std::move(mean);
  c.std = std::move(std);
  return c;
}

}  // namespace attnvision::models::testing
