#include "datasets/preprocess.h"

#include <algorithm>
#include <cstdio>
#include <stdexcept>

namespace attnvision::datasets {

vision::EvalTransform eval_transform_for(const models::ModelCfg& c) {
  vision::EvalTransform t;
  t.channels = c.in_chans;
  t.height = c.input_size[1];
  t.width = c.input_size[2];
  t.crop_pct = c.crop_pct;
  t.interpolation = c.interpolation;
  t.mean = c.mean;
  t.std = c.std;
  return t;
}

ImageFolderOptions folder_options_for(const models::ModelCfg& cfg) {
  const vision::EvalTransform t = eval_transform_for(cfg);
  ImageFolderOptions f;
  f.channels = t.channels;
  f.height = t.height;
  f.width = t.width;
  f.interpolation = t.interpolation;
  return f;
}

Preprocess preprocess_for(const models::ModelCfg& cfg) {
  Preprocess p;
  p.image = eval_transform_for(cfg);
  if (takes_ct_input(cfg)) p.ct = ct_input_spec_for(cfg);
  return p;
}

bool same_preprocess(const Preprocess& a, const Preprocess& b) {
  const vision::EvalTransform &x = a.image, &y = b.image;
  const bool same_image = x.channels == y.channels && x.height == y.height && x.width == y.width &&
                          x.crop_pct == y.crop_pct && x.interpolation == y.interpolation && x.mean == y.mean &&
                          x.std == y.std;
  if (!same_image || a.ct.has_value() != b.ct.has_value()) return false;
  if (!a.ct) return true;
  if (a.ct->spacing_mm != b.ct->spacing_mm || a.ct->size != b.ct->size || a.ct->windows.size() != b.ct->windows.size())
    return false;
  for (size_t i = 0; i < a.ct->windows.size(); ++i)
    if (a.ct->windows[i].center != b.ct->windows[i].center || a.ct->windows[i].width != b.ct->windows[i].width)
      return false;
  return true;
}

bool takes_ct_input(const models::ModelCfg& cfg) { return cfg.task == "anomaly"; }

vision::CtInputSpec ct_input_spec_for(const models::ModelCfg& cfg) {
  vision::CtInputSpec spec;
  spec.spacing_mm = cfg.ct.spacing_mm;
  spec.size = static_cast<int>(cfg.input_size[1]);
  const auto& presets = vision::window_preset_names();
  for (const std::string& w : cfg.ct.windows) {
    if (std::find(presets.begin(), presets.end(), w) != presets.end()) {
      spec.windows.push_back(vision::window_preset(w));
      continue;
    }
    double center = 0, width = 0;
    char tail = 0;
    if (std::sscanf(w.c_str(), "%lf,%lf%c", &center, &width, &tail) != 2 || !(width > 0))
      throw std::invalid_argument("model '" + cfg.name + "': ct_windows: '" + w +
                                  "' is neither a window preset nor CENTER,WIDTH with a positive width");
    vision::Window window;
    window.center = center;
    window.width = width;
    window.name = w;
    spec.windows.push_back(window);
  }
  return spec;
}

}  // namespace attnvision::datasets
