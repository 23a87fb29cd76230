#include "models/model_cfg.h"

#include <nlohmann/json.hpp>

#include <set>
#include <stdexcept>

namespace attnvision::models {
using nlohmann::json;

namespace {

// Reads `key` from `j` into `out` when present; a wrong type is an error naming the key.
template <typename T>
void read_field(const json& j, const std::string& prefix, const char* key, T& out) {
  auto it = j.find(key);
  if (it == j.end()) return;
  try {
    out = it->get<T>();
  } catch (const json::exception&) {
    throw std::invalid_argument("model config: '" + prefix + key + "' has the wrong type (" +
                                std::string(it->type_name()) + ")");
  }
}

void reject_unknown(const json& j, const std::string& prefix, const std::set<std::string>& known) {
  if (!j.is_object()) throw std::invalid_argument("model config: '" + prefix.substr(0, prefix.size() - 1) + "' must be an object");
  for (auto it = j.begin(); it != j.end(); ++it)
    if (!known.count(it.key())) throw std::invalid_argument("model config: unknown key '" + prefix + it.key() + "'");
}

}  // namespace

void ModelCfg::validate() const {
  auto fail = [&](const std::string& what) { throw std::invalid_argument("model '" + name + "': " + what); };
  if (arch != "resnet" && arch != "vit") fail("arch must be resnet or vit, not '" + arch + "'");
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
  } else {
    if (vit.patch_size < 1 || vit.img_size < vit.patch_size) fail("patch_size must be in 1..img_size");
    if (vit.embed_dim < 1 || vit.num_heads < 1 || vit.embed_dim % vit.num_heads != 0)
      fail("embed_dim must be a positive multiple of num_heads");
    if (vit.depth < 1 || vit.depth > 256) fail("depth must be in 1..256");
    if (!(vit.mlp_ratio > 0)) fail("mlp_ratio must be positive");
  }
}

json to_json(const ModelCfg& c) {
  json j = {{"name", c.name},          {"arch", c.arch},         {"task", c.task},
            {"in_chans", c.in_chans},  {"num_classes", c.num_classes},
            {"input_size", c.input_size}, {"crop_pct", c.crop_pct}, {"interpolation", c.interpolation},
            {"mean", c.mean},          {"std", c.std},           {"labels", c.labels}};
  if (c.arch == "resnet") {
    j["resnet"] = {{"block", c.resnet.block},           {"layers", c.resnet.layers},
                   {"channels", c.resnet.channels},     {"stem_type", c.resnet.stem_type},
                   {"stem_width", c.resnet.stem_width}, {"avg_down", c.resnet.avg_down},
                   {"attn", c.resnet.attn}};
  } else if (c.arch == "vit") {
    j["vit"] = {{"img_size", c.vit.img_size},   {"patch_size", c.vit.patch_size}, {"embed_dim", c.vit.embed_dim},
                {"depth", c.vit.depth},         {"num_heads", c.vit.num_heads},   {"mlp_ratio", c.vit.mlp_ratio},
                {"qkv_bias", c.vit.qkv_bias}};
  }
  return j;
}

ModelCfg cfg_from_json(const json& j, ModelCfg c) {
  if (!j.is_object()) throw std::invalid_argument("model config: expected a JSON object");
  reject_unknown(j, "", {"name", "arch", "task", "in_chans", "num_classes", "input_size", "crop_pct",
                         "interpolation", "mean", "std", "labels", "resnet", "vit"});
  read_field(j, "", "name", c.name);
  read_field(j, "", "arch", c.arch);
  read_field(j, "", "task", c.task);
  read_field(j, "", "in_chans", c.in_chans);
  read_field(j, "", "num_classes", c.num_classes);
  read_field(j, "", "input_size", c.input_size);
  read_field(j, "", "crop_pct", c.crop_pct);
  read_field(j, "", "interpolation", c.interpolation);
  read_field(j, "", "mean", c.mean);
  read_field(j, "", "std", c.std);
  read_field(j, "", "labels", c.labels);
  if (auto r = j.find("resnet"); r != j.end()) {
    reject_unknown(*r, "resnet.", {"block", "layers", "channels", "stem_type", "stem_width", "avg_down", "attn"});
    read_field(*r, "resnet.", "block", c.resnet.block);
    read_field(*r, "resnet.", "layers", c.resnet.layers);
    read_field(*r, "resnet.", "channels", c.resnet.channels);
    read_field(*r, "resnet.", "stem_type", c.resnet.stem_type);
    read_field(*r, "resnet.", "stem_width", c.resnet.stem_width);
    read_field(*r, "resnet.", "avg_down", c.resnet.avg_down);
    read_field(*r, "resnet.", "attn", c.resnet.attn);
  }
  if (auto v = j.find("vit"); v != j.end()) {
    reject_unknown(*v, "vit.", {"img_size", "patch_size", "embed_dim", "depth", "num_heads", "mlp_ratio", "qkv_bias"});
    read_field(*v, "vit.", "img_size", c.vit.img_size);
    read_field(*v, "vit.", "patch_size", c.vit.patch_size);
    read_field(*v, "vit.", "embed_dim", c.vit.embed_dim);
    read_field(*v, "vit.", "depth", c.vit.depth);
    read_field(*v, "vit.", "num_heads", c.vit.num_heads);
    read_field(*v, "vit.", "mlp_ratio", c.vit.mlp_ratio);
    read_field(*v, "vit.", "qkv_bias", c.vit.qkv_bias);
  }
  return c;
}

}  // namespace attnvision::models
