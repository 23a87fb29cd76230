// The detection head: CenterNet ("Objects as Points") on any backbone. The upsampling neck
// (models/heads/upsampling_neck.h) brings the backbone's last feature map up to output_stride; three branches
// then predict, per cell, class-centre logits, box size and the centre's sub-cell offset. Targets, loss and
// decoding are in models/heads/centernet.h.
#include "models/heads/centernet.h"

#include "models/heads/head.h"
#include "models/heads/upsampling_neck.h"
#include "models/kernels/packed_conv.h"

#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/conv.h>

#include <ATen/autocast_mode.h>
#include <c10/core/GradMode.h>

#include <cmath>
#include <limits>
#include <mutex>
#include <optional>
#include <stdexcept>

namespace attnvision::models {
namespace {
namespace nn = torch::nn;

// 3x3 conv + ReLU + 1x1 conv, as CenterNet's branches.
nn::Sequential branch(int64_t width, int64_t outputs, double bias) {
  auto last = nn::Conv2d(nn::Conv2dOptions(width, outputs, 1));
  nn::init::constant_(last->bias, bias);
  return nn::Sequential(nn::Conv2d(nn::Conv2dOptions(width, width, 3).padding(1)), nn::ReLU(nn::ReLUOptions(true)),
                        last);
}

// The heatmap's initial bias gives every cell a prior of 0.1 of being a centre (-log((1 - 0.1) / 0.1)), as
// CenterNet does, so the focal loss does not start swamped by the easy negatives.
constexpr double kHeatmapPriorBias = -2.19;

class CenterNetHeadImpl : public HeadImpl {
 public:
  CenterNetHeadImpl(const ModelCfg& cfg, BackboneImpl& backbone)
      : neck_(*this, backbone.feature_info(), cfg.detection.head_width, cfg.detection.output_stride,
              "detection head") {
    const int64_t width = cfg.detection.head_width;
    heatmap_ = register_module("heatmap", branch(width, cfg.num_classes, kHeatmapPriorBias));
    size_ = register_module("box_size", branch(width, 2, 0.0));
    offset_ = register_module("box_offset", branch(width, 2, 0.0));
  }

  ForwardRequest needs() const override {
    ForwardRequest r;
    r.stages = true;
    return r;
  }

  void prepare_for_inference() override { packed_allowed_ = true; }

  void forward(BackboneImpl&, Forward& f, const ForwardRequest&) override {
    if (runs_packed(f.feature_map)) return forward_packed(f);
    const torch::Tensor y = neck_.forward(f);
    f.heatmap = heatmap_->forward(y);
    f.box_size = size_->forward(y);
    f.box_offset = offset_->forward(y);
  }

 private:
  // The neck and the branches folded and packed for inference (float32): every BatchNorm folded into its
  // convolution and the ReLUs fused into them, the three branches' 3x3 convolutions run as one three times as
  // wide and their 1x1 convolutions as one block-diagonal 1x1, whose output channels are split again.
  struct Packed {
    UpsamplingNeck::Packed neck;
    std::optional<PackedConv2d> branch_hidden, branch_out;
  };

  // Measured with `attnvision bench` on ResNet-18 + this head (128 px, batch 32, 2 cores): see README,
  // "Detection". The modules' own path stays for gradients (saliency explains boxes) and autocast.
  bool runs_packed(const torch::Tensor& x) const {
    return packed_allowed_ && x.scalar_type() == torch::kFloat32 && !at::autocast::is_cpu_enabled() &&
           !c10::GradMode::is_enabled();
  }

