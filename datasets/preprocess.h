// The one preprocessing a model's config implies: ModelCfg -> the eval transform (timm's, PIL-exact) that
// classify, batch and every task feed the network with, and the same geometry for labelled image folders.
#pragma once

#include "datasets/labeled_images.h"
#include "models/model_cfg.h"
#include "vision/transforms.h"

namespace attnvision::datasets {

vision::EvalTransform eval_transform_for(const models::ModelCfg& cfg);

// How an image folder becomes rows the model can take: its input channels and size, its resampling filter.
ImageFolderOptions folder_options_for(const models::ModelCfg& cfg);

}  // namespace attnvision::datasets
