#include "datasets/labeled_images.h"

#include "datasets/idx.h"
#include "datasets/image_batches.h"
#include "datasets/sampler.h"
#include "vision/inputs.h"
#include "vision/image_io.h"
#include "vision/transforms.h"

#include <opencv2/core/mat.hpp>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <numeric>
#include <stdexcept>

namespace attnvision::datasets {

namespace fs = std::filesystem;

namespace {

constexpr const char* kFashionPrefix = "fashion-mnist:";

LabeledImages rows(const LabeledImages& all, const torch::Tensor& indices) {
  return {all.images.index_select(0, indices), all.labels.index_select(0, indices), all.classes, all.source,
          all.category_ids};
}

torch::Tensor long_tensor(const std::vector<int64_t>& v) {
  return torch::tensor(v, torch::kLong).reshape({static_cast<int64_t>(v.size())});
}

// ---------------------------------------------------------------------------------------------------
// Fashion-MNIST

LabeledImages load_fashion_mnist(const std::string& spec) {
  const std::string split = spec.substr(std::string(kFashionPrefix).size());
  if (split != "train" && split != "test")
    throw std::runtime_error(spec + ": unknown split '" + split +
                             "' (fashion-mnist:train or fashion-mnist:test)");
  const fs::path dir = fashion_mnist_dir();
  if (!fs::is_directory(dir)) {
    throw std::runtime_error(spec + ": " + dir.string() +
                             " not found; install Debian's dataset-fashion-mnist (apt-get install "
                             "dataset-fashion-mnist) or set ATTNVISION_FASHION_MNIST_DIR");
  }
  const std::string stem = (dir / (split == "train" ? "train" : "t10k")).string();
  const std::string images_path = stem + "-images-idx3-ubyte.gz";
  const std::string labels_path = stem + "-labels-idx1-ubyte.gz";
  const torch::Tensor images = read_idx(images_path);
  const torch::Tensor labels = read_idx(labels_path);
  if (images.dim() != 3 || images.size(1) != 28 || images.size(2) != 28)
    throw std::runtime_error(images_path + ": expected N x 28 x 28 images, got " + c10::str(images.sizes()));
  if (labels.dim() != 1 || labels.size(0) != images.size(0)) {
    throw std::runtime_error(labels_path + ": expected " + std::to_string(images.size(0)) + " labels, got " +
                             c10::str(labels.sizes()));
  }
  const std::vector<std::string>& classes = fashion_mnist_classes();
  const int64_t top = labels.max().item<int64_t>();
  if (top >= static_cast<int64_t>(classes.size()))
    throw std::runtime_error(labels_path + ": label " + std::to_string(top) + " is not a class (0..9)");
  // N x 28 x 28 -> N x 1 x 28 x 28 is a view of the same contiguous storage.
  return {images.unsqueeze(1), labels.to(torch::kLong), classes, spec, {}};
}

// ---------------------------------------------------------------------------------------------------
// Image folder

struct FolderListing {
  std::vector<std::string> classes;
  std::vector<std::string> files;
  std::vector<int64_t> labels;  // per file
};

FolderListing list_class_folders(const std::string& root) {
  FolderListing out;
  std::vector<std::string> names;
  for (const fs::directory_entry& e : fs::directory_iterator(root)) {
    const std::string name = e.path().filename().string();
    if (e.is_directory() && name.rfind('.', 0) != 0) names.push_back(name);
  }
  std::sort(names.begin(), names.end());
  if (names.empty())
    throw std::runtime_error(root + ": no class sub-folders (expected ROOT/CLASS/IMAGE files)");
  for (const std::string& name : names) {
    const std::string dir = (fs::path(root) / name).string();
    const std::vector<std::string> files = vision::scan_inputs({dir}, vision::has_image_extension).files;
    if (files.empty()) throw std::runtime_error(dir + ": class folder without image files");
    out.files.insert(out.files.end(), files.begin(), files.end());
    out.labels.insert(out.labels.end(), files.size(), static_cast<int64_t>(out.classes.size()));
    out.classes.push_back(name);
  }
  return out;
}

// The eval transform with mean 0 / std 1 writes float(v) * float(1 / 255), and v comes back exactly as
// round(x * 255) (the error is a few float ulps, far from 0.5): the PIL-exact mode / resize / crop code
// in vision/ is reused instead of copied.
vision::EvalTransform unit_transform(const ImageFolderOptions& o) {
  vision::EvalTransform t;
  t.channels = o.channels;
  t.height = o.height;
  t.width = o.width;
  t.crop_pct = 1.0;
  t.interpolation = o.interpolation;
  t.mean.assign(static_cast<size_t>(std::max<int64_t>(o.channels, 0)), 0.0);
  t.std.assign(t.mean.size(), 1.0);
  return t;
}

// Bad options would fail on every file: check them once, before any decoding (the geometry with a 1x1
// size, the filter name with a 1x1 resize, neither allocating anything sized by the options).
void check_options(const std::string& root, const vision::EvalTransform& t) {
  try {
    vision::eval_resize_size(cv::Size(1, 1), t);
    vision::resize_like_pil(cv::Mat(1, 1, CV_8UC1, cv::Scalar(0)), cv::Size(1, 1), t.interpolation);
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(root + ": " + e.what());
  }
}

void check_budget(const std::string& root, int64_t n, const ImageFolderOptions& o) {
  const int64_t per_image = o.channels * o.height * o.width;
  if (n > o.max_bytes / per_image) {
    throw std::runtime_error(root + ": " + std::to_string(n) + " images of " + std::to_string(o.channels) +
                             " x " + std::to_string(o.height) + " x " + std::to_string(o.width) + " need " +
                             std::to_string(n * per_image) + " bytes, more than max_bytes (" +
                             std::to_string(o.max_bytes) + ")");
  }
}

// One line: the reader's message names the file already; other errors get the path in front.
void warn_skipped(const BatchItem& item) {
  const bool named = item.error.rfind(item.path + ":", 0) == 0;
  std::cerr << "warning: skipping " << (named ? item.error : item.path + ": " + item.error) << "\n";
}

LabeledImages load_image_folder(const std::string& root, const ImageFolderOptions& options) {
  const vision::EvalTransform transform = unit_transform(options);
  check_options(root, transform);
  FolderListing listing = list_class_folders(root);
  const int64_t n = static_cast<int64_t>(listing.files.size());
  check_budget(root, n, options);

  torch::Tensor images = torch::empty({n, options.channels, options.height, options.width}, torch::kUInt8);
  std::vector<int64_t> labels;
  LoaderOptions loader_options;
  loader_options.batch_size = 64;
  ImageBatchLoader loader(listing.files, transform, loader_options);
  int64_t next_file = 0;
  int64_t skipped = 0;
  for (ImageBatch batch; loader.next(batch); next_file += static_cast<int64_t>(batch.items.size())) {
    for (const BatchItem& item : batch.items) {
      if (item.ok()) continue;
      ++skipped;
      warn_skipped(item);
    }
    if (batch.rows.empty()) continue;
    const int64_t at = static_cast<int64_t>(labels.size());
    const int64_t k = static_cast<int64_t>(batch.rows.size());
    images.narrow(0, at, k).copy_(batch.images.mul(255.0f).round_());
    for (size_t row : batch.rows) labels.push_back(listing.labels[static_cast<size_t>(next_file) + row]);
  }
  if (labels.empty())
    throw std::runtime_error(root + ": none of the " + std::to_string(n) + " image files decoded");
  if (skipped > 0)
    std::cerr << "warning: " << root << ": skipped " << skipped << " of " << n << " image files\n";
  const int64_t loaded = static_cast<int64_t>(labels.size());
  return {images.narrow(0, 0, loaded), long_tensor(labels), std::move(listing.classes), root, {}};
}

// Per class, how many of its rows go to validation: val_count split in proportion to the class sizes,
// rounded by largest remainder (ties to the lower class) so the quotas add up to val_count exactly.
std::vector<int64_t> class_quotas(const std::vector<int64_t>& class_sizes, int64_t total, int64_t val_count) {
  std::vector<int64_t> quota(class_sizes.size());
  std::vector<int64_t> remainder(class_sizes.size());
  int64_t assigned = 0;
  for (size_t c = 0; c < class_sizes.size(); ++c) {
    // val_count * size fits easily: both are row counts far below 2^31.
    quota[c] = val_count * class_sizes[c] / total;
    remainder[c] = val_count * class_sizes[c] % total;
    assigned += quota[c];
  }
  std::vector<size_t> order(class_sizes.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return remainder[a] > remainder[b]; });
  for (size_t i = 0; assigned < val_count; ++i, ++assigned) ++quota[order[i]];
  return quota;
}

}  // namespace

