#include "models/backbones/resnet.h"

#include "models/layers/attention.h"

#include <torch/nn/init.h>
#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/pooling.h>

#include <ATen/autocast_mode.h>
#include <torch/torch.h>

#include <cmath>
#include <mutex>
#include <optional>

namespace attnvision::models {
namespace {

namespace nn = torch::nn;

nn::Conv2d conv(int64_t in, int64_t out, int64_t kernel, int64_t stride = 1, int64_t dilation = 1) {
  const int64_t padding = dilation * (kernel / 2);
  return nn::Conv2d(nn::Conv2dOptions(in, out, kernel).stride(stride).padding(padding).dilation(dilation).bias(false));
}


// Folds an inference-mode BatchNorm into the convolution before it: the convolution's weights are scaled per
// output channel by gamma / sqrt(running_var + eps) and it gains the bias beta - running_mean * that scale,
// so one pass over the activations does what two did. The bias is set on the module's `bias` member, which
// its forward reads; it is not registered (a conv built without bias already holds an empty "bias" slot), so
// a folded network's parameters and checkpoints are not those of timm: fold only networks prepared for
// inference (NetworkImpl::prepare_for_inference).
void fold_batchnorm_into(nn::Conv2dImpl& conv, const nn::BatchNorm2dImpl& bn) {
  torch::NoGradGuard no_grad;
  const torch::Tensor scale = bn.weight / (bn.running_var + bn.options.eps()).sqrt();
  const torch::Tensor shift = conv.bias.defined() ? conv.bias * scale : torch::zeros_like(scale);
  conv.weight.mul_(scale.view({-1, 1, 1, 1}));
  conv.bias = shift + bn.bias - bn.running_mean * scale;
}

// A convolution whose weights oneDNN reordered once into its blocked layout, in float32 or bfloat16, for the
// blocked inference path (ResNetImpl::forward_blocked). PyTorch's own convolution reorders a plain weight on
// every call (and under bf16 autocast casts it first): on a forward at batch 1 that weighs as much as the
// arithmetic.
struct PackedConv {
  torch::Tensor weight;  // an MKLDNN (opaque, blocked) tensor
  torch::Tensor bias;    // dense, or undefined
  std::vector<int64_t> padding, stride, dilation;
  int64_t groups = 1;

  PackedConv(const nn::Conv2dImpl& c, torch::ScalarType dtype) {
    const auto& o = c.options;
    const auto* pad = c10::get_if<torch::ExpandingArray<2>>(&o.padding());
    if (!pad) throw std::logic_error("resnet: a convolution without explicit padding cannot be packed");
    padding = {(**pad)[0], (**pad)[1]};
    stride = {(*o.stride())[0], (*o.stride())[1]};
    dilation = {(*o.dilation())[0], (*o.dilation())[1]};
    groups = o.groups();
    torch::NoGradGuard no_grad;
    weight = at::mkldnn_reorder_conv2d_weight(c.weight.detach().contiguous().to_mkldnn(dtype), padding, stride,
                                              dilation, groups);
    if (c.bias.defined()) bias = c.bias.detach().to(dtype).contiguous();
  }
  // x and the result are MKLDNN tensors.
  torch::Tensor operator()(const torch::Tensor& x) const {
    return at::mkldnn_convolution(x, weight, bias.defined() ? c10::optional<torch::Tensor>(bias) : c10::nullopt,
                                  padding, stride, dilation, groups);
  }
};

// A block's convolutions packed in one dtype.
struct BlockPacks {
  std::vector<PackedConv> convs;
  std::optional<PackedConv> downsample;
};

// Both block types: a stack of conv/bn pairs, attention after the last bn, then the residual add.
class BlockImpl : public nn::Module {
 public:
  // `widths` are the output channels of each conv; the middle conv (3x3 in a bottleneck, the first in a
  // basic block) carries the stride, exactly where timm puts it.
  // The strided conv is dilated by first_dilation, a basic block's second by dilation (ResNetStagePlan).
  BlockImpl(bool bottleneck, int64_t in, int64_t planes, int64_t stride, int64_t first_dilation, int64_t dilation,
            nn::Sequential downsample, const std::string& attn) {
    const int64_t out = bottleneck ? planes * 4 : planes;
    if (bottleneck) {
      add_conv(1, conv(in, planes, 1));
      add_conv(2, conv(planes, planes, 3, stride, first_dilation));
      add_conv(3, conv(planes, out, 1));
    } else {
      add_conv(1, conv(in, planes, 3, stride, first_dilation));
      add_conv(2, conv(planes, out, 3, 1, dilation));
    }
    if (Attention a = create_attn(attn, out)) attn_ = register_module("se", a);  // timm names it `se` whatever the type
    if (downsample) downsample_ = register_module("downsample", downsample);
  }

