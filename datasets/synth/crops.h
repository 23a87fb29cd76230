// Training crops for a detector's second stage: one square crop per ground-truth box of a scenes folder, cut as
// the detect task cuts its detections (models::square_crops), in an image folder a classifier trains on.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

namespace attnvision::datasets::synth {

struct CropOptions {
  int64_t size = 32;  // crop side in pixels (the square around each box: models::kSecondStageCropMargin)
};

struct CropSetSummary {
  int64_t images = 0;
  int64_t crops = 0;
};

// Reads SCENES_DIR/instances.json and its images and writes OUT/<category id, two digits>/<annotation id>.png
// (sorted folder names = category order, torchvision's ImageFolder layout) and OUT/labels.txt (the category
// names in that order). `progress` gets the images done and their total. Errors are one line naming the file.
CropSetSummary write_crop_set(const std::string& scenes_dir, const CropOptions& options, const std::string& out,
                              const std::function<void(int64_t done, int64_t total)>& progress);

}  // namespace attnvision::datasets::synth
