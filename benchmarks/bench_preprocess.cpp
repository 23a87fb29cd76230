// Times read_image + apply_eval_transform on one image and measures how far OpenCV's cv::resize lands
// from Pillow's filters (resize_like_pil is Pillow bit for bit, see tests/vision/test_transforms.cpp).
// Prints one JSON object. benchmarks/bench_preprocess.py runs it beside the Python peer.
//
//   bench_preprocess IMAGE [--iters N] [--threads T] [--size 224] [--crop-pct 0.875] [--interp bilinear]
//                          [--dump FILE]   (also write the CHW float32 result, for a parity check)
#include "vision/image_io.h"
#include "vision/transforms.h"

#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

namespace av = attnvision::vision;

namespace {

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

template <typename F>
double seconds(F&& f) {
  const auto t0 = std::chrono::steady_clock::now();
  f();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Max and mean absolute difference in 8-bit levels.
std::string diff_json(const cv::Mat& a, const cv::Mat& b) {
  cv::Mat d;
  cv::absdiff(a, b, d);
  double max = 0;
  cv::minMaxLoc(d.reshape(1), nullptr, &max);
  const cv::Scalar mean = cv::mean(d.reshape(1));
  const double share = cv::countNonZero(d.reshape(1)) / double(d.total() * d.channels());
  return "{\"max\": " + std::to_string(int(max)) + ", \"mean\": " + std::to_string(mean[0]) +
         ", \"share_differing\": " + std::to_string(share) + "}";
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr
        << "usage: bench_preprocess IMAGE [--iters N] [--threads T] [--size S] [--crop-pct P] [--interp I]\n";
    return 2;
  }
  const std::string path = argv[1];
  int iters = 50;
  int threads = -1;
  std::string dump;
  av::EvalTransform t;
  for (int i = 2; i + 1 < argc; i += 2) {
    const std::string key = argv[i];
    const std::string value = argv[i + 1];
    if (key == "--iters")
      iters = std::stoi(value);
    else if (key == "--threads")
      threads = std::stoi(value);
    else if (key == "--size")
      t.height = t.width = std::stoi(value);
    else if (key == "--crop-pct")
      t.crop_pct = std::stod(value);
    else if (key == "--interp")
      t.interpolation = value;
    else if (key == "--dump")
      dump = value;
    else {
      std::cerr << "unknown option " << key << "\n";
      return 2;
    }
  }
  if (threads > 0) cv::setNumThreads(threads);
  try {
    std::vector<float> out(static_cast<size_t>(3 * t.height * t.width));
    cv::Mat image;
    std::vector<double> decode, transform, total;
    for (int i = 0; i < iters + 2; ++i) {  // two warm-up rounds
      const double d = seconds([&] { image = av::read_image(path); });
      const double p = seconds([&] { av::apply_eval_transform(image, t, out.data()); });
      if (i < 2) continue;
      decode.push_back(d);
      transform.push_back(p);
      total.push_back(d + p);
    }
    if (!dump.empty()) {
      std::ofstream f(dump, std::ios::binary);
      f.write(reinterpret_cast<const char*>(out.data()),
              static_cast<std::streamsize>(out.size() * sizeof(float)));
    }
    // Resize of the whole image to the eval size, Pillow's filters vs OpenCV's.
    const cv::Size size = av::eval_resize_size(image.size(), t);
    cv::Mat rgb = image;
    if (image.channels() == 1) cv::cvtColor(image, rgb, cv::COLOR_GRAY2RGB);
    const cv::Mat pil_bilinear = av::resize_like_pil(rgb, size, "bilinear");
    const cv::Mat pil_bicubic = av::resize_like_pil(rgb, size, "bicubic");
    std::vector<double> pil_full;
    for (int i = 0; i < std::max(5, iters / 5); ++i) {
      pil_full.push_back(seconds([&] { av::resize_like_pil(rgb, size, t.interpolation); }));
    }
    cv::Mat linear, cubic, area;
    cv::resize(rgb, linear, size, 0, 0, cv::INTER_LINEAR);
    cv::resize(rgb, cubic, size, 0, 0, cv::INTER_CUBIC);
    cv::resize(rgb, area, size, 0, 0, cv::INTER_AREA);
    std::vector<double> cv_linear;
    for (int i = 0; i < std::max(5, iters / 5); ++i) {
      cv_linear.push_back(seconds([&] { cv::resize(rgb, linear, size, 0, 0, cv::INTER_LINEAR); }));
    }
    std::cout << "{\"image\": \"" << path << "\", \"width\": " << image.cols << ", \"height\": " << image.rows
              << ", \"resize_to\": [" << size.width << ", " << size.height << "], \"crop\": " << t.height
              << ", \"interp\": \"" << t.interpolation << "\", \"opencv_threads\": " << cv::getNumThreads()
              << ", \"iters\": " << iters << ",\n \"median_ms\": {\"read_image\": " << median(decode) * 1e3
              << ", \"apply_eval_transform\": " << median(transform) * 1e3
              << ", \"total\": " << median(total) * 1e3
              << ", \"resize_like_pil_full_image\": " << median(pil_full) * 1e3
              << ", \"cv_resize_linear_full_image\": " << median(cv_linear) * 1e3 << "},\n"
              << " \"opencv_vs_pil_8bit_levels\": {\"INTER_LINEAR_vs_BILINEAR\": "
              << diff_json(linear, pil_bilinear)
              << ",\n  \"INTER_AREA_vs_BILINEAR\": " << diff_json(area, pil_bilinear)
              << ",\n  \"INTER_CUBIC_vs_BICUBIC\": " << diff_json(cubic, pil_bicubic)
              << ",\n  \"INTER_AREA_vs_BICUBIC\": " << diff_json(area, pil_bicubic) << "}}\n";
  } catch (const std::exception& e) {
    std::cerr << e.what() << "\n";
    return 1;
  }
  return 0;
}
