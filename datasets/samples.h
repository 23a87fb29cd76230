// Batch inputs as the model sees them: one input file (an image, or a DICOM object with one or more frames)
// decoded, windowed and preprocessed for every transform the run's tasks need, with what later stages need
// to draw on and measure it (the display frames, a DICOM's geometry). Decoding never throws: a file that
// cannot be read becomes a sample with an error, and the batch goes on.
#pragma once

#include "datasets/preprocess.h"
#include "vision/ct_input.h"
#include "vision/dicom.h"
#include "vision/image_io.h"
#include "vision/inputs.h"
#include "vision/transforms.h"

#include <opencv2/core/mat.hpp>
#include <torch/types.h>

#include <optional>
#include <string>
#include <vector>

namespace attnvision::datasets {

struct DecodeOptions {
  vision::ImageReadOptions image;
  vision::DicomReadOptions dicom;
  std::string dicom_window = "auto";  // vision::resolve_window's spec: the file's window, else min/max
  bool keep_display = false;          // keep the 8-bit frames (overlays need them; plain runs save the memory)
  bool keep_modality = false;         // keep a DICOM object's modality values (HU) too, to window them again
  // Decode JPEGs at the smallest libjpeg scale (1/2, 1/4, 1/8) that every transform still shrinks from, and
  // make the model input from that (vision::read_image_reduced: Pillow's Image.draft, then the usual eval
  // transform). About twice as fast to decode, and a few levels off the exact input. The sample keeps the full
  // size. It gives way to the exact decode whenever the pixels are kept (keep_display) or a transform reads CT.
  bool fast_jpeg = false;
  // Spread the inputs over the calling thread's torch threads (at::parallel_for) instead of decoding them one
  // after another: for a caller whose torch threads would otherwise wait, such as the batch runner's model
  // thread between batches.
  bool parallel = false;
};

struct Sample {
  vision::BatchInput input;
  std::string error;  // "path: problem" when it could not be decoded
  int width = 0, height = 0, frames = 0;
  std::optional<vision::DicomInfo> dicom;  // geometry (PixelSpacing, positions, orientation) of a DICOM input
  std::vector<cv::Mat> display;            // 8-bit gray or RGB frames, when DecodeOptions::keep_display
  std::vector<cv::Mat> modality;           // a DICOM object's frames in modality values, when keep_modality
  // Where each frame lies on a CT model's grid (the first CT preprocessing of the batch), to map maps back.
  std::vector<vision::CtPlacement> ct_placements;
  bool ct_spacing_known = true;  // false: no PixelSpacing, the slice was taken at the model's spacing
  bool ok() const { return error.empty(); }
};

// A group of samples and their model inputs: for each preprocessing, one N x C x H x W float tensor whose rows
// are the ok samples' frames in order (row r is frame frame_of[r] of sample sample_of[r]).
struct SampleBatch {
  std::vector<Sample> samples;
  std::vector<torch::Tensor> inputs;  // one per preprocessing; undefined when no frame decoded
  std::vector<size_t> sample_of;
  std::vector<int> frame_of;
};

// Decodes `inputs` one after another on the calling thread (or over its torch threads,
// DecodeOptions::parallel). Images go through vision::read_image; DICOM through vision::read_dicom, the
// modality LUT and the window, every frame becoming one row. A CT preprocessing takes the frames' Hounsfield
// units instead: an input that is not a CT image in HU fails (with a line naming it) when some preprocessing
// needs CT.
SampleBatch decode_samples(const std::vector<vision::BatchInput>& inputs,
                           const std::vector<Preprocess>& preprocesses, const DecodeOptions& options);

}  // namespace attnvision::datasets
