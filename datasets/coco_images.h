// The pixels of a COCO-style folder (DIR/images/<file_name>, as `attnvision synth scenes` writes it), held
// whole in memory as uint8 for training and evaluation: the images of a detection set and of a caption set.
#pragma once

#include "datasets/coco.h"

#include <torch/types.h>

#include <cstdint>
#include <string>
#include <vector>

namespace attnvision::datasets {

// Decodes DIR/images/<file_name> of each of `images`, in the order given, as RGB (channels 3) or gray
// (channels 1) by PIL's rules, at the images' own size: N x C x H x W uint8. Every image must have the first
// one's size (batches stack them as they are, and boxes stay in the file's pixels). Errors are one line naming
// the file: an image that does not decode, or whose size differs from the first image's or from its own
// width/height in the JSON, or a set larger than max_bytes (checked before decoding).
torch::Tensor load_coco_images(const std::string& dir, const std::vector<CocoImage>& images, int64_t channels,
                               int64_t max_bytes);

}  // namespace attnvision::datasets
