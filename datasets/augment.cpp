#include "datasets/augment.h"

#include "datasets/sampler.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>

namespace attnvision::datasets {

namespace {

void check_batch(const torch::Tensor& images) {
  if (!images.defined() || images.scalar_type() != torch::kUInt8 || images.dim() != 4)
    throw std::invalid_argument("augment: expected a uint8 N x C x H x W batch");
}

void check_options(const AugmentOptions& o) {
  if (o.crop_padding < 0) throw std::invalid_argument("augment: crop_padding must not be negative");
  if (o.crop_size < 0) throw std::invalid_argument("augment: crop_size must not be negative");
  if (!(o.foreground_crops >= 0.0 && o.foreground_crops <= 1.0))
    throw std::invalid_argument("augment: foreground_crops must be in 0..1");
  if (!(o.erase_prob >= 0.0 && o.erase_prob <= 1.0))
    throw std::invalid_argument("augment: erase_prob must be in 0..1");
  if (o.erase_prob == 0.0) return;
  if (!(o.erase_min_area > 0.0 && o.erase_min_area <= o.erase_max_area && o.erase_max_area <= 1.0))
    throw std::invalid_argument("augment: erase areas must satisfy 0 < min <= max <= 1");
  if (!(o.erase_min_aspect > 0.0 && std::isfinite(o.erase_min_aspect)))
    throw std::invalid_argument("augment: erase_min_aspect must be positive");
}

// One image's source offset: output pixel (y, x) comes from input (y + dy, x + dx), or from
// (y + dy, out_w - 1 - x + dx) when flipped (the flip follows the crop, as in torchvision's usual order).
struct Shift {
  int64_t dy = 0;
  int64_t dx = 0;
  bool flip = false;
};

// The window's side along an image side of `size` pixels.
int64_t window_side(const AugmentOptions& o, int64_t size) { return o.crop_size > 0 ? o.crop_size : size; }

// A window of `side` pixels over `size` padded by crop_padding on both ends: offset uniform in
// -crop_padding..size + crop_padding - side (-p..p at the image's own size, as torchvision's RandomCrop).
int64_t draw_offset(const AugmentOptions& o, int64_t size, int64_t side, std::mt19937_64& rng) {
  const uint64_t span = static_cast<uint64_t>(size + 2 * o.crop_padding - side) + 1;
  return static_cast<int64_t>(uniform_below(rng, span)) - o.crop_padding;
}

// The offset along one side of a window that holds the span first..last (an object's rows or columns)
// whole, uniform among such windows in the padded image; false when none does (the object is larger).
bool draw_offset_holding(const AugmentOptions& o, int64_t size, int64_t side, int64_t first, int64_t last,
                         std::mt19937_64& rng, int64_t& offset) {
  const int64_t lo = std::max(-o.crop_padding, last - side + 1);
  const int64_t hi = std::min(size + o.crop_padding - side, first);
  if (lo > hi) return false;
  offset = lo + static_cast<int64_t>(uniform_below(rng, static_cast<uint64_t>(hi - lo + 1)));
  return true;
}

// With foreground_crops, a window over one of the mask's objects (8-connected components of its non-zero
// pixels), drawn uniformly among them so that a small lesion is chosen as often as a large one, the window
// uniform among those holding the object's bounding box. False when the draw says no or the mask is empty.
bool draw_foreground_window(const AugmentOptions& o, const uint8_t* mask, int64_t h, int64_t w,
                            int64_t side_h, int64_t side_w, std::mt19937_64& rng, Shift& s) {
  if (uniform_unit(rng) >= o.foreground_crops) return false;
  const cv::Mat m(static_cast<int>(h), static_cast<int>(w), CV_8UC1, const_cast<uint8_t*>(mask));
  cv::Mat labels, stats, centroids;
  const int objects = cv::connectedComponentsWithStats(m, labels, stats, centroids, 8, CV_32S) - 1;
  if (objects < 1) return false;
  const int k = 1 + static_cast<int>(uniform_below(rng, static_cast<uint64_t>(objects)));
  const int64_t left = stats.at<int>(k, cv::CC_STAT_LEFT), top = stats.at<int>(k, cv::CC_STAT_TOP);
  const int64_t right = left + stats.at<int>(k, cv::CC_STAT_WIDTH) - 1;
  const int64_t bottom = top + stats.at<int>(k, cv::CC_STAT_HEIGHT) - 1;
  int64_t dy = 0, dx = 0;
  if (!draw_offset_holding(o, h, side_h, top, bottom, rng, dy) ||
      !draw_offset_holding(o, w, side_w, left, right, rng, dx))
    return false;
  s.dy = dy, s.dx = dx;
  return true;
}

// `mask`: the image's H x W uint8 mask, or nullptr.
Shift draw_shift(const AugmentOptions& o, int64_t h, int64_t w, const uint8_t* mask, std::mt19937_64& rng) {
  Shift s;
  const int64_t out_h = window_side(o, h), out_w = window_side(o, w);
  if (o.crop_padding > 0 || out_h != h || out_w != w) {
    const bool placed =
        mask && o.foreground_crops > 0.0 && draw_foreground_window(o, mask, h, w, out_h, out_w, rng, s);
    if (!placed) {
      s.dy = draw_offset(o, h, out_h, rng);
      s.dx = draw_offset(o, w, out_w, rng);
    }
  }
  if (o.hflip) s.flip = uniform_unit(rng) < 0.5;
  return s;
}

// One output row of out_w pixels from source row `src` of w pixels (nullptr: outside the image, all padding).
void shifted_row(const uint8_t* src, int64_t w, int64_t out_w, const Shift& s, uint8_t* dst) {
  std::memset(dst, 0, static_cast<size_t>(out_w));
  if (!src) return;
  // Output columns whose source column lies inside 0..w-1.
  const int64_t lo = s.flip ? std::max<int64_t>(0, out_w + s.dx - w) : std::max<int64_t>(0, -s.dx);
  const int64_t hi = s.flip ? std::min<int64_t>(out_w, out_w + s.dx) : std::min<int64_t>(out_w, w - s.dx);
  if (!s.flip) {
    if (hi > lo) std::memcpy(dst + lo, src + lo + s.dx, static_cast<size_t>(hi - lo));
    return;
  }
  for (int64_t x = lo; x < hi; ++x) dst[x] = src[out_w - 1 - x + s.dx];
}

// Crops (to out_h x out_w) and flips every image (uint8 N x C x H x W, contiguous) by its own shift.
torch::Tensor crop_and_flip(const torch::Tensor& in, const std::vector<Shift>& shifts, int64_t out_h, int64_t out_w) {
  const int64_t n = in.size(0), c = in.size(1), h = in.size(2), w = in.size(3);
  torch::Tensor out = torch::empty({n, c, out_h, out_w}, in.options());
  const uint8_t* src = in.data_ptr<uint8_t>();
  uint8_t* dst = out.data_ptr<uint8_t>();
  for (int64_t i = 0; i < n; ++i) {
    const Shift& s = shifts[static_cast<size_t>(i)];
    for (int64_t plane = i * c; plane < (i + 1) * c; ++plane) {
      for (int64_t y = 0; y < out_h; ++y) {
        const int64_t sy = y + s.dy;
        const uint8_t* row = sy >= 0 && sy < h ? src + (plane * h + sy) * w : nullptr;
        shifted_row(row, w, out_w, s, dst + (plane * out_h + y) * out_w);
      }
    }
  }
  return out;
}

// Moves each image's boxes ([class, x, y, w, h], class -1 for padding) the way its pixels moved: input
// column c lands on c - dx, or on out_w - 1 - c + dx when flipped. A box is then cut to the out_h x out_w
// result; one with less than a pixel left becomes padding.
void move_boxes(torch::Tensor& boxes, const std::vector<Shift>& shifts, int64_t out_h, int64_t out_w) {
  auto b = boxes.accessor<float, 3>();
  const auto W = static_cast<float>(out_w), H = static_cast<float>(out_h);
  for (int64_t i = 0; i < b.size(0); ++i) {
    const Shift& s = shifts[static_cast<size_t>(i)];
    for (int64_t j = 0; j < b.size(1); ++j) {
      if (b[i][j][0] < 0) continue;
      float x0 = s.flip ? W - b[i][j][1] - b[i][j][3] + static_cast<float>(s.dx) : b[i][j][1] - static_cast<float>(s.dx);
      float y0 = b[i][j][2] - static_cast<float>(s.dy);
      float x1 = std::min(W, x0 + b[i][j][3]), y1 = std::min(H, y0 + b[i][j][4]);
      x0 = std::max(0.0f, x0), y0 = std::max(0.0f, y0);
      if (x1 - x0 < 1.0f || y1 - y0 < 1.0f) {
        for (int64_t k = 0; k < 5; ++k) b[i][j][k] = -1.0f;
        continue;
      }
      b[i][j][1] = x0, b[i][j][2] = y0, b[i][j][3] = x1 - x0, b[i][j][4] = y1 - y0;
    }
  }
}

struct Rect {
  int64_t image, top, left, height, width;
};

// timm RandomErasing._erase for one image (count 1): the rectangle, or false when no try fits.
bool draw_erase(const AugmentOptions& o, int64_t h, int64_t w, std::mt19937_64& rng, Rect& r) {
  const auto uniform = [&](double a, double b) { return a + (b - a) * uniform_unit(rng); };
  const double log_lo = std::log(o.erase_min_aspect);
  const double log_hi = std::log(1.0 / o.erase_min_aspect);
  const double area = static_cast<double>(h * w);
  for (int attempt = 0; attempt < 10; ++attempt) {
    const double target = uniform(o.erase_min_area, o.erase_max_area) * area;
    const double aspect = std::exp(uniform(log_lo, log_hi));
    // Python's round() is half-to-even, as nearbyint in the default rounding mode.
    const auto eh = static_cast<int64_t>(std::nearbyint(std::sqrt(target * aspect)));
    const auto ew = static_cast<int64_t>(std::nearbyint(std::sqrt(target / aspect)));
    if (ew < w && eh < h) {
      r.top = static_cast<int64_t>(uniform_below(rng, static_cast<uint64_t>(h - eh + 1)));
      r.left = static_cast<int64_t>(uniform_below(rng, static_cast<uint64_t>(w - ew + 1)));
      r.height = eh;
      r.width = ew;
      return true;
    }
  }
  return false;
}

void random_erase(torch::Tensor& x, const AugmentOptions& o, std::mt19937_64& rng) {
  const int64_t n = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
  std::vector<Rect> rects;
  int64_t noise_count = 0;
  for (int64_t i = 0; i < n; ++i) {
    Rect r{i, 0, 0, 0, 0};
    if (uniform_unit(rng) < o.erase_prob && draw_erase(o, h, w, rng, r)) {
      rects.push_back(r);
      noise_count += c * r.height * r.width;
    }
  }
  if (noise_count == 0) return;
  // One draw for the whole batch, consumed rectangle by rectangle in (channel, row, column) order.
  const torch::Tensor noise =
      torch::randn({noise_count}, at::detail::createCPUGenerator(rng()), torch::kFloat32);
  const float* z = noise.data_ptr<float>();
  float* data = x.data_ptr<float>();
  for (const Rect& r : rects) {
    for (int64_t plane = r.image * c; plane < (r.image + 1) * c; ++plane) {
      for (int64_t y = r.top; y < r.top + r.height; ++y, z += r.width)
        std::memcpy(data + (plane * h + y) * w + r.left, z, static_cast<size_t>(r.width) * sizeof(float));
    }
  }
}

}  // namespace

torch::Tensor normalize_batch(const torch::Tensor& images_u8, const std::vector<double>& mean,
                              const std::vector<double>& std) {
  check_batch(images_u8);
  const int64_t c = images_u8.size(1);
  if (mean.size() != static_cast<size_t>(c) || std.size() != static_cast<size_t>(c))
    throw std::invalid_argument("normalize_batch: mean and std need one value per channel (" +
                                std::to_string(c) + ")");
  std::vector<float> lut(static_cast<size_t>(256 * c));
  const float scale = static_cast<float>(1.0 / 255.0);
  for (int64_t k = 0; k < c; ++k) {
    if (!std::isfinite(mean[k]) || !std::isfinite(std[k]) || std[k] == 0.0)
      throw std::invalid_argument("normalize_batch: mean and std must be finite, std non-zero");
    const float m = static_cast<float>(mean[k]);
    const float s = static_cast<float>(std[k]);
    for (int v = 0; v < 256; ++v)
      lut[static_cast<size_t>(256 * k + v)] = (static_cast<float>(v) * scale - m) / s;
  }
  const torch::Tensor in = images_u8.contiguous();
  torch::Tensor out = torch::empty(in.sizes(), torch::kFloat32);
  const int64_t planes = in.size(0) * c;
  const int64_t plane_size = in.size(2) * in.size(3);
  const uint8_t* src = in.data_ptr<uint8_t>();
  float* dst = out.data_ptr<float>();
  // Threads only pay off for large batches (about 64k pixels per task).
  const int64_t grain = std::max<int64_t>(1, (int64_t{1} << 16) / std::max<int64_t>(plane_size, 1));
  at::parallel_for(0, planes, grain, [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) {
      const float* table = lut.data() + 256 * (p % c);
      const uint8_t* s = src + p * plane_size;
      float* d = dst + p * plane_size;
      for (int64_t i = 0; i < plane_size; ++i) d[i] = table[s[i]];
    }
  });
  return out;
}

