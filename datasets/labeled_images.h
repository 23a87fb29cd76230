// Labelled image sets for training and evaluation, held whole in memory as uint8 (a 60000-image
// Fashion-MNIST is 47 MB): Fashion-MNIST from Debian's dataset-fashion-mnist, or an image folder with one
// sub-folder per class (torchvision's ImageFolder layout). Also the fixed-seed train / validation split.
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <random>
#include <string>
#include <utility>
#include <vector>

namespace attnvision::datasets {

struct LabeledImages {
  torch::Tensor images;              // N x C x H x W uint8, contiguous
  // The target of each row, first dimension N: class indices (N int64) for classification; a detection set's
  // padded boxes (N x M x 5 float32, datasets/detection_set.h) for detection. Rows move with their images.
  torch::Tensor labels;
  std::vector<std::string> classes;  // class names, index = label
  std::string source;                // what it was loaded from, for messages
  std::vector<int64_t> category_ids; // a COCO set's category id of each class (empty for other sources)
  int64_t size() const;
  // The rows at `indices` (a 1-D int64 tensor), in that order. Throws std::invalid_argument for another
  // dtype or shape and std::out_of_range for an index outside 0..size()-1.
  LabeledImages subset(const torch::Tensor& indices) const;
};

// How an image folder's files become rows (the eval transform's geometry with crop_pct 1.0: shorter side
// resized to the target, centre crop; see vision/transforms.h). Fashion-MNIST ignores these.
struct ImageFolderOptions {
  int64_t channels = 1;  // 1: gray by PIL's convert('L') rule; 3: RGB
  int64_t height = 28;
  int64_t width = 28;
  std::string interpolation = "bilinear";  // PIL's filters: nearest, bilinear, bicubic, box, hamming, lanczos
  int64_t max_bytes = int64_t{4} << 30;    // refuse sets whose N x C x H x W is larger, before decoding
};

// Fashion-MNIST's ten class names in label order (T-shirt/top, Trouser, ..., Ankle boot).
const std::vector<std::string>& fashion_mnist_classes();

// The Debian package's folder: $ATTNVISION_FASHION_MNIST_DIR, else /usr/share/datasets/fashion-mnist.
std::string fashion_mnist_dir();

// `spec` is
//   "fashion-mnist:train" | "fashion-mnist:test": the gzip IDX files of Debian's dataset-fashion-mnist in
//       fashion_mnist_dir(), N x 1 x 28 x 28, classes T-shirt/top, Trouser, ..., Ankle boot;
//   a folder: one sub-folder per class (sorted names = class order; hidden ones skipped), its images found
//       recursively by extension, each decoded with vision::read_image and brought to
//       channels x height x width PIL-exactly. A file that fails to decode is skipped with a one-line
//       warning on stderr; a class folder without image files, or a set where nothing decodes, is an error.
// Errors are std::runtime_error (std::invalid_argument for bad options) with a one-line what() naming the
// spec or file.
LabeledImages load_labeled_images(const std::string& spec, const ImageFolderOptions& folder = {});

// The first min(n, size) rows (quick runs and tests).
LabeledImages limit(const LabeledImages& all, int64_t n);

// A held-out validation set of `val_count` rows and the rest for training, both in their original order.
// Stratified: each class gives round(val_count * its share) rows (largest remainders, ties to the lower
// class index), chosen by Fisher-Yates over the class's rows with std::mt19937_64(seed), so the split is
// the same on every machine. Labels that are not class indices (a detection set's boxes) are not
// stratified: the rows are drawn by Fisher-Yates over all of them. val_count 0 gives an empty val set; val_count outside 0..size() throws
// std::invalid_argument.
std::pair<LabeledImages, LabeledImages> split_holdout(const LabeledImages& all, int64_t val_count,
                                                      uint64_t seed);
// The same split of a set handed over: the training rows are moved to the front of `all`'s own tensors and
// returned as a view of them (the validation rows are copied), so that a set sized near the memory limit is
// not held twice while it is split. When another tensor shares that memory the rows are copied as above.
// `all` is left empty.
std::pair<LabeledImages, LabeledImages> split_holdout(LabeledImages&& all, int64_t val_count, uint64_t seed);

}  // namespace attnvision::datasets
