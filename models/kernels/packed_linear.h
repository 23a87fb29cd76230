// Linear layers for inference on oneDNN's matmul primitive, called directly rather than through ATen.
//
// ATen's oneDNN entry points (mkldnn_linear, and autocast's bf16 linear) cannot fuse anything into the
// product and work on oneDNN's own tensors, so every call pays a copy of its input and output between torch's
// dense layout and oneDNN's, and the erf GELU after fc1 is a separate pass over the widest activation of a
// ViT block. Measured on this 2-core AVX-512 machine (ViT-S/16 shapes at batch 16, 3152 tokens, fp32): the
// matmul primitive (brgemm) ran the token products at 426-445 GFLOP/s against 372-412 for the inner product
// ATen calls, and fc1 with the GELU fused took 10.2 ms against 12.8 for ATen's product then its GELU.
//
// A PackedLinear holds the weight reordered once into the layout the primitive prefers, in float32 or
// bfloat16, and runs y = epilogue(x W^T + b) on dense row-major tensors, writing straight into torch's
// memory; `accumulate_into` adds the product to a residual in place (the primitive's sum post-op), which
// saves the separate add of a residual connection. Only oneDNN's CPU engine is used; the primitives run on
// OpenMP, the same runtime and thread count as torch's own operators.
#pragma once

#include <torch/types.h>

#include <memory>

namespace attnvision::models {

// What is applied to the product before it is written.
enum class LinearEpilogue {
  kNone,
  kGelu,  // timm's nn.GELU: the exact, erf-based GELU
};

class PackedLinear {
 public:
  // `weight` is out x in (a torch Linear's), `bias` out or undefined; both are copied, so the layer's own
  // parameters may change afterwards without affecting this one. `dtype` is the precision the product runs
  // in, float32 or bfloat16 (the bias and the accumulation stay float32).
  PackedLinear(const torch::Tensor& weight, const torch::Tensor& bias, torch::ScalarType dtype,
               LinearEpilogue epilogue = LinearEpilogue::kNone);
  ~PackedLinear();
  PackedLinear(PackedLinear&&) noexcept;
  PackedLinear& operator=(PackedLinear&&) noexcept;

  // x: (..., in), any strides, converted to the packed dtype if it is not in it. Returns (..., out) in
  // `out_dtype` (float32 or bfloat16; by default the packed dtype).
  torch::Tensor operator()(const torch::Tensor& x) const;
  torch::Tensor operator()(const torch::Tensor& x, torch::ScalarType out_dtype) const;

  // residual += x W^T + b, in place, in the residual's dtype (float32 or bfloat16). The residual must be
  // contiguous with x's leading shape and `out` columns; the epilogue must be kNone.
  void accumulate_into(torch::Tensor& residual, const torch::Tensor& x) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace attnvision::models
