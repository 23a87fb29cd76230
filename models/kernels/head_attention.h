// Multi-head self-attention for float32 inference, one (image, head) pair at a time on oneDNN's matmul.
//
// Each pair runs start to finish on one of torch's threads, so its T x T scores stay in cache from the
// q k^T product through the softmax to the product with v. The products read q, k and v where the qkv
// Linear left them and write each head's output where proj reads it, through strided memory descriptors:
// no permuted copy of q, k and v and none of the heads' outputs. On this 2-core AVX-512 machine oneDNN's
// kernels ran a ViT-S head's two products (197 x 64 tokens) in 75 us on one core, against 103 us for
// OpenBLAS's sgemm, which torch's mm calls in Debian's build.
#pragma once

#include <torch/types.h>

namespace attnvision::models {

// qkv: N x T x (3 * heads * head_dim), float32, contiguous (timm's qkv Linear output: q, k and v, each
// heads x head_dim, side by side). Returns N x T x (heads * head_dim): softmax(q k^T * scale) v per head, the
// heads side by side. No gradient is recorded.
torch::Tensor attend_heads(const torch::Tensor& qkv, int64_t heads, double scale);

}  // namespace attnvision::models
