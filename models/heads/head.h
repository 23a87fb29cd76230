// Heads turn what a backbone produced (its last feature map, a ViT's tokens) into a task's outputs. One table
// (models/heads/heads.cpp) maps a ModelCfg task to the heads that serve it (ModelCfg::head picks one where a
// task has several, as captioning has decoders); a head is one file plus one row, and plugs onto any backbone
// through the Backbone interface alone.
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
  // Fills the head's fields of `f` (a classifier: pre_logits and logits) from the backbone's; `request` is the
  // caller's (its targets reach a head that trains on them inside the forward pass).
  virtual void forward(BackboneImpl& backbone, Forward& f, const ForwardRequest& request) = 0;
  // What the head needs the backbone to hand back besides the last feature map (a dense head: the stages).
  virtual ForwardRequest needs() const { return {}; }
  // Called once by NetworkImpl::prepare_for_inference, after the backbone's: a head may fold and pack its
  // layers for forwards without gradient (its modules stay as they are for the others).
  virtual void prepare_for_inference() {}
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
// The row named `head` serving `task` (`head` empty: the task's first row); std::invalid_argument naming the
// tasks some head serves, or the task's heads, otherwise.
const HeadRow& head_for(const std::string& task, const std::string& head = "");
std::vector<std::string> head_tasks();  // the tasks some head serves, each once, in table order

}  // namespace attnvision::models
