// The ground truth of a CT lesion set: DIR/lesions.json as `attnvision synth phantoms` writes it (see
// datasets/synth/phantoms.h), read back with every path resolved against DIR. Training reads it for the slice
// labels (lesion / clean), eval-saliency for the masks its maps are scored against.
#pragma once

#include <opencv2/core/mat.hpp>
#include <opencv2/core/types.hpp>

#include <stdexcept>
#include <string>
#include <vector>

namespace attnvision::datasets {

struct TruthLesion {
  cv::Point center_px;  // [column, row] of a pixel of the lesion
  double diameter_mm = 0.0;
  double contrast_hu = 0.0;
  std::string organ;
  std::string mask;  // path of its uint8 0/255 PNG mask at the slice's pixel grid
};

struct TruthSlice {
  std::string file;  // the DICOM slice
  std::string sop_instance_uid;
  std::vector<TruthLesion> lesions;  // empty on a clean slice
  std::string mask;                  // the union of its lesions' masks; empty on a clean slice
};

struct TruthSeries {
  std::string series_instance_uid;
  std::string folder;
  std::vector<TruthSlice> slices;
};

class LesionTruthError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Reads DIR/lesions.json. LesionTruthError, one line naming the file and the entry, when it is missing,
// malformed, or lacks a field.
std::vector<TruthSeries> read_lesion_truth(const std::string& dir);

// A lesion mask (a TruthSlice's or TruthLesion's `mask`) as CV_8U, non-zero inside. std::runtime_error naming
// the file when it is not an 8-bit single-channel image of `slice_size` (its slice's columns x rows).
cv::Mat read_lesion_mask(const std::string& path, cv::Size slice_size);

}  // namespace attnvision::datasets
