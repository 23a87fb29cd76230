// Multiply-accumulate count of one ResNet forward at cfg.input_size, from the architecture alone (the
// same layer walk as models/backbones/resnet.cpp). Convolutions and the attention MLPs/convs are
// counted (the head counts its own, models/heads/); element-wise ops, pooling and BatchNorm are not (they are memory bound, not FLOP bound).
#include "models/backbones/resnet.h"
#include "models/layers/attention.h"
#include "models/model_cfg.h"

#include <cmath>

namespace attnvision::models {
namespace {

struct Shape {
  double h, w;
};

// Output size of a conv / pool with "same"-style padding k/2: ceil(h / stride) for odd kernels.
Shape down(Shape s, int64_t stride) { return {std::ceil(s.h / stride), std::ceil(s.w / stride)}; }

double conv_macs(Shape out, int64_t in, int64_t outc, int64_t k) { return out.h * out.w * in * outc * k * k; }

double attn_macs(const std::string& attn, Shape s, int64_t c) {
  if (attn == "se") {
    const int64_t rd = make_divisible(c / 16.0, 8, 0.0);
    return 2.0 * c * rd;
  }
  if (attn == "eca") return 5.0 * c;  // a 1-D conv of kernel 3..7 across channels
  if (attn == "cbam") {
    const int64_t rd = make_divisible(c / 16.0, 1, 0.0);
    return 4.0 * c * rd + s.h * s.w * 2 * 49;
  }
  return 0.0;
}

}  // namespace

double resnet_gmacs(const ModelCfg& cfg) {
  const ResNetArgs& a = cfg.resnet;
  const bool bottleneck = a.block == "bottleneck";
  Shape s{static_cast<double>(cfg.input_size[1]), static_cast<double>(cfg.input_size[2])};
  double macs = 0;
  int64_t inplanes = 64;
  if (a.stem_type == "cifar") {
    inplanes = a.stem_width;
    macs += conv_macs(s, cfg.in_chans, inplanes, 3);  // stride 1, no max pool
  } else if (a.stem_type.rfind("deep", 0) == 0) {
    s = down(s, 2);
    const int64_t s0 = a.stem_type == "deep_tiered" ? 3 * (a.stem_width / 4) : a.stem_width;
    inplanes = a.stem_width * 2;
    macs += conv_macs(s, cfg.in_chans, s0, 3) + conv_macs(s, s0, a.stem_width, 3) + conv_macs(s, a.stem_width, inplanes, 3);
    s = down(s, 2);  // max pool
  } else {
    s = down(s, 2);
    macs += conv_macs(s, cfg.in_chans, 64, 7);
    s = down(s, 2);  // max pool
  }
  const std::vector<ResNetStagePlan> plans = resnet_stage_plans(a, a.stem_type == "cifar" ? 1 : 4);
  for (int64_t st = 0; st < 4; ++st) {
    const int64_t planes = a.channels[st];
    const int64_t out = bottleneck ? planes * 4 : planes;
    for (int64_t b = 0; b < a.layers[st]; ++b) {
      const int64_t stride = b == 0 ? plans[st].stride : 1;
      const int64_t in = b == 0 ? inplanes : out;
      const Shape o = down(s, stride);
      if (bottleneck) {
        macs += conv_macs(s, in, planes, 1) + conv_macs(o, planes, planes, 3) + conv_macs(o, planes, out, 1);
      } else {
        macs += conv_macs(o, in, planes, 3) + conv_macs(o, planes, out, 3);
      }
      macs += attn_macs(a.attn, o, out);
      if (b == 0 && (stride != 1 || in != out)) macs += conv_macs(o, in, out, 1);
      s = o;
    }
    inplanes = out;
  }
  return macs / 1e9;
}

}  // namespace attnvision::models
