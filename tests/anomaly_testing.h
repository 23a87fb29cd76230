// Test helper: a backbone's config made a CT anomaly model (two classes, lung and abdomen windows, 64 x 64) whose
// lesion map comes from an upsampling neck at `map_stride`, `map_width` channels wide.
#pragma once

#include "models/model_cfg.h"

namespace attnvision::testing {

inline models::ModelCfg fine_lesion_map_model(models::ModelCfg cfg, int64_t map_stride, int64_t map_width) {
  cfg.task = "anomaly";
  cfg.num_classes = 2;
  cfg.labels = {"clean", "lesion"};
  cfg.in_chans = 2;
  cfg.ct.windows = {"lung", "abdomen"};
  cfg.input_size = {2, 64, 64};
  cfg.mean = {0.3, 0.3};
  cfg.std = {0.3, 0.3};
  cfg.ct.lesion_map_stride = map_stride;
  cfg.ct.lesion_map_width = map_width;
  return cfg;
}

}  // namespace attnvision::testing
