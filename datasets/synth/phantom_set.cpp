// Writing a phantom set: DICOM slices, lesion masks, and lesions.json last (a folder with lesions.json is
// complete).
#include "datasets/synth/phantoms.h"

#include "vision/dicom_ct_writer.h"
#include "vision/files/atomic_write.h"
#include "vision/image_write.h"

#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <stdexcept>

namespace attnvision::datasets::synth {

namespace {

namespace fs = std::filesystem;
using nlohmann::ordered_json;

std::string slice_stem(int slice) {
  char text[32];
  std::snprintf(text, sizeof text, "slice_%03d", slice);
  return text;
}

// Millimetres and HU to 0.01: the masks, not these numbers, are the exact ground truth.
double hundredths(double value) { return std::round(value * 100.0) / 100.0; }

// Writes one slice's DICOM file and masks; returns its lesions.json entry (paths relative to out_dir).
ordered_json write_slice(const PhantomSlice& slice, const PhantomSeries& series, const fs::path& out_dir) {
  const std::string stem = slice_stem(slice.index);
  const std::string file = series.folder + "/" + stem + ".dcm";
  vision::write_ct_image((out_dir / file).string(), slice.hu, slice.dicom);
  ordered_json lesions = ordered_json::array();
  cv::Mat all = cv::Mat::zeros(slice.hu.size(), CV_8UC1);
  for (size_t j = 0; j < slice.lesions.size(); ++j) {
    const PhantomLesion& lesion = slice.lesions[j];
    const std::string mask = "masks/" + series.folder + "/" + stem + "_l" + std::to_string(j) + ".png";
    vision::write_png((out_dir / mask).string(), lesion.mask);
    all |= lesion.mask;
    lesions.push_back({{"center_px", {lesion.center_px.x, lesion.center_px.y}},
                       {"diameter_mm", hundredths(lesion.diameter_mm)},
                       {"contrast_hu", hundredths(lesion.contrast_hu)},
                       {"organ", lesion.organ},
                       {"mask", mask}});
  }
  ordered_json union_mask = nullptr;
  if (!slice.lesions.empty()) {
    union_mask = "masks/" + series.folder + "/" + stem + ".png";
    vision::write_png((out_dir / union_mask.get<std::string>()).string(), all);
  }
  return {{"file", file},
          {"sop_instance_uid", slice.dicom.sop_instance_uid},
          {"instance_number", slice.dicom.instance_number},
          {"image_position_patient", slice.dicom.image_position},
          {"lesions", lesions},
          {"mask", union_mask}};
}

}  // namespace

PhantomSetSummary write_phantom_set(const PhantomOptions& options, int64_t series_count,
                                    const std::string& out_dir,
                                    const std::function<void(int64_t)>& progress) {
  if (series_count < 1)
    throw std::invalid_argument("phantoms: the series count must be at least 1, got " +
                                std::to_string(series_count));
  draw_phantom_series(options, 0);  // checks the options before anything is written
  const fs::path out(out_dir);
  fs::create_directories(out);
  vision::remove_temporaries(out_dir);  // what a killed earlier run left behind

  PhantomSetSummary summary;
  ordered_json series_list = ordered_json::array();
  for (int64_t k = 0; k < series_count; ++k) {
    const PhantomSeries series = draw_phantom_series(options, k);
    fs::create_directories(out / series.folder);
    fs::create_directories(out / "masks" / series.folder);
    ordered_json slices = ordered_json::array();
    for (int i = 0; i < series.slice_count; ++i) {
      const PhantomSlice slice = render_phantom_slice(options, series, i);
      slices.push_back(write_slice(slice, series, out));
      summary.lesions += static_cast<int64_t>(slice.lesions.size());
      summary.clean_slices += slice.lesions.empty();
      ++summary.slices;
      if (progress) progress(summary.slices);
    }
    series_list.push_back({{"series_instance_uid", series.dicom.series_instance_uid},
                           {"study_instance_uid", series.dicom.study_instance_uid},
                           {"folder", series.folder},
                           {"size", series.size},
                           {"pixel_spacing_mm", series.pixel_spacing},
                           {"slice_thickness_mm", series.slice_thickness},
                           {"bits_stored", series.dicom.bits_stored},
                           {"pixel_representation", series.dicom.is_signed ? 1 : 0},
                           {"slices", slices}});
    summary.series = k + 1;
  }
  const ordered_json info = {
      {"description", "attnvision CT phantoms"},
      {"seed", options.seed},
      {"size", options.size ? ordered_json(options.size) : ordered_json(nullptr)},
      {"lesion_sizes", options.lesion_sizes == LesionSizes::log_uniform ? "log-uniform" : "uniform"},
      {"conventions",
       "Paths are relative to this file's folder. center_px is [column, row] of the lesion's centre pixel. "
       "diameter_mm is the mean diameter. contrast_hu is the lesion's HU minus its organ's HU around it, "
       "before blur and noise. Each lesion's mask is 255 exactly on its pixels; a slice's mask is the union "
       "of its lesions' masks (null on a clean slice)."}};
  vision::write_text_atomically((out / "lesions.json").string(),
                                ordered_json({{"info", info}, {"series", series_list}}).dump(1) + "\n");
  return summary;
}

}  // namespace attnvision::datasets::synth
