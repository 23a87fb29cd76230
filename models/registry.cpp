#include "models/registry.h"

#include "models/backbones/resnet.h"
#include "models/heads/head.h"
#include "models/backbones/vit.h"

#include <algorithm>
#include <stdexcept>

namespace attnvision::models {

double resnet_gmacs(const ModelCfg& cfg);  // models/backbones/resnet_flops.cpp

namespace {

int64_t resnet_features(const ModelCfg& cfg) {
  return cfg.resnet.channels.back() * (cfg.resnet.block == "bottleneck" ? 4 : 1);
}
int64_t vit_features(const ModelCfg& cfg) { return cfg.vit.embed_dim; }

// Architecture table: arch name -> backbone builder, cost model and pooled-feature width.
struct ArchRow {
  const char* arch;
  Backbone (*build)(const ModelCfg&);
  double (*gmacs)(const ModelCfg&);
  int64_t (*num_features)(const ModelCfg&);
};

const std::vector<ArchRow>& arch_table() {
  static const std::vector<ArchRow> table = {
      {"resnet", build_resnet, resnet_gmacs, resnet_features},
      {"vit", build_vit, vit_gmacs, vit_features},
  };
  return table;
}

const ArchRow& arch_row(const std::string& arch) {
  for (const ArchRow& row : arch_table())
    if (arch == row.arch) return row;
  throw std::invalid_argument("unknown architecture '" + arch + "'");
}

ModelCfg resnet(const std::string& name, const std::string& block, std::vector<int64_t> layers, const std::string& attn,
                const std::string& stem_type = "", int64_t stem_width = 64, bool avg_down = false) {
  ModelCfg c;
  c.name = name;
  c.arch = "resnet";
  c.resnet.block = block;
  c.resnet.layers = std::move(layers);
  c.resnet.attn = attn;
  c.resnet.stem_type = stem_type;
  c.resnet.stem_width = stem_width;
  c.resnet.avg_down = avg_down;
  return c;  // ImageNet-1k defaults: 3x224x224, crop 0.875, bilinear, ImageNet mean/std
}

// timm's VisionTransformer at 224 px, patch 16, with the augreg pretrained_cfg (Inception mean/std 0.5,
// bicubic, crop 0.9) of its *.augreg_in21k_ft_in1k checkpoints.
ModelCfg vit(const std::string& name, int64_t embed_dim, int64_t depth, int64_t num_heads) {
  ModelCfg c;
  c.name = name;
  c.arch = "vit";
  c.vit.img_size = 224;
  c.vit.patch_size = 16;
  c.vit.embed_dim = embed_dim;
  c.vit.depth = depth;
  c.vit.num_heads = num_heads;
  c.input_size = {c.in_chans, 224, 224};
  c.crop_pct = 0.9;
  c.interpolation = "bicubic";
  c.mean = {0.5, 0.5, 0.5};
  c.std = {0.5, 0.5, 0.5};
  return c;
}

// timm's pretrained_cfg for checkpoints evaluated at another resolution / crop / filter.
ModelCfg with_eval(ModelCfg c, int64_t size, double crop_pct, const std::string& interpolation) {
  c.input_size = {c.in_chans, size, size};
  c.crop_pct = crop_pct;
  c.interpolation = interpolation;
  return c;
}

}  // namespace

const std::vector<RegisteredModel>& registered_models() {
  static const std::vector<RegisteredModel> table = {
      {"resnet18", "ResNet-18 (BasicBlock 2-2-2-2)", resnet("resnet18", "basic", {2, 2, 2, 2}, "none")},
      {"resnet34", "ResNet-34 (BasicBlock 3-4-6-3)", resnet("resnet34", "basic", {3, 4, 6, 3}, "none")},
      {"resnet50", "ResNet-50 (Bottleneck 3-4-6-3)", resnet("resnet50", "bottleneck", {3, 4, 6, 3}, "none")},
      {"resnet50d", "ResNet-50-D: deep stem, avg-pool downsample",
       with_eval(resnet("resnet50d", "bottleneck", {3, 4, 6, 3}, "none", "deep", 32, true), 224, 0.875, "bicubic")},
      {"seresnet18", "ResNet-18 with Squeeze-and-Excitation", resnet("seresnet18", "basic", {2, 2, 2, 2}, "se")},
      {"seresnet34", "ResNet-34 with Squeeze-and-Excitation", resnet("seresnet34", "basic", {3, 4, 6, 3}, "se")},
      {"seresnet50", "ResNet-50 with Squeeze-and-Excitation",
       with_eval(resnet("seresnet50", "bottleneck", {3, 4, 6, 3}, "se"), 224, 0.875, "bicubic")},
      {"ecaresnet26t", "ResNet-26-T with Efficient Channel Attention (tiered stem)",
       with_eval(resnet("ecaresnet26t", "bottleneck", {2, 2, 2, 2}, "eca", "deep_tiered", 32, true), 256, 0.95,
                 "bicubic")},
      {"ecaresnet50d", "ResNet-50-D with Efficient Channel Attention",
       with_eval(resnet("ecaresnet50d", "bottleneck", {3, 4, 6, 3}, "eca", "deep", 32, true), 224, 0.875, "bicubic")},
      {"cbam_resnet18", "ResNet-18 with CBAM (timm attn_layer='cbam')",
       resnet("cbam_resnet18", "basic", {2, 2, 2, 2}, "cbam")},
      {"cbam_resnet50", "ResNet-50 with CBAM (timm attn_layer='cbam')",
       resnet("cbam_resnet50", "bottleneck", {3, 4, 6, 3}, "cbam")},
      {"vit_tiny_patch16_224", "ViT-Ti/16: 192 wide, 12 blocks, 3 heads",
       vit("vit_tiny_patch16_224", 192, 12, 3)},
      {"vit_small_patch16_224", "ViT-S/16: 384 wide, 12 blocks, 6 heads",
       vit("vit_small_patch16_224", 384, 12, 6)},
      {"vit_base_patch16_224", "ViT-B/16: 768 wide, 12 blocks, 12 heads",
       vit("vit_base_patch16_224", 768, 12, 12)},
  };
  return table;
}

ModelCfg default_cfg(const std::string& name) {
  for (const RegisteredModel& m : registered_models())
    if (m.name == name) return m.cfg;
  std::string close;
  for (const RegisteredModel& m : registered_models()) {
    // Suggest names sharing the family prefix, e.g. "resnet5" -> resnet50, seresnet50 ...
    const std::string stem = name.substr(0, std::min<size_t>(name.size(), 6));
    if (!stem.empty() && m.name.find(stem) != std::string::npos) close += (close.empty() ? "" : ", ") + m.name;
  }
  throw std::invalid_argument("unknown model '" + name + "'" + (close.empty() ? "" : " (did you mean: " + close + "?)") +
                              "; `attnvision models` lists them");
}

Network build_model(const ModelCfg& cfg, Initialisation init) {
  cfg.validate();
  Backbone backbone = arch_row(cfg.arch).build(cfg);
  // Before the head is built, so a seed gives the same network as when the backbone initialised itself.
  if (init == Initialisation::kRandom) backbone->init_weights();
  Head head = head_for(cfg.task, cfg.head).build(cfg, *backbone);
  return std::make_shared<NetworkImpl>(std::move(backbone), std::move(head));
}

int64_t count_parameters(torch::nn::Module& model) {
  int64_t n = 0;
  for (const auto& p : model.parameters()) n += p.numel();
  return n;
}

double forward_gflops(const ModelCfg& cfg) {
  const ArchRow& arch = arch_row(cfg.arch);
  const double own = 2.0 * (arch.gmacs(cfg) + head_for(cfg.task, cfg.head).gmacs(cfg, arch.num_features(cfg)));
  // A captioner that attends to a detector's findings runs that detector too.
  if (cfg.task != "captioning" || cfg.caption.detector_classes == 0) return own;
  const double detector = forward_gflops(cfg.embedded_detector());
  // Its second stage classifies a crop of each detection token's box (at most; weak ones are not cropped).
  if (!cfg.caption.detector_second_stage || cfg.caption.second_stage_model.empty()) return own + detector;
  const double crops = static_cast<double>(cfg.caption.detector_tokens);
  return own + detector + crops * forward_gflops(cfg.embedded_second_stage());
}

}  // namespace attnvision::models
