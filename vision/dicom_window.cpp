// VOI windowing: the DICOM VOI LUT functions (PS3.3 C.11.2.1.2), VOI LUT tables, CT presets and
// windows computed from the data.
#include "vision/dicom.h"

#include <opencv2/core.hpp>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <stdexcept>

namespace attnvision::vision {
namespace {

struct Preset {
  const char* name;
  double center, width;
};

// Common CT display settings in Hounsfield units (as radiology references tabulate them).
constexpr Preset kPresets[] = {
    {"lung", -600, 1500}, {"mediastinum", 50, 350}, {"bone", 400, 1800},
    {"brain", 40, 80},    {"abdomen", 50, 400},
};

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  return s;
}

bool parse_number(const std::string& s, double& out) {
  if (s.empty()) return false;
  char* end = nullptr;
  out = std::strtod(s.c_str(), &end);
  return end == s.c_str() + s.size() && std::isfinite(out);
}

bool parse_pair(const std::string& s, double& a, double& b) {
  const size_t comma = s.find(',');
  return comma != std::string::npos && parse_number(s.substr(0, comma), a) &&
         parse_number(s.substr(comma + 1), b);
}

int parse_index(const std::string& spec, const std::string& prefix) {
  if (spec == prefix) return 1;
  double n = 0;
  if (spec.size() <= prefix.size() + 1 || spec[prefix.size()] != ':' ||
      !parse_number(spec.substr(prefix.size() + 1), n) || n < 1 || n != std::floor(n))
    throw std::invalid_argument("window '" + spec + "': expected " + prefix + " or " + prefix +
                                ":N with N >= 1");
  return int(n);
}

// Maps one value to the 8-bit output through `w`, with the arithmetic of DCMTK's dcmimgle (linear:
// offset + x * gradient; MONOCHROME1 by swapping the output ends; results truncated), so that our
// display values equal dcm2pnm's. VOI LUT entries keep their top 8 bits, as DCMTK scales them.
struct Mapper {
  Mapper(const Window& w, bool invert) : window(w), low(invert ? 255.0 : 0.0), high(invert ? 0.0 : 255.0) {
    outrange = high - low;
    if (w.lut) {
      lut_last = int64_t(w.lut->data.size()) - 1;
      lut_gradient = 256.0 / std::ldexp(1.0, w.lut->bits);
      return;
    }
    width_1 = std::max(w.width, 1.0) - 1.0;  // LINEAR needs width >= 1
    left = w.center - 0.5 - width_1 / 2;
    right = w.center - 0.5 + width_1 / 2;
    offset = width_1 == 0 ? 0 : high - ((w.center - 0.5) / width_1 + 0.5) * outrange;
    gradient = width_1 == 0 ? 0 : outrange / width_1;
  }
  double operator()(double x) const {
    const Window& w = window;
    if (w.lut) {
      const double k = std::floor(x) - double(w.lut->first_mapped);
      const int64_t index = k <= 0 ? 0 : k >= double(lut_last) ? lut_last : int64_t(k);
      const double y = w.lut->data[size_t(index)] * lut_gradient;
      return low == 0.0 ? y : 255.0 - std::floor(y);
    }
    switch (w.function) {
      case Window::Function::linear_exact:
        if (x <= w.center - w.width / 2) return low;
        if (x > w.center + w.width / 2) return high;
        return ((x - w.center) / w.width + 0.5) * outrange + low;
      case Window::Function::sigmoid:
        return outrange / (1.0 + std::exp(-4.0 * (x - w.center) / w.width)) + low;
      case Window::Function::linear:
      default:
        if (x <= left) return low;
        if (x > right) return high;
        return offset + x * gradient;
    }
  }
  const Window& window;
  double low, high, outrange;
  double width_1 = 0, left = 0, right = 0, offset = 0, gradient = 0;
  double lut_gradient = 1.0;
  int64_t lut_last = 0;
};

template <typename T>
void map_frame(const cv::Mat& frame, cv::Mat& out, const Mapper& map) {
  for (int r = 0; r < frame.rows; ++r) {
    const T* src = frame.ptr<T>(r);
    uint8_t* dst = out.ptr<uint8_t>(r);
    for (int c = 0; c < frame.cols; ++c)
      dst[c] = uint8_t(std::clamp(std::floor(map(double(src[c]))), 0.0, 255.0));
  }
}

// Values of all frames, for order statistics (a strided sample above 16M values keeps memory bounded).
std::vector<double> collect(const std::vector<cv::Mat>& frames) {
  size_t total = 0;
  for (const cv::Mat& f : frames) total += f.total() * size_t(f.channels());
  const size_t stride = std::max<size_t>(1, total / (size_t(1) << 24));
  std::vector<double> values;
  values.reserve(total / stride + 1);
  size_t k = 0;
  for (const cv::Mat& f : frames) {
    cv::Mat d;
    f.reshape(1, 1).convertTo(d, CV_64F);
    const double* p = d.ptr<double>();
    for (size_t i = 0; i < d.total(); ++i, ++k)
      if (k % stride == 0 && std::isfinite(p[i])) values.push_back(p[i]);
  }
  if (values.empty()) throw std::invalid_argument("no finite pixel values to compute a window from");
  return values;
}

// numpy.percentile's default ("linear"): the value at rank p/100 * (n-1), interpolated.
double percentile(std::vector<double>& v, double p) {
  const double rank = p / 100.0 * double(v.size() - 1);
  const size_t lo = size_t(std::floor(rank)), hi = std::min(lo + 1, v.size() - 1);
  std::nth_element(v.begin(), v.begin() + long(lo), v.end());
  const double a = v[lo];
  const double b = hi == lo ? a : *std::min_element(v.begin() + long(lo) + 1, v.end());
  return a + (b - a) * (rank - double(lo));
}

}  // namespace

