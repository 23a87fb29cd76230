// CT slices as an anomaly model takes them: a decoded DICOM frame checked to be CT in Hounsfield units, then
// vision::ct_input on the model's grid. Also the labelled set a phantom folder makes for training and `eval`.
#pragma once

#include "datasets/labeled_images.h"
#include "vision/ct_input.h"
#include "vision/dicom.h"

#include <string>

namespace attnvision::datasets {

struct CtSlice {
  vision::CtInput input;
  // False when the file has no PixelSpacing: the slice was then taken as if at the model's spacing, and
  // sizes can only be given in pixels.
  bool spacing_known = true;
};

// Frame `frame` of a decoded object. std::runtime_error, one line naming the file, for an object that is not a
// monochrome CT image in Hounsfield units (another modality, colour, no rescale to HU).
CtSlice ct_slice(const vision::DicomFrames& image, int frame, const vision::CtInputSpec& spec);

// Every slice of a phantom set (DIR/lesions.json, datasets/lesion_truth.h) on the model grid: images
// N x C x size x size uint8 (one channel per window), labels the lesion masks on the same grid, N x size x size
// uint8 (1 inside a lesion, vision::mask_to_model; a slice is a lesion slice when its mask is not empty), classes
// {"clean", "lesion"}; slices in the file's order, decoded on all cores. A slice that fails to decode is an
// error naming it (a training set is data we made: a broken file there is a bug, not an input to skip).
// `max_bytes` refuses a set whose images and masks together would be larger, before decoding; 0: two thirds of
// this machine's physical memory (ct_set_budget).
LabeledImages load_ct_anomaly_set(const std::string& dir, const vision::CtInputSpec& spec, int64_t max_bytes = 0);

// The most a phantom set may take in memory by default: two thirds of the machine's physical memory, so that
// training keeps room for its batches and activations, and a set the machine cannot hold is refused with a
// message before decoding rather than killed part way by the kernel.
int64_t ct_set_budget();

// The slice labels of such masks (or of slice labels already): N int64, 1 where the mask has a lesion pixel.
torch::Tensor slice_labels(const torch::Tensor& targets);

}  // namespace attnvision::datasets
