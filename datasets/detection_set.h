// Detection sets for training and evaluation: a folder in the scenes layout (`attnvision synth scenes`:
// DIR/images/*.png and DIR/instances.json, COCO boxes), held whole in memory as uint8 like LabeledImages,
// with every image's boxes in one padded tensor, the layout the detection head's loss takes
// (models/heads/centernet.h): N x M x 5 rows of [class index, x, y, w, h] in pixels, class -1 for padding.
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <string>
#include <vector>

namespace attnvision::datasets {

struct DetectionSet {
  torch::Tensor images;                // N x C x H x W uint8, contiguous (every image of the set one size)
  torch::Tensor boxes;                 // N x M x 5 float32, M the most boxes any image has (at least 1)
  std::vector<int64_t> image_ids;      // the COCO image id of each row
  std::vector<int64_t> category_ids;   // the COCO category id of each class index (categories by id)
  std::vector<std::string> classes;    // class names, index = class
  std::string source;                  // the folder, for messages

  int64_t size() const { return images.defined() ? images.size(0) : 0; }
  // The rows at `indices` (1-D int64), in that order; padding is kept at M.
  DetectionSet subset(const torch::Tensor& indices) const;
};

// Reads DIR/instances.json (strictly: datasets/coco.h) and decodes DIR/images/<file_name> for each of its
// images, as RGB (channels 3) or gray (channels 1) by PIL's rules, rows ordered by image id. Crowd regions are
// left out (they are not objects to learn). Errors are one line naming the file: an image that does not
// decode, or whose size differs from the first image's or from its own width/height in the JSON, or a set
// larger than max_bytes.
DetectionSet load_detection_set(const std::string& dir, int64_t channels = 3,
                                int64_t max_bytes = int64_t{4} << 30);

// Mirrors the rows where `flip` (N bool) is true, left to right, images and boxes together: x becomes
// W - x - w. In place; the augmentation a detector's training applies with probability 0.5.
void hflip_with_boxes(torch::Tensor& images, torch::Tensor& boxes, const torch::Tensor& flip);

}  // namespace attnvision::datasets