  torch::Tensor forward(const torch::Tensor& x, ForwardRecorder& rec, const std::string& name) {
    torch::Tensor y = x;
    for (size_t i = 0; i < convs_.size(); ++i) {
      y = convs_[i]->forward(y);
      if (!folded_) y = bns_[i]->forward(y);
      if (i + 1 < convs_.size()) y.relu_();
    }
    if (attn_ && (rec.request.activations || rec.request.attention)) {
      NamedTensors trace;
      y = attn_->forward_traced(y, trace);
      for (const auto& [part, t] : trace) {
        if (part == "spatial_gate") rec.attention(name + ".se", t);
        else rec.activation(name + ".se." + part, t);
      }
      rec.activation(name + ".se", y);
    } else if (attn_) {
      y = attn_->forward(y);
    }
    torch::Tensor shortcut = x;
    if (downsample_) {
      shortcut = downsample_->forward(x);
      rec.activation(name + ".downsample", shortcut);
    }
    return (y + shortcut).relu_();  // not +=: y may be a recorded activation
  }

  // The same block on MKLDNN tensors of x's dtype, after pack(dtype): attention, which oneDNN does not run, goes
  // through a dense copy and back.
  torch::Tensor forward_blocked(const torch::Tensor& x) {
    const BlockPacks& packs = x.scalar_type() == torch::kBFloat16 ? bf16_ : fp32_;
    torch::Tensor y = x;
    for (size_t i = 0; i < packs.convs.size(); ++i) {
      y = packs.convs[i](y);
      if (i + 1 < packs.convs.size()) y.relu_();
    }
    if (attn_) y = attn_->forward(y.to_dense()).to_mkldnn(x.scalar_type());  // autocast may widen it
    torch::Tensor shortcut = x;
    if (downsample_) {
      // The folded path is [AvgPool | Identity,] conv: the pool runs on the MKLDNN tensor as it is.
      for (size_t i = 0; i + 1 < downsample_->size(); ++i)
        if (auto pool = std::dynamic_pointer_cast<nn::AvgPool2dImpl>(downsample_->ptr(i))) shortcut = pool->forward(shortcut);
      shortcut = (*packs.downsample)(shortcut);
    }
    return (y + shortcut).relu_();
  }

  // After fold_batchnorm: every convolution packed in `dtype` (float32 or bfloat16) for forward_blocked.
  void pack(torch::ScalarType dtype) {
    BlockPacks& packs = dtype == torch::kBFloat16 ? bf16_ : fp32_;
    packs.convs.clear();
    for (const nn::Conv2d& c : convs_) packs.convs.emplace_back(*c, dtype);
    if (downsample_)
      packs.downsample.emplace(*std::dynamic_pointer_cast<nn::Conv2dImpl>(downsample_->ptr(downsample_->size() - 1)), dtype);
  }

  bool has_attention() const { return static_cast<bool>(attn_); }

  void zero_init_last_bn() { nn::init::zeros_(bns_.back()->weight); }

  void fold_batchnorm() {
    for (size_t i = 0; i < convs_.size(); ++i) fold_batchnorm_into(*convs_[i], *bns_[i]);
    folded_ = true;
    if (!downsample_) return;
    // The downsample path is [AvgPool | Identity,] conv, bn: the same path without its last module.
    nn::Sequential without_bn;
    const size_t n = downsample_->size();
    const auto conv = std::dynamic_pointer_cast<nn::Conv2dImpl>(downsample_->ptr(n - 2));
    const auto bn = std::dynamic_pointer_cast<nn::BatchNorm2dImpl>(downsample_->ptr(n - 1));
    if (!conv || !bn) throw std::logic_error("resnet: a downsample path that does not end in conv, bn");
    fold_batchnorm_into(*conv, *bn);
    for (size_t i = 0; i + 1 < n; ++i) {
      if (auto c = std::dynamic_pointer_cast<nn::Conv2dImpl>(downsample_->ptr(i))) without_bn->push_back(c);
      else if (auto p = std::dynamic_pointer_cast<nn::AvgPool2dImpl>(downsample_->ptr(i))) without_bn->push_back(p);
      else without_bn->push_back(nn::Identity());
    }
    downsample_ = replace_module("downsample", without_bn);
  }

 private:
  void add_conv(int index, nn::Conv2d c) {
    const int64_t out = c->options.out_channels();
    convs_.push_back(register_module("conv" + std::to_string(index), c));
    bns_.push_back(register_module("bn" + std::to_string(index), nn::BatchNorm2d(out)));
  }