int64_t LabeledImages::size() const { return labels.defined() ? labels.size(0) : 0; }

LabeledImages LabeledImages::subset(const torch::Tensor& indices) const {
  if (indices.scalar_type() != torch::kLong || indices.dim() != 1)
    throw std::invalid_argument(source + ": subset indices must be a 1-D int64 tensor");
  if (indices.numel() > 0) {
    const int64_t lo = indices.min().item<int64_t>();
    const int64_t hi = indices.max().item<int64_t>();
    if (lo < 0 || hi >= size()) {
      throw std::out_of_range(source + ": subset index " + std::to_string(lo < 0 ? lo : hi) +
                              " is outside 0.." + std::to_string(size() - 1));
    }
  }
  return rows(*this, indices);
}

const std::vector<std::string>& fashion_mnist_classes() {
  static const std::vector<std::string> classes{"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                                "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
  return classes;
}

std::string fashion_mnist_dir() {
  const char* env = std::getenv("ATTNVISION_FASHION_MNIST_DIR");
  return env && *env ? env : "/usr/share/datasets/fashion-mnist";
}

LabeledImages load_labeled_images(const std::string& spec, const ImageFolderOptions& folder) {
  if (spec.rfind(kFashionPrefix, 0) == 0) return load_fashion_mnist(spec);
  if (fs::is_directory(spec)) return load_image_folder(spec, folder);
  throw std::runtime_error(
      spec + ": neither a folder nor a known data set (fashion-mnist:train, fashion-mnist:test)");
}

LabeledImages limit(const LabeledImages& all, int64_t n) {
  if (n < 0) throw std::invalid_argument(all.source + ": limit must not be negative");
  const int64_t k = std::min(n, all.size());
  return {all.images.narrow(0, 0, k), all.labels.narrow(0, 0, k), all.classes, all.source, all.category_ids};
}

namespace {

// split_holdout's choice: the training rows and the validation rows, each ascending.
std::pair<std::vector<int64_t>, std::vector<int64_t>> holdout_rows(const LabeledImages& all, int64_t val_count,
                                                                   uint64_t seed) {
  const int64_t n = all.size();
  if (val_count < 0 || val_count > n) {
    throw std::invalid_argument(all.source + ": validation count " + std::to_string(val_count) +
                                " is outside 0.." + std::to_string(n));
  }
  std::vector<bool> in_val(static_cast<size_t>(n), false);
  if (all.labels.dim() != 1) {  // not class indices: one draw over all rows
    std::vector<int64_t> order(static_cast<size_t>(n));
    std::iota(order.begin(), order.end(), int64_t{0});
    std::mt19937_64 rng(seed);
    fisher_yates(order, rng);
    for (int64_t k = 0; k < val_count; ++k) in_val[static_cast<size_t>(order[static_cast<size_t>(k)])] = true;
  } else {
    const torch::Tensor labels = all.labels.contiguous();
    const int64_t* label = labels.data_ptr<int64_t>();
    int64_t num_classes = static_cast<int64_t>(all.classes.size());
    for (int64_t i = 0; i < n; ++i) {
      if (label[i] < 0)
        throw std::invalid_argument(all.source + ": negative label " + std::to_string(label[i]));
      num_classes = std::max(num_classes, label[i] + 1);
    }
    std::vector<std::vector<int64_t>> members(static_cast<size_t>(num_classes));
    for (int64_t i = 0; i < n; ++i) members[static_cast<size_t>(label[i])].push_back(i);

    std::vector<int64_t> sizes;
    for (const auto& m : members) sizes.push_back(static_cast<int64_t>(m.size()));
    const std::vector<int64_t> quota =
        n > 0 ? class_quotas(sizes, n, val_count) : std::vector<int64_t>(sizes.size());
    std::mt19937_64 rng(seed);
    for (size_t c = 0; c < members.size(); ++c) {
      fisher_yates(members[c], rng);
      for (int64_t k = 0; k < quota[c]; ++k)
        in_val[static_cast<size_t>(members[c][static_cast<size_t>(k)])] = true;
    }
  }
  std::vector<int64_t> train_rows, val_rows;
  for (int64_t i = 0; i < n; ++i) (in_val[static_cast<size_t>(i)] ? val_rows : train_rows).push_back(i);
  return {train_rows, val_rows};
}

// Whether `t`'s rows may be moved in place: contiguous, and no other tensor sees its memory.
bool sole_owner(const torch::Tensor& t) {
  return t.is_contiguous() && t.use_count() == 1 && t.storage().use_count() == 1 && t.storage_offset() == 0;
}

// Moves rows `keep` (ascending) of `t` to its front, in order, in place: row k gets row keep[k] >= k.
void compact_rows(torch::Tensor& t, const std::vector<int64_t>& keep) {
  const int64_t n = t.size(0);
  const size_t row_bytes = n > 0 ? static_cast<size_t>(t.numel() / n) * t.element_size() : 0;
  auto* base = static_cast<unsigned char*>(t.data_ptr());
  for (size_t k = 0; k < keep.size(); ++k) {
    const size_t from = static_cast<size_t>(keep[k]);
    if (from != k) std::memmove(base + k * row_bytes, base + from * row_bytes, row_bytes);
  }
}

}  // namespace

std::pair<LabeledImages, LabeledImages> split_holdout(const LabeledImages& all, int64_t val_count,
                                                      uint64_t seed) {
  const auto [train_rows, val_rows] = holdout_rows(all, val_count, seed);
  return {rows(all, long_tensor(train_rows)), rows(all, long_tensor(val_rows))};
}

std::pair<LabeledImages, LabeledImages> split_holdout(LabeledImages&& all, int64_t val_count, uint64_t seed) {
  const auto [train_rows, val_rows] = holdout_rows(all, val_count, seed);
  LabeledImages val = rows(all, long_tensor(val_rows));
  LabeledImages train;
  if (sole_owner(all.images) && sole_owner(all.labels)) {
    compact_rows(all.images, train_rows);
    compact_rows(all.labels, train_rows);
    const int64_t count = static_cast<int64_t>(train_rows.size());
    train = {all.images.narrow(0, 0, count), all.labels.narrow(0, 0, count), std::move(all.classes),
             std::move(all.source), std::move(all.category_ids)};
  } else {  // another tensor sees these rows: copy them instead
    train = rows(all, long_tensor(train_rows));
  }
  all = LabeledImages();
  return {train, val};
}

}  // namespace attnvision::datasets