  const Packed& packed() {
    std::call_once(packed_once_, [this] {
      torch::NoGradGuard no_grad;
      packed_.neck = neck_.pack();
      const std::vector<nn::Sequential> branches{heatmap_, size_, offset_};
      std::vector<torch::Tensor> hidden_w, hidden_b, out_b;
      int64_t outputs = 0;
      for (const nn::Sequential& b : branches) {
        hidden_w.push_back(b->ptr<nn::Conv2dImpl>(0)->weight);
        hidden_b.push_back(b->ptr<nn::Conv2dImpl>(0)->bias);
        out_b.push_back(b->ptr<nn::Conv2dImpl>(2)->bias);
        outputs += b->ptr<nn::Conv2dImpl>(2)->options.out_channels();
      }
      const int64_t width = hidden_w[0].size(0);
      torch::Tensor out_w = torch::zeros({outputs, width * 3, 1, 1});
      for (int64_t i = 0, row = 0; i < 3; ++i) {
        const torch::Tensor& w = branches[i]->ptr<nn::Conv2dImpl>(2)->weight;
        out_w.narrow(0, row, w.size(0)).narrow(1, i * width, width).copy_(w);
        row += w.size(0);
      }
      packed_.branch_hidden.emplace(torch::cat(hidden_w), torch::cat(hidden_b),
                                    geometry_of(*heatmap_->ptr<nn::Conv2dImpl>(0)), torch::kFloat32);
      packed_.branch_out.emplace(out_w, torch::cat(out_b), geometry_of(*heatmap_->ptr<nn::Conv2dImpl>(2)),
                                 torch::kFloat32);
    });
    return packed_;
  }

  void forward_packed(Forward& f) {
    const Packed& p = packed();
    const torch::Tensor y = neck_.forward(p.neck, f);
    const torch::Tensor out = (*p.branch_out)((*p.branch_hidden)(y, /*relu=*/true));
    const int64_t classes = heatmap_->ptr<nn::Conv2dImpl>(2)->options.out_channels();
    const int64_t sizes = size_->ptr<nn::Conv2dImpl>(2)->options.out_channels();
    f.heatmap = out.narrow(1, 0, classes);
    f.box_size = out.narrow(1, classes, sizes);
    f.box_offset = out.narrow(1, classes + sizes, out.size(1) - classes - sizes);
  }

