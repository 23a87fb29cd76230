#include "models/backbones/vit.h"

#include "models/kernels/head_attention.h"
#include "models/kernels/packed_linear.h"

#include <ATen/autocast_mode.h>
#include <ATen/ops/_softmax.h>
#include <ATen/Parallel.h>
#include <torch/autograd.h>
#include <torch/nn/functional/upsampling.h>
#include <torch/nn/init.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>

#include <cmath>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>

namespace attnvision::models {
namespace {

namespace nn = torch::nn;

// Bounds that keep a config or an input from asking for absurd allocations before torch is involved:
// a 1024 x 1024 input at patch 16 is 4096 patches, and one attention matrix grows with tokens squared.
constexpr int64_t kMaxPatches = 64 * 64;
constexpr int64_t kMaxEmbedDim = 16384;

// timm's trunc_normal_(t, std): a normal truncated to the absolute interval [a, b], drawn by inverting the
// normal CDF on uniform samples so that no value needs to be redrawn.
void trunc_normal_(const torch::Tensor& t, double std, double a = -2.0, double b = 2.0) {
  torch::NoGradGuard no_grad;
  auto cdf = [](double x) { return 0.5 * (1.0 + std::erf(x / std::sqrt(2.0))); };
  t.uniform_(2.0 * cdf(a / std) - 1.0, 2.0 * cdf(b / std) - 1.0);
  t.erfinv_().mul_(std * std::sqrt(2.0)).clamp_(a, b);
}

nn::LayerNorm layer_norm(int64_t dim) { return nn::LayerNorm(nn::LayerNormOptions({dim}).eps(1e-6)); }

// A Linear (with timm's GELU after it, for fc1) that, once packed for inference, runs on oneDNN's matmul
// primitive through models/kernels/packed_linear.h: the weight reordered once per precision, the GELU fused
// into the product, and a residual added in place (add_to). On this 2-core AVX-512 machine the token GEMMs ran
// at 426-445 GFLOP/s there in float32, against 372-412 in the inner product ATen's mkldnn_linear calls (with
// a copy into and out of oneDNN's tensors on every call) and 160-190 in OpenBLAS, which Debian's PyTorch uses
// for a plain float32 Linear; oneDNN works on torch's own threads, so the softmax and norms between the
// products get both cores too. The packed path is taken only where no gradient is recorded, in float32
// without autocast or in bfloat16 under bf16 autocast (whose weights are then packed once instead of cast on
// every call); saliency's explicit path and training keep torch's own Linear.
class PackableLinear {
 public:
  PackableLinear(nn::Linear linear, LinearEpilogue epilogue) : linear_(std::move(linear)), epilogue_(epilogue) {}

  void allow_packing() { packing_allowed_ = true; }

  torch::Tensor operator()(const torch::Tensor& x) {
    if (const PackedLinear* packed = packed_for(x)) return (*packed)(x);
    const torch::Tensor y = linear_->forward(x);
    return epilogue_ == LinearEpilogue::kGelu ? torch::gelu(y) : y;
  }

  // residual + this(x). Where the packed path runs and the residual is contiguous float32, the sum is made in
  // place on the residual, fused into the product: the caller hands over a residual nothing else holds.
  torch::Tensor add_to(torch::Tensor residual, const torch::Tensor& x) {
    std::vector<int64_t> shape = x.sizes().vec();
    shape.back() = linear_->weight.size(0);
    const PackedLinear* packed = packed_for(x);
    if (!packed || epilogue_ != LinearEpilogue::kNone || residual.scalar_type() != torch::kFloat32 ||
        !residual.is_contiguous() || residual.sizes().vec() != shape)
      return residual + (*this)(x);
    packed->accumulate_into(residual, x);
    return residual;
  }

 private:
  // The packed layer for x's precision, packed on first use; null where torch's Linear runs.
  const PackedLinear* packed_for(const torch::Tensor& x) {
    if (!packing_allowed_ || torch::GradMode::is_enabled()) return nullptr;
    torch::ScalarType dtype;
    if (at::autocast::is_cpu_enabled()) {
      if (at::autocast::get_autocast_cpu_dtype() != torch::kBFloat16) return nullptr;
      dtype = torch::kBFloat16;
    } else if (x.scalar_type() == torch::kFloat32) {
      dtype = torch::kFloat32;
    } else {
      return nullptr;
    }
    auto& [once, packed] = dtype == torch::kBFloat16 ? bf16_ : fp32_;
    std::call_once(once, [&] {
      packed = std::make_unique<PackedLinear>(linear_->weight, linear_->bias, dtype, epilogue_);
    });
    return packed.get();
  }

