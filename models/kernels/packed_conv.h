// 2-D convolutions for inference on oneDNN's convolution primitive, called directly rather than through ATen,
// on torch's own channels-last (NHWC) tensors.
//
// ATen's convolution (libtorch 1.13) cannot fuse anything into the product: a ResNet block pays a pass over
// its activations for each ReLU and two for the residual add and its ReLU, and its channels-last call reorders
// the plain weights into oneDNN's layout on every call. A PackedConv2d holds the weights reordered once into
// the layout the primitive prefers, in float32 or bfloat16, and applies the bias, the residual sum and the ReLU
// in the primitive's epilogue (post-ops), as TorchScript's frozen graphs fuse them. Only oneDNN's CPU engine
// is used; the primitives run on OpenMP, the same runtime and thread count as torch's own operators.
#pragma once

#include <torch/nn/modules/conv.h>
#include <torch/types.h>

#include <array>
#include <memory>

namespace attnvision::models {

struct ConvGeometry {
  std::array<int64_t, 2> stride{1, 1};
  std::array<int64_t, 2> padding{0, 0};   // each side
  std::array<int64_t, 2> dilation{1, 1};  // torch's convention: 1 is a plain convolution
  int64_t groups = 1;
};

// A torch Conv2d's geometry; its padding must be explicit numbers (not "same" or "valid"), as every
// convolution of the project's networks has.
ConvGeometry geometry_of(const torch::nn::Conv2dImpl& conv);

// kFastest lets a float32 3x3 stride-1 convolution on batches of 4 or more run as Winograd F(4x4, 3x3) where
// oneDNN has the kernel (its sums differ from the direct product's by about 1e-6 of the output's range;
// ATTNVISION_WINOGRAD=0 turns it off for the whole process); kDirect always multiplies directly.
enum class ConvAlgorithm { kFastest, kDirect };

class PackedConv2d {
 public:
  // `weight` is out x in/groups x kh x kw (a torch Conv2d's), `bias` out or undefined; both are copied.
  // `dtype` is the precision the product runs in, float32 or bfloat16 (the bias and the accumulation stay
  // float32).
  PackedConv2d(const torch::Tensor& weight, const torch::Tensor& bias, const ConvGeometry& geometry,
               torch::ScalarType dtype, ConvAlgorithm algorithm = ConvAlgorithm::kFastest);
  ~PackedConv2d();
  PackedConv2d(PackedConv2d&&) noexcept;
  PackedConv2d& operator=(PackedConv2d&&) noexcept;

  // x: N x C x H x W, converted to the packed dtype and channels-last if it is not in them. Returns
  // [relu](conv(x) + b), N x out x H' x W', channels-last, in the packed dtype.
  torch::Tensor operator()(const torch::Tensor& x, bool relu = false) const;

  // residual = [relu](residual + conv(x) + b), in place (the primitive's sum post-op): a residual block's
  // last convolution, its shortcut add and its ReLU in one pass. The residual must be channels-last, of the
  // output's shape and the packed dtype.
  void accumulate_into(torch::Tensor& residual, const torch::Tensor& x, bool relu) const;

  int64_t out_channels() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace attnvision::models
