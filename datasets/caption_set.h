// Caption sets for training and evaluation: a folder in the scenes layout (`attnvision synth scenes`:
// DIR/images/*.png and DIR/captions.json, COCO captions), held whole in memory as uint8 like LabeledImages,
// with every image's reference captions as word ids in one padded tensor: the targets a caption decoder's
// teacher forcing and the caption metric take (models/heads/caption_decoder.h).
#pragma once

#include "datasets/vocabulary.h"

#include <torch/types.h>

#include <cstdint>
#include <string>
#include <vector>

namespace attnvision::datasets {

struct CaptionSet {
  torch::Tensor images;      // N x C x H x W uint8, contiguous
  // N x R x L int64: each reference as <start> ids... <end> then <pad>; R the most references any image has
  // (an image with fewer has rows of <pad>), L the longest reference's words (at most max_words) + 2.
  torch::Tensor references;
  std::vector<int64_t> image_ids;  // the COCO image id of each row
  Vocabulary vocabulary;
  std::string source;
};

struct CaptionSetOptions {
  int64_t channels = 3;
  // The vocabulary to encode with (a trained captioner's); null: built from this set's captions.
  const Vocabulary* vocabulary = nullptr;
  int64_t min_word_count = 1;  // when building: words seen fewer times become <unk>
  int64_t max_words = 20;      // longer references are cut to their first max_words words
  int64_t max_bytes = int64_t{4} << 30;
};

// Reads DIR/captions.json (strictly: datasets/coco.h), tokenised the coco-caption way, and decodes
// DIR/images/<file_name> of each of its images (datasets/coco_images.h), rows ordered by image id. An image
// without a reference caption is an error naming it: there is nothing to learn or score it against.
CaptionSet load_caption_set(const std::string& dir, const CaptionSetOptions& options = {});

// Word ids back to words: one caption's row (a decoder's output or a reference, up to its <end>), and one
// image's reference rows (R x L, as CaptionSet::references holds them; rows of <pad> skipped).
Tokens caption_words(const Vocabulary& vocabulary, const torch::Tensor& ids);
std::vector<Tokens> reference_captions(const Vocabulary& vocabulary, const torch::Tensor& rows);

}  // namespace attnvision::datasets