  nn::Linear linear_;
  LinearEpilogue epilogue_;
  bool packing_allowed_ = false;
  std::pair<std::once_flag, std::unique_ptr<PackedLinear>> fp32_, bf16_;
};

class PatchEmbedImpl : public nn::Module {
 public:
  PatchEmbedImpl(int64_t in_chans, int64_t dim, int64_t patch) {
    proj = register_module("proj", nn::Conv2d(nn::Conv2dOptions(in_chans, dim, patch).stride(patch)));
  }
  nn::Conv2d proj{nullptr};
};
TORCH_MODULE(PatchEmbed);

class MlpImpl : public nn::Module {
 public:
  MlpImpl(int64_t dim, int64_t hidden)
      : fc1(register_module("fc1", nn::Linear(dim, hidden))), fc2(register_module("fc2", nn::Linear(hidden, dim))),
        run_fc1_(fc1, LinearEpilogue::kGelu), run_fc2_(fc2, LinearEpilogue::kNone) {}
  torch::Tensor forward(const torch::Tensor& x) { return run_fc2_(run_fc1_(x)); }
  // residual + forward(x), in place where PackableLinear::add_to can.
  torch::Tensor add_to(torch::Tensor residual, const torch::Tensor& x) {
    return run_fc2_.add_to(std::move(residual), run_fc1_(x));
  }
  void pack() { run_fc1_.allow_packing(), run_fc2_.allow_packing(); }
  nn::Linear fc1, fc2;

 private:
  PackableLinear run_fc1_, run_fc2_;
};
TORCH_MODULE(Mlp);

// Multi-head self-attention (timm's `Attention`; named so as not to collide with the channel-attention
// plug-ins of models/attention.h).
class SelfAttentionImpl : public nn::Module {
 public:
  SelfAttentionImpl(int64_t dim, int64_t heads, bool qkv_bias)
      : qkv(register_module("qkv", nn::Linear(nn::LinearOptions(dim, 3 * dim).bias(qkv_bias)))),
        proj(register_module("proj", nn::Linear(dim, dim))),
        run_qkv_(qkv, LinearEpilogue::kNone),
        run_proj_(proj, LinearEpilogue::kNone),
        heads_(heads),
        head_dim_(dim / heads),
        scale_(1.0 / std::sqrt(static_cast<double>(dim / heads))) {}

  // `probs` receives the N x heads x T x T softmax probabilities on the explicit path.
  torch::Tensor forward(const torch::Tensor& x, AttentionPath path, torch::Tensor* probs) {
    return run_proj_(attend(x, path, probs));
  }
  // residual + forward(x), in place where PackableLinear::add_to can.
  torch::Tensor add_to(torch::Tensor residual, const torch::Tensor& x, AttentionPath path) {
    return run_proj_.add_to(std::move(residual), attend(x, path, nullptr));
  }
  void pack() { run_qkv_.allow_packing(), run_proj_.allow_packing(); }

  nn::Linear qkv, proj;

 private:
  // The heads' outputs side by side, N x T x dim: what proj reads.
  torch::Tensor attend(const torch::Tensor& x, AttentionPath path, torch::Tensor* probs) {
    const int64_t n = x.size(0), t = x.size(1), d = x.size(2);
    // float32 only: in bfloat16, oneDNN's batched products over every head at once (the autocast path of
    // fused_attention) ran ViT-S/16 at 55-64 images/s (batch 16) against 49-59 for a bf16 version of
    // attend_heads, one head at a time.
    if (path == AttentionPath::kFused && !torch::GradMode::is_enabled() && !at::autocast::is_cpu_enabled() &&
        x.scalar_type() == torch::kFloat32)
      return attend_heads(run_qkv_(x).contiguous(), heads_, scale_);
    const torch::Tensor y = path == AttentionPath::kExplicit ? explicit_attention(x, probs) : fused_attention(x);
    return y.view({n, heads_, t, head_dim_}).transpose(1, 2).reshape({n, t, d});
  }

