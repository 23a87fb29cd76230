// Results back into the study: an RGB image (an overlay burned in) written as a DICOM Secondary Capture
// Image that a PACS files beside its source: patient and study copied from the source, a new series,
// references to the source instance, and a derivation description naming the method.
#pragma once

#include "vision/dicom.h"

#include <opencv2/core/mat.hpp>

#include <cstdint>
#include <optional>
#include <string>

namespace attnvision::vision {

struct SecondaryCaptureOptions {
  std::string series_description = "attnvision overlay";
  std::string derivation_description = "Saliency overlay burned in by attnvision";  // name the method here
  std::optional<int64_t> series_number;  // default: the source's series number + 1000 (or 1000)
  int64_t instance_number = 1;
  // The new series; empty makes one. Pass the same UID for every image of one output series.
  std::string series_instance_uid;
  int source_frame = 0;  // 0-based frame of a multi-frame source the image derives from
  std::string software_version = "attnvision";
  DicomReadOptions read_options;  // limits for reading the (untrusted) source
};

// Writes `rgb` (CV_8UC3 in RGB order, any size) to `out_path` (via a temporary name and a rename) as a
// Secondary Capture Image Storage object in the study of `source_path`. Returns its SOP Instance UID.
// Throws DicomError (about the source) or std::runtime_error naming `out_path` (writing).
std::string write_secondary_capture(const std::string& source_path, const cv::Mat& rgb,
                                    const std::string& out_path, const SecondaryCaptureOptions& options = {});

// A new globally unique UID under the UUID-derived root 2.25 (PS3.5 B.2): no registered root needed.
std::string new_dicom_uid();
// 128 bits as an RFC 9562 UUID of `version` (4: random, 8: custom), written as one decimal UID under 2.25.
std::string uuid_dicom_uid(uint64_t high, uint64_t low, int version);

}  // namespace attnvision::vision
