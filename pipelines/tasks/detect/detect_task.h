// Detection as a task: boxes, classes and scores per input (per frame of a multi-frame DICOM) from a
// CenterNet network, in the input image's pixels; optionally class-wise NMS and a PNG overlay. Shared by the
// task row (batch) and the `detect` subcommand.
#pragma once

#include "pipelines/tasks/detect/crop_classifier.h"
#include "pipelines/tasks/task.h"

#include <cstdint>
#include <string>

namespace CLI {
class App;
}

namespace attnvision::pipelines {

struct DetectOptions {
  ModelChoice model;  // its shipped_task is set to detection: without a model, the shipped detector runs
  int64_t batch = 32;
  double score_thresh = 0.3;  // detections below this score are left out of `detections` and the overlay
  double nms_iou = 0.0;       // > 0: class-wise NMS at this IoU (cv::dnn::NMSBoxes); 0: the 3x3 peaks alone
  bool overlay = false;       // write "<name>.boxes.png": the image with its detections drawn
  // Also list every peak the network decoded (up to its max_detections, no score threshold) as
  // `all_detections`: what a COCO results file wants.
  bool all_detections = false;
  // CenterNet's flip test: average the outputs with those for the mirrored image (twice the compute).
  bool flip_test = false;
  // A second stage that names each detection again from its crop (crop_classifier.h); no weights: none.
  CropClassifierOptions classifier;
};

// The detector's outputs for the batch `x`; with `flip_test`, averaged with its pass over `x` mirrored left to
// right (models::centernet_flip_average).
models::Forward detector_forward(models::NetworkImpl& net, const torch::Tensor& x, bool flip_test);

// --classifier FILE and --classifier-min-score, as `detect` and `eval-detect --data` spell them.
void add_crop_classifier_options(CLI::App& app, CropClassifierOptions& options);

// Loads the network; an error when it is not a detector.
std::unique_ptr<TaskRunner> make_detect_runner(const DetectOptions& options);

}  // namespace attnvision::pipelines
