// A detector's second stage: a classifier that names each detected item again from a crop of its own box, the
// way a two-stage detector's RoI head re-scores its proposals. CenterNet scores each class at a cell of a
// shared feature map; a crop classifier sees the item alone at a fixed scale. On the scenes their geometric
// mean names items better than the detector alone (README, "Detection on the scenes").
#pragma once

#include "models/model_cfg.h"
#include "pipelines/model_loader.h"

#include <torch/types.h>

#include <string>
#include <vector>

namespace attnvision::pipelines {

struct CropClassifierOptions {
  std::string weights;      // a classification checkpoint trained on `attnvision synth crops` (empty: no stage)
  double min_score = 0.1;   // detections scoring below this are not cropped (they keep their order below)
  int64_t batch = 256;      // crops per forward pass
};

class CropClassifier {
 public:
  // Loads the classifier; a one-line error naming the file when its classes are not the detector's (count and
  // names, in order).
  CropClassifier(const CropClassifierOptions& options, const models::ModelCfg& detector,
                 const std::vector<std::string>& detector_labels);

  // `peaks`: N x k x 6 rows [x, y, w, h, score, class] in the pixels of `x`, the batch as the detector was
  // fed (N x C x H x W, float, normalised with the detector's mean and std). Each detection at or above
  // min_score gets the score sqrt(score x p(its class | its crop)); one below it score x score / (2 min_score),
  // under min_score / 2, so that it stays below the cropped detections of a likely class. Rows come back
  // sorted by the new scores, highest first.
  torch::Tensor rescore(const torch::Tensor& peaks, const torch::Tensor& x) const;

 private:
  CropClassifierOptions options_;
  LoadedModel classifier_;
  // Detector-normalised pixels -> the classifier's normalisation, per channel: v * scale_ + shift_.
  torch::Tensor scale_, shift_;
};

}  // namespace attnvision::pipelines
