#include "vision/transforms.h"

#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace attnvision::vision {

namespace {

// ---------------------------------------------------------------------------------------------------
// Pillow's resampling (Resample.c). The filters are functions of the distance in input pixels (scaled
// by the shrink factor); each returns the unnormalised weight.

double box_filter(double x) { return x > -0.5 && x <= 0.5 ? 1.0 : 0.0; }

double bilinear_filter(double x) {
  x = std::fabs(x);
  return x < 1.0 ? 1.0 - x : 0.0;
}

double hamming_filter(double x) {
  x = std::fabs(x);
  if (x == 0.0) return 1.0;
  if (x >= 1.0) return 0.0;
  x *= M_PI;
  return std::sin(x) / x * (0.54 + 0.46 * std::cos(x));
}

// Keys' cubic convolution with a = -0.5 (Pillow's BICUBIC).
double bicubic_filter(double x) {
  constexpr double a = -0.5;
  x = std::fabs(x);
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
  return 0.0;
}

double sinc(double x) {
  if (x == 0.0) return 1.0;
  x *= M_PI;
  return std::sin(x) / x;
}

double lanczos_filter(double x) { return -3.0 <= x && x < 3.0 ? sinc(x) * sinc(x / 3) : 0.0; }

struct Filter {
  double (*weight)(double);  // nullptr: nearest neighbour
  double support;
};

Filter parse_filter(const std::string& name) {
  if (name == "nearest") return {nullptr, 0.0};
  if (name == "bilinear") return {bilinear_filter, 1.0};
  if (name == "bicubic") return {bicubic_filter, 2.0};
  if (name == "box") return {box_filter, 0.5};
  if (name == "hamming") return {hamming_filter, 1.0};
  if (name == "lanczos") return {lanczos_filter, 3.0};
  throw std::invalid_argument("unknown interpolation '" + name +
                              "' (expected nearest, bilinear, bicubic, box, hamming or lanczos)");
}

// Pillow keeps weights in 32-bit fixed point with this many fraction bits: 8 bits of pixel value and
// 2 bits of headroom for negative lobes leave 22.
constexpr int kPrecisionBits = 32 - 8 - 2;
constexpr int32_t kHalf = int32_t{1} << (kPrecisionBits - 1);

inline uint8_t clip8(int32_t v) {
  v >>= kPrecisionBits;  // arithmetic shift: floor, as Pillow's lookup table index
  return static_cast<uint8_t>(v < 0 ? 0 : v > 255 ? 255 : v);
}

// For every output position: the first input pixel, the number of taps and their fixed-point weights.
struct Coefficients {
  int ksize = 0;
  std::vector<int> first;
  std::vector<int> taps;
  std::vector<int32_t> weights;  // out_size * ksize
};

// Pillow's precompute_coeffs + normalize_coeffs_8bpc for the box [0, in_size): the same expressions in the
// same order, so the doubles and hence the rounded integers come out identical.
Coefficients precompute(int in_size, int out_size, const Filter& f) {
  const double scale = static_cast<double>(static_cast<float>(in_size)) / out_size;
  const double filterscale = std::max(scale, 1.0);
  const double support = f.support * filterscale;
  Coefficients c;
  c.ksize = static_cast<int>(std::ceil(support)) * 2 + 1;
  c.first.resize(out_size);
  c.taps.resize(out_size);
  c.weights.assign(static_cast<size_t>(out_size) * c.ksize, 0);
  std::vector<double> k(c.ksize);
  const double ss = 1.0 / filterscale;
  for (int xx = 0; xx < out_size; ++xx) {
    const double center = (xx + 0.5) * scale;
    // Pillow rounds with (int)(v + 0.5), i.e. truncation toward zero.
    const int xmin = std::max(static_cast<int>(center - support + 0.5), 0);
    const int xmax = std::min(static_cast<int>(center + support + 0.5), in_size) - xmin;
    double ww = 0.0;
    for (int x = 0; x < xmax; ++x) {
      const double w = f.weight((x + xmin - center + 0.5) * ss);
      k[x] = w;
      ww += w;
    }
    int32_t* out = &c.weights[static_cast<size_t>(xx) * c.ksize];
    for (int x = 0; x < xmax; ++x) {
      const double v = ww != 0.0 ? k[x] / ww : k[x];
      out[x] =
          static_cast<int32_t>(v < 0 ? -0.5 + v * (1 << kPrecisionBits) : 0.5 + v * (1 << kPrecisionBits));
    }
    c.first[xx] = xmin;
    c.taps[xx] = std::max(xmax, 0);
  }
  return c;
}

// Runs body(range) over [0, n) on OpenCV's thread pool when the work is worth it.
template <typename Body>
void for_rows(int n, double work_per_row, const Body& body) {
  if (n <= 1 || work_per_row * n < 1.5e5) {
    body(cv::Range(0, n));
  } else {
    cv::parallel_for_(cv::Range(0, n), body, std::min(n, 32));
  }
}

// The row kernels are compiled twice on x86-64, for AVX2 and for the baseline, and the loader picks one at
// run time: their 32-bit integer multiply-adds vectorise well only with AVX2 (vpmulld), and the build must
// not assume it.
#if defined(__x86_64__) && defined(__GNUC__)
#define ATTNVISION_SIMD_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define ATTNVISION_SIMD_CLONES
#endif
#define ATTNVISION_INLINE inline __attribute__((always_inline))

// The horizontal pass works on blocks of kBlockRows rows: their needed columns are first interleaved
// (for each column, the block's pixels one after another), so that a tap is one multiply-add over
// kBlockRows * C contiguous bytes, which vectorises, instead of a C-wide one. Integer sums do not depend
// on the order, so the result equals Pillow's per-pixel loop.
constexpr int kBlockRows = 8;

struct HorizontalBlock {
  const uint8_t* rows[kBlockRows];  // source rows (a partial block repeats its last row; results dropped)
  uint8_t* out[kBlockRows];         // destination rows, `count` of them
  int count;
  int x0, x1;  // output columns
  int xa, xb;  // source columns they read
};

template <int C>
ATTNVISION_INLINE void horizontal_block_body(const HorizontalBlock& b, const Coefficients& c,
                                             uint8_t* lanes) {
  constexpr int L = kBlockRows * C;
  const int width = b.xb - b.xa;
  for (int r = 0; r < kBlockRows; ++r) {
    const uint8_t* s = b.rows[r] + b.xa * C;
    uint8_t* d = lanes + r * C;
    for (int x = 0; x < width; ++x) {
      for (int ch = 0; ch < C; ++ch) d[x * L + ch] = s[x * C + ch];
    }
  }
  for (int xx = b.x0; xx < b.x1; ++xx) {
    int32_t acc[L];
    for (int l = 0; l < L; ++l) acc[l] = kHalf;
    const uint8_t* p = lanes + static_cast<ptrdiff_t>(c.first[xx] - b.xa) * L;
    const int32_t* k = &c.weights[static_cast<size_t>(xx) * c.ksize];
    for (int i = 0, n = c.taps[xx]; i < n; ++i, p += L) {
      const int32_t w = k[i];
      for (int l = 0; l < L; ++l) acc[l] += p[l] * w;
    }
    for (int r = 0; r < b.count; ++r) {
      for (int ch = 0; ch < C; ++ch) b.out[r][(xx - b.x0) * C + ch] = clip8(acc[r * C + ch]);
    }
  }
}

ATTNVISION_SIMD_CLONES void horizontal_block_1(const HorizontalBlock& b, const Coefficients& c,
                                               uint8_t* lanes) {
  horizontal_block_body<1>(b, c, lanes);
}
ATTNVISION_SIMD_CLONES void horizontal_block_2(const HorizontalBlock& b, const Coefficients& c,
                                               uint8_t* lanes) {
  horizontal_block_body<2>(b, c, lanes);
}
ATTNVISION_SIMD_CLONES void horizontal_block_3(const HorizontalBlock& b, const Coefficients& c,
                                               uint8_t* lanes) {
  horizontal_block_body<3>(b, c, lanes);
}
ATTNVISION_SIMD_CLONES void horizontal_block_4(const HorizontalBlock& b, const Coefficients& c,
                                               uint8_t* lanes) {
  horizontal_block_body<4>(b, c, lanes);
}

// Output columns [x0, x0 + dst.cols) for source rows [row0, row0 + dst.rows).
void horizontal_pass(const cv::Mat& src, int row0, const Coefficients& c, int x0, cv::Mat& dst) {
  const int C = src.channels();
  const int x1 = x0 + dst.cols;
  int xa = c.first[x0];
  int xb = xa;
  for (int x = x0; x < x1; ++x) {
    xa = std::min(xa, c.first[x]);
    xb = std::max(xb, c.first[x] + c.taps[x]);
  }
  const int blocks = (dst.rows + kBlockRows - 1) / kBlockRows;
  for_rows(blocks, double(kBlockRows) * dst.cols * C * c.ksize, [&](const cv::Range& r) {
    std::vector<uint8_t> lanes(static_cast<size_t>(xb - xa) * kBlockRows * C);
    for (int blk = r.start; blk < r.end; ++blk) {
      HorizontalBlock b{};
      b.count = std::min(kBlockRows, dst.rows - blk * kBlockRows);
      for (int i = 0; i < kBlockRows; ++i) {
        const int y = blk * kBlockRows + std::min(i, b.count - 1);
        b.rows[i] = src.ptr<uint8_t>(row0 + y);
        b.out[i] = dst.ptr<uint8_t>(y);
      }
      b.x0 = x0;
      b.x1 = x1;
      b.xa = xa;
      b.xb = xb;
      switch (C) {
        case 1:
          horizontal_block_1(b, c, lanes.data());
          break;
        case 2:
          horizontal_block_2(b, c, lanes.data());
          break;
        case 3:
          horizontal_block_3(b, c, lanes.data());
          break;
        default:
          horizontal_block_4(b, c, lanes.data());
          break;
      }
    }
  });
}

// One output row of the vertical pass: every tap adds one whole source row to an integer accumulator, a
// loop the compiler vectorises. Integer sums do not depend on the order, so this equals Pillow's
// per-pixel loop.
ATTNVISION_SIMD_CLONES
void vertical_row(const cv::Mat& src, int first_row, const int32_t* k, int taps, int n, int32_t* acc,
                  uint8_t* dst) {
  for (int j = 0; j < n; ++j) acc[j] = kHalf;
  for (int i = 0; i < taps; ++i) {
    const uint8_t* s = src.ptr<uint8_t>(first_row + i);
    const int32_t w = k[i];
    for (int j = 0; j < n; ++j) acc[j] += s[j] * w;
  }
  for (int j = 0; j < n; ++j) dst[j] = clip8(acc[j]);
}

// `src` holds source rows from row0 on.
void vertical_pass(const cv::Mat& src, int row0, const Coefficients& c, int y0, cv::Mat& dst) {
  const int n = dst.cols * dst.channels();
  for_rows(dst.rows, double(n) * c.ksize, [&](const cv::Range& r) {
    std::vector<int32_t> acc(n);
    for (int y = r.start; y < r.end; ++y) {
      const int yy = y0 + y;
      vertical_row(src, c.first[yy] - row0, &c.weights[static_cast<size_t>(yy) * c.ksize], c.taps[yy], n,
                   acc.data(), dst.ptr<uint8_t>(y));
    }
  });
}

// Pillow's NEAREST resize goes through its affine transform (ImagingScaleAffine): the source coordinate
// starts at half a step and is advanced by repeated addition, then truncated. The same double
// accumulation reproduces its choices exactly, rounding drift included.
std::vector<int> nearest_table(int in_size, int out_size) {
  const double step = static_cast<double>(static_cast<float>(in_size)) / out_size;
  std::vector<int> table(out_size);
  double pos = step * 0.5;
  for (int i = 0; i < out_size; ++i, pos += step) {
    const int v = pos < 0.0 ? -1 : static_cast<int>(pos);
    table[i] = v < in_size ? v : -1;  // -1: Pillow leaves the pixel at its fill value 0
  }
  return table;
}

cv::Mat nearest_window(const cv::Mat& src, cv::Size size, const cv::Rect& win) {
  const std::vector<int> xs = nearest_table(src.cols, size.width);
  const std::vector<int> ys = nearest_table(src.rows, size.height);
  const size_t px = src.elemSize();
  cv::Mat out = cv::Mat::zeros(win.size(), src.type());
  for (int y = 0; y < win.height; ++y) {
    if (ys[win.y + y] < 0) continue;
    const uint8_t* s = src.ptr<uint8_t>(ys[win.y + y]);
    uint8_t* d = out.ptr<uint8_t>(y);
    for (int x = 0; x < win.width; ++x) {
      if (xs[win.x + x] >= 0) std::copy_n(s + xs[win.x + x] * px, px, d + x * px);
    }
  }
  return out;
}

// Resizes `src` (8-bit, any channel count up to 4) to `size` as Pillow's ImagingResample does and returns
// the window `win` of the result: only those pixels are computed, with the coefficients of the full
// resize, so they equal the corresponding pixels of the full result. Where `win` leaves the resized
// image the pixels are 0.
cv::Mat resample_window(const cv::Mat& src, cv::Size size, const Filter& f, const cv::Rect& win) {
  const cv::Rect valid = win & cv::Rect(0, 0, size.width, size.height);
  cv::Mat inside;
  if (valid.empty()) {
    inside = cv::Mat();
  } else if (!f.weight) {
    inside = nearest_window(src, size, valid);
  } else {
    // Pillow does each pass only when that axis changes size: horizontal first, then vertical.
    const bool need_h = size.width != src.cols;
    const bool need_v = size.height != src.rows;
    Coefficients vert;
    int row0 = valid.y;
    int row1 = valid.y + valid.height;
    if (need_v) {
      vert = precompute(src.rows, size.height, f);
      row0 = vert.first[valid.y];
      row1 = row0;
      for (int y = valid.y; y < valid.y + valid.height; ++y) {
        row0 = std::min(row0, vert.first[y]);
        row1 = std::max(row1, vert.first[y] + vert.taps[y]);
      }
    }
    cv::Mat rows;  // input rows [row0, row1), columns of the window
    if (need_h) {
      // A model-input-sized intermediate lives in a per-thread buffer reused across calls: fresh pages
      // for it cost about as much as the horizontal pass itself. Larger ones are allocated per call.
      constexpr size_t kKeep = size_t{16} << 20;
      thread_local std::vector<uint8_t> scratch;
      const size_t bytes = size_t(row1 - row0) * valid.width * src.elemSize();
      if (bytes <= kKeep) {
        if (scratch.size() < bytes) scratch.resize(bytes);
        rows = cv::Mat(row1 - row0, valid.width, src.type(), scratch.data());
      } else {
        rows.create(row1 - row0, valid.width, src.type());
      }
      horizontal_pass(src, row0, precompute(src.cols, size.width, f), valid.x, rows);
    } else {
      rows = src(cv::Rect(valid.x, row0, valid.width, row1 - row0));
    }
    if (need_v) {
      inside.create(valid.size(), src.type());
      vertical_pass(rows, row0, vert, valid.y, inside);
    } else {
      inside = rows.clone();
    }
  }
  if (valid == win) return inside;
  cv::Mat out = cv::Mat::zeros(win.size(), src.type());
  if (!valid.empty())
    inside.copyTo(out(cv::Rect(valid.x - win.x, valid.y - win.y, valid.width, valid.height)));
  return out;
}

// PIL's RGBA -> RGBa and back (Convert.c), which Image.resize wraps around a non-nearest RGBA resize.
void premultiply(cv::Mat& m) {
  for (int y = 0; y < m.rows; ++y) {
    uint8_t* p = m.ptr<uint8_t>(y);
    for (int x = 0; x < m.cols; ++x, p += 4) {
      for (int k = 0; k < 3; ++k) {
        const unsigned t = unsigned{p[k]} * p[3] + 128;
        p[k] = static_cast<uint8_t>(((t >> 8) + t) >> 8);
      }
    }
  }
}

void unpremultiply(cv::Mat& m) {
  for (int y = 0; y < m.rows; ++y) {
    uint8_t* p = m.ptr<uint8_t>(y);
    for (int x = 0; x < m.cols; ++x, p += 4) {
      const unsigned a = p[3];
      if (a == 0 || a == 255) continue;
      for (int k = 0; k < 3; ++k) p[k] = static_cast<uint8_t>(std::min(255u, 255u * p[k] / a));
    }
  }
}

void check_resizable(const cv::Mat& image, cv::Size size) {
  if (image.empty() || image.depth() != CV_8U || image.channels() < 1 || image.channels() > 4 ||
      image.channels() == 2) {
    throw std::invalid_argument("resize_like_pil: expected a non-empty 8-bit image with 1, 3 or 4 channels");
  }
  if (size.width <= 0 || size.height <= 0)
    throw std::invalid_argument("resize_like_pil: the size must be positive");
}

// ---------------------------------------------------------------------------------------------------
// Eval transform

// Python's round(d / 2) for an integer d >= 0: half-way values go to the even neighbour.
int half_round_even(int d) {
  const int m = d / 2;
  return d % 2 == 0 || m % 2 == 0 ? m : m + 1;
}

// torchvision CenterCrop's offset along one axis (negative: the image is padded on that side).
int crop_offset(int size, int crop) {
  return crop > size ? -((crop - size) / 2) : half_round_even(size - crop);
}

void check_transform(const EvalTransform& t) {
  if (t.channels != 1 && t.channels != 3)
    throw std::invalid_argument("eval transform: channels must be 1 or 3");
  if (t.height <= 0 || t.width <= 0 || t.height > 16384 || t.width > 16384) {
    throw std::invalid_argument("eval transform: height and width must be in 1..16384");
  }
  if (!(t.crop_pct > 0.0) || !std::isfinite(t.crop_pct)) {
    throw std::invalid_argument("eval transform: crop_pct must be a positive number");
  }
  if (t.mean.size() != static_cast<size_t>(t.channels) || t.std.size() != static_cast<size_t>(t.channels)) {
    throw std::invalid_argument("eval transform: mean and std need one value per channel");
  }
  for (double s : t.std) {
    if (s == 0.0 || !std::isfinite(s))
      throw std::invalid_argument("eval transform: std must be finite and non-zero");
  }
}

// The 8-bit pixels in the mode PIL's convert() would give, except that a gray source stays one channel
// when RGB is wanted (R = G = B resample identically, so it is replicated at the end for a third of the
// work).
cv::Mat to_mode(const cv::Mat& img8, int64_t channels) {
  const int n = img8.channels();
  if (n == 1) return img8;
  if (n == 2) {
    cv::Mat gray;
    cv::extractChannel(img8, gray, 0);
    return gray;
  }
  if (channels == 3) {
    if (n == 3) return img8;
    cv::Mat rgb;
    cv::cvtColor(img8, rgb, cv::COLOR_RGBA2RGB);
    return rgb;
  }
  // PIL's rgb2l: ITU-R 601-2 luma in 16-bit fixed point, rounded.
  cv::Mat gray(img8.size(), CV_8UC1);
  for (int y = 0; y < img8.rows; ++y) {
    const uint8_t* s = img8.ptr<uint8_t>(y);
    uint8_t* d = gray.ptr<uint8_t>(y);
    for (int x = 0; x < img8.cols; ++x, s += n) {
      d[x] = static_cast<uint8_t>((s[0] * 19595 + s[1] * 38470 + s[2] * 7471 + 0x8000) >> 16);
    }
  }
  return gray;
}

}  // namespace

