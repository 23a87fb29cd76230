// Multiply-accumulate count of one ViT forward at cfg.input_size, from the architecture alone (the same
// layer walk as models/backbones/vit.cpp): the patch-embedding conv, per block the qkv projection, the two attention
// matmuls (q k^T and attn v), the output projection and the MLP (the head counts its own, models/heads/).
// LayerNorm, softmax, GELU and the residual adds are not counted (memory bound, not FLOP bound).
#include "models/model_cfg.h"

namespace attnvision::models {

double vit_gmacs(const ModelCfg& cfg) {
  const VitArgs& a = cfg.vit;
  const double patches =
      static_cast<double>(cfg.input_size[1] / a.patch_size) * (cfg.input_size[2] / a.patch_size);
  const double tokens = patches + 1;
  const double d = static_cast<double>(a.embed_dim);
  const double hidden = static_cast<double>(static_cast<int64_t>(d * a.mlp_ratio));
  const double embed = patches * d * cfg.in_chans * a.patch_size * a.patch_size;
  const double qkv = tokens * d * 3 * d;
  const double attn = 2 * tokens * tokens * d;  // summed over heads: heads * T * T * (d / heads), twice
  const double proj = tokens * d * d;
  const double mlp = 2 * tokens * d * hidden;
  return (embed + a.depth * (qkv + attn + proj + mlp)) / 1e9;
}

}  // namespace attnvision::models
