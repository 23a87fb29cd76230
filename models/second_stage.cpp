#include "models/second_stage.h"

#include "models/box_crops.h"

#include <torch/torch.h>

#include <algorithm>
#include <vector>

namespace attnvision::models {

torch::Tensor second_stage_fuse(const torch::Tensor& detector_p, const torch::Tensor& crop_p) {
  return torch::sqrt(detector_p * crop_p);
}

SecondStage::SecondStage(Network classifier, const ModelCfg& classifier_cfg, const ModelCfg& detector)
    : classifier_(std::move(classifier)), cfg_(classifier_cfg) {
  // v_det = (p - m_d) / s_d and v_cls = (p - m_c) / s_c, so v_cls = v_det * s_d / s_c + (m_d - m_c) / s_c.
  std::vector<float> scale, shift;
  for (int64_t k = 0; k < cfg_.in_chans; ++k) {
    scale.push_back(static_cast<float>(detector.std[k] / cfg_.std[k]));
    shift.push_back(static_cast<float>((detector.mean[k] - cfg_.mean[k]) / cfg_.std[k]));
  }
  scale_ = torch::tensor(scale).view({1, -1, 1, 1});
  shift_ = torch::tensor(shift).view({1, -1, 1, 1});
}

torch::Tensor SecondStage::crops(const torch::Tensor& image, const torch::Tensor& boxes) const {
  return square_crops(image, boxes, cfg_.input_size[1], kSecondStageCropMargin) * scale_ + shift_;
}

torch::Tensor SecondStage::classify(const torch::Tensor& crops, int64_t batch) const {
  std::vector<torch::Tensor> probs;
  for (int64_t b = 0; b < crops.size(0); b += batch) {
    const torch::Tensor logits =
        classifier_->forward(crops.narrow(0, b, std::min(batch, crops.size(0) - b))).logits;
    probs.push_back(torch::softmax(logits.to(torch::kFloat32), 1));
  }
  if (probs.empty()) return torch::zeros({0, cfg_.num_classes});
  return torch::cat(probs);
}

}  // namespace attnvision::models