cv::Mat convert_to_8bit(const cv::Mat& image) {
  if (image.depth() == CV_8U) return image;
  if (image.depth() != CV_16U) throw std::invalid_argument("convert_to_8bit: expected an 8- or 16-bit image");
  cv::Mat out(image.size(), CV_MAKETYPE(CV_8U, image.channels()));
  const int n = image.cols * image.channels();
  for (int y = 0; y < image.rows; ++y) {
    const uint16_t* s = image.ptr<uint16_t>(y);
    uint8_t* d = out.ptr<uint8_t>(y);
    for (int j = 0; j < n; ++j) d[j] = static_cast<uint8_t>((s[j] + 128u) / 257u);  // round(v / 257), no ties
  }
  return out;
}

cv::Size eval_resize_size(cv::Size image_size, const EvalTransform& t) {
  check_transform(t);
  if (image_size.width <= 0 || image_size.height <= 0)
    throw std::invalid_argument("eval transform: empty image");
  const auto scaled = [&](int64_t side) {
    const double v = std::floor(static_cast<double>(side) / t.crop_pct);
    if (v < 1.0 || v > (1 << 20))
      throw std::invalid_argument("eval transform: crop_pct gives an absurd resize");
    return static_cast<int64_t>(v);
  };
  if (t.height != t.width)
    return cv::Size(static_cast<int>(scaled(t.width)), static_cast<int>(scaled(t.height)));
  const int64_t s = scaled(t.height);
  const int64_t w = image_size.width;
  const int64_t h = image_size.height;
  // int(s * long / short) in Python: the product is exact, the division is a double division.
  const auto other = [&](int64_t longer, int64_t shorter) {
    const double v = static_cast<double>(s * longer) / static_cast<double>(shorter);
    if (v > (1 << 20)) throw std::invalid_argument("eval transform: the image is too elongated to resize");
    return std::max<int64_t>(static_cast<int64_t>(v), 1);
  };
  return w <= h ? cv::Size(static_cast<int>(s), static_cast<int>(other(h, w)))
                : cv::Size(static_cast<int>(other(w, h)), static_cast<int>(s));
}

