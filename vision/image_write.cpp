#include "vision/image_write.h"

#include "vision/files/atomic_write.h"

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <cstdio>
#include <filesystem>
#include <stdexcept>

namespace attnvision::vision {
namespace {

[[noreturn]] void fail(const std::string& path, const std::string& problem) {
  throw std::runtime_error(path + ": " + problem);
}

// OpenCV's encoders take BGR; our frames are RGB.
cv::Mat to_bgr(const cv::Mat& rgb) {
  if (rgb.channels() != 3) return rgb;
  cv::Mat bgr;
  cv::cvtColor(rgb, bgr, cv::COLOR_RGB2BGR);
  return bgr;
}

// OpenCV's encoders report failure as false or as a cv::Exception; both become one line naming `path`.
template <typename Write>
void write_atomically(const std::string& path, Write&& write) {
  write_file_atomically(path, [&](const std::string& tmp) {
    bool ok = false;
    try {
      ok = write(tmp);
    } catch (const cv::Exception& e) {
      fail(path, std::string("cannot encode: ") + e.err);
    }
    if (!ok) fail(path, "cannot write");
  });
}

}  // namespace

void write_png(const std::string& path, const cv::Mat& image) {
  if (image.depth() != CV_8U || (image.channels() != 1 && image.channels() != 3))
    fail(path, "PNG output needs an 8-bit grey or RGB image");
  const cv::Mat bgr = to_bgr(image);
  write_atomically(path, [&](const std::string& tmp) { return cv::imwrite(tmp, bgr); });
}

void write_float_tiff(const std::string& path, const std::vector<cv::Mat>& frames) {
  if (frames.empty()) fail(path, "no frames to write");
  std::vector<cv::Mat> pages;
  for (const cv::Mat& frame : frames) {
    if (frame.size() != frames.front().size() || frame.channels() != frames.front().channels() ||
        (frame.channels() != 1 && frame.channels() != 3))
      fail(path, "frames must share one size and have 1 or 3 channels");
    cv::Mat f;
    frame.convertTo(f, CV_MAKETYPE(CV_32F, frame.channels()));
    pages.push_back(to_bgr(f));
  }
  // An explicit compression keeps OpenCV from storing 3-channel float as lossy SGILOG (LogLuv).
  const std::vector<int> uncompressed = {cv::IMWRITE_TIFF_COMPRESSION, 1};
  write_atomically(path, [&](const std::string& tmp) { return cv::imwritemulti(tmp, pages, uncompressed); });
}

}  // namespace attnvision::vision