  std::vector<nn::Conv2d> convs_;
  std::vector<nn::BatchNorm2d> bns_;
  Attention attn_;
  nn::Sequential downsample_{nullptr};
  bool folded_ = false;  // BatchNorms folded into the convolutions (fold_batchnorm)
  BlockPacks fp32_, bf16_;  // pack(): the convolutions for forward_blocked, per dtype
};
TORCH_MODULE(Block);

nn::Sequential make_downsample(int64_t in, int64_t out, int64_t stride, bool avg_down) {
  if (!avg_down) return nn::Sequential(conv(in, out, 1, stride), nn::BatchNorm2d(out));
  // timm's downsample_avg: pool first (Identity at stride 1) so the 1x1 conv sees every pixel.
  nn::Sequential seq;
  if (stride == 1) {
    seq->push_back(nn::Identity());
  } else {
    seq->push_back(nn::AvgPool2d(nn::AvgPool2dOptions(2).stride(stride).ceil_mode(true).count_include_pad(false)));
  }
  seq->push_back(conv(in, out, 1));
  seq->push_back(nn::BatchNorm2d(out));
  return seq;
}

class ResNetImpl : public BackboneImpl {
 public:
  explicit ResNetImpl(const ModelCfg& cfg) : global_pool_(cfg.resnet.global_pool) {
    const ResNetArgs& a = cfg.resnet;
    const bool bottleneck = a.block == "bottleneck";
    const bool deep = a.stem_type.rfind("deep", 0) == 0;
    const bool cifar = a.stem_type == "cifar";
    // The plain stem is always 64 wide, as in timm; the deep stems end twice as wide as stem_width.
    int64_t inplanes = deep ? a.stem_width * 2 : cifar ? a.stem_width : 64;
    if (deep) {
      const int64_t s0 = a.stem_type == "deep_tiered" ? 3 * (a.stem_width / 4) : a.stem_width;
      const int64_t s1 = a.stem_width;
      stem_ = register_module("conv1", nn::Sequential(conv(cfg.in_chans, s0, 3, 2), nn::BatchNorm2d(s0), nn::ReLU(),
                                                      conv(s0, s1, 3), nn::BatchNorm2d(s1), nn::ReLU(),
                                                      conv(s1, inplanes, 3)));
    } else if (cifar) {
      // Small inputs (28x28, 32x32) keep their resolution: one 3x3 conv at stride 1 and no max-pool, as the
      // CIFAR ResNets of He et al. 2016 do. Not a timm stem, but named as timm's plain stem is.
      stem_conv_ = register_module("conv1", conv(cfg.in_chans, inplanes, 3));
      stem_pool_ = false;
    } else {
      // timm's plain stem is a bare conv named conv1 (a Sequential would name it conv1.0).
      stem_conv_ = register_module("conv1", nn::Conv2d(nn::Conv2dOptions(cfg.in_chans, 64, 7).stride(2).padding(3).bias(false)));
    }
    bn1_ = register_module("bn1", nn::BatchNorm2d(inplanes));

    info_.push_back({"act1", inplanes, stem_pool_ ? 2 : 1});
    const std::vector<ResNetStagePlan> plans = resnet_stage_plans(a, stem_pool_ ? 4 : 1);
    for (int64_t s = 0; s < 4; ++s) {
      const ResNetStagePlan& plan = plans[s];
      const int64_t planes = a.channels[s];
      const int64_t out = bottleneck ? planes * 4 : planes;
      nn::ModuleList stage;
      for (int64_t b = 0; b < a.layers[s]; ++b) {
        const int64_t in = b == 0 ? inplanes : out;
        const int64_t st = b == 0 ? plan.stride : 1;
        nn::Sequential down{nullptr};
        if (b == 0 && (plan.stride != 1 || inplanes != out))
          down = make_downsample(inplanes, out, plan.stride, a.avg_down);
        const int64_t first_dilation = b == 0 ? plan.first_dilation : plan.dilation;
        stage->push_back(Block(bottleneck, in, planes, st, first_dilation, plan.dilation, down, a.attn));
      }
      inplanes = out;
      stages_.push_back(register_module("layer" + std::to_string(s + 1), stage));
      info_.push_back({"layer" + std::to_string(s + 1), out, plan.net_stride});
    }
    num_features_ = inplanes;
    init_weights();
  }

