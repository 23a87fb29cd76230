// The anomaly head: one lesion logit per cell of the backbone's last feature map (a 1 x 1 convolution: how much
// the cell of a ResNet, 32 x 32 pixels or 16 x 16 at feature_stride 16, or the patch of a ViT, looks like a
// lesion), and the slice's logits [0, the largest cell logit]: a slice is as anomalous as its most anomalous
// cell (multiple-instance learning with max pooling), so p(lesion) = sigmoid(max cell logit). Training
// supervises the cells with the lesion masks besides the slice with its label (pipelines/tasks/saliency): with
// the slice label alone only the maximum cell gets a gradient, and from scratch it is rarely the lesion's, so
// such a network does not learn.
#include "models/heads/head.h"

#include <torch/nn/init.h>
#include <torch/nn/modules/conv.h>
#include <torch/torch.h>

#include <cmath>

namespace attnvision::models {
namespace {

// The cells' prior: at init about one cell in 90 is called a lesion, so that the slice maximum over a 8 x 8
// grid starts near p = 0.5 rather than saturated (the focal-loss prior of RetinaNet, for cells).
constexpr double kCellPrior = 0.011;

class LesionMapHeadImpl : public HeadImpl {
 public:
  LesionMapHeadImpl(const ModelCfg&, BackboneImpl& backbone) {
    cell_ = register_module("lesion_head", torch::nn::Conv2d(torch::nn::Conv2dOptions(backbone.num_features(), 1, 1)));
    torch::nn::init::normal_(cell_->weight, 0.0, 0.01);
    torch::nn::init::constant_(cell_->bias, -std::log((1.0 - kCellPrior) / kCellPrior));
  }

  void forward(BackboneImpl& backbone, Forward& f, const ForwardRequest&) override {
    f.pre_logits = backbone.pool(f);
    f.anomaly_map = cell_->forward(f.feature_map);
    const torch::Tensor slice = std::get<0>(f.anomaly_map.flatten(1).max(1, /*keepdim=*/true));
    f.logits = torch::cat({torch::zeros_like(slice), slice}, 1);
  }

 private:
  torch::nn::Conv2d cell_{nullptr};
};

}  // namespace

Head build_lesion_map_head(const ModelCfg& cfg, BackboneImpl& backbone) {
  return std::make_shared<LesionMapHeadImpl>(cfg, backbone);
}

double lesion_map_head_gmacs(const ModelCfg& cfg, int64_t num_features) {
  const int64_t stride = cfg.backbone_stride();
  const double cells = static_cast<double>(cfg.input_size[1] / stride) * static_cast<double>(cfg.input_size[2] / stride);
  return cells * static_cast<double>(num_features) / 1e9;
}

}  // namespace attnvision::models