torch::Tensor augment_batch(const torch::Tensor& images_u8, const AugmentOptions& o,
                            const std::vector<double>& mean, const std::vector<double>& std,
                            std::mt19937_64& rng, torch::Tensor* targets) {
  check_batch(images_u8);
  check_options(o);
  const bool masks = targets && targets->scalar_type() == torch::kUInt8;
  if (masks && (targets->dim() != 3 || targets->size(0) != images_u8.size(0) ||
                targets->size(1) != images_u8.size(2) || targets->size(2) != images_u8.size(3)))
    throw std::invalid_argument("augment: masks must be uint8 N x H x W with the batch's N, H and W");
  if (targets && !masks && (targets->scalar_type() != torch::kFloat32 || targets->dim() != 3 ||
                            targets->size(0) != images_u8.size(0) || targets->size(2) != 5))
    throw std::invalid_argument("augment: boxes must be float32 N x M x 5 with the batch's N");
  if (targets && o.erase_prob > 0.0)
    throw std::invalid_argument("augment: erasing cannot be used with boxes or masks (it would hide objects they keep)");
  torch::Tensor x = images_u8.contiguous();
  const int64_t h = x.size(2), w = x.size(3);
  const int64_t out_h = window_side(o, h), out_w = window_side(o, w);
  if (out_h > h + 2 * o.crop_padding || out_w > w + 2 * o.crop_padding)
    throw std::invalid_argument("augment: crop_size " + std::to_string(o.crop_size) + " exceeds the " +
                                std::to_string(h) + " x " + std::to_string(w) + " images padded by " +
                                std::to_string(o.crop_padding));
  if (o.crop_padding > 0 || o.hflip || out_h != h || out_w != w) {
    const torch::Tensor mask_batch = masks ? targets->contiguous() : torch::Tensor();
    const uint8_t* mask_pixels = masks ? mask_batch.data_ptr<uint8_t>() : nullptr;
    std::vector<Shift> shifts;
    for (int64_t i = 0; i < x.size(0); ++i)
      shifts.push_back(draw_shift(o, h, w, mask_pixels ? mask_pixels + i * h * w : nullptr, rng));
    x = crop_and_flip(x, shifts, out_h, out_w);
    if (targets && masks)
      *targets = crop_and_flip(targets->contiguous().unsqueeze(1), shifts, out_h, out_w).squeeze(1);
    if (targets && !masks) {
      *targets = targets->contiguous().clone();
      move_boxes(*targets, shifts, out_h, out_w);
    }
  }
  torch::Tensor out = normalize_batch(x, mean, std);
  if (o.erase_prob > 0.0) random_erase(out, o, rng);
  return out;
}

}  // namespace attnvision::datasets
