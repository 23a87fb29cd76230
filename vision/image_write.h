// Writing images for people who want pixels or numbers (DICOM exports, saliency overlays and maps):
// 8-bit PNG and 32-bit float TIFF (a page per frame, colour as three samples per pixel). Both go to a
// temporary name first and are renamed into place, so a killed run leaves no half-written file.
#pragma once

#include <opencv2/core/mat.hpp>

#include <string>
#include <vector>

namespace attnvision::vision {

// `image`: CV_8UC1, or CV_8UC3 in RGB order. Throws std::runtime_error naming `path`.
void write_png(const std::string& path, const cv::Mat& image);

// `frames`: single-channel (any depth) or three-channel RGB frames of one size; written as IEEE float
// samples (SampleFormat 3), one page per frame. Throws std::runtime_error naming `path`.
void write_float_tiff(const std::string& path, const std::vector<cv::Mat>& frames);

}  // namespace attnvision::vision
