#include "models/box_crops.h"

#include <torch/torch.h>

#include <stdexcept>

namespace attnvision::models {

torch::Tensor square_crops(const torch::Tensor& image, const torch::Tensor& boxes, int64_t size, double margin) {
  if (image.dim() != 3 || !image.is_floating_point())
    throw std::invalid_argument("square_crops: the image must be a floating C x H x W tensor");
  if (boxes.dim() != 2 || boxes.size(1) != 4) throw std::invalid_argument("square_crops: boxes must be K x 4");
  if (size < 1 || margin <= 0) throw std::invalid_argument("square_crops: size must be >= 1 and margin > 0");
  const int64_t k = boxes.size(0), channels = image.size(0), height = image.size(1), width = image.size(2);
  if (k == 0) return torch::empty({0, channels, size, size}, image.options());

  constexpr int64_t kSupersample = 2;
  const int64_t samples = size * kSupersample;
  const torch::Tensor b = boxes.to(image.options().dtype(torch::kFloat64));
  const torch::Tensor side = torch::clamp_min(torch::maximum(b.select(1, 2), b.select(1, 3)) * margin, 1.0);  // K
  const torch::Tensor left = b.select(1, 0) + b.select(1, 2) / 2 - side / 2;
  const torch::Tensor top = b.select(1, 1) + b.select(1, 3) / 2 - side / 2;
  // Sample centres across the square, in [0, 1): (j + 0.5) / samples.
  const torch::Tensor steps = (torch::arange(samples, b.options()) + 0.5) / samples;  // S
  const torch::Tensor xs = left.unsqueeze(1) + side.unsqueeze(1) * steps;              // K x S
  const torch::Tensor ys = top.unsqueeze(1) + side.unsqueeze(1) * steps;
  // grid_sample with align_corners false: pixel edges 0 and W map to -1 and 1.
  const torch::Tensor gx = (xs * (2.0 / width) - 1).unsqueeze(1).expand({k, samples, samples});
  const torch::Tensor gy = (ys * (2.0 / height) - 1).unsqueeze(2).expand({k, samples, samples});
  const torch::Tensor grid = torch::stack({gx, gy}, 3).to(image.scalar_type());  // K x S x S x 2 (x, y)

  namespace F = torch::nn::functional;
  const torch::Tensor sampled = F::grid_sample(image.unsqueeze(0).expand({k, channels, height, width}), grid,
                                               F::GridSampleFuncOptions()
                                                   .mode(torch::kBilinear)
                                                   .padding_mode(torch::kBorder)
                                                   .align_corners(false));
  return F::avg_pool2d(sampled, F::AvgPool2dFuncOptions(kSupersample));
}

}  // namespace attnvision::models
