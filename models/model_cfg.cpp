#include "models/model_cfg.h"

#include "models/heads/head.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <stdexcept>

namespace attnvision::models {
using nlohmann::json;

const std::vector<CfgField>& model_cfg_fields() {
  // clang-format off
  static const std::vector<CfgField> fields = {
      {"name", "", "a name for the model", [](ModelCfg& c) -> CfgFieldRef { return &c.name; }},
      {"arch", "", "resnet | vit", [](ModelCfg& c) -> CfgFieldRef { return &c.arch; }},
      {"task", "", "what the head does: classification | detection | anomaly | captioning", [](ModelCfg& c) -> CfgFieldRef { return &c.task; }},
      {"head", "", "which of the task's heads ('': its first; captioning: show_attend_tell | transformer | mean_lstm)", [](ModelCfg& c) -> CfgFieldRef { return &c.head; }},
      {"block", "resnet", "basic | bottleneck", [](ModelCfg& c) -> CfgFieldRef { return &c.resnet.block; }},
      {"layers", "resnet", "blocks per stage, 4 values", [](ModelCfg& c) -> CfgFieldRef { return &c.resnet.layers; }},
      {"channels", "resnet", "stage widths, 4 values", [](ModelCfg& c) -> CfgFieldRef { return &c.resnet.channels; }},
      {"stem_type", "resnet", "'' | deep | deep_tiered | cifar (small inputs)", [](ModelCfg& c) -> CfgFieldRef { return &c.resnet.stem_type; }},
      {"stem_width", "resnet", "deep stem width", [](ModelCfg& c) -> CfgFieldRef { return &c.resnet.stem_width; }},
      {"avg_down", "resnet", "avg-pool downsampling", [](ModelCfg& c) -> CfgFieldRef { return &c.resnet.avg_down; }},
      {"attn", "resnet", "none | se | eca | cbam", [](ModelCfg& c) -> CfgFieldRef { return &c.resnet.attn; }},
      {"feature_stride", "resnet", "input pixels per cell of the last feature map: 32, or 16 / 8 with the last stages dilated (timm's output_stride)", [](ModelCfg& c) -> CfgFieldRef { return &c.resnet.feature_stride; }},
      {"global_pool", "resnet", "avg | max | avgmax (timm's global_pool)", [](ModelCfg& c) -> CfgFieldRef { return &c.resnet.global_pool; }},
      {"img_size", "vit", "training image size", [](ModelCfg& c) -> CfgFieldRef { return &c.vit.img_size; }},
      {"patch_size", "vit", "patch size", [](ModelCfg& c) -> CfgFieldRef { return &c.vit.patch_size; }},
      {"embed_dim", "vit", "token width", [](ModelCfg& c) -> CfgFieldRef { return &c.vit.embed_dim; }},
      {"depth", "vit", "number of blocks", [](ModelCfg& c) -> CfgFieldRef { return &c.vit.depth; }},
      {"num_heads", "vit", "attention heads", [](ModelCfg& c) -> CfgFieldRef { return &c.vit.num_heads; }},
      {"mlp_ratio", "vit", "MLP width / embed_dim", [](ModelCfg& c) -> CfgFieldRef { return &c.vit.mlp_ratio; }},
      {"qkv_bias", "vit", "bias on the qkv projection", [](ModelCfg& c) -> CfgFieldRef { return &c.vit.qkv_bias; }},
      {"head_width", "detection", "channels of the detection neck and branches", [](ModelCfg& c) -> CfgFieldRef { return &c.detection.head_width; }},
      {"output_stride", "detection", "input pixels per heatmap cell (a power of two)", [](ModelCfg& c) -> CfgFieldRef { return &c.detection.output_stride; }},
      {"max_detections", "detection", "peaks kept per image", [](ModelCfg& c) -> CfgFieldRef { return &c.detection.max_detections; }},
      {"center_class_loss", "detection", "training: weight of a cross-entropy over the classes at each box's centre cell (0: none)", [](ModelCfg& c) -> CfgFieldRef { return &c.detection.center_class_loss; }},
      {"category_ids", "detection", "COCO category id of each class ([]: 1..num_classes)", [](ModelCfg& c) -> CfgFieldRef { return &c.detection.category_ids; }},
      {"ct_spacing_mm", "anomaly", "CT input: the model grid's pixel spacing in mm", [](ModelCfg& c) -> CfgFieldRef { return &c.ct.spacing_mm; }},
      {"ct_windows", "anomaly", "CT input: one window per channel, a preset or \"CENTER,WIDTH\" in HU", [](ModelCfg& c) -> CfgFieldRef { return &c.ct.windows; }},
      {"lesion_map_stride", "anomaly", "input pixels per lesion-map cell: 0, the backbone's feature map; finer (4, 8): through an upsampling neck", [](ModelCfg& c) -> CfgFieldRef { return &c.ct.lesion_map_stride; }},
      {"lesion_map_width", "anomaly", "channels of the lesion map's upsampling neck (lesion_map_stride > 0)", [](ModelCfg& c) -> CfgFieldRef { return &c.ct.lesion_map_width; }},
      {"lesion_map_loss", "anomaly", "training loss of the lesion map's cells: bce (mean over the cells), focal (RetinaNet's, per lesion cell) or focal_per_lesion (focal, each lesion weighing the same)", [](ModelCfg& c) -> CfgFieldRef { return &c.ct.lesion_map_loss; }},
      {"saliency_method", "anomaly", "the saliency method `saliency` uses by default", [](ModelCfg& c) -> CfgFieldRef { return &c.ct.saliency_method; }},
      {"saliency_stage", "anomaly", "the stage CAM methods explain ('' : the last feature map)", [](ModelCfg& c) -> CfgFieldRef { return &c.ct.saliency_stage; }},
      {"operating_threshold", "anomaly", "p(lesion) from which a slice is anomalous and gets regions", [](ModelCfg& c) -> CfgFieldRef { return &c.ct.operating_threshold; }},
      {"region_level", "anomaly", "region threshold, a fraction of the slice map's peak (or of its scale: region_level_of)", [](ModelCfg& c) -> CfgFieldRef { return &c.ct.region_level; }},
      {"region_level_of", "anomaly", "what region_level is a fraction of: peak (each slice map's) or map (its own scale; cam: p(lesion))", [](ModelCfg& c) -> CfgFieldRef { return &c.ct.region_level_of; }},
      {"word_dim", "captioning", "word embedding width", [](ModelCfg& c) -> CfgFieldRef { return &c.caption.word_dim; }},
      {"decoder_dim", "captioning", "LSTM hidden width; Transformer token width", [](ModelCfg& c) -> CfgFieldRef { return &c.caption.decoder_dim; }},
      {"attention_dim", "captioning", "Show-Attend-Tell's attention width", [](ModelCfg& c) -> CfgFieldRef { return &c.caption.attention_dim; }},
      {"decoder_layers", "captioning", "Transformer decoder blocks", [](ModelCfg& c) -> CfgFieldRef { return &c.caption.decoder_layers; }},
      {"decoder_heads", "captioning", "Transformer attention heads", [](ModelCfg& c) -> CfgFieldRef { return &c.caption.decoder_heads; }},
      {"decoder_dropout", "captioning", "dropout in the decoder (training only)", [](ModelCfg& c) -> CfgFieldRef { return &c.caption.decoder_dropout; }},
      {"max_words", "captioning", "longest caption decoded, <end> not counted", [](ModelCfg& c) -> CfgFieldRef { return &c.caption.max_words; }},
      {"attention_reg", "captioning", "doubly stochastic attention regularisation weight", [](ModelCfg& c) -> CfgFieldRef { return &c.caption.attention_reg; }},
      {"min_word_count", "captioning", "vocabulary: training words seen fewer times become <unk>", [](ModelCfg& c) -> CfgFieldRef { return &c.caption.min_word_count; }},
      {"detector_classes", "captioning", "classes of an embedded detector the decoder also attends to (0: none; Transformer decoder)", [](ModelCfg& c) -> CfgFieldRef { return &c.caption.detector_classes; }},
      {"detector_tokens", "captioning", "the embedded detector's strongest detections the decoder attends to", [](ModelCfg& c) -> CfgFieldRef { return &c.caption.detector_tokens; }},
      {"detector_second_stage", "captioning", "the detection tokens also read the detector's second stage (a crop classifier from init_detector's checkpoint)", [](ModelCfg& c) -> CfgFieldRef { return &c.caption.detector_second_stage; }},
      {"detector_counts", "captioning", "the detection tokens also read the scene's expected count per class and of their own class", [](ModelCfg& c) -> CfgFieldRef { return &c.caption.detector_counts; }},
      {"second_stage_model", "captioning", "the embedded second stage's model config as JSON (filled by the trainer)", [](ModelCfg& c) -> CfgFieldRef { return &c.caption.second_stage_model; }},
      {"in_chans", "", "input channels", [](ModelCfg& c) -> CfgFieldRef { return &c.in_chans; }},
      {"num_classes", "", "classifier outputs (0: no classifier)", [](ModelCfg& c) -> CfgFieldRef { return &c.num_classes; }},
      {"input_size", "", "[C, H, W] the model is fed", [](ModelCfg& c) -> CfgFieldRef { return &c.input_size; }},
      {"crop_pct", "", "centre-crop fraction of the resized image", [](ModelCfg& c) -> CfgFieldRef { return &c.crop_pct; }},
      {"interpolation", "", "bilinear | bicubic | nearest", [](ModelCfg& c) -> CfgFieldRef { return &c.interpolation; }},
      {"mean", "", "per-channel normalisation mean", [](ModelCfg& c) -> CfgFieldRef { return &c.mean; }},
      {"std", "", "per-channel normalisation std", [](ModelCfg& c) -> CfgFieldRef { return &c.std; }},
      {"labels", "", "class names, num_classes of them", [](ModelCfg& c) -> CfgFieldRef { return &c.labels; }},
  };
  // clang-format on
  return fields;
}

ModelCfg ModelCfg::embedded_detector() const {
  ModelCfg d = *this;
  d.name = name + ".detector";
  d.task = "detection";
  d.head = "";
  d.num_classes = caption.detector_classes;
  d.labels.clear();
  d.caption = CaptionArgs();
  return d;
}

ModelCfg ModelCfg::embedded_second_stage() const {
  if (caption.second_stage_model.empty())
    throw std::invalid_argument("the detector's second stage has no model config (second_stage_model): it "
                                "comes from init_detector's checkpoint, which must carry a second stage");
  const json j = json::parse(caption.second_stage_model, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) throw std::invalid_argument("second_stage_model is not a model config (JSON object)");
  return cfg_from_json(j);
}

int64_t ModelCfg::category_id(int64_t class_index) const {
  if (detection.category_ids.empty()) return class_index + 1;
  return detection.category_ids.at(static_cast<size_t>(class_index));
}

void ModelCfg::validate() const {
  auto fail = [&](const std::string& what) { throw std::invalid_argument("model '" + name + "': " + what); };
  if (arch != "resnet" && arch != "vit") fail("arch must be resnet or vit, not '" + arch + "'");
  try {
    head_for(task, head);
  } catch (const std::invalid_argument& e) {
    fail(std::string("task: ") + e.what());
  }
  if (in_chans < 1 || in_chans > 64) fail("in_chans must be in 1..64");
  if (num_classes < 0 || num_classes > 1'000'000) fail("num_classes must be in 0..1000000");
  if (input_size.size() != 3 || input_size[0] != in_chans || input_size[1] < 1 || input_size[2] < 1 ||
      input_size[1] > 8192 || input_size[2] > 8192)
    fail("input_size must be [in_chans, H, W] with 1 <= H, W <= 8192");
  if (mean.size() != static_cast<size_t>(in_chans) || this->std.size() != static_cast<size_t>(in_chans))
    fail("mean and std need one value per input channel");
  for (double s : this->std)
    if (!(s > 0)) fail("std values must be positive");
  if (!(crop_pct > 0 && crop_pct <= 1)) fail("crop_pct must be in (0, 1]");
  if (interpolation != "bilinear" && interpolation != "bicubic" && interpolation != "nearest")
    fail("interpolation must be bilinear, bicubic or nearest");
  if (!labels.empty() && labels.size() != static_cast<size_t>(num_classes))
    fail("labels has " + std::to_string(labels.size()) + " names for " + std::to_string(num_classes) + " classes");
  if (arch == "resnet") {
    if (resnet.block != "basic" && resnet.block != "bottleneck") fail("block must be basic or bottleneck");
    if (resnet.layers.size() != 4 || resnet.channels.size() != 4) fail("layers and channels need 4 values");
    for (size_t i = 0; i < 4; ++i)
      if (resnet.layers[i] < 1 || resnet.layers[i] > 64 || resnet.channels[i] < 1 || resnet.channels[i] > 8192)
        fail("layers must be in 1..64 and channels in 1..8192");
    if (!resnet.stem_type.empty() && resnet.stem_type != "deep" && resnet.stem_type != "deep_tiered" &&
        resnet.stem_type != "cifar")
      fail("stem_type must be '', deep, deep_tiered or cifar");
    if (resnet.stem_width < 4 || resnet.stem_width > 1024) fail("stem_width must be in 4..1024");
    if (resnet.global_pool != "avg" && resnet.global_pool != "max" && resnet.global_pool != "avgmax")
      fail("global_pool must be avg, max or avgmax");
    if (resnet.feature_stride != 8 && resnet.feature_stride != 16 && resnet.feature_stride != 32)
      fail("feature_stride must be 8, 16 or 32");
    // timm pools a dilated stage's shortcut with a 'same'-padded 2x2 average; that pool is not built here.
    if (resnet.feature_stride != 32 && resnet.avg_down)
      fail("feature_stride below 32 cannot be combined with avg_down");
  } else {
    if (vit.patch_size < 1 || vit.img_size < vit.patch_size) fail("patch_size must be in 1..img_size");
    if (vit.embed_dim < 1 || vit.num_heads < 1 || vit.embed_dim % vit.num_heads != 0)
      fail("embed_dim must be a positive multiple of num_heads");
    if (vit.depth < 1 || vit.depth > 256) fail("depth must be in 1..256");
    if (!(vit.mlp_ratio > 0)) fail("mlp_ratio must be positive");
  }
  if (task == "anomaly") {
    if (!(ct.spacing_mm >= 0.05 && ct.spacing_mm <= 20)) fail("ct_spacing_mm must be in 0.05..20");
    if (ct.windows.size() != static_cast<size_t>(in_chans))
      fail("ct_windows has " + std::to_string(ct.windows.size()) + " windows for " + std::to_string(in_chans) +
           " input channels (one per channel)");
    if (input_size[1] != input_size[2]) fail("a CT model's input is square: input_size [C, N, N]");
    if (num_classes != 2) fail("an anomaly model has 2 classes: clean, lesion");
    if (!(ct.operating_threshold >= 0 && ct.operating_threshold <= 1)) fail("operating_threshold must be in 0..1");
    if (!(ct.region_level > 0 && ct.region_level < 1)) fail("region_level must be in (0, 1)");
    if (ct.region_level_of != "peak" && ct.region_level_of != "map")
      fail("region_level_of must be peak or map, not '" + ct.region_level_of + "'");
    const int64_t m = ct.lesion_map_stride;
    if (m != 0 && (m < 1 || m > 32 || (m & (m - 1)) != 0)) fail("lesion_map_stride must be 0 or a power of two in 1..32");
    if (m > backbone_stride())
      fail("lesion_map_stride " + std::to_string(m) + " is coarser than the backbone's feature map (stride " +
           std::to_string(backbone_stride()) + ")");
    if (ct.lesion_map_width < 8 || ct.lesion_map_width > 1024) fail("lesion_map_width must be in 8..1024");
    if (ct.lesion_map_loss != "bce" && ct.lesion_map_loss != "focal" && ct.lesion_map_loss != "focal_per_lesion")
      fail("lesion_map_loss must be bce, focal or focal_per_lesion, not '" + ct.lesion_map_loss + "'");
    if (ct.saliency_method.empty()) fail("saliency_method must name a method");
  }
  if (task == "captioning") {
    const CaptionArgs& c = caption;
    if (num_classes < 5) fail("a captioner's num_classes is its vocabulary size: the 4 specials and at least one word");
    if (c.word_dim < 1 || c.word_dim > 8192 || c.decoder_dim < 1 || c.decoder_dim > 8192 || c.attention_dim < 1 ||
        c.attention_dim > 8192)
      fail("word_dim, decoder_dim and attention_dim must be in 1..8192");
    if (c.decoder_layers < 1 || c.decoder_layers > 64) fail("decoder_layers must be in 1..64");
    if (c.decoder_heads < 1 || c.decoder_dim % c.decoder_heads != 0)
      fail("decoder_dim must be a positive multiple of decoder_heads");
    if (!(c.decoder_dropout >= 0 && c.decoder_dropout < 1)) fail("decoder_dropout must be in [0, 1)");
    if (c.max_words < 1 || c.max_words > 512) fail("max_words must be in 1..512");
    if (!(c.attention_reg >= 0)) fail("attention_reg must be >= 0");
    if (c.min_word_count < 1) fail("min_word_count must be >= 1");
    if (c.detector_classes < 0 || c.detector_classes > 1000) fail("detector_classes must be in 0..1000");
    if (c.detector_classes > 0) {
      if (head != "transformer") fail("detector_classes: only the transformer decoder attends to a detector's findings");
      if (c.detector_tokens < 1 || c.detector_tokens > 100) fail("detector_tokens must be in 1..100");
      try {
        embedded_detector().validate();
      } catch (const std::invalid_argument& e) {
        fail(std::string("its embedded detector: ") + e.what());
      }
    }
    if (c.detector_counts && c.detector_classes < 1)
      fail("detector_counts needs an embedded detector (detector_classes > 0)");
    if (!c.second_stage_model.empty() && !c.detector_second_stage)
      fail("second_stage_model is set but detector_second_stage is off");
    if (c.detector_second_stage) {
      if (c.detector_classes < 1)
        fail("detector_second_stage needs an embedded detector (detector_classes > 0)");
      // Empty until the trainer fills it from init_detector's part; building the network then says so.
      if (!c.second_stage_model.empty()) {
        ModelCfg s;
        try {
          s = embedded_second_stage();
          s.validate();
        } catch (const std::invalid_argument& e) {
          fail(std::string("its detector's second stage: ") + e.what());
        }
        if (s.task != "classification" || s.num_classes != c.detector_classes || s.in_chans != in_chans ||
            s.input_size.size() != 3 || s.input_size[1] != s.input_size[2])
          fail("its detector's second stage must classify square crops of the input's channels into the "
               "detector's classes");
      }
    }
  }
  if (task == "detection") {
    const int64_t s = detection.output_stride;
    if (s < 1 || s > 32 || (s & (s - 1)) != 0) fail("output_stride must be a power of two in 1..32");
    if (detection.head_width < 8 || detection.head_width > 1024) fail("head_width must be in 8..1024");
    if (detection.max_detections < 1 || detection.max_detections > 1000) fail("max_detections must be in 1..1000");
    if (!(detection.center_class_loss >= 0 && detection.center_class_loss <= 100))
      fail("center_class_loss must be in 0..100");
    if (num_classes < 1) fail("a detector needs num_classes >= 1");
    const std::vector<int64_t>& ids = detection.category_ids;
    if (!ids.empty() && ids.size() != static_cast<size_t>(num_classes))
      fail("category_ids has " + std::to_string(ids.size()) + " ids for " + std::to_string(num_classes) + " classes");
    for (size_t i = 0; i < ids.size(); ++i) {
      if (ids[i] < 1) fail("category_ids must be positive (COCO ids)");
      if (std::find(ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(i), ids[i]) != ids.begin() + static_cast<std::ptrdiff_t>(i))
        fail("category id " + std::to_string(ids[i]) + " is listed twice");
    }
  }
}

json to_json(const ModelCfg& c) {
  ModelCfg copy = c;  // the table hands out pointers into a mutable cfg
  json j = json::object();
  for (const CfgField& f : model_cfg_fields()) {
    if (!f.applies_to(c)) continue;  // only the model's own sections
    json& slot = *f.section ? j[f.section][f.key] : j[f.key];
    std::visit([&](auto* v) { slot = *v; }, f.ref(copy));
  }
  return j;
}

ModelCfg cfg_from_json(const json& j, ModelCfg c) {
  if (!j.is_object()) throw std::invalid_argument("model config: expected a JSON object");
  auto find_field = [](const std::string& section, const std::string& key) -> const CfgField* {
    for (const CfgField& f : model_cfg_fields())
      if (section == f.section && key == f.key) return &f;
    return nullptr;
  };
  auto is_section = [](const std::string& key) {
    for (const CfgField& f : model_cfg_fields())
      if (*f.section && key == f.section) return true;
    return false;
  };
  auto read = [&](const CfgField& f, const json& v) {
    std::visit(
        [&](auto* out) {
          try {
            *out = v.get<std::remove_pointer_t<decltype(out)>>();
          } catch (const json::exception&) {
            throw std::invalid_argument("model config: '" + f.json_path() + "' has the wrong type (" +
                                        std::string(v.type_name()) + ")");
          }
        },
        f.ref(c));
  };
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (is_section(it.key())) {
      if (!it->is_object()) throw std::invalid_argument("model config: '" + it.key() + "' must be an object");
      for (auto sub = it->begin(); sub != it->end(); ++sub) {
        const CfgField* f = find_field(it.key(), sub.key());
        if (!f) throw std::invalid_argument("model config: unknown key '" + it.key() + "." + sub.key() + "'");
        read(*f, sub.value());
      }
    } else if (const CfgField* f = find_field("", it.key())) {
      read(*f, it.value());
    } else {
      throw std::invalid_argument("model config: unknown key '" + it.key() + "'");
    }
  }
  return c;
}

}  // namespace attnvision::models
