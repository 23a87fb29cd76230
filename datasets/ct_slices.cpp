#include "datasets/ct_slices.h"

#include "datasets/lesion_truth.h"

#include <opencv2/core.hpp>
#include <torch/torch.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <mutex>
#include <stdexcept>
#include <thread>

#include <unistd.h>

namespace attnvision::datasets {

CtSlice ct_slice(const vision::DicomFrames& image, int frame, const vision::CtInputSpec& spec) {
  const vision::DicomInfo& info = image.info;
  const bool hu = info.modality == "CT" || info.rescale_type == "HU";
  if (!hu)
    throw std::runtime_error(info.path + ": not a CT image in Hounsfield units (Modality '" + info.modality + "')");
  if (info.color()) throw std::runtime_error(info.path + ": a colour CT object, expected monochrome HU values");
  if (frame < 0 || frame >= static_cast<int>(image.frames.size()))
    throw std::runtime_error(info.path + ": no frame " + std::to_string(frame));
  CtSlice s;
  s.spacing_known = info.pixel_spacing.has_value();
  const std::array<double, 2> spacing =
      s.spacing_known ? *info.pixel_spacing : std::array<double, 2>{spec.spacing_mm, spec.spacing_mm};
  try {
    s.input = vision::ct_input(image.frames[static_cast<size_t>(frame)], spacing, spec);
  } catch (const std::invalid_argument& e) {
    throw std::runtime_error(info.path + ": " + e.what());
  }
  return s;
}

torch::Tensor slice_labels(const torch::Tensor& targets) {
  if (targets.dim() == 1) return targets.to(torch::kLong);
  return (targets.flatten(1).amax(1) > 0).to(torch::kLong);
}

int64_t ct_set_budget() {
  const long pages = sysconf(_SC_PHYS_PAGES), page_size = sysconf(_SC_PAGESIZE);
  if (pages <= 0 || page_size <= 0) return int64_t{8} << 30;  // not known: what the sets were first held to
  return static_cast<int64_t>(pages) * page_size / 3 * 2;
}

LabeledImages load_ct_anomaly_set(const std::string& dir, const vision::CtInputSpec& spec, int64_t max_bytes) {
  std::vector<const TruthSlice*> slices;
  const std::vector<TruthSeries> truth = read_lesion_truth(dir);
  for (const TruthSeries& s : truth)
    for (const TruthSlice& slice : s.slices) slices.push_back(&slice);
  if (slices.empty()) throw std::runtime_error(dir + "/lesions.json: lists no slices");
  const int64_t n = static_cast<int64_t>(slices.size()), c = static_cast<int64_t>(spec.windows.size());
  const int64_t plane = int64_t{spec.size} * spec.size;
  const int64_t limit = max_bytes > 0 ? max_bytes : ct_set_budget();
  if (n * (c + 1) * plane > limit)  // a byte per pixel for each window's image and for the mask
    throw std::runtime_error(dir + ": " + std::to_string(n) + " slices of " + std::to_string(c) + " x " +
                             std::to_string(spec.size) + "^2 bytes and their masks (" +
                             std::to_string((n * (c + 1) * plane) >> 20) + " MiB) exceed the " +
                             std::to_string(limit >> 20) + " MiB limit" +
                             (max_bytes > 0 ? "" : " (two thirds of this machine's memory)"));
  LabeledImages set;
  set.images = torch::empty({n, c, spec.size, spec.size}, torch::kUInt8);
  set.labels = torch::zeros({n, spec.size, spec.size}, torch::kUInt8);
  set.classes = {"clean", "lesion"};
  set.source = dir;
  uint8_t* images = set.images.data_ptr<uint8_t>();
  uint8_t* masks = set.labels.data_ptr<uint8_t>();

  std::atomic<int64_t> next{0};
  std::mutex error_mutex;
  std::string error;
  auto work = [&] {
    for (int64_t i = next++; i < n; i = next++) {
      try {
        const vision::DicomFrames image = vision::read_dicom(slices[static_cast<size_t>(i)]->file);
        const CtSlice slice = ct_slice(image, 0, spec);
        std::vector<cv::Mat> planes;
        cv::split(slice.input.image, planes);  // size x size x C, interleaved
        for (int64_t ch = 0; ch < c; ++ch)
          std::memcpy(images + (i * c + ch) * plane, planes[static_cast<size_t>(ch)].data, static_cast<size_t>(plane));
        const TruthSlice& truth = *slices[static_cast<size_t>(i)];
        if (truth.lesions.empty()) continue;
        const cv::Mat mask = read_lesion_mask(truth.mask, slice.input.placement.source);
        const cv::Mat on_grid = vision::mask_to_model(mask, slice.input.placement) / 255;
        std::memcpy(masks + i * plane, on_grid.data, static_cast<size_t>(plane));
      } catch (const std::exception& e) {
        const std::lock_guard<std::mutex> lock(error_mutex);
        if (error.empty()) error = e.what();
        next = n;  // stop the others early
      }
    }
  };
  const int threads = std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) pool.emplace_back(work);
  work();
  for (std::thread& t : pool) t.join();
  if (!error.empty()) throw std::runtime_error(error);
  return set;
}

}  // namespace attnvision::datasets
