// A PACS export folder to series: files grouped by SeriesInstanceUID and ordered along the slice normal.
#pragma once

#include "vision/dicom.h"

#include <optional>
#include <string>
#include <vector>

namespace attnvision::vision {

struct DicomSeries {
  std::string series_instance_uid, study_instance_uid, modality, description;
  std::optional<int64_t> series_number;
  // Ordered by ImagePositionPatient . normal (normal = row x column direction of ImageOrientationPatient)
  // when every instance has a position and they share one orientation; else by InstanceNumber when
  // every instance has one; else by path.
  std::vector<DicomInfo> instances;
  std::string ordering;               // "position", "instance_number" or "path"
  std::vector<std::string> warnings;  // mixed sizes or orientations, repeated positions
};

struct SeriesScan {
  std::vector<DicomSeries> series;  // by study, series number, series UID
  struct Skipped {
    std::string path, reason;  // reason: one line, e.g. "not an image (BasicTextSRStorage, no Pixel Data)"
    bool error = false;        // unreadable or broken (as opposed to a valid non-image object)
  };
  std::vector<Skipped> skipped;
};

// Reads the attributes of every file (no pixel decode); non-image objects (SR, RT plan, DICOMDIR) and
// unreadable files are reported in `skipped`, never fatal.
SeriesScan group_series(const std::vector<std::string>& files, const DicomReadOptions& options = {});

}  // namespace attnvision::vision
