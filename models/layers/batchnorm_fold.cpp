#include "models/layers/batchnorm_fold.h"

#include <torch/torch.h>

namespace attnvision::models {

ConvWeights fold_batchnorm(const torch::nn::Conv2dImpl& conv, const torch::nn::BatchNorm2dImpl& bn) {
  torch::NoGradGuard no_grad;
  const torch::Tensor scale = bn.weight / (bn.running_var + bn.options.eps()).sqrt();
  const torch::Tensor shift = conv.bias.defined() ? conv.bias * scale : torch::zeros_like(scale);
  return {conv.weight * scale.view({-1, 1, 1, 1}), shift + bn.bias - bn.running_mean * scale};
}

void fold_batchnorm_into(torch::nn::Conv2dImpl& conv, const torch::nn::BatchNorm2dImpl& bn) {
  const ConvWeights folded = fold_batchnorm(conv, bn);
  torch::NoGradGuard no_grad;
  conv.weight.copy_(folded.weight);
  conv.bias = folded.bias;
}

}  // namespace attnvision::models