  UpsamplingNeck neck_;
  nn::Sequential heatmap_{nullptr}, size_{nullptr}, offset_{nullptr};
  bool packed_allowed_ = false;  // prepare_for_inference: forwards without gradient may take the packed path
  std::once_flag packed_once_;
  Packed packed_;
};

// Adds a 2-D Gaussian of the given radius, peak 1, at (cx, cy) into `map` (h x w) by element-wise maximum,
// as CenterNet's draw_umich_gaussian (sigma = diameter / 6; values below float epsilon times the peak dropped).
void draw_gaussian(float* map, int64_t h, int64_t w, int64_t cx, int64_t cy, int64_t radius) {
  const double sigma = (2 * radius + 1) / 6.0;
  for (int64_t dy = -radius; dy <= radius; ++dy) {
    const int64_t y = cy + dy;
    if (y < 0 || y >= h) continue;
    for (int64_t dx = -radius; dx <= radius; ++dx) {
      const int64_t x = cx + dx;
      if (x < 0 || x >= w) continue;
      const double g = std::exp(-(dx * dx + dy * dy) / (2 * sigma * sigma));
      if (g < std::numeric_limits<double>::epsilon()) continue;
      float& cell = map[y * w + x];
      cell = std::max(cell, static_cast<float>(g));
    }
  }
}

// Gathers per-object predictions: `map` N x C x h x w at `index` N x M -> N x M x C.
torch::Tensor gather_cells(const torch::Tensor& map, const torch::Tensor& index) {
  const torch::Tensor flat = map.flatten(2).transpose(1, 2);  // N x hw x C
  return flat.gather(1, index.unsqueeze(2).expand({-1, -1, flat.size(2)}));
}

}  // namespace

Head build_centernet_head(const ModelCfg& cfg, BackboneImpl& backbone) {
  return std::make_shared<CenterNetHeadImpl>(cfg, backbone);
}

// The neck and the three branches at input_size / output_stride, given the backbone's output width.
double centernet_head_gmacs(const ModelCfg& cfg, int64_t num_features) {
  const double width = static_cast<double>(cfg.detection.head_width);
  const double cells = static_cast<double>(cfg.input_size[1] / cfg.detection.output_stride) *
                       static_cast<double>(cfg.input_size[2] / cfg.detection.output_stride);
  const double branches = cells * (3 * width * width * 9 + width * (cfg.num_classes + 4));
  return UpsamplingNeck::gmacs(cfg.input_size[1], cfg.input_size[2], cfg.detection.head_width,
                               cfg.detection.output_stride, cfg.backbone_stride(), num_features) +
         branches / 1e9;
}

double centernet_gaussian_radius(double height, double width, double min_overlap) {
  // CenterNet's gaussian_radius, kept as its authors wrote it (the three roots divide by 2 rather than by
  // 2a): trained detectors expect these radii.
  const double b1 = height + width, c1 = width * height * (1 - min_overlap) / (1 + min_overlap);
  const double r1 = (b1 + std::sqrt(b1 * b1 - 4 * c1)) / 2;
  const double b2 = 2 * (height + width), c2 = (1 - min_overlap) * width * height;
  const double r2 = (b2 + std::sqrt(b2 * b2 - 16 * c2)) / 2;
  const double a3 = 4 * min_overlap, b3 = -2 * min_overlap * (height + width), c3 = (min_overlap - 1) * width * height;
  const double r3 = (b3 + std::sqrt(b3 * b3 - 4 * a3 * c3)) / 2;
  return std::min({r1, r2, r3});
}

CenterNetTargets centernet_targets(const torch::Tensor& boxes, int64_t num_classes, int64_t h, int64_t w,
                                   int64_t stride) {
  const torch::Tensor b = boxes.to(torch::kCPU, torch::kFloat).contiguous();
  const int64_t n = b.size(0), m = b.size(1);
  CenterNetTargets t;
  t.heatmap = torch::zeros({n, num_classes, h, w});
  t.size = torch::zeros({n, m, 2});
  t.offset = torch::zeros({n, m, 2});
  t.index = torch::zeros({n, m}, torch::kLong);
  t.mask = torch::zeros({n, m});
  t.classes = torch::zeros({n, m}, torch::kLong);
  auto box = b.accessor<float, 3>();
  auto size = t.size.accessor<float, 3>();
  auto offset = t.offset.accessor<float, 3>();
  auto index = t.index.accessor<int64_t, 2>();
  auto mask = t.mask.accessor<float, 2>();
  auto classes = t.classes.accessor<int64_t, 2>();
  float* heat = t.heatmap.data_ptr<float>();
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < m; ++j) {
      const int64_t cls = static_cast<int64_t>(box[i][j][0]);
      if (cls < 0) continue;
      if (cls >= num_classes)
        throw std::invalid_argument("detection targets: class " + std::to_string(cls) + " of " +
                                    std::to_string(num_classes));
      const double bw = box[i][j][3] / static_cast<double>(stride), bh = box[i][j][4] / static_cast<double>(stride);
      const double cx = box[i][j][1] / static_cast<double>(stride) + bw / 2;
      const double cy = box[i][j][2] / static_cast<double>(stride) + bh / 2;
      const auto x = static_cast<int64_t>(std::floor(cx)), y = static_cast<int64_t>(std::floor(cy));
      if (bw <= 0 || bh <= 0 || x < 0 || y < 0 || x >= w || y >= h) continue;
      const auto radius = std::max<int64_t>(0, static_cast<int64_t>(centernet_gaussian_radius(bh, bw)));
      draw_gaussian(heat + (i * num_classes + cls) * h * w, h, w, x, y, radius);
      size[i][j][0] = static_cast<float>(bw);
      size[i][j][1] = static_cast<float>(bh);
      offset[i][j][0] = static_cast<float>(cx - x);
      offset[i][j][1] = static_cast<float>(cy - y);
      index[i][j] = y * w + x;
      mask[i][j] = 1;
      classes[i][j] = cls;
    }
  return t;
}

