// `detect`'s second stage (models/second_stage.h): a classifier that names each detected item again from a crop
// of its own box, each detection's score replaced by the geometric mean of the two.
#pragma once

#include "models/model_cfg.h"
#include "models/second_stage.h"
#include "pipelines/model_loader.h"

#include <torch/types.h>

#include <optional>
#include <string>
#include <vector>

namespace attnvision::pipelines {

// The checkpoint part (models::CheckpointPart) a detector's second stage travels in.
inline constexpr const char* kSecondStagePart = "second_stage";

struct CropClassifierOptions {
  // Which second stage: empty, the one the detector's checkpoint carries (none if it carries none); "none",
  // none; else a classification checkpoint trained on `attnvision synth crops`, instead of the carried one.
  std::string weights;
  // Detections scoring below this are not cropped (they keep their order below).
  double min_score = models::kSecondStageMinScore;
  int64_t batch = 256;      // crops per forward pass
};

// One line naming `source` unless `classifier` can be `detector`'s second stage: a classification model of the
// detector's classes (count and names, in order) on square input of the detector's channels.
void check_second_stage(const LoadedModel& classifier, const std::string& source, const LoadedModel& detector);

class CropClassifier {
 public:
  // `classifier` passed check_second_stage for `detector`; `options.weights` is not read.
  CropClassifier(LoadedModel classifier, const CropClassifierOptions& options, const models::ModelCfg& detector);

  // `peaks`: N x k x 6 rows [x, y, w, h, score, class] in the pixels of `x`, the batch as the detector was
  // fed (N x C x H x W, float, normalised with the detector's mean and std). Each detection at or above
  // min_score gets the score sqrt(score x p(its class | its crop)); one below it score x score / (2 min_score),
  // under min_score / 2, so that it stays below the cropped detections of a likely class. Rows come back
  // sorted by the new scores, highest first.
  torch::Tensor rescore(const torch::Tensor& peaks, const torch::Tensor& x) const;

  const LoadedModel& model() const { return classifier_; }

 private:
  CropClassifierOptions options_;
  LoadedModel classifier_;
  models::SecondStage stage_;  // classifier_'s network, fed the detector's crops
};

// The second stage `options` choose for `detector` (see CropClassifierOptions::weights), checked; none when
// they ask for none or the detector's checkpoint carries none.
std::optional<CropClassifier> make_second_stage(const CropClassifierOptions& options, const LoadedModel& detector);

}  // namespace attnvision::pipelines