  Forward forward_features(const torch::Tensor& x, const ForwardRequest& request) override {
    Forward f;
    ForwardRecorder rec{request, f};
    torch::Tensor y = stem_ ? stem_->forward(x) : stem_conv_->forward(x);
    if (!folded_) y = bn1_->forward(y);
    y.relu_();
    rec.activation("stem_act", y);
    y = rec.stage("act1", y);
    if (request.stages) f.stages.emplace_back("act1", y);
    if (stem_pool_) {
      y = torch::max_pool2d(y, 3, 2, 1);
      rec.activation("stem_pool", y);
    }
    if (runs_blocked(y, request)) return forward_blocked(y, request, std::move(f));
    for (size_t s = 0; s < stages_.size(); ++s) {
      const std::string stage_name = "layer" + std::to_string(s + 1);
      for (size_t b = 0; b < stages_[s]->size(); ++b)
        y = stages_[s]->ptr<BlockImpl>(b)->forward(y, rec, stage_name + "." + std::to_string(b));
      rec.activation(stage_name, y);
      y = rec.stage(stage_name, y);
      if (request.stages && s + 1 < stages_.size()) f.stages.emplace_back(stage_name, y);
    }
    f.feature_map = y;
    return f;
  }

  torch::Tensor pool(const Forward& f) override {
    if (global_pool_ == "max") return f.feature_map.amax({2, 3});
    if (global_pool_ == "avgmax") return 0.5 * (f.feature_map.mean({2, 3}) + f.feature_map.amax({2, 3}));
    return f.feature_map.mean({2, 3});
  }
  std::string classifier_name() const override { return "fc"; }
  // oneDNN's convolutions are fed better in NHWC: ResNet-18 1.38x, ResNet-50 1.22x, SE-ResNet-50 1.18x the
  // images/s of NCHW on this 2-core machine (`attnvision bench`, batch 16, 2026-12-02).
  bool prefers_channels_last() const override { return true; }

  // bn1 into the stem's last convolution (a deep stem's inner pairs stay), and every block's pairs.
  void fold_batchnorm() override {
    const auto last = stem_ ? std::dynamic_pointer_cast<nn::Conv2dImpl>(stem_->ptr(stem_->size() - 1)) : stem_conv_.ptr();
    if (!last) throw std::logic_error("resnet: a stem that does not end in a convolution");
    fold_batchnorm_into(*last, *bn1_);
    for (auto& stage : stages_)
      for (size_t b = 0; b < stage->size(); ++b) stage->ptr<BlockImpl>(b)->fold_batchnorm();
    folded_ = true;
  }

  std::vector<FeatureInfo> feature_info() const override { return info_; }
  int64_t num_features() const override { return num_features_; }

  // Allows the blocked path; its packed weights are made on its first use, so runs that never take it (large
  // batches) do not hold a second copy of every convolution's weights.
  void pack_for_inference() override {
    if (!folded_) throw std::logic_error("resnet: pack_for_inference before fold_batchnorm");
    blocked_allowed_ = true;
    has_attention_ = false;
    for (auto& stage : stages_)
      for (size_t b = 0; b < stage->size(); ++b) has_attention_ = has_attention_ || stage->ptr<BlockImpl>(b)->has_attention();
  }

 private:
  // Small forwards run their stages in oneDNN's blocked layout on weights packed once: PyTorch's convolution
  // reorders plain weights into that layout on every call, which at batch 1 costs about as much as the
  // arithmetic. Measured with `attnvision bench` (2026-12-04, 2 cores), blocked against channels-last, fp32:
  // batch 1 at 224 px ResNet-50 38.8 / 31.3 images/s, SE-ResNet-50 34.2 / 29.0, CBAM-ResNet-50 29.5 / 25.1,
  // ResNet-18 85.2 / 76.4; bf16, where autocast also casts every weight on every call, batch 1: ResNet-50
  // 67.0 / 38.6, SE 41.9 / 33.3, CBAM 32.7 / 29.1; fp32 batch 4: ResNet-50 43.3 / 41.9 but SE-ResNet-50
  // 38.1 / 39.2. At batch 16 channels-last wins (channels-last against blocked: ResNet-50 43.7 / 42.9,
  // ResNet-18 110.7 / 102.8, SE 40.6 / 37.0: oneDNN's NHWC kernels, and no dense round trips for the
  // attention). Hence blocked up to kBlockedMaxPixels stem-output pixels per forward (batch 2 at 224 px), and
  // beyond for small images (below). Only where nothing needs the stages' insides: no gradient, no recorded
  // activations or attention maps; float32 without autocast, or bfloat16 under bf16 autocast.
  // Small images keep the blocked layout ahead at any batch when no attention needs dense round trips: at
  // 128 px (32 x 32 after the stem), fp32, blocked against channels-last: ResNet-18 batch 32 312.7 / 284.4,
  // ResNet-50 batch 16 124.8 / 117.2, ResNet-18 + CenterNet batch 32 243.7 / 235.3; but the ECA scenes detector
  // at batch 32 421.0 / 477.1, and ResNet-18 at 160 px batch 8 191.2 / 188.4 (level).
  static constexpr int64_t kBlockedMaxPixels = 2 * 56 * 56;
  static constexpr int64_t kBlockedMaxImagePixelsWithoutAttention = 32 * 32;
  bool runs_blocked(const torch::Tensor& x, const ForwardRequest& request) const {
    const bool fp32 = x.scalar_type() == torch::kFloat32 && !at::autocast::is_cpu_enabled();
    const bool bf16 = x.scalar_type() == torch::kBFloat16 && at::autocast::is_cpu_enabled() &&
                      at::autocast::get_autocast_cpu_dtype() == torch::kBFloat16;
    const int64_t image_pixels = x.size(2) * x.size(3);
    const bool small = x.size(0) * image_pixels <= kBlockedMaxPixels ||
                       (!has_attention_ && image_pixels <= kBlockedMaxImagePixelsWithoutAttention);
    return blocked_allowed_ && (fp32 || bf16) && small &&
           !torch::GradMode::is_enabled() && !request.gradient_at && !request.activations && !request.attention;
  }

