// The digest that tests/data/dicom/make_corpus_reference.py computes in numpy, for comparing our
// decode with pydicom's and DCMTK's without committing their pixel arrays.
#pragma once

#include <opencv2/core.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace attnvision::test {

struct IntDigest {
  std::vector<int64_t> shape;
  int64_t min = 0, max = 0, sum = 0;
  uint64_t hash = 0;
  double mean = 0;
  std::vector<int64_t> samples;  // 64 values at evenly spaced flat positions
};

// Values of all frames in C order (frame, row, column, channel); `frames` hold integral values in any
// depth (CV_64F for 32-bit data).
inline IntDigest int_digest(const std::vector<cv::Mat>& frames) {
  std::vector<int64_t> flat;
  for (const cv::Mat& f : frames) {
    cv::Mat d;
    f.reshape(1, 1).convertTo(d, CV_64F);
    for (size_t i = 0; i < d.total(); ++i) flat.push_back(int64_t(d.ptr<double>()[i]));
  }
  IntDigest g;
  const cv::Mat& f0 = frames.at(0);
  g.shape = {int64_t(frames.size()), f0.rows, f0.cols};
  if (f0.channels() > 1) g.shape.push_back(f0.channels());
  constexpr uint64_t kGolden = 0x9E3779B97F4A7C15ull;
  g.min = g.max = flat.at(0);
  for (size_t i = 0; i < flat.size(); ++i) {
    g.min = std::min(g.min, flat[i]);
    g.max = std::max(g.max, flat[i]);
    g.sum += flat[i];
    g.hash += uint64_t(flat[i]) * ((2 * uint64_t(i) + 1) * kGolden);
  }
  g.mean = double(g.sum) / double(flat.size());
  for (size_t k = 0; k < 64; ++k) g.samples.push_back(flat[(k * (flat.size() - 1)) / 63]);
  return g;
}

struct FloatDigest {
  double min = 0, max = 0, mean = 0;
  std::vector<double> samples;
};

inline FloatDigest float_digest(const std::vector<cv::Mat>& frames) {
  std::vector<double> flat;
  for (const cv::Mat& f : frames) {
    cv::Mat d;
    f.reshape(1, 1).convertTo(d, CV_64F);
    flat.insert(flat.end(), d.ptr<double>(), d.ptr<double>() + d.total());
  }
  FloatDigest g;
  g.min = g.max = flat.at(0);
  double sum = 0;
  for (double v : flat) {
    g.min = std::min(g.min, v);
    g.max = std::max(g.max, v);
    sum += v;
  }
  g.mean = sum / double(flat.size());
  for (size_t k = 0; k < 64; ++k) g.samples.push_back(flat[(k * (flat.size() - 1)) / 63]);
  return g;
}

}  // namespace attnvision::test
