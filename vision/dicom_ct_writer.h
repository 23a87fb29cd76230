// CT Image Storage output (PS3.3 A.3 CT Image IOD): one axial slice in Hounsfield units written as 16-bit
// stored values with a rescale, the geometry that places it in its series, display windows, and the
// patient / study / series identity the caller chooses (synthetic sets choose them deterministically).
#pragma once

#include <opencv2/core/mat.hpp>

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace attnvision::vision {

struct CtWindow {
  double center = 40.0;
  double width = 400.0;
  std::string explanation;  // e.g. "SOFT TISSUE", "LUNG" (at most 64 characters)
};

struct CtImageAttributes {
  // Patient (made up by synthetic generators); dates as YYYYMMDD, times as HHMMSS.
  std::string patient_name, patient_id, patient_birth_date, patient_sex;
  // Study and series.
  std::string study_instance_uid, study_date, study_time, study_id, accession_number, study_description;
  std::string series_instance_uid, series_description, frame_of_reference_uid;
  int64_t series_number = 1;
  // This instance.
  std::string sop_instance_uid;
  int64_t instance_number = 1;
  std::string image_type = "DERIVED\\PRIMARY\\AXIAL";
  std::string derivation_description;  // written when not empty
  std::string manufacturer = "attnvision";
  // Geometry (mm, patient coordinates LPS): the centre of the first transmitted pixel, the row and column
  // direction cosines, {row spacing, column spacing}.
  std::array<double, 3> image_position{0.0, 0.0, 0.0};
  std::array<double, 6> image_orientation{1.0, 0.0, 0.0, 0.0, 1.0, 0.0};
  std::array<double, 2> pixel_spacing{1.0, 1.0};
  double slice_thickness = 1.0;
  // Stored values: 16 bits allocated, `bits_stored` (12..16) of them used, two's complement when signed.
  // HU = stored * 1 + rescale_intercept.
  int bits_stored = 16;
  bool is_signed = false;
  double rescale_intercept = -1024.0;
  std::vector<CtWindow> windows;  // the first is the default; at least one
};

// The Hounsfield units a stored-value format can hold: [intercept + smallest, intercept + largest stored].
struct HuRange {
  double lowest = 0.0, highest = 0.0;
};
HuRange ct_hu_range(int bits_stored, bool is_signed, double rescale_intercept);

// `hu` (CV_32FC1) as the stored values of the format: rounded to the nearest integer HU and clamped to
// ct_hu_range, minus the intercept. CV_16UC1 for unsigned formats, CV_16SC1 for signed ones.
cv::Mat ct_stored_values(const cv::Mat& hu, int bits_stored, bool is_signed, double rescale_intercept);

// Writes `hu` (CV_32FC1, at most 65535 pixels a side) to `path` through a temporary name and a rename, as
// explicit VR little endian CT Image Storage. Throws std::invalid_argument for attributes that cannot be
// written (missing UIDs, bad bit depth, no window) and std::runtime_error naming `path` when writing fails.
void write_ct_image(const std::string& path, const cv::Mat& hu, const CtImageAttributes& attributes);

// A UID under the UUID root 2.25 (PS3.5 B.2) from 128 bits the caller derives (e.g. a hash of a data
// set's seed and an instance's index), marked as an RFC 9562 version 8 (custom) UUID: the same bits give
// the same UID, so a regenerated synthetic set keeps its UIDs. new_dicom_uid() is the random counterpart.
std::string dicom_uid_from_bits(uint64_t high, uint64_t low);

}  // namespace attnvision::vision