  // The stages on MKLDNN tensors from the stem's (dense) output, into `f`: a stage's output comes back dense
  // (NCHW) where the request or the feature map needs it.
  Forward forward_blocked(const torch::Tensor& stem_out, const ForwardRequest& request, Forward f) {
    const torch::ScalarType dtype = stem_out.scalar_type();
    std::call_once(dtype == torch::kBFloat16 ? packed_bf16_ : packed_fp32_, [&] {
      for (auto& stage : stages_)
        for (size_t b = 0; b < stage->size(); ++b) stage->ptr<BlockImpl>(b)->pack(dtype);
    });
    torch::Tensor y = stem_out.contiguous().to_mkldnn();
    for (size_t s = 0; s < stages_.size(); ++s) {
      for (size_t b = 0; b < stages_[s]->size(); ++b) y = stages_[s]->ptr<BlockImpl>(b)->forward_blocked(y);
      if (request.stages && s + 1 < stages_.size()) f.stages.emplace_back("layer" + std::to_string(s + 1), y.to_dense());
    }
    f.feature_map = y.to_dense();
    return f;
  }

  // timm's ResNet.init_weights: kaiming-normal convs (fan_out, relu), unit BN, and the last BN of each
  // block zeroed so every residual branch starts as identity.
  void init_weights() {
    for (auto& m : modules(/*include_self=*/false)) {
      if (auto* c = m->as<nn::Conv2d>()) nn::init::kaiming_normal_(c->weight, 0.0, torch::kFanOut, torch::kReLU);
      if (auto* bn = m->as<nn::BatchNorm2d>()) {
        nn::init::ones_(bn->weight);
        nn::init::zeros_(bn->bias);
      }
    }
    for (auto& stage : stages_)
      for (size_t b = 0; b < stage->size(); ++b) stage->ptr<BlockImpl>(b)->zero_init_last_bn();
  }

  nn::Sequential stem_{nullptr};
  nn::Conv2d stem_conv_{nullptr};
  nn::BatchNorm2d bn1_{nullptr};
  bool stem_pool_ = true;
  bool folded_ = false;
  bool blocked_allowed_ = false;  // pack_for_inference: small forwards may take the blocked path
  bool has_attention_ = false;    // some block has an attention module (dense round trips on the blocked path)
  std::once_flag packed_fp32_, packed_bf16_;  // the blocks' packed weights exist, per dtype
  std::string global_pool_;
  std::vector<nn::ModuleList> stages_;
  std::vector<FeatureInfo> info_;
  int64_t num_features_ = 0;
};

}  // namespace

std::vector<ResNetStagePlan> resnet_stage_plans(const ResNetArgs& args, int64_t stem_stride) {
  std::vector<ResNetStagePlan> plans;
  int64_t net_stride = stem_stride, dilation = 1;
  for (int64_t s = 0; s < 4; ++s) {
    const int64_t first_dilation = dilation;
    int64_t stride = s == 0 ? 1 : 2;
    if (net_stride >= args.feature_stride) {
      dilation *= stride;
      stride = 1;
    } else {
      net_stride *= stride;
    }
    plans.push_back({stride, first_dilation, dilation, net_stride});
  }
  return plans;
}

Backbone build_resnet(const ModelCfg& cfg) { return std::make_shared<ResNetImpl>(cfg); }

}  // namespace attnvision::models
