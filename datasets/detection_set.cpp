#include "datasets/detection_set.h"

#include "datasets/coco.h"
#include "datasets/coco_images.h"

#include <torch/torch.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <numeric>
#include <stdexcept>

namespace attnvision::datasets {

DetectionSet DetectionSet::subset(const torch::Tensor& indices) const {
  if (indices.scalar_type() != torch::kLong || indices.dim() != 1)
    throw std::invalid_argument(source + ": subset indices must be a 1-D int64 tensor");
  DetectionSet out;
  const torch::Tensor rows = indices.contiguous();
  const auto* at = rows.data_ptr<int64_t>();
  for (int64_t k = 0; k < rows.size(0); ++k) {
    if (at[k] < 0 || at[k] >= size()) throw std::out_of_range(source + ": row " + std::to_string(at[k]));
    out.image_ids.push_back(image_ids[static_cast<size_t>(at[k])]);
  }
  out.images = images.index_select(0, rows).contiguous();
  out.boxes = boxes.index_select(0, rows).contiguous();
  out.category_ids = category_ids;
  out.classes = classes;
  out.source = source;
  return out;
}

DetectionSet load_detection_set(const std::string& dir, int64_t channels, int64_t max_bytes) {
  if (channels != 1 && channels != 3) throw std::invalid_argument(dir + ": channels must be 1 or 3");
  const std::filesystem::path root(dir);
  CocoInstances gt = read_coco_instances((root / "instances.json").string());
  if (gt.images.empty()) throw std::runtime_error((root / "instances.json").string() + ": no images");

  DetectionSet set;
  set.source = dir;
  // Classes in category id order, so class indices do not depend on the file's listing order.
  std::sort(gt.categories.begin(), gt.categories.end(), [](const auto& a, const auto& b) { return a.id < b.id; });
  std::map<int64_t, int64_t> class_of;
  for (const CocoCategory& c : gt.categories) {
    class_of[c.id] = static_cast<int64_t>(set.classes.size());
    set.category_ids.push_back(c.id);
    set.classes.push_back(c.name);
  }
  std::sort(gt.images.begin(), gt.images.end(), [](const auto& a, const auto& b) { return a.id < b.id; });
  std::map<int64_t, size_t> row_of;
  for (size_t i = 0; i < gt.images.size(); ++i) row_of[gt.images[i].id] = i;

  set.images = load_coco_images(dir, gt.images, channels, max_bytes);
  const auto n = static_cast<int64_t>(gt.images.size());

  // Boxes per row, then one padded tensor.
  std::vector<std::vector<std::array<float, 5>>> per_row(gt.images.size());
  for (const CocoAnnotation& a : gt.annotations) {
    if (a.iscrowd) continue;
    per_row[row_of.at(a.image_id)].push_back({static_cast<float>(class_of.at(a.category_id)),
                                              static_cast<float>(a.bbox[0]), static_cast<float>(a.bbox[1]),
                                              static_cast<float>(a.bbox[2]), static_cast<float>(a.bbox[3])});
  }
  size_t most = 1;
  for (const auto& r : per_row) most = std::max(most, r.size());
  set.boxes = torch::full({n, static_cast<int64_t>(most), 5}, -1.0f);
  auto box = set.boxes.accessor<float, 3>();
  for (size_t i = 0; i < per_row.size(); ++i)
    for (size_t j = 0; j < per_row[i].size(); ++j)
      for (size_t k = 0; k < 5; ++k) box[static_cast<int64_t>(i)][static_cast<int64_t>(j)][static_cast<int64_t>(k)] = per_row[i][j][k];

  for (const CocoImage& im : gt.images) set.image_ids.push_back(im.id);
  return set;
}

void hflip_with_boxes(torch::Tensor& images, torch::Tensor& boxes, const torch::Tensor& flip) {
  const torch::Tensor rows = flip.nonzero().flatten();
  if (rows.numel() == 0) return;
  const auto width = static_cast<float>(images.size(3));
  images.index_copy_(0, rows, images.index_select(0, rows).flip({3}));
  torch::Tensor b = boxes.index_select(0, rows);
  const torch::Tensor real = b.select(2, 0).ge(0);
  // x' = W - x - w on real boxes; padding rows keep their -1s.
  b.select(2, 1).copy_(torch::where(real, width - b.select(2, 1) - b.select(2, 3), b.select(2, 1)));
  boxes.index_copy_(0, rows, b);
}

}  // namespace attnvision::datasets
