// DICOM input for untrusted files: every transfer syntax free DCMTK 3.6.7 decodes (native, deflated,
// RLE, JPEG baseline/extended/lossless, JPEG-LS) plus JPEG 2000 through OpenJPEG, giving modality values
// (Hounsfield units and the like) or RGB, with the geometry and display windows the file carries.
// This header is the whole API: no DCMTK type crosses it (DCMTK stays inside vision/dicom*.cpp).
#pragma once

#include <opencv2/core/mat.hpp>

#include <array>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace attnvision::vision {

// Any problem with a DICOM input; what() is one line naming the file and the problem. kind() lets a
// batch tell "not an image" (SR, RT plan, DICOMDIR: skip and report) from a broken or hostile file.
class DicomError : public std::runtime_error {
 public:
  enum class Kind {
    io,           // cannot open or read the file
    not_dicom,    // empty, or no DICOM structure at all
    not_image,    // a valid DICOM object without pixel data (SR, RT plan, DICOMDIR, ...)
    corrupt,      // truncated, inconsistent or malformed
    too_large,    // over a configured limit (refused before allocating)
    unsupported,  // valid but not something we decode (e.g. an unknown photometric interpretation)
  };
  DicomError(Kind kind, const std::string& message) : std::runtime_error(message), kind_(kind) {}
  Kind kind() const { return kind_; }

 private:
  Kind kind_;
};

struct DicomReadOptions {
  int64_t max_file_bytes = int64_t{1} << 30;       // files larger than this are refused unread
  int64_t max_frame_pixels = 100'000'000;          // rows * columns of one frame
  int64_t max_decoded_bytes = int64_t{2} << 30;    // all frames as returned (after conversion)
  int64_t max_inflated_bytes = int64_t{32} << 20;  // a deflated data set, inflated (a bomb costs ~10 ms/MB)
  int max_nesting = 32;                            // sequence depth (DCMTK's parser recurses)
  int64_t max_elements = 1'000'000;                // data elements in the whole object
  bool apply_modality_lut = true;  // false: stored values (masked, sign-extended), no rescale / LUT
  int depth = CV_32F;              // CV_32F or CV_64F for monochrome frames (CV_64F holds 32-bit exactly)
};

// A lookup table from the file (Modality LUT Sequence or VOI LUT Sequence).
struct DicomLut {
  int64_t first_mapped = 0;  // input value mapped to data[0]; inputs outside the table clamp
  int bits = 16;             // bits per entry (8..16)
  std::vector<uint16_t> data;
  std::string explanation;
};

// A VOI transformation: center/width with a DICOM VOI LUT function, or a VOI LUT table.
struct Window {
  enum class Function { linear, linear_exact, sigmoid };
  double center = 0.0;
  double width = 1.0;
  Function function = Function::linear;
  std::optional<DicomLut> lut;  // when set, center/width are unused
  std::string name;             // preset name, the file's explanation, "minmax", ...
};

struct DicomInfo {
  std::string path;
  std::string sop_class_uid, sop_class_name, sop_instance_uid;
  std::string study_instance_uid, series_instance_uid, frame_of_reference_uid;
  std::string modality, series_description;
  std::optional<int64_t> series_number, instance_number;
  std::string transfer_syntax_uid, transfer_syntax_name;
  bool lossy = false;  // lossy transfer syntax or LossyImageCompression "01"

  bool has_pixel_data = false;
  int rows = 0, columns = 0, frames = 0, samples_per_pixel = 0;
  int bits_allocated = 0, bits_stored = 0, high_bit = 0;
  bool is_signed = false;
  int planar_configuration = 0;
  std::string photometric;  // as written in the file (MONOCHROME1, YBR_FULL_422, ...)

  // Geometry (mm). Positions: one per frame where the file gives them (empty when it does not).
  std::optional<std::array<double, 2>> pixel_spacing;  // row spacing, column spacing
  std::optional<double> slice_thickness, spacing_between_slices;
  std::optional<std::array<double, 6>> image_orientation;  // row direction cosines, column direction cosines
  std::vector<std::array<double, 3>> image_positions;

  // Modality transform: rescale (per frame for enhanced multi-frame objects) or a LUT.
  double rescale_slope = 1.0, rescale_intercept = 0.0;
  std::string rescale_type;
  std::vector<std::array<double, 2>> frame_rescale;  // {slope, intercept} per frame, empty if uniform
  std::optional<DicomLut> modality_lut;

  std::vector<Window> windows;  // center/width pairs from the file, first is the default
  std::vector<DicomLut> voi_luts;

  bool color() const { return samples_per_pixel == 3 || photometric == "PALETTE COLOR"; }
  bool monochrome1() const { return photometric == "MONOCHROME1"; }
};

// Decoded frames. Monochrome: modality values (or stored values) as single-channel `depth` Mats.
// Colour: RGB (not BGR) stored values, CV_8UC3 for 8-bit data, CV_16UC3 for 16-bit data and 16-bit
// palettes, `depth` with 3 channels for 32-bit data.
struct DicomFrames {
  DicomInfo info;
  std::vector<cv::Mat> frames;
};

// True when the file starts like DICOM (preamble + "DICM", or a plausible bare data set).
bool looks_like_dicom(const std::string& path);

// Attributes only: no pixel decode. Throws DicomError (kind not_image is NOT thrown here: a non-image
// object returns with has_pixel_data == false).
DicomInfo read_dicom_info(const std::string& path, const DicomReadOptions& options = {});

// Attributes and all frames. Throws DicomError (not_image for objects without pixel data).
DicomFrames read_dicom(const std::string& path, const DicomReadOptions& options = {});

// The same from memory (used by the fuzz target); `name` stands for the path in messages.
DicomFrames read_dicom_buffer(const uint8_t* data, size_t size, const std::string& name,
                              const DicomReadOptions& options = {});

// ---- Windowing (VOI) -------------------------------------------------------------------------------

// Named CT presets (Hounsfield units): lung, mediastinum, bone, brain, abdomen.
const std::vector<std::string>& window_preset_names();
Window window_preset(const std::string& name);  // throws std::invalid_argument naming the choices

// Windows computed from the data: full range, or the [low, high] percentiles (0..100, numpy's
// linear interpolation between order statistics).
Window minmax_window(const std::vector<cv::Mat>& frames);
Window percentile_window(const std::vector<cv::Mat>& frames, double low, double high);

// Turns a user's choice into a window for `image`:
//   "auto" (the file's first window, else its first VOI LUT, else min/max) | PRESET | "C,W" |
//   "file" | "file:N" (N-th window in the file, 1-based) | "voi-lut" | "voi-lut:N" | "minmax" |
//   "percentile" (1..99) | "percentile:LO,HI".
// Throws std::invalid_argument for a malformed spec or a window the file does not have.
Window resolve_window(const std::string& spec, const DicomFrames& image);

// Monochrome frame (any depth, one channel) -> CV_8UC1 through `window`; `invert` for MONOCHROME1.
cv::Mat window_to_8bit(const cv::Mat& frame, const Window& window, bool invert);

// Every frame of `image` -> 8-bit: monochrome through `window` (MONOCHROME1 inverted so that it
// displays like a viewer shows it), colour scaled from its stored range to CV_8UC3 RGB.
std::vector<cv::Mat> window_to_8bit(const DicomFrames& image, const Window& window);

}  // namespace attnvision::vision
