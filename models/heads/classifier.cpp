// The classification head: the backbone's own global pooling (a ResNet averages its last feature map, a ViT
// takes its class token), then one Linear layer. Registered under the backbone's classifier name (`fc` for
// ResNets, `head` for ViTs), so a timm checkpoint's keys match; num_classes 0 leaves the pooled features.
#include "models/heads/head.h"

#include <torch/nn/modules/linear.h>

namespace attnvision::models {
namespace {

class ClassifierHeadImpl : public HeadImpl {
 public:
  ClassifierHeadImpl(const ModelCfg& cfg, BackboneImpl& backbone) {
    if (cfg.num_classes > 0) {
      fc_ = register_module(backbone.classifier_name(),
                            torch::nn::Linear(backbone.num_features(), cfg.num_classes));
      backbone.init_classifier(*fc_);
    }
  }

  void forward(BackboneImpl& backbone, Forward& f, const ForwardRequest&) override {
    f.pre_logits = backbone.pool(f);
    f.logits = fc_ ? fc_->forward(f.pre_logits) : f.pre_logits;
  }

 private:
  torch::nn::Linear fc_{nullptr};
};

}  // namespace

Head build_classifier_head(const ModelCfg& cfg, BackboneImpl& backbone) {
  return std::make_shared<ClassifierHeadImpl>(cfg, backbone);
}

double classifier_head_gmacs(const ModelCfg& cfg, int64_t num_features) {
  return static_cast<double>(num_features) * cfg.num_classes / 1e9;
}

}  // namespace attnvision::models
