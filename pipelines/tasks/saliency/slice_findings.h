// What the anomaly model finds on a batch of CT slices: p(lesion), the saliency map on the model grid and on
// each source slice's own grid, its peak, and the regions it lights. Shared by the `saliency` task (which
// writes and reports it) and `eval-saliency` (which scores it against phantom masks), so both measure the
// same thing.
#pragma once

#include "datasets/samples.h"
#include "models/model_cfg.h"
#include "models/network.h"
#include "models/saliency/saliency.h"
#include "vision/ct_input.h"
#include "vision/regions.h"

#include <opencv2/core/mat.hpp>
#include <torch/types.h>

#include <string>
#include <vector>

namespace attnvision::pipelines {

// How saliency reads a model: method and options, the operating threshold and the region level.
struct SaliencyReading {
  std::string method;
  models::SaliencyOptions options;  // the stage for the CAM methods
  double operating_threshold = 0.5;
  double region_level = 0.5;
  bool region_level_of_peak = true;  // region_level_of: peak (true) or map
  // The flip test (as CenterNet's for boxes): the slice and its mirror image (left to right) both explained,
  // the mirror's map mirrored back, and p(lesion) and the raw maps averaged. Twice the compute.
  bool flip_test = false;

  // A region level (the model's or a swept one) as a value on a map whose peak is `peak`.
  double region_threshold(double level, double peak) const { return region_level_of_peak ? level * peak : level; }
};

// The model's own reading (its config's anomaly section), with `method` replacing its default method when
// given (the stage then applies only to methods that read one). std::invalid_argument for an unknown method.
SaliencyReading saliency_reading_for(const models::ModelCfg& cfg, const std::string& method = "");

struct SliceFindings {
  double score = 0;       // p(lesion)
  cv::Mat model_map;      // CV_32F size x size: the raw map on the model grid
  cv::Mat source_map;     // CV_32F source rows x columns: the raw map on the slice's own grid
  cv::Point peak_px;      // [column, row] of source_map's maximum (the first, in row-major order)
  double peak = 0;        // source_map's maximum
  // Components of source_map >= the reading's region threshold (region_level of the peak, or of the map's own
  // scale), measured with the slice's geometry; only on slices whose
  // score reaches the operating threshold (a clean slice yields none), and only where the peak is positive.
  std::vector<vision::Region> regions;
};

// Where frame `frame` of a decoded sample lies: PixelSpacing, orientation and that frame's position; empty for
// an image, and without PixelSpacing (the slice was then taken at the model's spacing, so nothing is in mm).
vision::SliceGeometry slice_geometry(const datasets::Sample& s, int frame);

// What anomaly saliency explains, per slice: the lesion_map head's largest cell logit (the slice's lesion
// logit) plus every cell's logit above 0 (each cell the head calls a lesion). The slice logit alone is a maximum,
// whose gradient reaches only its top cell, so a slice's map lit one lesion and left the others dark (lesion
// sensitivity 55.7% on the validation phantoms with Layer-CAM at region level 0.3); with every lesion cell in
// the score each lesion the model sees is lit (69.9% at the same level, pointing game 93.3% against 93.8%). A
// network without the head: the lesion class's logit.
models::ScoreFn lesion_evidence_score();

// Runs `reading` on `x` (N x C x size x size, rows preprocessed by datasets::Preprocess for a CT model);
// `placements` and `geometries` give each row's source grid. lesion_evidence_score() is explained on every
// slice, whatever its p(lesion); with reading.flip_test on the mirrored slices too.
std::vector<SliceFindings> find_on_slices(models::NetworkImpl& net, const torch::Tensor& x,
                                          const std::vector<vision::CtPlacement>& placements,
                                          const std::vector<vision::SliceGeometry>& geometries,
                                          const SaliencyReading& reading);

// A map at any resolution (a stage's grid) brought onto the size x size model grid, bilinear with pixel
// centres aligned (cv::resize's and PyTorch's align_corners=False convention).
cv::Mat map_on_model_grid(const cv::Mat& map, int size);

}  // namespace attnvision::pipelines
