#include "datasets/preprocess.h"

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

}  // namespace attnvision::datasets
