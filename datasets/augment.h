// Training augmentation on whole uint8 batches, after the batch is gathered: random crop with zero padding
// and horizontal flip (torchvision RandomCrop(padding=p), RandomHorizontalFlip), normalisation, then timm's
// RandomErasing in 'pixel' mode on the normalised values. A 128 x 1 x 28 x 28 batch takes well under a
// millisecond: row copies for the geometry, a 256-entry table per channel for the values, and one
// normal draw for all erased pixels of the batch.
//
// All randomness comes from the caller's std::mt19937_64 (through the portable draws of sampler.h; the
// erasing noise from a torch CPU generator seeded by one draw of it), so the result is a pure function of
// (input, options, rng state).
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <random>
#include <vector>

namespace attnvision::datasets {

struct AugmentOptions {
  int64_t crop_padding =
      0;                    // random crop of the original size from the image zero-padded by this many pixels
  // The crop's side (a square window, at a uniform offset in the padded image); 0 keeps the image's height and
  // width. A smaller window trains a fully convolutional network on patches: each step costs less, and the
  // network still runs on whole images at inference.
  int64_t crop_size = 0;
  // With masks (CT lesions): the share of crops placed over an object of the image's mask, one of its
  // objects drawn uniformly and the window uniform among those holding it whole (nnU-Net forces a third of its
  // patches onto foreground); the rest, and every image without one, uniform as above. Patches that miss the
  // lesions teach the network only what clean tissue looks like.
  double foreground_crops = 0.0;
  bool hflip = false;       // horizontal flip with probability 0.5
  double erase_prob = 0.0;  // timm RandomErasing probability (mode 'pixel': per-pixel N(0, 1) noise)
  double erase_min_area = 0.02, erase_max_area = 1.0 / 3.0;  // of the image, drawn uniformly
  double erase_min_aspect = 0.3;                             // max aspect = 1 / min, log-uniform between
};

// uint8 N x C x H x W -> float32 N x C x H x W, value = (float(v) * float(1 / 255) - mean[c]) / std[c] in
// float32: the arithmetic of vision::apply_eval_transform, so training sees exactly the values inference
// computes for the same pixels. Throws std::invalid_argument for another dtype or rank, or mean / std
// without one finite value per channel (std non-zero).
torch::Tensor normalize_batch(const torch::Tensor& images_u8, const std::vector<double>& mean,
                              const std::vector<double>& std);

// Per image, in batch order: crop offsets (top, then left, each uniform over the window's positions in the
// image zero-padded by crop_padding: 0..2 * crop_padding at the image's own size) when crop_padding > 0 or
// crop_size is smaller than the image (with masks and foreground_crops, first a draw whether this crop holds
// one of the mask's objects, then which, then its window), a flip draw when hflip; then normalize_batch; then,
// per image, erasing as timm does it (one rectangle; up to 10 tries for one that fits inside the image, else
// none). Options that do nothing give exactly normalize_batch. With crop_size the result is N x C x crop_size x
// crop_size. Throws std::invalid_argument for invalid options (a crop_size larger than the padded image among
// them).
//
// With `targets` that follow the pixels, *targets is replaced by the targets moved with them:
//   boxes (a detection batch's N x M x 5 float32 [class, x, y, w, h], class -1 for padding, see
//     datasets/detection_set.h): shifted, mirrored (x' = W - x - w, W the result's width) and cut to the
//     result, a box with less than a pixel left turned into padding;
//   masks (uint8 N x H x W, e.g. CT lesion masks, datasets/ct_slices.h): cropped and flipped exactly as the
//     image, zero where the padding comes in.
// Erasing is refused with targets: it would hide objects they still claim.
torch::Tensor augment_batch(const torch::Tensor& images_u8, const AugmentOptions& o,
                            const std::vector<double>& mean, const std::vector<double>& std,
                            std::mt19937_64& rng, torch::Tensor* targets = nullptr);

}  // namespace attnvision::datasets