CenterNetLoss centernet_loss(const Forward& f, const torch::Tensor& boxes, int64_t stride, double class_weight,
                             double size_weight) {
  const auto device = f.heatmap.device();
  const CenterNetTargets t =
      centernet_targets(boxes, f.heatmap.size(1), f.heatmap.size(2), f.heatmap.size(3), stride);
  const torch::Tensor gt = t.heatmap.to(device), mask = t.mask.to(device).unsqueeze(2);
  const torch::Tensor index = t.index.to(device);
  CenterNetLoss loss;
  // Penalty-reduced focal loss on the sigmoid, clamped as CenterNet's _sigmoid so log() stays finite.
  const torch::Tensor p = f.heatmap.sigmoid().clamp(1e-4, 1 - 1e-4);
  const torch::Tensor pos = gt.eq(1).to(p.scalar_type());
  const torch::Tensor pos_loss = (p.log() * (1 - p).pow(2) * pos).sum();
  const torch::Tensor neg_loss = ((1 - p).log() * p.pow(2) * (1 - gt).pow(4) * (1 - pos)).sum();
  const torch::Tensor num_pos = pos.sum().clamp_min(1);
  loss.heatmap = -(pos_loss + neg_loss) / num_pos;
  // L1 at the centre cells only, normalised by the regressed coordinates (CenterNet's RegL1Loss).
  const torch::Tensor coords = mask.expand({-1, -1, 2}).sum() + 1e-4;
  loss.size = (gather_cells(f.box_size, index) - t.size.to(device)).abs().mul(mask).sum() / coords;
  loss.offset = (gather_cells(f.box_offset, index) - t.offset.to(device)).abs().mul(mask).sum() / coords;
  // The classes' competition at each centre cell, in float32 (the logits may be bf16 under autocast).
  const torch::Tensor logits = gather_cells(f.heatmap, index).to(torch::kFloat);  // N x M x C
  const torch::Tensor cross_entropy = torch::nn::functional::cross_entropy(
      logits.reshape({-1, logits.size(2)}), t.classes.to(device).reshape({-1}),
      torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kNone));
  const torch::Tensor objects = t.mask.to(device);
  loss.classes = (cross_entropy * objects.reshape({-1})).sum() / objects.sum().clamp_min(1);
  loss.total = loss.heatmap + size_weight * loss.size + loss.offset;
  if (class_weight > 0) loss.total = loss.total + class_weight * loss.classes;
  return loss;
}

torch::Tensor centernet_decode(const Forward& f, int64_t k, int64_t stride) {
  return centernet_decode_with_classes(f, k, stride).first;
}

std::pair<torch::Tensor, torch::Tensor> centernet_decode_with_classes(const Forward& f, int64_t k, int64_t stride) {
  const torch::Tensor heat = f.heatmap.to(torch::kFloat).sigmoid();
  const int64_t n = heat.size(0), c = heat.size(1), h = heat.size(2), w = heat.size(3);
  // A peak is its own 3x3 maximum; everything else is suppressed (CenterNet's NMS-free decoding).
  const torch::Tensor peaks = heat * torch::max_pool2d(heat, 3, 1, 1).eq(heat);
  const auto [scores, flat] = peaks.reshape({n, c * h * w}).topk(std::min(k, c * h * w));
  const torch::Tensor cls = flat.div(h * w, "floor");
  const torch::Tensor cell = flat.remainder(h * w);
  const torch::Tensor size = gather_cells(f.box_size.to(torch::kFloat), cell);      // N x k x 2
  const torch::Tensor offset = gather_cells(f.box_offset.to(torch::kFloat), cell);  // N x k x 2
  const torch::Tensor cx = (cell.remainder(w).to(torch::kFloat) + offset.select(2, 0)) * stride;
  const torch::Tensor cy = (cell.div(w, "floor").to(torch::kFloat) + offset.select(2, 1)) * stride;
  // A negative predicted size is no size; boxes are cut to the input, so that every consumer (detect, its
  // results files, the metric) sees the same boxes.
  const torch::Tensor half_w = size.select(2, 0).clamp_min(0) * (stride / 2.0);
  const torch::Tensor half_h = size.select(2, 1).clamp_min(0) * (stride / 2.0);
  const double width = static_cast<double>(w * stride), height = static_cast<double>(h * stride);
  const torch::Tensor x0 = (cx - half_w).clamp(0, width), x1 = (cx + half_w).clamp(0, width);
  const torch::Tensor y0 = (cy - half_h).clamp(0, height), y1 = (cy + half_h).clamp(0, height);
  return {torch::stack({x0, y0, x1 - x0, y1 - y0, scores, cls.to(torch::kFloat)}, 2), gather_cells(heat, cell)};
}

Forward centernet_flip_average(Forward f, const Forward& mirrored) {
  const torch::Tensor p =
      (f.heatmap.to(torch::kFloat).sigmoid() + mirrored.heatmap.to(torch::kFloat).sigmoid().flip({3})) / 2;
  // eps keeps a saturated probability finite (sigmoid is exactly 1 in float32 beyond a logit of about 17).
  f.heatmap = torch::logit(p, 1e-7);
  f.box_size = (f.box_size.to(torch::kFloat) + mirrored.box_size.to(torch::kFloat).flip({3})) / 2;
  return f;
}

}  // namespace attnvision::models