cv::Rect eval_crop_window(cv::Size image_size, const EvalTransform& t) {
  const cv::Size r = eval_resize_size(image_size, t);
  const int cw = static_cast<int>(t.width);
  const int ch = static_cast<int>(t.height);
  return cv::Rect(crop_offset(r.width, cw), crop_offset(r.height, ch), cw, ch);
}

void apply_eval_transform(const cv::Mat& image, const EvalTransform& t, float* dst) {
  check_transform(t);
  if (image.empty() || (image.depth() != CV_8U && image.depth() != CV_16U) || image.channels() > 4) {
    throw std::invalid_argument("eval transform: expected an 8- or 16-bit image with 1 to 4 channels");
  }
  const Filter filter = parse_filter(t.interpolation);
  const cv::Mat src = to_mode(convert_to_8bit(image), t.channels);
  const cv::Size resized = eval_resize_size(src.size(), t);
  const cv::Mat crop = resample_window(src, resized, filter, eval_crop_window(src.size(), t));

  // Per channel a 256-entry table of (float(v) * float(1/255) - mean) / std, computed in float32 like numpy.
  const size_t plane = static_cast<size_t>(t.height * t.width);
  const int src_channels = crop.channels();
  for (int64_t c = 0; c < t.channels; ++c) {
    float lut[256];
    const float scale = static_cast<float>(1.0 / 255.0);
    const float mean = static_cast<float>(t.mean[c]);
    const float sd = static_cast<float>(t.std[c]);
    for (int v = 0; v < 256; ++v) lut[v] = (static_cast<float>(v) * scale - mean) / sd;
    const int sc = src_channels == 1 ? 0 : static_cast<int>(c);
    float* out = dst + c * plane;
    for (int y = 0; y < crop.rows; ++y) {
      const uint8_t* s = crop.ptr<uint8_t>(y) + sc;
      for (int x = 0; x < crop.cols; ++x, s += src_channels) *out++ = lut[*s];
    }
  }
}

cv::Size eval_min_source_size(const EvalTransform& t) {
  // A 1 x 1 image's resize: (s, s) for a square input (both sides scale to the short side's s), the fixed size
  // otherwise.
  return eval_resize_size(cv::Size(1, 1), t);
}

cv::Mat resize_like_pil(const cv::Mat& image, cv::Size size, const std::string& interpolation) {
  check_resizable(image, size);
  const Filter filter = parse_filter(interpolation);
  // Image.resize returns a plain copy for an unchanged size, before any RGBA premultiplication.
  if (size == image.size()) return image.clone();
  const cv::Rect all(0, 0, size.width, size.height);
  if (image.channels() != 4 || !filter.weight) return resample_window(image, size, filter, all);
  cv::Mat premultiplied = image.clone();
  premultiply(premultiplied);
  cv::Mat out = resample_window(premultiplied, size, filter, all);
  unpremultiply(out);
  return out;
}

}  // namespace attnvision::vision