const std::vector<std::string>& window_preset_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> n;
    for (const Preset& p : kPresets) n.push_back(p.name);
    return n;
  }();
  return names;
}

Window window_preset(const std::string& name) {
  const std::string key = lower(name);
  for (const Preset& p : kPresets) {
    if (key == p.name) {
      Window w;
      w.center = p.center;
      w.width = p.width;
      w.name = p.name;
      return w;
    }
  }
  std::string choices;
  for (const Preset& p : kPresets) choices += std::string(choices.empty() ? "" : ", ") + p.name;
  throw std::invalid_argument("unknown window preset '" + name + "' (presets: " + choices + ")");
}

Window minmax_window(const std::vector<cv::Mat>& frames) {
  double lo = INFINITY, hi = -INFINITY;
  for (const cv::Mat& f : frames) {
    double a = 0, b = 0;
    cv::minMaxLoc(f.reshape(1), &a, &b);
    lo = std::min(lo, a);
    hi = std::max(hi, b);
  }
  if (!std::isfinite(lo) || !std::isfinite(hi))
    throw std::invalid_argument("no pixel values to compute a window from");
  // As DCMTK's min-max window: the LINEAR function spanning [min, max] takes width max - min + 1.
  Window w;
  w.center = (lo + hi + 1) / 2;
  w.width = hi - lo + 1;
  w.name = "minmax";
  return w;
}

Window percentile_window(const std::vector<cv::Mat>& frames, double low, double high) {
  if (!(low >= 0 && high <= 100 && low < high))
    throw std::invalid_argument("percentiles must satisfy 0 <= low < high <= 100");
  std::vector<double> values = collect(frames);
  const double a = percentile(values, low), b = percentile(values, high);
  Window w;
  w.function = Window::Function::linear_exact;  // maps [a, b] exactly onto [0, 255]
  w.center = (a + b) / 2;
  w.width = std::max(b - a, 1e-6);
  w.name = "percentile " + std::to_string(low).substr(0, 4) + "-" + std::to_string(high).substr(0, 5);
  return w;
}

