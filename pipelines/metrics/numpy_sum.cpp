#include "pipelines/metrics/numpy_sum.h"

#include <algorithm>
#include <limits>

namespace attnvision::pipelines {
namespace {

// numpy's pairwise_sum (numpy/core/src/umath/loops_utils.h.src) for one buffer of n doubles.
double pairwise_sum(const double* a, size_t n) {
  if (n < 8) {
    double s = -0.0;
    for (size_t i = 0; i < n; ++i) s += a[i];
    return s;
  }
  if (n <= 128) {
    double r[8];
    std::copy(a, a + 8, r);
    size_t i = 8;
    for (; i < n - n % 8; i += 8)
      for (size_t j = 0; j < 8; ++j) r[j] += a[i + j];
    double s = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
    for (; i < n; ++i) s += a[i];
    return s;
  }
  const size_t half = n / 2 - (n / 2) % 8;
  return pairwise_sum(a, half) + pairwise_sum(a + half, n - half);
}

}  // namespace

double numpy_sum(const std::vector<double>& values) {
  constexpr size_t kBlock = 8192;
  double sum = 0;
  for (size_t i = 0; i < values.size(); i += kBlock)
    sum += pairwise_sum(values.data() + i, std::min(kBlock, values.size() - i));
  return sum;
}

double numpy_mean(const std::vector<double>& values) {
  if (values.empty()) return std::numeric_limits<double>::quiet_NaN();
  return numpy_sum(values) / static_cast<double>(values.size());
}

}  // namespace attnvision::pipelines
