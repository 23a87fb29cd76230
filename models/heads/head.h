// Heads turn what a backbone produced (its last feature map, a ViT's tokens) into a task's outputs. One table
// (models/heads/heads.cpp) maps a ModelCfg task to the head that serves it; a head is one file plus one row,
// and plugs onto any backbone through the Backbone interface alone.
#pragma once

#include "models/backbones/backbone.h"
#include "models/model_cfg.h"

#include <torch/nn/module.h>

#include <memory>
#include <string>
#include <vector>

namespace attnvision::models {

class HeadImpl : public torch::nn::Module {
 public:
  // Fills the head's fields of `f` (a classifier: pre_logits and logits) from the backbone's.
  virtual void forward(BackboneImpl& backbone, Forward& f) = 0;
  // What the head needs the backbone to hand back besides the last feature map (a dense head: the stages).
  virtual ForwardRequest needs() const { return {}; }
};
using Head = std::shared_ptr<HeadImpl>;

struct HeadRow {
  const char* name;  // e.g. "classifier"
  const char* task;  // the ModelCfg task it serves, e.g. "classification"
  const char* help;
  // Builds the head for `backbone`; its parameters are named as timm names them at the network's root.
  Head (*build)(const ModelCfg& cfg, BackboneImpl& backbone);
  // Multiply-accumulates of the head for one image, in units of 1e9, given the backbone's output width.
  double (*gmacs)(const ModelCfg& cfg, int64_t num_features);
};

const std::vector<HeadRow>& head_table();
// The row serving `task`; std::invalid_argument naming the tasks some head serves otherwise.
const HeadRow& head_for_task(const std::string& task);
std::vector<std::string> head_tasks();

}  // namespace attnvision::models
