#include "datasets/synth/crops.h"

#include "datasets/coco.h"
#include "datasets/coco_images.h"
#include "models/box_crops.h"
#include "vision/files/atomic_write.h"
#include "vision/image_write.h"

#include <opencv2/core/mat.hpp>
#include <torch/torch.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <map>
#include <stdexcept>

namespace attnvision::datasets::synth {

namespace {

namespace fs = std::filesystem;

// Images decoded at a time: a few MB of pixels, whatever the folder's size.
constexpr size_t kChunk = 256;

std::string class_folder(int64_t category_id) {
  char name[32];
  std::snprintf(name, sizeof name, "%02lld", static_cast<long long>(category_id));
  return name;
}

}  // namespace

CropSetSummary write_crop_set(const std::string& scenes_dir, const CropOptions& options, const std::string& out,
                              const std::function<void(int64_t done, int64_t total)>& progress) {
  if (options.size < 8 || options.size > 512) throw std::invalid_argument("synth crops: --size must be in 8..512");
  const CocoInstances gt = read_coco_instances((fs::path(scenes_dir) / "instances.json").string());
  std::map<int64_t, std::vector<const CocoAnnotation*>> by_image;
  for (const CocoAnnotation& a : gt.annotations) by_image[a.image_id].push_back(&a);

  std::vector<CocoCategory> categories = gt.categories;
  std::sort(categories.begin(), categories.end(), [](const auto& a, const auto& b) { return a.id < b.id; });
  fs::create_directories(out);
  std::string labels;
  for (const CocoCategory& c : categories) {
    fs::create_directories(fs::path(out) / class_folder(c.id));
    labels += c.name + "\n";
  }

  CropSetSummary summary;
  for (size_t begin = 0; begin < gt.images.size(); begin += kChunk) {
    const std::vector<CocoImage> chunk(gt.images.begin() + static_cast<std::ptrdiff_t>(begin),
                                       gt.images.begin() + static_cast<std::ptrdiff_t>(std::min(begin + kChunk, gt.images.size())));
    const torch::Tensor pixels = load_coco_images(scenes_dir, chunk, 3, int64_t{1} << 32);  // N x 3 x H x W uint8
    for (size_t i = 0; i < chunk.size(); ++i) {
      const auto found = by_image.find(chunk[i].id);
      if (found == by_image.end()) continue;
      const std::vector<const CocoAnnotation*>& anns = found->second;
      torch::Tensor boxes = torch::empty({static_cast<int64_t>(anns.size()), 4}, torch::kFloat64);
      for (size_t j = 0; j < anns.size(); ++j)
        for (int64_t c = 0; c < 4; ++c) boxes[static_cast<int64_t>(j)][c] = anns[j]->bbox[static_cast<size_t>(c)];
      // Crops in 0..255 as floats, rounded back to bytes: the values a PNG keeps.
      const torch::Tensor crops = models::square_crops(pixels[static_cast<int64_t>(i)].to(torch::kFloat32), boxes,
                                                       options.size, models::kSecondStageCropMargin)
                                      .round()
                                      .clamp(0, 255)
                                      .to(torch::kUInt8)
                                      .permute({0, 2, 3, 1})
                                      .contiguous();
      for (size_t j = 0; j < anns.size(); ++j) {
        const cv::Mat rgb(static_cast<int>(options.size), static_cast<int>(options.size), CV_8UC3,
                          crops[static_cast<int64_t>(j)].data_ptr<uint8_t>());
        vision::write_png((fs::path(out) / class_folder(anns[j]->category_id) /
                           (std::to_string(anns[j]->id) + ".png")).string(),
                          rgb);
        ++summary.crops;
      }
      ++summary.images;
    }
    progress(static_cast<int64_t>(std::min(begin + kChunk, gt.images.size())), static_cast<int64_t>(gt.images.size()));
  }
  vision::write_text_atomically((fs::path(out) / "labels.txt").string(), labels);
  return summary;
}

}  // namespace attnvision::datasets::synth
