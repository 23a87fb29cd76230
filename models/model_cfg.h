// ModelCfg: everything needed to rebuild and feed a model. The registry holds one default per name,
// YAML and checkpoints only override it, and a checkpoint's __metadata__ carries it whole as JSON.
// Its fields are described once, in model_cfg_fields(): the checkpoint JSON, the model YAML schema and
// `--set` all follow from that table, and validate() is the one place their values are checked.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <string>
#include <variant>
#include <vector>

namespace attnvision::models {

// timm ResNet constructor arguments (timm/models/resnet.py), as data.
struct ResNetArgs {
  std::string block = "basic";  // basic | bottleneck
  std::vector<int64_t> layers{2, 2, 2, 2};
  std::vector<int64_t> channels{64, 128, 256, 512};
  std::string stem_type;        // "" | deep | deep_tiered | cifar (3x3 stride 1, no max-pool)
  int64_t stem_width = 64;
  bool avg_down = false;
  std::string attn = "none";    // a row of the attention table
  // timm's global_pool: avg | max | avgmax (the mean of both). Max pooling keeps a small finding's evidence
  // that averaging over a large image would dilute.
  std::string global_pool = "avg";
  // timm's output_stride: input pixels per cell of the last feature map, 32 (no dilation), 16 or 8. Below 32 the
  // last stages dilate instead of downsampling (models/backbones/resnet.h, ResNetStagePlan).
  int64_t feature_stride = 32;
};

// timm VisionTransformer constructor arguments, as data.
struct VitArgs {
  int64_t img_size = 224;
  int64_t patch_size = 16;
  int64_t embed_dim = 768;
  int64_t depth = 12;
  int64_t num_heads = 12;
  double mlp_ratio = 4.0;
  bool qkv_bias = true;
};

// The detection head's settings (models/heads/centernet.cpp), read when task is detection.
struct DetectionArgs {
  int64_t head_width = 64;      // channels of the upsampling neck and of each prediction branch
  int64_t output_stride = 4;    // input pixels per cell of the predicted maps (CenterNet: 4)
  int64_t max_detections = 100; // peaks kept per image (top-K)
  // Training only: the weight of a softmax cross-entropy over the class logits at each box's centre cell,
  // beside the heatmap's focal loss (0: none, CenterNet as published). The focal loss scores each class's
  // sigmoid on its own; the cross-entropy makes the classes compete where an item is, as a classifier's do.
  double center_class_loss = 0.0;
  // The COCO category id of each class, from the instances file it was trained on (empty: 1..num_classes),
  // so that detections and results files name categories as the data did.
  std::vector<int64_t> category_ids;
};

// How an anomaly model reads CT (datasets/preprocess.h -> vision/ct_input.h), read when task is anomaly:
// Hounsfield units resampled to one pixel spacing on an input_size[1] x input_size[2] grid, one input channel
// per window, so that a lesion covers the same pixels whatever the scan's resolution.
struct CtArgs {
  double spacing_mm = 1.5;
  // A window preset (lung, mediastinum, abdomen, bone, brain) or "CENTER,WIDTH" in HU, one per input channel.
  std::vector<std::string> windows{"lung", "abdomen"};
  // How `saliency` reads this model, chosen by measurement (eval-saliency on validation phantoms) and kept with
  // the weights: the method and stage it explains with by default, the p(lesion) from which a slice is called
  // anomalous (only those get regions), and the region threshold as a fraction of the slice map's peak.
  // The anomaly head's lesion map: 0 scores the cells of the backbone's last feature map; a finer stride (a power
  // of two, e.g. 4) scores the cells of an upsampling neck of lesion_map_width channels over the backbone's
  // stages (models/heads/upsampling_neck.h), so that a lesion of a few pixels is a cell of its own.
  int64_t lesion_map_stride = 0;
  int64_t lesion_map_width = 64;
  // How training scores the lesion map's cells (pipelines/tasks/saliency): bce, the binary cross-entropy's mean
  // over every cell; focal, RetinaNet's focal loss summed over the cells and divided by the lesion cells, so
  // that the thousands of easy clean cells do not drown the few lesion cells; or focal_per_lesion, the same
  // with each lesion's cells sharing one lesion's weight, so that a 4 mm lesion (a cell or two) counts about as
  // much as a 30 mm one (about 45 cells of 4 mm) instead of a few hundredths of it.
  std::string lesion_map_loss = "bce";
  std::string saliency_method = "gradcam";
  std::string saliency_stage = "layer2";
  double operating_threshold = 0.5;
  double region_level = 0.5;
  // What region_level is a fraction of: "peak", each slice map's own peak (a map of any method, in any units);
  // or "map", the map's own scale, for maps in probability units (cam: a region is the cells with p(lesion) >=
  // region_level), so that a faint lesion beside a strong one keeps a region of its own and two close lesions
  // do not merge through the strong one's shoulders.
  std::string region_level_of = "peak";
};

// A captioner's decoder (models/heads/caption_decoder.h), read when task is captioning. Its vocabulary is the
// model's labels: word id = label index, the four specials first (datasets/vocabulary.h).
struct CaptionArgs {
  int64_t word_dim = 256;       // word embedding width
  int64_t decoder_dim = 512;    // the LSTM's hidden state; the Transformer's token width
  int64_t attention_dim = 256;  // Show-Attend-Tell's additive attention width
  int64_t decoder_layers = 2;   // Transformer blocks
  int64_t decoder_heads = 8;    // Transformer attention heads
  double decoder_dropout = 0.3;
  int64_t max_words = 20;       // the longest caption decoded, <end> not counted
  // Show-Attend-Tell's doubly stochastic regularisation weight: lambda * sum over cells (1 - sum over words of
  // alpha)^2, which asks the decoder to look at every part of the image over the course of a caption.
  double attention_reg = 1.0;
  // Training words seen fewer times than this become <unk> when the vocabulary is built (kept with the model
  // so that a rerun builds the same vocabulary).
  int64_t min_word_count = 1;
  // Bottom-up attention (Anderson et al. 2018) over a detector's findings: with detector_classes > 0 the
  // captioner embeds a CenterNet detector of its own backbone's architecture (its head_width and output_stride
  // in the detection section), frozen, trained apart and loaded with the train key init_detector; the decoder
  // attends to the detector's detector_tokens strongest detections (class, score, box and the box's pixels)
  // beside the feature map's cells. 0: the cells alone. The Transformer decoder only.
  int64_t detector_classes = 0;
  int64_t detector_tokens = 8;
  // The detector's second stage as well (models/second_stage.h): each detection token's class probabilities
  // and score are the geometric mean of the detector's and a crop classifier's, which the captioner embeds
  // frozen as the module `second_stage`, from init_detector's checkpoint (its part "second_stage").
  bool detector_second_stage = false;
  // That crop classifier's ModelCfg, as JSON: filled by the trainer from the part it is loaded from.
  std::string second_stage_model;
  // Each detection token also reads the scene's counts: per class the detections' expected number (their
  // scores times their class probabilities, summed over the tokens), and how many detections share its own
  // class (the same sum weighted by its class probabilities). Softmax attention averages what it reads, so two
  // tokens of one class look like one to it: the references say "two coats", and without counts a decoder
  // cannot tell.
  bool detector_counts = false;
};

struct ModelCfg {
  std::string name;          // registry name, or a user's own for a YAML model
  std::string arch;          // resnet | vit
  std::string task = "classification";  // picks the head (models/heads/): a task no head serves is an error
  std::string head;                     // which of the task's heads ("": its first), e.g. a caption decoder
  ResNetArgs resnet;
  VitArgs vit;
  DetectionArgs detection;
  CtArgs ct;
  CaptionArgs caption;
  int64_t in_chans = 3;
  int64_t num_classes = 1000;  // classifier outputs (0: the pooled features); a detector's object classes
  // Preprocessing, as timm's pretrained_cfg: input_size (C, H, W), crop_pct, interpolation, mean, std.
  std::vector<int64_t> input_size{3, 224, 224};
  double crop_pct = 0.875;
  std::string interpolation = "bilinear";
  std::vector<double> mean{0.485, 0.456, 0.406};
  std::vector<double> std{0.229, 0.224, 0.225};
  // Class names, num_classes of them, or empty (then the pipelines print indices, or ImageNet's
  // names when num_classes == 1000).
  std::vector<std::string> labels;

