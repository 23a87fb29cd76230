#include "datasets/coco_images.h"

#include "datasets/image_batches.h"

#include <torch/torch.h>

#include <filesystem>
#include <stdexcept>

namespace attnvision::datasets {

torch::Tensor load_coco_images(const std::string& dir, const std::vector<CocoImage>& images, int64_t channels,
                               int64_t max_bytes) {
  if (channels != 1 && channels != 3) throw std::invalid_argument(dir + ": channels must be 1 or 3");
  if (images.empty()) throw std::runtime_error(dir + ": no images");
  const std::filesystem::path root(dir);
  const int64_t width = images.front().width, height = images.front().height;
  for (const CocoImage& im : images)
    if (im.width != width || im.height != height)
      throw std::runtime_error((root / "images" / im.file_name).string() + ": " + std::to_string(im.width) + "x" +
                               std::to_string(im.height) + " in the JSON, the set's images are " +
                               std::to_string(width) + "x" + std::to_string(height));
  const auto n = static_cast<int64_t>(images.size());
  if (n > max_bytes / (channels * height * width))
    throw std::runtime_error(dir + ": " + std::to_string(n) + " images of " + std::to_string(channels) + "x" +
                             std::to_string(height) + "x" + std::to_string(width) + " need more than max_bytes (" +
                             std::to_string(max_bytes) + ")");

  // Pixels as they are: the eval transform at the images' own size (no resize, no crop) with mean 0 and
  // std 1 gives x / 255, which round(x * 255) brings back exactly.
  vision::EvalTransform same_size;
  same_size.channels = channels;
  same_size.height = height;
  same_size.width = width;
  same_size.crop_pct = 1.0;
  same_size.mean.assign(static_cast<size_t>(channels), 0.0);
  same_size.std.assign(static_cast<size_t>(channels), 1.0);
  std::vector<std::string> files;
  for (const CocoImage& im : images) files.push_back((root / "images" / im.file_name).string());
  torch::Tensor out = torch::empty({n, channels, height, width}, torch::kUInt8);
  LoaderOptions options;
  options.batch_size = 64;
  ImageBatchLoader loader(files, same_size, options);
  int64_t next = 0;
  for (ImageBatch batch; loader.next(batch); next += static_cast<int64_t>(batch.items.size())) {
    for (const BatchItem& item : batch.items) {
      // A set cannot skip an image the way a classification folder can: its annotations are in the file.
      if (!item.ok()) throw std::runtime_error(item.error.rfind(item.path, 0) == 0 ? item.error : item.path + ": " + item.error);
      if (item.width != width || item.height != height)
        throw std::runtime_error(item.path + ": decoded as " + std::to_string(item.width) + "x" +
                                 std::to_string(item.height) + ", the JSON says " + std::to_string(width) + "x" +
                                 std::to_string(height));
    }
    out.narrow(0, next, static_cast<int64_t>(batch.items.size())).copy_(batch.images.mul(255.0f).round_());
  }
  return out;
}

}  // namespace attnvision::datasets