  // timm's formulation, step by step; the probabilities are a tensor of their own so that saliency can
  // read them and take gradients with respect to them. Returns N x heads x T x head_dim.
  torch::Tensor explicit_attention(const torch::Tensor& x, torch::Tensor* probs) {
    const int64_t n = x.size(0), t = x.size(1);
    const torch::Tensor qkv_heads =
        qkv->forward(x).view({n, t, 3, heads_, head_dim_}).permute({2, 0, 3, 1, 4});
    const torch::Tensor q = qkv_heads[0] * scale_;
    torch::Tensor attn = torch::matmul(q, qkv_heads[1].transpose(-2, -1)).softmax(-1);
    if (probs) *probs = attn;
    return torch::matmul(attn, qkv_heads[2]);
  }

  // The same arithmetic with as few passes and multi-MB allocations as possible (each fresh buffer is paid
  // in page faults, which measured as large as the attention GEMMs themselves here): one contiguous copy of
  // q, k, v as (N*heads) x T x head_dim, the scale folded into the q k^T GEMM's alpha, the softmax in place
  // of the scores when no gradient is recorded. Training and bf16 come here; float32 inference goes to
  // attend_heads (models/kernels/), which needs no copies at all. See the timing test in
  // tests/models/test_vit.cpp.
  torch::Tensor fused_attention(const torch::Tensor& x) {
    const int64_t n = x.size(0), t = x.size(1), b = n * heads_;
    const torch::Tensor qkv_heads =
        run_qkv_(x).view({n, t, 3, heads_, head_dim_}).permute({2, 0, 3, 1, 4}).contiguous();
    const torch::Tensor q = qkv_heads[0].view({b, t, head_dim_});
    const torch::Tensor k = qkv_heads[1].view({b, t, head_dim_});
    const torch::Tensor v = qkv_heads[2].view({b, t, head_dim_});
    if (at::autocast::is_cpu_enabled()) {
      // bfloat16: oneDNN's batched matmul. baddbmm's alpha/beta form ran about 4x slower here than scaling q
      // first (96 heads of 197 x 64: 8.0 against 2.0 ms per product).
      torch::Tensor scores = torch::bmm(q * scale_, k.transpose(1, 2));
      if (scores.requires_grad()) scores = scores.softmax(-1);
      else at::_softmax_out(scores, scores, -1, /*half_to_float=*/false);
      return torch::bmm(scores, v);
    }
    torch::Tensor scores = torch::empty({b, t, t}, q.options());
    // beta 0: the uninitialised buffer is never read, only written.
    scores.baddbmm_(q, k.transpose(1, 2), /*beta=*/0.0, /*alpha=*/scale_);
    if (scores.requires_grad()) {
      scores = scores.softmax(-1);
    } else {
      at::_softmax_out(scores, scores, -1, /*half_to_float=*/false);
    }
    return torch::bmm(scores, v);
  }

  PackableLinear run_qkv_, run_proj_;
  int64_t heads_, head_dim_;
  double scale_;
};
TORCH_MODULE(SelfAttention);

class BlockImpl : public nn::Module {
 public:
  BlockImpl(int64_t dim, int64_t heads, double mlp_ratio, bool qkv_bias) {
    norm1 = register_module("norm1", layer_norm(dim));
    attn = register_module("attn", SelfAttention(dim, heads, qkv_bias));
    norm2 = register_module("norm2", layer_norm(dim));
    mlp = register_module("mlp", Mlp(dim, static_cast<int64_t>(dim * mlp_ratio)));
  }

  // `x` is the residual stream, which nothing but this forward holds once it is handed over.
  torch::Tensor forward(torch::Tensor x, AttentionPath path, ForwardRecorder& rec, const std::string& name) {
    if (!rec.request.activations && !rec.request.attention) {
      // Nothing reads the block's insides: each residual add may happen in place, fused into its product.
      const torch::Tensor h = norm1->forward(x);
      x = attn->add_to(std::move(x), h, path);
      const torch::Tensor h2 = norm2->forward(x);
      return mlp->add_to(std::move(x), h2);
    }
    const torch::Tensor h = norm1->forward(x);
    rec.activation(name + ".norm1", h);
    torch::Tensor probs;
    const torch::Tensor a = attn->forward(h, path, &probs);
    rec.activation(name + ".attn", a);
    if (probs.defined()) rec.attention(name + ".attn", probs);
    x = x + a;
    const torch::Tensor m = mlp->forward(norm2->forward(x));
    rec.activation(name + ".mlp", m);
    x = x + m;
    rec.activation(name, x);
    return x;
  }

