// A detector's second stage: a classifier that names each detected item again from a square crop of its own
// box (models/box_crops.h), the way a two-stage detector's RoI head re-scores its proposals. CenterNet scores
// each class at a cell of a shared feature map; a crop classifier sees the item alone at a fixed scale, and
// the geometric mean of the two names items better than either (README, "Detection on the scenes"). Two
// readers share this: `detect`'s rescoring (pipelines/tasks/detect/crop_classifier.h) and a captioner's
// detection tokens (models/heads/transformer_decoder.cpp).
#pragma once

#include "models/model_cfg.h"
#include "models/network.h"

#include <torch/types.h>

#include <cstdint>

namespace attnvision::models {

// Detections scoring below this are not cropped: too unlikely to be an item for the crop to matter.
inline constexpr double kSecondStageMinScore = 0.1;

// The detector's and the crop classifier's probabilities of the same class, combined: their geometric mean.
torch::Tensor second_stage_fuse(const torch::Tensor& detector_p, const torch::Tensor& crop_p);

class SecondStage {
 public:
  SecondStage() = default;
  // `classifier` (its config `classifier_cfg`: a classification model on square input) re-reads the
  // detections of a detector fed images normalised with `detector`'s mean and std.
  SecondStage(Network classifier, const ModelCfg& classifier_cfg, const ModelCfg& detector);

  // What the classifier makes of the detections in `found` (N x k rows [x, y, w, h, score, ...] in the pixels
  // of `images`, N x C x H x W as the detector was fed) scoring at least `min_score`: their flat row indices
  // into the N x k (K, image by image) and p(class | the square crop of the row's box), K x classes in float32,
  // classified `batch` crops at a time. No detection that qualifies: both empty.
  struct Reading {
    torch::Tensor rows;
    torch::Tensor p;
    // p of each read row's own class (column 5 of `found`, the one read()'s): K.
    torch::Tensor own_class(const torch::Tensor& found) const;
  };
  Reading read(const torch::Tensor& images, const torch::Tensor& found, double min_score, int64_t batch) const;

  explicit operator bool() const { return classifier_ != nullptr; }
  NetworkImpl& network() const { return *classifier_; }

 private:
  Network classifier_;
  ModelCfg cfg_;
  // Detector-normalised pixels -> the classifier's normalisation, per channel: v * scale_ + shift_.
  torch::Tensor scale_, shift_;
};

}  // namespace attnvision::models
