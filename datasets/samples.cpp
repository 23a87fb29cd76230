#include "datasets/samples.h"

#include "datasets/augment.h"
#include "datasets/batch.h"
#include "datasets/ct_slices.h"

#include <ATen/Parallel.h>
#include <opencv2/core.hpp>

#include <algorithm>
#include <cstring>
#include <functional>

namespace attnvision::datasets {
namespace {

// The frames a model sees, and the sample's size: an image as decoded (reduced when `reduce_to` is not empty);
// a DICOM object's frames through the window to 8 bits. With `ct`, a DICOM object's modality values are kept
// there too (for a CT preprocessing); without `windowed`, nothing reads 8-bit frames (every preprocessing is
// CT and no display is kept), and the frames are the modality values themselves, for their count and size.
std::vector<cv::Mat> decode_frames(Sample& s, const DecodeOptions& o, cv::Size reduce_to, bool windowed,
                                   std::optional<vision::DicomFrames>* ct) {
  std::vector<cv::Mat> frames;
  if (s.input.kind == vision::InputKind::kDicom) {
    vision::DicomFrames dicom = vision::read_dicom(s.input.path, o.dicom);
    frames = windowed ? vision::window_to_8bit(dicom, vision::resolve_window(o.dicom_window, dicom)) : dicom.frames;
    s.dicom = dicom.info;
    if (o.keep_modality && !dicom.info.color()) s.modality = dicom.frames;  // shares the pixels: no copy
    if (ct) *ct = std::move(dicom);
  } else {
    if (ct) throw std::runtime_error("not a DICOM CT slice (the model reads Hounsfield units)");
    cv::Size full;
    frames.push_back(vision::read_image_reduced(s.input.path, reduce_to, &full, o.image));
    s.width = full.width;
    s.height = full.height;
  }
  if (frames.empty()) throw std::runtime_error("no frames");
  if (!s.width) {
    s.width = frames.front().cols;
    s.height = frames.front().rows;
  }
  s.frames = static_cast<int>(frames.size());
  return frames;
}

// The size a fast JPEG decode may reduce to: every transform must still shrink from it. Empty (no reduction)
// unless asked for and the pixels are not kept.
cv::Size jpeg_reduction(const std::vector<Preprocess>& preprocesses, const DecodeOptions& o) {
  if (!o.fast_jpeg || o.keep_display) return cv::Size();
  cv::Size at_least(1, 1);
  for (const Preprocess& p : preprocesses) {
    if (p.ct) return cv::Size();
    const cv::Size need = vision::eval_min_source_size(p.image);
    at_least = cv::Size(std::max(at_least.width, need.width), std::max(at_least.height, need.height));
  }
  return at_least;
}

// One CT slice on the model grid into row `index` of `batch`, normalised as training normalises.
void fill_ct_slot(torch::Tensor& batch, int64_t index, const cv::Mat& hwc, const vision::EvalTransform& t) {
  std::vector<cv::Mat> planes;
  cv::split(hwc, planes);
  torch::Tensor u8 = torch::empty({1, static_cast<int64_t>(planes.size()), hwc.rows, hwc.cols}, torch::kUInt8);
  const size_t plane = static_cast<size_t>(hwc.rows) * static_cast<size_t>(hwc.cols);
  for (size_t c = 0; c < planes.size(); ++c) std::memcpy(u8.data_ptr<uint8_t>() + c * plane, planes[c].data, plane);
  batch[index].copy_(normalize_batch(u8, t.mean, t.std)[0]);
}

// "path: problem" whether or not the reader already led with the path.
std::string error_line(const std::string& path, const std::string& what) {
  return what.rfind(path, 0) == 0 ? what : path + ": " + what;
}

}  // namespace

SampleBatch decode_samples(const std::vector<vision::BatchInput>& inputs,
                           const std::vector<Preprocess>& preprocesses, const DecodeOptions& options) {
  SampleBatch batch;
  const auto first_ct = std::find_if(preprocesses.begin(), preprocesses.end(), [](const Preprocess& p) { return p.ct.has_value(); });
  const bool needs_ct = first_ct != preprocesses.end();
  const cv::Size reduce_to = jpeg_reduction(preprocesses, options);
  const bool windowed = options.keep_display || std::any_of(preprocesses.begin(), preprocesses.end(),
                                                            [](const Preprocess& p) { return !p.ct.has_value(); });
  // Inputs are independent: with options.parallel each torch thread takes a share, one input at a time.
  const auto for_each_input = [&](const std::function<void(size_t)>& body) {
    if (!options.parallel) {
      for (size_t i = 0; i < inputs.size(); ++i) body(i);
      return;
    }
    at::parallel_for(0, static_cast<int64_t>(inputs.size()), 1, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) body(static_cast<size_t>(i));
    });
  };
  std::vector<std::vector<cv::Mat>> frames(inputs.size());
  std::vector<std::optional<vision::DicomFrames>> hu(inputs.size());
  batch.samples.resize(inputs.size());
  for_each_input([&](size_t i) {
    Sample& s = batch.samples[i];
    s.input = inputs[i];
    try {
      frames[i] = decode_frames(s, options, reduce_to, windowed, needs_ct ? &hu[i] : nullptr);
    } catch (const std::exception& e) {
      s.error = error_line(s.input.path, e.what());
    }
  });
  std::vector<size_t> sample_of;
  std::vector<int> frame_of;
  std::vector<int64_t> first_row(inputs.size(), 0);
  for (size_t i = 0; i < inputs.size(); ++i) {
    first_row[i] = static_cast<int64_t>(sample_of.size());
    if (batch.samples[i].ok())
      for (int f = 0; f < batch.samples[i].frames; ++f) sample_of.push_back(i), frame_of.push_back(f);
  }
  // Straight into the batch tensors (no per-image copies); a sample whose frames the transform refuses is
  // marked failed and its rows dropped afterwards (rare, and cheaper than a second pass for the others).
  const int64_t rows = static_cast<int64_t>(sample_of.size());
  std::vector<torch::Tensor> full;
  for (const Preprocess& p : preprocesses) full.push_back(rows ? empty_batch(rows, p.image) : torch::Tensor());
  for_each_input([&](size_t i) {
    Sample& s = batch.samples[i];
    try {
      for (int f = 0; s.ok() && f < s.frames; ++f) {
        const int64_t r = first_row[i] + f;
        for (size_t k = 0; k < preprocesses.size(); ++k) {
          const Preprocess& p = preprocesses[k];
          if (!p.ct) {
            fill_slot(full[k], r, frames[i][static_cast<size_t>(f)], p.image);
            continue;
          }
          const CtSlice slice = ct_slice(*hu[i], f, *p.ct);
          fill_ct_slot(full[k], r, slice.input.image, p.image);
          if (&p == &*first_ct) {
            s.ct_placements.push_back(slice.input.placement);
            s.ct_spacing_known = slice.spacing_known;
          }
        }
      }
    } catch (const std::exception& e) {
      s.error = error_line(s.input.path, e.what());
    }
  });
  std::vector<int64_t> keep;
  for (int64_t r = 0; r < rows; ++r) {
    if (!batch.samples[sample_of[r]].ok()) continue;
    keep.push_back(r);
    batch.sample_of.push_back(sample_of[r]);
    batch.frame_of.push_back(frame_of[r]);
  }
  for (torch::Tensor& x : full) {
    if (keep.empty()) x = torch::Tensor();
    else if (static_cast<int64_t>(keep.size()) < rows) x = x.index_select(0, torch::tensor(keep, torch::kLong));
    batch.inputs.push_back(x);
  }
  if (options.keep_display)
    for (size_t i = 0; i < inputs.size(); ++i)
      if (batch.samples[i].ok()) batch.samples[i].display = std::move(frames[i]);
  return batch;
}

}  // namespace attnvision::datasets
