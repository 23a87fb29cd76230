// The one preprocessing a model's config implies: ModelCfg -> the eval transform (timm's, PIL-exact) that
// classify, batch and every task feed the network with, and the same geometry for labelled image folders.
#pragma once

#include "datasets/labeled_images.h"
#include "models/model_cfg.h"
#include "vision/ct_input.h"
#include "vision/transforms.h"

#include <optional>

namespace attnvision::datasets {

vision::EvalTransform eval_transform_for(const models::ModelCfg& cfg);

// How an image folder becomes rows the model can take: its input channels and size, its resampling filter.
ImageFolderOptions folder_options_for(const models::ModelCfg& cfg);

// The one preprocessing a model implies, as the batch decoder applies it: 8-bit images (and DICOM through its
// display window) by the eval transform, or, for a CT model, the slice's Hounsfield units onto the model grid
// (vision/ct_input.h) normalised with the same mean / std arithmetic as training (normalize_batch).
struct Preprocess {
  vision::EvalTransform image;            // also gives a CT model's channels, grid size, mean and std
  std::optional<vision::CtInputSpec> ct;  // set for a CT model
};
Preprocess preprocess_for(const models::ModelCfg& cfg);
// Whether two tasks can share one input tensor.
bool same_preprocess(const Preprocess& a, const Preprocess& b);

// Whether the model reads CT slices in Hounsfield units (an anomaly model) rather than 8-bit images.
bool takes_ct_input(const models::ModelCfg& cfg);

// A CT model's input grid and windows (ct_spacing_mm, input_size, ct_windows). std::invalid_argument naming a
// window that is neither a preset (vision::window_preset_names) nor "CENTER,WIDTH" with a positive width.
vision::CtInputSpec ct_input_spec_for(const models::ModelCfg& cfg);

}  // namespace attnvision::datasets