  // The detector a captioner embeds (caption.detector_classes > 0): this backbone with the detection head of
  // this cfg's detection settings and detector_classes classes.
  ModelCfg embedded_detector() const;
  // The crop classifier a captioner embeds as its detector's second stage (caption.second_stage_model);
  // std::invalid_argument when the JSON is empty or not a model's.
  ModelCfg embedded_second_stage() const;
  // Input pixels per cell of the backbone's last feature map (a ResNet's feature_stride, a ViT's patch size).
  int64_t backbone_stride() const { return arch == "vit" ? vit.patch_size : resnet.feature_stride; }
  // A detector's COCO category id of class `class_index` (detection.category_ids, or index + 1).
  int64_t category_id(int64_t class_index) const;

  // Throws std::invalid_argument naming the field that is inconsistent.
  void validate() const;
};

// A pointer to one field of a ModelCfg, typed.
using CfgFieldRef = std::variant<std::string*, int64_t*, double*, bool*, std::vector<int64_t>*,
                                 std::vector<double>*, std::vector<std::string>*>;

struct CfgField {
  const char* key;   // the model YAML key (flat, timm's constructor name): "attn"
  // "" for every model, else the section it belongs to: an architecture ("resnet", "vit") or a task whose
  // head has settings ("detection"); a section's fields count only for a model of that arch or task.
  const char* section;
  const char* help;  // one line, for errors and documentation
  CfgFieldRef (*ref)(ModelCfg& cfg);
  // Where the checkpoint JSON keeps it: "<section>.<key>" for a section's field, "<key>" otherwise.
  std::string json_path() const { return *section ? std::string(section) + "." + key : std::string(key); }
  // A captioner that embeds a detector carries the detection section too (its detector's settings).
  bool applies_to(const ModelCfg& cfg) const {
    return !*section || cfg.arch == section || cfg.task == section ||
           (std::string(section) == "detection" && cfg.task == "captioning" && cfg.caption.detector_classes > 0);
  }
};

// Every field of ModelCfg, once.
const std::vector<CfgField>& model_cfg_fields();

nlohmann::json to_json(const ModelCfg& cfg);
// Fields absent from `j` keep the values of `base`; unknown keys are an error naming the key.
ModelCfg cfg_from_json(const nlohmann::json& j, ModelCfg base = {});

}  // namespace attnvision::models
