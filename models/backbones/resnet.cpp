#include "models/backbones/resnet.h"

#include "models/kernels/packed_conv.h"
#include "models/layers/attention.h"
#include "models/layers/batchnorm_fold.h"

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


PackedConv2d pack_conv(const nn::Conv2dImpl& c, torch::ScalarType dtype) {
  return PackedConv2d(c.weight, c.bias, geometry_of(c), dtype);
}

// A block's convolutions packed in one dtype.
struct BlockPacks {
  std::vector<PackedConv2d> convs;
  std::optional<PackedConv2d> downsample;
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

  // The same block on channels-last tensors of x's dtype through oneDNN directly, after pack(dtype): each inner
  // convolution with its ReLU in its epilogue and, where no attention sits between, the last one with the
  // shortcut add and the ReLU, accumulated into the shortcut in place. An identity shortcut is `x` itself,
  // overwritten only when the caller says nothing else holds it (`x_writable`).
  torch::Tensor forward_packed(const torch::Tensor& x, bool x_writable) {
    const BlockPacks& packs = x.scalar_type() == torch::kBFloat16 ? bf16_ : fp32_;
    torch::Tensor y = x;
    for (size_t i = 0; i + 1 < packs.convs.size(); ++i) y = packs.convs[i](y, /*relu=*/true);
    torch::Tensor shortcut = x;
    bool shortcut_writable = x_writable;
    if (downsample_) {
      // The folded path is [AvgPool | Identity,] conv: the pool runs on the channels-last tensor as it is.
      for (size_t i = 0; i + 1 < downsample_->size(); ++i)
        if (auto pool = std::dynamic_pointer_cast<nn::AvgPool2dImpl>(downsample_->ptr(i))) shortcut = pool->forward(shortcut);
      shortcut = (*packs.downsample)(shortcut);
      shortcut_writable = true;
    }
    const PackedConv2d& last = packs.convs.back();
    if (!attn_ && shortcut_writable) {
      last.accumulate_into(shortcut, y, /*relu=*/true);
      return shortcut;
    }
    torch::Tensor z = last(y);
    if (attn_) z = attn_->forward(z).to(x.scalar_type());  // autocast may widen it; the next block reads x's dtype
    return z.add_(shortcut).relu_();
  }

  // After fold_batchnorm: every convolution packed in `dtype` (float32 or bfloat16) for forward_packed.
  void pack(torch::ScalarType dtype) {
    BlockPacks& packs = dtype == torch::kBFloat16 ? bf16_ : fp32_;
    packs.convs.clear();
    for (const nn::Conv2d& c : convs_) packs.convs.push_back(pack_conv(*c, dtype));
    if (downsample_)
      packs.downsample.emplace(
          pack_conv(*std::dynamic_pointer_cast<nn::Conv2dImpl>(downsample_->ptr(downsample_->size() - 1)), dtype));
  }

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
  BlockPacks fp32_, bf16_;  // pack(): the convolutions for forward_packed, per dtype
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
    if (runs_packed(y, request)) return forward_packed(y, request, std::move(f));
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

  // Allows the packed path; its packed weights are made on its first use, per dtype, so a network that never
  // takes it (a saliency run) does not hold a second copy of every convolution's weights.
  void pack_for_inference() override {
    if (!folded_) throw std::logic_error("resnet: pack_for_inference before fold_batchnorm");
    packed_allowed_ = true;
  }

 private:
  // Inference forwards run their stages through oneDNN's convolutions directly, on weights packed once and
  // with the ReLUs and residual adds fused into them (BlockImpl::forward_packed): ATen's convolution reorders
  // plain weights on every call and fuses nothing. Only where nothing needs the stages' insides: no gradient,
  // no recorded activations or attention maps; float32 without autocast, or bfloat16 under bf16 autocast.
  bool runs_packed(const torch::Tensor& x, const ForwardRequest& request) const {
    const bool fp32 = x.scalar_type() == torch::kFloat32 && !at::autocast::is_cpu_enabled();
    const bool bf16 = x.scalar_type() == torch::kBFloat16 && at::autocast::is_cpu_enabled() &&
                      at::autocast::get_autocast_cpu_dtype() == torch::kBFloat16;
    return packed_allowed_ && (fp32 || bf16) && !torch::GradMode::is_enabled() && !request.gradient_at &&
           !request.activations && !request.attention;
  }

  // The stages from the stem's output, channels-last, into `f`.
  Forward forward_packed(const torch::Tensor& stem_out, const ForwardRequest& request, Forward f) {
    const torch::ScalarType dtype = stem_out.scalar_type();
    std::call_once(dtype == torch::kBFloat16 ? packed_bf16_ : packed_fp32_, [&] {
      for (auto& stage : stages_)
        for (size_t b = 0; b < stage->size(); ++b) stage->ptr<BlockImpl>(b)->pack(dtype);
    });
    torch::Tensor y = stem_out.contiguous(at::MemoryFormat::ChannelsLast);
    // Whether y may be overwritten: not while `f` holds it as a stage (without a stem pool, act1 is y).
    bool writable = !(request.stages && !stem_pool_);
    for (size_t s = 0; s < stages_.size(); ++s) {
      for (size_t b = 0; b < stages_[s]->size(); ++b) {
        y = stages_[s]->ptr<BlockImpl>(b)->forward_packed(y, writable);
        writable = true;
      }
      if (request.stages && s + 1 < stages_.size()) {
        f.stages.emplace_back("layer" + std::to_string(s + 1), y);
        writable = false;
      }
    }
    f.feature_map = y;
    return f;
  }

  // timm's ResNet.init_weights: kaiming-normal convs (fan_out, relu), unit BN, and the last BN of each
  // block zeroed so every residual branch starts as identity.
  void init_weights() override {
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
  bool packed_allowed_ = false;  // pack_for_inference: inference forwards may take the packed path
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
