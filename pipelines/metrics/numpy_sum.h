// numpy's float64 summation, for the metrics that must agree with a Python reference (pycocotools,
// coco-caption) to the last bit rather than to a tolerance: np.sum / np.mean add pairwise, not left to right.
#pragma once

#include <cstddef>
#include <vector>

namespace attnvision::pipelines {

// np.sum(values) for a contiguous float64 array: pairwise summation, 8-way unrolled up to 128 elements,
// within blocks of 8192 (the ufunc buffer), the blocks then added in order.
double numpy_sum(const std::vector<double>& values);
// np.mean(values): numpy_sum / size (NaN for an empty array, as numpy gives with a warning).
double numpy_mean(const std::vector<double>& values);

}  // namespace attnvision::pipelines
