// load_labeled_images (Fashion-MNIST and image folders), subset / limit, and the held-out split.
#include "datasets/labeled_images.h"

#include "datasets/idx.h"
#include "datasets/idx_writer.h"
#include "test_util.h"
#include "vision/transforms.h"

#include <gtest/gtest.h>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>

#include <cstdlib>
#include <filesystem>
#include <optional>
#include <set>

namespace ad = attnvision::datasets;
namespace av = attnvision::vision;
namespace fs = std::filesystem;
using ad::testing::Bytes;
using ad::testing::idx_bytes;
using ad::testing::pattern_bytes;
using ad::testing::write_file;
using ad::testing::write_gzip;
using attnvision::testing::ScratchDir;

namespace {

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// The what() of the std::exception `f` throws ("" when it does not).
template <typename F>
std::string error_of(F f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

// Sets an environment variable for the life of the object, then restores it.
class EnvGuard {
 public:
  EnvGuard(const char* name, const std::string& value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    setenv(name, value.c_str(), 1);
  }
  ~EnvGuard() {
    if (old_)
      setenv(name_, old_->c_str(), 1);
    else
      unsetenv(name_);
  }

 private:
  const char* name_;
  std::optional<std::string> old_;
};

// ---------------------------------------------------------------------------------------------------
// Fashion-MNIST

TEST(FashionMnist, RealTestSet) {
  if (!fs::is_directory("/usr/share/datasets/fashion-mnist"))
    GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  EnvGuard env("ATTNVISION_FASHION_MNIST_DIR", "/usr/share/datasets/fashion-mnist");
  const ad::LabeledImages test = ad::load_labeled_images("fashion-mnist:test");
  ASSERT_EQ(test.images.sizes().vec(), (std::vector<int64_t>{10000, 1, 28, 28}));
  EXPECT_EQ(test.images.scalar_type(), torch::kUInt8);
  EXPECT_TRUE(test.images.is_contiguous());
  ASSERT_EQ(test.labels.sizes().vec(), std::vector<int64_t>{10000});
  EXPECT_EQ(test.labels.scalar_type(), torch::kLong);
  EXPECT_TRUE(torch::equal(torch::bincount(test.labels), torch::full({10}, 1000, torch::kLong)));
  ASSERT_EQ(test.classes.size(), 10u);
  EXPECT_EQ(test.classes.front(), "T-shirt/top");
  EXPECT_EQ(test.classes.back(), "Ankle boot");
  EXPECT_EQ(test.source, "fashion-mnist:test");
  EXPECT_EQ(test.size(), 10000);
  // The first test image is an ankle boot (label 9), as in every Fashion-MNIST copy.
  EXPECT_EQ(test.labels[0].item<int64_t>(), 9);
  EXPECT_TRUE(torch::equal(test.images.squeeze(1),
                           ad::read_idx("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz")));

  const auto [train, val] = ad::split_holdout(test, 1000, 0);
  EXPECT_EQ(train.size(), 9000);
  EXPECT_TRUE(torch::equal(torch::bincount(val.labels), torch::full({10}, 100, torch::kLong)));
}

// Debian's four file names in `dir`, holding the given images (n x 28 x 28) and labels.
void write_fashion_files(const fs::path& dir, const std::string& stem, uint32_t n_images,
                         const Bytes& labels) {
  fs::create_directories(dir);
  write_gzip((dir / (stem + "-images-idx3-ubyte.gz")).string(),
             idx_bytes({n_images, 28, 28}, pattern_bytes(n_images * 784)));
  write_gzip((dir / (stem + "-labels-idx1-ubyte.gz")).string(),
             idx_bytes({static_cast<uint32_t>(labels.size())}, labels));
}

TEST(FashionMnist, FolderFromEnvironment) {
  ScratchDir dir;
  write_fashion_files(dir.path(), "train", 3, Bytes{'\x09', '\x00', '\x04'});
  EnvGuard env("ATTNVISION_FASHION_MNIST_DIR", dir.path().string());
  const ad::LabeledImages train = ad::load_labeled_images("fashion-mnist:train");
  ASSERT_EQ(train.images.sizes().vec(), (std::vector<int64_t>{3, 1, 28, 28}));
  EXPECT_TRUE(torch::equal(train.labels, torch::tensor({9, 0, 4}, torch::kLong)));
  EXPECT_EQ(Bytes(reinterpret_cast<const char*>(train.images.data_ptr<uint8_t>()), 3 * 784),
            pattern_bytes(3 * 784));
}

TEST(FashionMnist, BadFilesAndSpecs) {
  ScratchDir dir;
  EnvGuard env("ATTNVISION_FASHION_MNIST_DIR", dir.path().string());
  write_fashion_files(dir.path(), "train", 3, Bytes{'\x01', '\x0a', '\x02'});
  EXPECT_TRUE(contains(error_of([] { ad::load_labeled_images("fashion-mnist:train"); }),
                       "train-labels-idx1-ubyte.gz: label 10 is not a class (0..9)"));
  write_fashion_files(dir.path(), "t10k", 3, Bytes{'\x01', '\x02'});
  EXPECT_TRUE(contains(error_of([] { ad::load_labeled_images("fashion-mnist:test"); }),
                       "t10k-labels-idx1-ubyte.gz: expected 3 labels, got [2]"));
  EXPECT_TRUE(contains(error_of([] { ad::load_labeled_images("fashion-mnist:validation"); }),
                       "fashion-mnist:validation: unknown split 'validation'"));
  EnvGuard missing("ATTNVISION_FASHION_MNIST_DIR", (dir / "absent"));
  const std::string e = error_of([] { ad::load_labeled_images("fashion-mnist:test"); });
  EXPECT_TRUE(contains(e, "install Debian's dataset-fashion-mnist")) << e;
  EXPECT_TRUE(contains(error_of([&] { ad::load_labeled_images(dir / "nowhere"); }),
                       "neither a folder nor a known data set"));
}

// ---------------------------------------------------------------------------------------------------
// Image folders

cv::Mat random_gray(int rows, int cols, int seed) {
  cv::Mat m(rows, cols, CV_8UC1);
  cv::RNG rng(seed);
  rng.fill(m, cv::RNG::UNIFORM, 0, 256);
  return m;
}

torch::Tensor as_tensor(const cv::Mat& gray) {
  return torch::from_blob(const_cast<uint8_t*>(gray.ptr<uint8_t>()), {gray.rows, gray.cols}, torch::kUInt8)
      .clone();
}

// a_cat/ c1.png (RGB 28 x 28, one colour), c2.PNG (gray); b_dog/ broken.png (not an image), d1.png (gray
// 28 x 28), sub/d2.png (gray 56 x 42); plus what must be ignored: notes.txt, a hidden folder, a stray
// image beside the class folders.
struct ClassFolder {
  ScratchDir dir;
  cv::Mat c2 = random_gray(28, 28, 2), d1 = random_gray(28, 28, 1), d2 = random_gray(56, 42, 3);
  ClassFolder() {
    fs::create_directories(dir.path() / "a_cat");
    fs::create_directories(dir.path() / "b_dog" / "sub");
    fs::create_directories(dir.path() / ".hidden");
    cv::imwrite(dir / "a_cat/c1.png",
                cv::Mat(28, 28, CV_8UC3, cv::Scalar(50, 100, 200)));  // BGR: R 200, G 100, B 50
    cv::imwrite(dir / "a_cat/c2.PNG", c2);
    write_file(dir / "b_dog/broken.png", "\x89PNG\r\n\x1a\n but then nothing an image needs");
    cv::imwrite(dir / "b_dog/d1.png", d1);
    cv::imwrite(dir / "b_dog/sub/d2.png", d2);
    write_file(dir / "b_dog/notes.txt", "not an image");
    cv::imwrite(dir / ".hidden/h.png", d1);
    cv::imwrite(dir / "stray.png", d1);
  }
  std::string root() const { return dir.path().string(); }
};

TEST(ImageFolder, LoadsClassesAndSkipsBrokenFiles) {
  ClassFolder f;
  ::testing::internal::CaptureStderr();
  const ad::LabeledImages set = ad::load_labeled_images(f.root());
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(set.classes, (std::vector<std::string>{"a_cat", "b_dog"}));
  EXPECT_EQ(set.source, f.root());
  ASSERT_EQ(set.images.sizes().vec(), (std::vector<int64_t>{4, 1, 28, 28}));
  EXPECT_TRUE(set.images.is_contiguous());
  EXPECT_TRUE(torch::equal(set.labels, torch::tensor({0, 0, 1, 1}, torch::kLong)));
  // The warning: one line naming the broken file, and a count.
  EXPECT_TRUE(contains(err, "warning: skipping " + f.dir / "b_dog/broken.png" + ": ")) << err;
  EXPECT_TRUE(contains(err, "skipped 1 of 5 image files")) << err;
  EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 2) << err;

  // c1: PIL's convert('L') of RGB (200, 100, 50).
  const int luma = (200 * 19595 + 100 * 38470 + 50 * 7471 + 0x8000) >> 16;
  EXPECT_TRUE(torch::equal(set.images[0][0], torch::full({28, 28}, luma, torch::kUInt8)));
  // Same-size gray images come through untouched.
  EXPECT_TRUE(torch::equal(set.images[1][0], as_tensor(f.c2)));
  EXPECT_TRUE(torch::equal(set.images[2][0], as_tensor(f.d1)));
  // d2 (42 wide, 56 high): shorter side to 28 with PIL's bilinear, then the centre crop.
  av::EvalTransform t;
  t.channels = 1;
  t.height = t.width = 28;
  t.crop_pct = 1.0;
  t.mean = {0.0};
  t.std = {1.0};
  const cv::Mat resized = av::resize_like_pil(f.d2, av::eval_resize_size(f.d2.size(), t), "bilinear");
  EXPECT_EQ(resized.size(), cv::Size(28, 37));
  EXPECT_TRUE(
      torch::equal(set.images[3][0], as_tensor(resized(av::eval_crop_window(f.d2.size(), t)).clone())));
}

TEST(ImageFolder, ColourAndSize) {
  ClassFolder f;
  ad::ImageFolderOptions o;
  o.channels = 3;
  o.height = 14;
  o.width = 14;
  ::testing::internal::CaptureStderr();
  const ad::LabeledImages set = ad::load_labeled_images(f.root(), o);
  ::testing::internal::GetCapturedStderr();
  ASSERT_EQ(set.images.sizes().vec(), (std::vector<int64_t>{4, 3, 14, 14}));
  // RGB order, not OpenCV's BGR.
  EXPECT_TRUE(
      torch::equal(set.images[0].select(2, 5).select(1, 5), torch::tensor({200, 100, 50}, torch::kUInt8)));
  // Gray is replicated.
  EXPECT_TRUE(torch::equal(set.images[2][0], set.images[2][2]));
}

TEST(ImageFolder, RefusedBeforeDecodingWhenTooLarge) {
  ClassFolder f;
  ad::ImageFolderOptions o;
  o.max_bytes = 5 * 28 * 28 - 1;
  ::testing::internal::CaptureStderr();
  const std::string e = error_of([&] { ad::load_labeled_images(f.root(), o); });
  EXPECT_EQ(::testing::internal::GetCapturedStderr(), "") << "nothing decoded, so no warning";
  EXPECT_TRUE(contains(e, "5 images of 1 x 28 x 28 need 3920 bytes, more than max_bytes (3919)")) << e;
}

TEST(ImageFolder, BadOptionsAndFolders) {
  ClassFolder f;
  ad::ImageFolderOptions o;
  o.interpolation = "cubic-ish";
  EXPECT_THROW(ad::load_labeled_images(f.root(), o), std::invalid_argument);
  o = {};
  o.channels = 2;
  EXPECT_THROW(ad::load_labeled_images(f.root(), o), std::invalid_argument);
  o = {};
  o.height = 0;
  EXPECT_THROW(ad::load_labeled_images(f.root(), o), std::invalid_argument);

  ScratchDir empty;
  EXPECT_TRUE(
      contains(error_of([&] { ad::load_labeled_images(empty.path().string()); }), "no class sub-folders"));
  fs::create_directories(empty.path() / "only");
  write_file(empty / "only/readme.txt", "x");
  EXPECT_TRUE(contains(error_of([&] { ad::load_labeled_images(empty.path().string()); }),
                       "class folder without image files"));
  write_file(empty / "only/bad.jpg", "not a jpeg");
  ::testing::internal::CaptureStderr();
  const std::string e = error_of([&] { ad::load_labeled_images(empty.path().string()); });
  ::testing::internal::GetCapturedStderr();
  EXPECT_TRUE(contains(e, "none of the 1 image files decoded")) << e;
}

// ---------------------------------------------------------------------------------------------------
// subset, limit, split_holdout

// `labels.size()` rows of 1 x 2 x 2 images whose first two pixels encode the row number.
ad::LabeledImages numbered_set(const std::vector<int64_t>& labels) {
  const int64_t n = static_cast<int64_t>(labels.size());
  torch::Tensor images = torch::zeros({n, 1, 2, 2}, torch::kUInt8);
  for (int64_t i = 0; i < n; ++i) {
    images[i][0][0][0] = i & 255;
    images[i][0][0][1] = i >> 8;
  }
  return {images, torch::tensor(labels, torch::kLong), {"a", "b", "c"}, "numbered", {}};
}

std::vector<int64_t> row_numbers(const ad::LabeledImages& set) {
  std::vector<int64_t> rows;
  for (int64_t i = 0; i < set.size(); ++i) {
    rows.push_back(set.images[i][0][0][0].item<int64_t>() + 256 * set.images[i][0][0][1].item<int64_t>());
    EXPECT_EQ(set.labels[i].item<int64_t>(), rows.back() % 7 < 3 ? 0 : rows.back() % 7 < 5 ? 1 : 2);
  }
  return rows;
}

// 700 rows, labels by row % 7: class 0 has 300 rows, classes 1 and 2 200 each.
ad::LabeledImages seven_pattern(int64_t n) {
  std::vector<int64_t> labels;
  for (int64_t i = 0; i < n; ++i) labels.push_back(i % 7 < 3 ? 0 : i % 7 < 5 ? 1 : 2);
  return numbered_set(labels);
}

TEST(LabeledImages, SubsetAndLimit) {
  const ad::LabeledImages all = seven_pattern(10);
  const ad::LabeledImages some = all.subset(torch::tensor({6, 0, 3}, torch::kLong));
  EXPECT_EQ(row_numbers(some), (std::vector<int64_t>{6, 0, 3}));
  EXPECT_EQ(some.classes, all.classes);
  EXPECT_TRUE(some.images.is_contiguous());
  EXPECT_THROW(all.subset(torch::tensor({10}, torch::kLong)), std::out_of_range);
  EXPECT_THROW(all.subset(torch::tensor({-1}, torch::kLong)), std::out_of_range);
  EXPECT_THROW(all.subset(torch::tensor({1}, torch::kInt)), std::invalid_argument);
  EXPECT_EQ(all.subset(torch::empty({0}, torch::kLong)).size(), 0);

  EXPECT_EQ(row_numbers(ad::limit(all, 4)), (std::vector<int64_t>{0, 1, 2, 3}));
  EXPECT_EQ(ad::limit(all, 100).size(), 10);
  EXPECT_THROW(ad::limit(all, -1), std::invalid_argument);
}

TEST(LabeledImages, SplitIsDeterministicDisjointAndCovers) {
  const ad::LabeledImages all = seven_pattern(700);
  const auto [train, val] = ad::split_holdout(all, 70, 123);
  const std::vector<int64_t> t = row_numbers(train), v = row_numbers(val);
  ASSERT_EQ(t.size(), 630u);
  ASSERT_EQ(v.size(), 70u);
  EXPECT_TRUE(std::is_sorted(t.begin(), t.end()));
  EXPECT_TRUE(std::is_sorted(v.begin(), v.end()));
  std::set<int64_t> both(t.begin(), t.end());
  both.insert(v.begin(), v.end());
  EXPECT_EQ(both.size(), 700u);  // disjoint and covering
  // Stratified: 70 of 700 is 10% of each class.
  EXPECT_TRUE(torch::equal(torch::bincount(val.labels), torch::tensor({30, 20, 20}, torch::kLong)));

  const auto [train2, val2] = ad::split_holdout(all, 70, 123);
  EXPECT_EQ(row_numbers(val2), v);
  EXPECT_NE(row_numbers(ad::split_holdout(all, 70, 124).second), v);
}

TEST(LabeledImages, SplitHandedOverMovesRowsInPlace) {
  // The same rows as the copying split, the training rows now in the set's own memory; a set whose memory
  // another tensor shares is copied instead and left as it was.
  const ad::LabeledImages reference = seven_pattern(700);
  const auto [train, val] = ad::split_holdout(reference, 70, 123);

  ad::LabeledImages owned = seven_pattern(700);
  const void* memory = owned.images.data_ptr();
  const auto [train_moved, val_moved] = ad::split_holdout(std::move(owned), 70, 123);
  EXPECT_EQ(train_moved.images.data_ptr(), memory);
  EXPECT_TRUE(torch::equal(train_moved.images, train.images));
  EXPECT_TRUE(torch::equal(train_moved.labels, train.labels));
  EXPECT_TRUE(torch::equal(val_moved.images, val.images));
  EXPECT_TRUE(torch::equal(val_moved.labels, val.labels));
  EXPECT_EQ(train_moved.classes, reference.classes);

  ad::LabeledImages shared = seven_pattern(700);
  const torch::Tensor view = shared.images.narrow(0, 0, 10);
  const torch::Tensor before = view.clone();
  const auto [train_copied, val_copied] = ad::split_holdout(std::move(shared), 70, 123);
  EXPECT_NE(train_copied.images.data_ptr(), view.data_ptr());
  EXPECT_TRUE(torch::equal(train_copied.images, train.images));
  EXPECT_TRUE(torch::equal(view, before));
  EXPECT_THROW(ad::split_holdout(seven_pattern(20), 21, 1), std::invalid_argument);
}

TEST(LabeledImages, SplitQuotasAddUp) {
  // 103 rows: 45 / 30 / 28. 21 * share = 9.17 / 6.12 / 5.71: floors 9 + 6 + 5 = 20, the spare row goes
  // to the largest remainder (class 2).
  const ad::LabeledImages all = seven_pattern(103);
  const auto [train, val] = ad::split_holdout(all, 21, 5);
  EXPECT_TRUE(torch::equal(torch::bincount(all.labels), torch::tensor({45, 30, 28}, torch::kLong)));
  EXPECT_TRUE(torch::equal(torch::bincount(val.labels), torch::tensor({9, 6, 6}, torch::kLong)));
  EXPECT_EQ(train.size(), 82);
}

TEST(LabeledImages, SplitEdges) {
  const ad::LabeledImages all = seven_pattern(20);
  const auto [train, val] = ad::split_holdout(all, 0, 1);
  EXPECT_EQ(val.size(), 0);
  EXPECT_EQ(val.images.sizes().vec(), (std::vector<int64_t>{0, 1, 2, 2}));
  EXPECT_EQ(row_numbers(train), row_numbers(all));
  EXPECT_EQ(ad::split_holdout(all, 20, 1).first.size(), 0);
  EXPECT_THROW(ad::split_holdout(all, 21, 1), std::invalid_argument);
  EXPECT_THROW(ad::split_holdout(all, -1, 1), std::invalid_argument);
}

}  // namespace
