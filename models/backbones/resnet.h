// ResNet family as timm builds it (timm/models/resnet.py): BasicBlock / Bottleneck, plain, deep or
// deep-tiered stem, conv or avg-pool downsampling, and an attention module per block from create_attn.
#pragma once

#include "models/backbones/backbone.h"
#include "models/model_cfg.h"

namespace attnvision::models {

Backbone build_resnet(const ModelCfg& cfg);

// How one stage reaches the network's feature stride (timm's output_stride): a stage whose downsampling would
// take the stride past ResNetArgs::feature_stride keeps its resolution and dilates its 3x3 convolutions by the
// stride it gave up instead, so the last feature map is finer while every receptive field stays as wide.
struct ResNetStagePlan {
  int64_t stride;          // of the stage's first block (1 or 2)
  int64_t first_dilation;  // of the first block's strided 3x3 conv: the dilation the stage starts from
  int64_t dilation;        // of every other 3x3 conv in the stage
  int64_t net_stride;      // input pixels per cell at the stage's output
};
// The four stages' plans after a stem of `stem_stride` (4, or 1 for the cifar stem), as timm's make_blocks.
std::vector<ResNetStagePlan> resnet_stage_plans(const ResNetArgs& args, int64_t stem_stride);

}  // namespace attnvision::models
