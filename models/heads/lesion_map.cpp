// The anomaly head: one lesion logit per cell (a 1 x 1 convolution: how much the cell looks like a lesion),
// and the slice's logits [0, the largest cell logit]: a slice is as anomalous as its most anomalous cell
// (multiple-instance learning with max pooling), so p(lesion) = sigmoid(max cell logit). The cells are those of
// the backbone's last feature map (a ResNet's 32 x 32 pixels, 16 x 16 at feature_stride 16; a ViT's patches),
// or with lesion_map_stride those of an upsampling neck over the backbone's stages, as fine as 4 x 4 pixels,
// where a lesion of a few pixels fills a cell instead of a sliver of one. Training supervises the cells with
// the lesion masks besides the slice with its label (pipelines/tasks/saliency): with the slice label alone only
// the maximum cell gets a gradient, and from scratch it is rarely the lesion's, so such a network does not
// learn.
#include "models/heads/head.h"
#include "models/heads/upsampling_neck.h"

#include <torch/nn/init.h>
#include <torch/nn/modules/conv.h>
#include <torch/torch.h>

#include <cmath>
#include <optional>

namespace attnvision::models {
namespace {

// The cells' prior, as RetinaNet initialises a classifier of rare positives: at init every cell is a lesion
// with p = 0.011 (its logits barely differ, so the slice's p starts there too), so that the clean cells, the
// great majority, do not swamp the loss's first steps.
constexpr double kCellPrior = 0.011;

int64_t map_stride(const ModelCfg& cfg) {
  return cfg.ct.lesion_map_stride > 0 ? cfg.ct.lesion_map_stride : cfg.backbone_stride();
}

int64_t map_cells(const ModelCfg& cfg) {
  return (cfg.input_size[1] / map_stride(cfg)) * (cfg.input_size[2] / map_stride(cfg));
}

bool has_neck(const ModelCfg& cfg) { return map_stride(cfg) < cfg.backbone_stride(); }

class LesionMapHeadImpl : public HeadImpl {
 public:
  LesionMapHeadImpl(const ModelCfg& cfg, BackboneImpl& backbone) {
    int64_t width = backbone.num_features();
    if (has_neck(cfg)) {
      neck_.emplace(*this, backbone.feature_info(), cfg.ct.lesion_map_width, cfg.ct.lesion_map_stride,
                    "anomaly head");
      width = cfg.ct.lesion_map_width;
    }
    cell_ = register_module("lesion_head", torch::nn::Conv2d(torch::nn::Conv2dOptions(width, 1, 1)));
    torch::nn::init::normal_(cell_->weight, 0.0, 0.01);
    torch::nn::init::constant_(cell_->bias, -std::log((1.0 - kCellPrior) / kCellPrior));
  }

  ForwardRequest needs() const override {
    ForwardRequest r;
    r.stages = neck_.has_value();
    return r;
  }

  // The lesion map's forwards with a gradient (saliency) run the neck's modules: their BatchNorms folded.
  void prepare_for_inference() override {
    if (neck_) neck_->fold_batchnorm();
  }

  void forward(BackboneImpl& backbone, Forward& f, const ForwardRequest&) override {
    f.pre_logits = backbone.pool(f);
    f.anomaly_map = cell_->forward(neck_ ? neck_->forward(f) : f.feature_map);
    const torch::Tensor slice = std::get<0>(f.anomaly_map.flatten(1).max(1, /*keepdim=*/true));
    f.logits = torch::cat({torch::zeros_like(slice), slice}, 1);
  }

 private:
  std::optional<UpsamplingNeck> neck_;  // with a lesion_map_stride finer than the backbone's
  torch::nn::Conv2d cell_{nullptr};
};

}  // namespace

Head build_lesion_map_head(const ModelCfg& cfg, BackboneImpl& backbone) {
  return std::make_shared<LesionMapHeadImpl>(cfg, backbone);
}

double lesion_map_head_gmacs(const ModelCfg& cfg, int64_t num_features) {
  if (!has_neck(cfg)) return static_cast<double>(map_cells(cfg)) * static_cast<double>(num_features) / 1e9;
  return UpsamplingNeck::gmacs(cfg.input_size[1], cfg.input_size[2], cfg.ct.lesion_map_width, map_stride(cfg),
                               cfg.backbone_stride(), num_features) +
         static_cast<double>(map_cells(cfg)) * static_cast<double>(cfg.ct.lesion_map_width) / 1e9;
}

}  // namespace attnvision::models
