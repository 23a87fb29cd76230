// Saliency measured against known lesions (CT phantoms' masks), per slice and summed over a set:
//   pointing game (TorchRay's convention): a hit when the map's maximum lies within `tolerance_px` of the
//     slice's lesion mask (the mask dilated by that many pixels), on lesion slices;
//   IoU and Dice of the thresholded map (the regions' pixels) with the mask, on lesion slices;
//   lesion-level sensitivity and false regions per slice, over every slice, clean ones included: a region
//     points at a lesion when its centroid lies within `tolerance_px` of the lesion's mask (the FROC convention
//     of LUNA16, a candidate's location within the lesion, with the pointing game's tolerance); a lesion is
//     found when a region points at it, and a region pointing at none is a false one. Overlap alone would not
//     do: a region around the whole body overlaps every lesion and locates none of them;
//   deletion and insertion AUC (RISE, Petsiuk et al. 2018): the model's score as the most salient pixels are
//     removed from (deletion: lower is better) or restored to (insertion: higher is better) the input;
//   and the slice-level AUROC of the model's score.
#pragma once

#include <opencv2/core/mat.hpp>
#include <torch/types.h>

#include <functional>
#include <vector>

namespace attnvision::pipelines {

// Whether `point` lies within `tolerance_px` (Euclidean, pixel centres) of a non-zero pixel of `mask`.
bool pointing_hit(const cv::Mat& mask, cv::Point point, double tolerance_px = 15.0);

struct Overlap {
  double iou = 0, dice = 0;  // 1 and 1 when both are empty
};
// `predicted`, `truth`: CV_8U masks of one size (non-zero = inside).
Overlap mask_overlap(const cv::Mat& predicted, const cv::Mat& truth);

// Regions against lesions on one slice: `regions` is a CV_32S label image (0 background, 1..n the regions, as
// cv::connectedComponents gives), `lesions` one CV_8U mask per lesion; a region points at a lesion when its
// centroid (rounded to the nearest pixel) is a pointing_hit of the lesion's mask.
struct RegionMatch {
  int lesions = 0, found = 0;  // lesions, and those some region points at
  int regions = 0, false_regions = 0;  // regions, and those pointing at no lesion
};
RegionMatch match_regions(const cv::Mat& regions, int region_count, const std::vector<cv::Mat>& lesions,
                          double tolerance_px = 15.0);

// Deletion and insertion curves for one input (C x H x W float) and its saliency (H x W, higher = more
// salient): `steps` + 1 points, after 0, 1/steps, ..., all of the pixels (most salient first) have been
// replaced by `removed` (deletion) or restored from it (insertion: the curve starts at `removed`). `score`
// maps a batch of inputs (N x C x H x W) to one score each. The AUCs are the curves' trapezoid means in [0, 1]
// units of score.
struct RiseCurves {
  std::vector<double> deletion, insertion;
  double deletion_auc = 0, insertion_auc = 0;
};
RiseCurves rise_curves(const torch::Tensor& input, const torch::Tensor& removed, const torch::Tensor& saliency,
                       int steps, const std::function<torch::Tensor(const torch::Tensor&)>& score);

// The deletion / insertion substrate for a batch (N x C x H x W float): each channel Gaussian-blurred with
// sigma 5 px (31 x 31 kernel, edges replicated): what a pixel becomes when it is "removed" (deletion) or not
// yet restored (insertion). RISE blurs with sigma 1 px for ImageNet photos; a CT lesion up to 20 px across
// survives that, so the blur is wider here. Blurring rather than blanking removes a lesion without drawing a
// new edge.
torch::Tensor rise_substrate(const torch::Tensor& x);

// The exact AUROC of `scores` for binary `labels` (1 positive): the probability a positive outscores a negative,
// ties counting half. 0 when one class is absent.
double exact_auroc(const std::vector<double>& scores, const std::vector<int>& labels);

}  // namespace attnvision::pipelines
