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

torch::Tensor SecondStage::Reading::own_class(const torch::Tensor& found) const {
  const torch::Tensor classes = found.reshape({-1, found.size(2)}).select(1, 5).index_select(0, rows);
  return p.gather(1, classes.to(torch::kLong).unsqueeze(1)).squeeze(1);
}

SecondStage::Reading SecondStage::read(const torch::Tensor& images, const torch::Tensor& found, double min_score,
                                       int64_t batch) const {
  const int64_t k = found.size(1);
  std::vector<torch::Tensor> crops, rows;
  for (int64_t n = 0; n < found.size(0); ++n) {
    const torch::Tensor kept = (found[n].select(1, 4) >= min_score).nonzero().squeeze(1);
    if (kept.numel() == 0) continue;
    const torch::Tensor boxes = found[n].index_select(0, kept).narrow(1, 0, 4).to(torch::kFloat32);
    crops.push_back(square_crops(images[n], boxes, cfg_.input_size[1], kSecondStageCropMargin) * scale_ + shift_);
    rows.push_back(kept + n * k);
  }
  if (crops.empty()) return {torch::zeros({0}, torch::kLong), torch::zeros({0, cfg_.num_classes})};
  const torch::Tensor all = torch::cat(crops);
  std::vector<torch::Tensor> probs;
  for (int64_t b = 0; b < all.size(0); b += batch) {
    const torch::Tensor logits = classifier_->forward(all.narrow(0, b, std::min(batch, all.size(0) - b))).logits;
    probs.push_back(torch::softmax(logits.to(torch::kFloat32), 1));
  }
  return {torch::cat(rows), torch::cat(probs)};
}

}  // namespace attnvision::models
