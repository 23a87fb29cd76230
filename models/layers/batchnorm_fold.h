// BatchNorm folded into the convolution before it, for inference: one pass over the activations where there
// were two.
#pragma once

#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/conv.h>
#include <torch/types.h>

namespace attnvision::models {

struct ConvWeights {
  torch::Tensor weight;  // out x in/groups x kh x kw
  torch::Tensor bias;    // out
};

// `conv` then inference-mode `bn` as one convolution: the weights scaled per output channel by
// gamma / sqrt(running_var + eps), the bias beta + (conv's bias - running_mean) * that scale. New tensors; the
// modules are left as they are.
ConvWeights fold_batchnorm(const torch::nn::Conv2dImpl& conv, const torch::nn::BatchNorm2dImpl& bn);

// The same, written into `conv` in place: its weight scaled, its `bias` member set (the forward reads it; it is
// not registered, since a conv built without bias already holds an empty "bias" slot), so a folded network's
// parameters and checkpoints are not those it was built with: fold only networks prepared for inference
// (NetworkImpl::prepare_for_inference), and skip the BatchNorm from then on.
void fold_batchnorm_into(torch::nn::Conv2dImpl& conv, const torch::nn::BatchNorm2dImpl& bn);

}  // namespace attnvision::models