Window resolve_window(const std::string& spec_in, const DicomFrames& image) {
  const std::string spec = lower(spec_in);
  const DicomInfo& info = image.info;
  if (spec == "auto" || spec.empty()) {
    if (!info.windows.empty()) return info.windows.front();
    if (!info.voi_luts.empty()) return resolve_window("voi-lut", image);
    return minmax_window(image.frames);
  }
  if (spec == "minmax") return minmax_window(image.frames);
  if (spec.rfind("percentile", 0) == 0) {
    double lo = 1, hi = 99;
    if (spec != "percentile" && !(spec.size() > 11 && spec[10] == ':' && parse_pair(spec.substr(11), lo, hi)))
      throw std::invalid_argument("window '" + spec_in + "': expected percentile or percentile:LO,HI");
    return percentile_window(image.frames, lo, hi);
  }
  if (spec.rfind("file", 0) == 0) {
    const int n = parse_index(spec, "file");
    if (size_t(n) > info.windows.size())
      throw std::invalid_argument("window '" + spec_in + "': the file has " +
                                  std::to_string(info.windows.size()) + " window(s)");
    return info.windows[size_t(n - 1)];
  }
  if (spec.rfind("voi-lut", 0) == 0) {
    const int n = parse_index(spec, "voi-lut");
    if (size_t(n) > info.voi_luts.size())
      throw std::invalid_argument("window '" + spec_in + "': the file has " +
                                  std::to_string(info.voi_luts.size()) + " VOI LUT(s)");
    Window w;
    w.lut = info.voi_luts[size_t(n - 1)];
    w.name = w.lut->explanation.empty() ? "VOI LUT " + std::to_string(n) : w.lut->explanation;
    return w;
  }
  double c = 0, w = 0;
  if (parse_pair(spec, c, w)) {
    if (!(w > 0)) throw std::invalid_argument("window '" + spec_in + "': width must be positive");
    Window window;
    window.center = c;
    window.width = w;
    window.name = spec;
    return window;
  }
  return window_preset(spec);
}

cv::Mat window_to_8bit(const cv::Mat& frame, const Window& window, bool invert) {
  if (frame.channels() != 1) throw std::invalid_argument("window_to_8bit: monochrome frame expected");
  cv::Mat out(frame.size(), CV_8UC1);
  const Mapper map(window, invert);
  switch (frame.depth()) {
    case CV_8U:
      map_frame<uint8_t>(frame, out, map);
      break;
    case CV_16U:
      map_frame<uint16_t>(frame, out, map);
      break;
    case CV_16S:
      map_frame<int16_t>(frame, out, map);
      break;
    case CV_32S:
      map_frame<int32_t>(frame, out, map);
      break;
    case CV_32F:
      map_frame<float>(frame, out, map);
      break;
    case CV_64F:
      map_frame<double>(frame, out, map);
      break;
    default:
      throw std::invalid_argument("window_to_8bit: unsupported depth");
  }
  return out;
}

std::vector<cv::Mat> window_to_8bit(const DicomFrames& image, const Window& window) {
  std::vector<cv::Mat> out;
  out.reserve(image.frames.size());
  const DicomInfo& info = image.info;
  for (const cv::Mat& frame : image.frames) {
    if (frame.channels() == 1) {
      out.push_back(window_to_8bit(frame, window, info.monochrome1()));
    } else if (frame.depth() == CV_8U) {
      out.push_back(frame.clone());
    } else {
      // Colour beyond 8 bits: scale the stored range (palette entries: 16 bits) onto 0..255.
      const int bits = frame.depth() == CV_16U && info.photometric == "PALETTE COLOR" ? 16 : info.bits_stored;
      cv::Mat scaled;
      frame.convertTo(scaled, CV_8U, 255.0 / (std::ldexp(1.0, bits) - 1.0));
      out.push_back(scaled);
    }
  }
  return out;
}

}  // namespace attnvision::vision