  void pack() { attn->pack(), mlp->pack(); }

  nn::LayerNorm norm1{nullptr}, norm2{nullptr};
  SelfAttention attn{nullptr};
  Mlp mlp{nullptr};
};
TORCH_MODULE(Block);

class VisionTransformerImpl : public BackboneImpl {
 public:
  explicit VisionTransformerImpl(const ModelCfg& cfg) : name_(cfg.name), in_chans_(cfg.in_chans) {
    const VitArgs& a = cfg.vit;
    patch_ = a.patch_size;
    grid_ = a.img_size / a.patch_size;  // timm floors too; only multiples of the patch run
    dim_ = a.embed_dim;
    if (grid_ * grid_ > kMaxPatches || dim_ > kMaxEmbedDim || a.mlp_ratio * dim_ > 8.0 * kMaxEmbedDim)
      throw std::invalid_argument("model '" + name_ + "': ViT too large (at most " +
                                  std::to_string(kMaxPatches) + " patches, embed_dim " +
                                  std::to_string(kMaxEmbedDim) + ", mlp width 8x that)");
    cls_token_ = register_parameter("cls_token", torch::zeros({1, 1, dim_}));
    pos_embed_ = register_parameter("pos_embed", torch::zeros({1, 1 + grid_ * grid_, dim_}));
    patch_embed_ = register_module("patch_embed", PatchEmbed(cfg.in_chans, dim_, patch_));
    blocks_ = register_module("blocks", nn::ModuleList());
    for (int64_t i = 0; i < a.depth; ++i) {
      blocks_->push_back(Block(dim_, a.num_heads, a.mlp_ratio, a.qkv_bias));
      info_.push_back({"blocks." + std::to_string(i), dim_, patch_});
    }
    norm_ = register_module("norm", layer_norm(dim_));
  }

  Forward forward_features(const torch::Tensor& x, const ForwardRequest& request) override {
    check_input(x);
    const int64_t n = x.size(0), gh = x.size(2) / patch_, gw = x.size(3) / patch_;
    Forward f;
    ForwardRecorder rec{request, f};
    torch::Tensor t = patch_embed_->proj->forward(x).flatten(2).transpose(1, 2);
    rec.activation("patch_embed", t);
    const torch::Tensor pos = gh == grid_ && gw == grid_ ? pos_embed_
                                                         : resample_abs_pos_embed(pos_embed_, gh, gw, grid_,
                                                                                  grid_, kPosEmbedAntialias);
    t = torch::cat({cls_token_.expand({n, -1, -1}), t}, 1) + pos;
    rec.activation("pos_embed_added", t);
    const AttentionPath path = request.attention ? AttentionPath::kExplicit : path_;
    for (size_t i = 0; i < blocks_->size(); ++i)
      t = blocks_->ptr<BlockImpl>(i)->forward(t, path, rec, info_[i].module);
    f.tokens = norm_->forward(t);
    f.feature_map = f.tokens.slice(1, 1).transpose(1, 2).reshape({n, dim_, gh, gw});
    return f;
  }

  torch::Tensor pool(const Forward& f) override { return f.tokens.select(1, 0); }
  std::string classifier_name() const override { return "head"; }
  // timm's init_weights (mode '') gives the head what it gives every Linear.
  void init_classifier(nn::LinearImpl& fc) override { init_linear(fc); }

  std::vector<FeatureInfo> feature_info() const override { return info_; }
  int64_t num_features() const override { return dim_; }

  void set_path(AttentionPath path) { path_ = path; }

  void pack_for_inference() override {
    for (size_t i = 0; i < blocks_->size(); ++i) blocks_->ptr<BlockImpl>(i)->pack();
  }

