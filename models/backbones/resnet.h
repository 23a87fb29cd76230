// ResNet family as timm builds it (timm/models/resnet.py): BasicBlock / Bottleneck, plain, deep or
// deep-tiered stem, conv or avg-pool downsampling, and an attention module per block from create_attn.
#pragma once

#include "models/backbones/backbone.h"
#include "models/model_cfg.h"

namespace attnvision::models {

Backbone build_resnet(const ModelCfg& cfg);

}  // namespace attnvision::models
