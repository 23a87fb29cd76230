// Helpers shared by the vision tests: paths into tests/data/vision, raw reference files, and the
// synthetic pattern that tests/data/vision/make_refs.py also computes (so inputs need not be committed).
#pragma once

#include <opencv2/core.hpp>

#include <cstdint>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <vector>

namespace attnvision::vision::testing_data {

inline std::string data_path(const std::string& name) {
  return std::string(ATTNVISION_TEST_DATA_DIR) + "/vision/" + name;
}

inline std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("cannot open test data " + path);
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

inline void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  if (!f) throw std::runtime_error("cannot write " + path);
}

// A raw row-major array file (HWC; 16-bit values little endian) as a Mat of the given type.
inline cv::Mat read_raw(const std::string& name, int rows, int cols, int type) {
  const std::vector<uint8_t> bytes = read_bytes(data_path(name));
  cv::Mat m(rows, cols, type);
  if (bytes.size() != m.total() * m.elemSize()) throw std::runtime_error("unexpected size of " + name);
  std::copy(bytes.begin(), bytes.end(), m.data);  // x86 / arm64 are little endian like the files
  return m;
}

// make_refs.py pattern(): a 32-bit integer hash of the byte index ("noise"), or a wrapped gradient plus
// three bits of that hash ("smooth"). Rows x cols x channels, 8-bit.
inline cv::Mat pattern(int w, int h, int c, const std::string& kind) {
  cv::Mat m(h, w, CV_MAKETYPE(CV_8U, c));
  uint8_t* p = m.data;
  const uint32_t n = static_cast<uint32_t>(w) * h * c;
  for (uint32_t i = 0; i < n; ++i) {
    uint32_t x = i * 0x9E3779B1u;
    x ^= x >> 15;
    x *= 0x85EBCA77u;
    x ^= x >> 13;
    if (kind == "noise") {
      p[i] = static_cast<uint8_t>(x >> 24);
    } else {
      const uint32_t ch = i % c;
      const uint32_t px = (i / c) % w;
      const uint32_t py = i / (static_cast<uint32_t>(w) * c);
      p[i] = static_cast<uint8_t>((px * 9 + py * 5 + ch * 70 + (x >> 29)) % 256);
    }
  }
  return m;
}

// Number of differing bytes between two images of the same type and size (-1 when they do not match).
inline int64_t differing_bytes(const cv::Mat& a, const cv::Mat& b) {
  if (a.size() != b.size() || a.type() != b.type()) return -1;
  cv::Mat ac = a.isContinuous() ? a : a.clone();
  cv::Mat bc = b.isContinuous() ? b : b.clone();
  const size_t n = ac.total() * ac.elemSize();
  int64_t diff = 0;
  for (size_t i = 0; i < n; ++i) diff += ac.data[i] != bc.data[i];
  return diff;
}

}  // namespace attnvision::vision::testing_data