 private:
  void check_input(const torch::Tensor& x) const {
    auto fail = [&](const std::string& what) {
      throw std::invalid_argument("model '" + name_ + "': " + what);
    };
    if (x.dim() != 4) fail("expects an N x C x H x W input, got " + std::to_string(x.dim()) + " dimensions");
    const int64_t h = x.size(2), w = x.size(3);
    if (x.size(1) != in_chans_)
      fail("expects " + std::to_string(in_chans_) + " input channels, got " + std::to_string(x.size(1)));
    if (h < patch_ || w < patch_ || h % patch_ != 0 || w % patch_ != 0)
      fail("input " + std::to_string(h) + "x" + std::to_string(w) +
           " is not a positive multiple of the patch size " + std::to_string(patch_));
    if ((h / patch_) * (w / patch_) > kMaxPatches)
      fail("input " + std::to_string(h) + "x" + std::to_string(w) + " gives more than " +
           std::to_string(kMaxPatches) + " patches");
  }

  // timm's init_weights (mode ''): truncated-normal position embedding and Linear weights, a near-zero
  // class token, zero Linear biases; LayerNorm (ones/zeros) and the patch conv keep torch's defaults.
  // The classifier, built afterwards by the head, gets the same through init_classifier.
  void init_weights() override {
    torch::NoGradGuard no_grad;
    trunc_normal_(pos_embed_, 0.02);
    nn::init::normal_(cls_token_, 0.0, 1e-6);
    for (auto& m : modules(/*include_self=*/false))
      if (auto* lin = m->as<nn::Linear>()) init_linear(*lin);
  }

  static void init_linear(nn::LinearImpl& lin) {
    torch::NoGradGuard no_grad;
    trunc_normal_(lin.weight, 0.02);
    if (lin.bias.defined()) nn::init::zeros_(lin.bias);
  }

  std::string name_;
  int64_t in_chans_ = 3, patch_ = 16, grid_ = 14, dim_ = 768;
  torch::Tensor cls_token_, pos_embed_;
  PatchEmbed patch_embed_{nullptr};
  nn::ModuleList blocks_{nullptr};
  nn::LayerNorm norm_{nullptr};
  std::vector<FeatureInfo> info_;
  AttentionPath path_ = AttentionPath::kFused;
};

}  // namespace

Backbone build_vit(const ModelCfg& cfg) { return std::make_shared<VisionTransformerImpl>(cfg); }

void set_attention_path(BackboneImpl& model, AttentionPath path) {
  auto* vit = dynamic_cast<VisionTransformerImpl*>(&model);
  if (!vit) throw std::invalid_argument("set_attention_path: the model is not a ViT");
  vit->set_path(path);
}

torch::Tensor resample_abs_pos_embed(const torch::Tensor& pos_embed, int64_t new_h, int64_t new_w,
                                     int64_t old_h, int64_t old_w, bool antialias) {
  if (pos_embed.dim() != 3 || pos_embed.size(0) != 1 || old_h < 1 || old_w < 1 ||
      pos_embed.size(1) != 1 + old_h * old_w)
    throw std::invalid_argument("resample_abs_pos_embed: expected 1 x (1 + " + std::to_string(old_h) + "*" +
                                std::to_string(old_w) + ") x D position embeddings");
  if (new_h < 1 || new_w < 1 || new_h * new_w > kMaxPatches)
    throw std::invalid_argument("resample_abs_pos_embed: grid " + std::to_string(new_h) + "x" +
                                std::to_string(new_w) + " out of range");
  if (new_h == old_h && new_w == old_w) return pos_embed;
  const int64_t dim = pos_embed.size(2);
  const torch::Tensor grid = pos_embed.slice(1, 1).reshape({1, old_h, old_w, dim}).permute({0, 3, 1, 2});
  namespace F = torch::nn::functional;
  const torch::Tensor resized = F::interpolate(grid, F::InterpolateFuncOptions()
                                                         .size(std::vector<int64_t>{new_h, new_w})
                                                         .mode(torch::kBicubic)
                                                         .align_corners(false)
                                                         .antialias(antialias));
  return torch::cat(
      {pos_embed.slice(1, 0, 1), resized.permute({0, 2, 3, 1}).reshape({1, new_h * new_w, dim})}, 1);
}

}  // namespace attnvision::models
