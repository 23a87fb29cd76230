// CT phantoms: series of axial chest / abdomen slices in Hounsfield units drawn from a simple body model
// (elliptical body with fat and muscle, lungs with branching vessels, spine and ribs, heart and great
// vessels, liver, spleen, kidneys, stomach with an air-fluid level), with lesions whose masks are exact:
// a detection / segmentation set for the DICOM paths that needs no patient data.
//
// Randomness: series k of (seed, size) draws its anatomy, pixel format, geometry and identity from one
// std::mt19937_64 stream; slice i draws its lesions, texture and noise from its own stream seeded by
// (seed, size, k, i). So a slice never depends on how many series or slices are generated nor on the order
// they are generated in, and anatomy varies smoothly along z (it is a function of the slice's level).
// Pixel data is reproducible for the same seed with the same build (the noise is OpenCV's cv::RNG).
//
// Coordinates: image x runs to the patient's left, y to the back (ImageOrientationPatient 1\0\0\0\1\0,
// head first supine), slice i + 1 lies one slice thickness below (towards the feet of) slice i.
#pragma once

#include "vision/dicom_ct_writer.h"

#include <opencv2/core/mat.hpp>

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace attnvision::datasets::synth {

// What a pixel of a phantom is made of. Lesions do not change it: a liver lesion's pixels stay `liver`.
enum class Tissue : uint8_t {
  air,
  table,
  fat,           // subcutaneous
  visceral_fat,  // mediastinum, abdomen, renal sinus
  muscle,        // body wall, paraspinal, psoas
  lung,
  lung_vessel,
  soft_tissue,  // airway and bowel walls, oesophagus, pancreas
  blood,
  myocardium,
  liver,
  spleen,
  kidney,
  fluid,  // stomach and bowel contents, gallbladder, spinal canal
  cortical_bone,
  marrow,
  disc,
};
constexpr int kTissueCount = static_cast<int>(Tissue::disc) + 1;
const char* tissue_name(Tissue tissue);

// The organs lesions are placed in, as lesions.json names them. "lung" covers lung and lung_vessel pixels.
const std::vector<std::string>& lesion_organs();
// The tissues that make up a lesion organ (throws std::invalid_argument for an unknown name).
std::vector<Tissue> organ_tissues(const std::string& organ);

// How a lesion's diameter is drawn from 4-30 mm. Uniform is the distribution the phantoms describe (and what
// test sets use); log-uniform gives as many lesions of 4-8 mm as of 8-16 and of 16-30 (about 34% under 8 mm
// against 15%), a training set that shows a model the small lesions it misses more often.
enum class LesionSizes : uint8_t { uniform, log_uniform };

struct PhantomOptions {
  uint64_t seed = 0;
  int size = 0;  // 0: drawn per series (512 or 256 pixels a side); else 512 or 256
  LesionSizes lesion_sizes = LesionSizes::uniform;
};

struct PhantomAnatomy;  // the body model of one series (datasets/synth/phantom_anatomy.h)

struct PhantomSeries {
  int64_t index = 0;
  std::string folder;  // "series_<seed>_<index, 4 digits>"
  int size = 512;
  double pixel_spacing = 0.7;    // mm, square pixels
  double slice_thickness = 2.5;  // mm, also the distance between slice centres
  int slice_count = 0;
  double first_level_mm = 0.0;  // slice 0's distance below the lung apex (the model's z axis)
  // The scanner's look, shared by the series: a mild Gaussian blur, then noise of this standard deviation,
  // white or (correlation > 0) Gaussian-filtered with that sigma in pixels and scaled back to the same sigma.
  double blur_px = 0.6;
  double noise_hu = 10.0;
  double noise_correlation_px = 0.0;
  // Patient, study, series, geometry, windows and the stored-value format (dicom.bits_stored 12 or 16,
  // dicom.is_signed; HU = stored - 1024) shared by every slice; the per-slice fields (sop_instance_uid,
  // instance_number, image_position) describe slice 0.
  vision::CtImageAttributes dicom;
  std::shared_ptr<const PhantomAnatomy> anatomy;
};

struct PhantomLesion {
  cv::Point center_px;       // a pixel of the lesion: the centre its outline is drawn around
  double diameter_mm = 0.0;  // mean diameter (lobulation varies the radius around it)
  // Lesion HU minus the HU of the organ around it (both before blur and noise): a lung nodule's is large
  // and positive, hypo- / hyper-dense organ lesions have -100..-40 / 40..100.
  double contrast_hu = 0.0;
  std::string organ;  // one of lesion_organs()
  cv::Mat mask;       // CV_8UC1 at the slice's grid: 255 on the lesion's pixels, 0 elsewhere
};

struct PhantomSlice {
  int index = 0;
  double level_mm = 0.0;  // below the lung apex
  cv::Mat hu;             // CV_32FC1 whole HU, clamped to what the series' stored-value format holds
  cv::Mat tissue;         // CV_8UC1 of Tissue values
  std::vector<PhantomLesion> lesions;  // 0..3, at disjoint pixels
  vision::CtImageAttributes dicom;     // the series' attributes with this slice's UID, number, position
};

// Series `index` of the set (options.seed, options.size). Throws std::invalid_argument for a size other
// than 0, 256 or 512 or a negative index.
PhantomSeries draw_phantom_series(const PhantomOptions& options, int64_t index);

// Slice `slice` (0..slice_count-1) of a series; pure and thread-safe.
PhantomSlice render_phantom_slice(const PhantomOptions& options, const PhantomSeries& series, int slice);

// The number of slices series 0..series_count-1 have together (cheap: no pixels are drawn).
int64_t count_phantom_slices(const PhantomOptions& options, int64_t series_count);

struct PhantomSetSummary {
  int64_t series = 0, slices = 0, clean_slices = 0, lesions = 0;
};

// Writes series 0..series_count-1 to out_dir: <folder>/slice_<i, 3 digits>.dcm (CT Image Storage), per
// lesion masks/<folder>/slice_<i>_l<j>.png and per slice with lesions masks/<folder>/slice_<i>.png (the
// union), then out_dir/lesions.json last, every file through vision/files/atomic_write.h. `progress` gets
// the number of slices written so far. Throws std::invalid_argument for series_count < 1 or bad options
// and std::runtime_error naming the file when writing fails.
PhantomSetSummary write_phantom_set(const PhantomOptions& options, int64_t series_count,
                                    const std::string& out_dir,
                                    const std::function<void(int64_t slices_done)>& progress = {});

}  // namespace attnvision::datasets::synth
