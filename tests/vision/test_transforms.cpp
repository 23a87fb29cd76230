// resize_like_pil against Pillow, and apply_eval_transform against the Python peer's preprocess() and
// torchvision; references from tests/data/vision/make_refs.py.
#include "vision/image_io.h"
#include "vision/transforms.h"

#include "vision/vision_test_data.h"

#include <gtest/gtest.h>
#include <opencv2/core.hpp>

#include <cmath>
#include <cstring>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace av = attnvision::vision;
using av::testing_data::data_path;
using av::testing_data::differing_bytes;
using av::testing_data::pattern;
using av::testing_data::read_bytes;

namespace {

std::vector<std::string> manifest_lines(const std::string& name) {
  const std::vector<uint8_t> bytes = read_bytes(data_path(name));
  std::istringstream in(std::string(bytes.begin(), bytes.end()));
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) lines.push_back(line);
  }
  return lines;
}

// The eval transform the manual way (full PIL resize, crop, normalise), for comparison with the
// windowed implementation.
std::vector<float> full_resize_then_crop(const cv::Mat& rgb, const av::EvalTransform& t) {
  const cv::Mat resized = av::resize_like_pil(rgb, av::eval_resize_size(rgb.size(), t), t.interpolation);
  const cv::Rect win = av::eval_crop_window(rgb.size(), t);
  std::vector<float> out(static_cast<size_t>(3 * t.height * t.width));
  size_t i = 0;
  for (int c = 0; c < 3; ++c) {
    for (int y = 0; y < t.height; ++y) {
      for (int x = 0; x < t.width; ++x) {
        const int v = resized.at<cv::Vec3b>(win.y + y, win.x + x)[c];
        const float f = static_cast<float>(v) * static_cast<float>(1.0 / 255.0);
        out[i++] = (f - static_cast<float>(t.mean[c])) / static_cast<float>(t.std[c]);
      }
    }
  }
  return out;
}

}  // namespace

TEST(ResizeLikePil, EqualsPillowBitForBit) {
  const std::vector<uint8_t> blob = read_bytes(data_path("resize_refs.bin"));
  const std::vector<std::string> lines = manifest_lines("resize_refs.txt");
  ASSERT_GE(lines.size(), 90u);
  for (const std::string& line : lines) {
    std::istringstream in(line);
    std::string filter, kind;
    int c = 0, iw = 0, ih = 0, ow = 0, oh = 0;
    size_t offset = 0;
    in >> filter >> c >> kind >> iw >> ih >> ow >> oh >> offset;
    ASSERT_TRUE(in) << line;
    const cv::Mat src = pattern(iw, ih, c, kind);
    const cv::Mat got = av::resize_like_pil(src, cv::Size(ow, oh), filter);
    const cv::Mat want(oh, ow, CV_MAKETYPE(CV_8U, c), const_cast<uint8_t*>(blob.data() + offset));
    ASSERT_LE(offset + want.total() * want.elemSize(), blob.size()) << line;
    EXPECT_EQ(differing_bytes(got, want), 0) << line;
  }
}

TEST(ResizeLikePil, DoesNotModifyItsInputAndKeepsType) {
  const cv::Mat src = pattern(31, 17, 4, "noise");
  const cv::Mat copy = src.clone();
  const cv::Mat out = av::resize_like_pil(src, cv::Size(9, 40), "bicubic");
  EXPECT_EQ(differing_bytes(src, copy), 0);
  EXPECT_EQ(out.type(), CV_8UC4);
  EXPECT_EQ(out.size(), cv::Size(9, 40));
}

TEST(ResizeLikePil, RejectsWhatPillowSemanticsDoNotCover) {
  EXPECT_THROW(av::resize_like_pil(cv::Mat(), cv::Size(4, 4), "bilinear"), std::invalid_argument);
  EXPECT_THROW(av::resize_like_pil(cv::Mat(8, 8, CV_16UC1, cv::Scalar(0)), cv::Size(4, 4), "bilinear"),
               std::invalid_argument);
  EXPECT_THROW(av::resize_like_pil(cv::Mat(8, 8, CV_8UC2, cv::Scalar(0)), cv::Size(4, 4), "bilinear"),
               std::invalid_argument);
  EXPECT_THROW(av::resize_like_pil(cv::Mat(8, 8, CV_8UC1, cv::Scalar(0)), cv::Size(0, 4), "bilinear"),
               std::invalid_argument);
  EXPECT_THROW(av::resize_like_pil(cv::Mat(8, 8, CV_8UC1, cv::Scalar(0)), cv::Size(4, 4), "area"),
               std::invalid_argument);
}

// Each manifest line: input channels height width crop_pct interp mean... std... ref tolerance.
TEST(EvalTransform, EqualsPeerAndTorchvision) {
  const std::vector<std::string> lines = manifest_lines("eval_refs.txt");
  ASSERT_GE(lines.size(), 14u);
  for (const std::string& line : lines) {
    std::istringstream in(line);
    std::string input, ref;
    av::EvalTransform t;
    in >> input >> t.channels >> t.height >> t.width >> t.crop_pct >> t.interpolation;
    t.mean.assign(static_cast<size_t>(t.channels), 0.0);
    t.std.assign(static_cast<size_t>(t.channels), 0.0);
    for (double& m : t.mean) in >> m;
    for (double& s : t.std) in >> s;
    double tolerance = -1;
    in >> ref >> tolerance;
    ASSERT_TRUE(in) << line;

    const cv::Mat image = av::read_image(data_path(input));
    std::vector<float> got(static_cast<size_t>(t.channels * t.height * t.width), NAN);
    av::apply_eval_transform(image, t, got.data());

    const std::vector<uint8_t> raw = read_bytes(data_path(ref));
    ASSERT_EQ(raw.size(), got.size() * sizeof(float)) << line;
    std::vector<float> want(got.size());
    std::memcpy(want.data(), raw.data(), raw.size());
    double max_diff = 0;
    size_t exact = 0;
    for (size_t i = 0; i < got.size(); ++i) {
      max_diff = std::max(max_diff, std::fabs(double(got[i]) - double(want[i])));
      exact += got[i] == want[i];
    }
    EXPECT_LE(max_diff, std::max(tolerance, 0.0)) << line;
    EXPECT_LE(max_diff, 1e-6) << line;
    if (tolerance == 0.0) {
      EXPECT_EQ(exact, got.size()) << line;
    }
  }
}

TEST(EvalTransform, ResizeAndCropGeometryFollowTorchvision) {
  av::EvalTransform t;  // 224, crop 0.875 -> shorter side 256
  EXPECT_EQ(av::eval_resize_size(cv::Size(1280, 960), t), cv::Size(341, 256));  // int(256 * 1280 / 960)
  EXPECT_EQ(av::eval_resize_size(cv::Size(960, 1280), t), cv::Size(256, 341));
  EXPECT_EQ(av::eval_resize_size(cv::Size(256, 256), t), cv::Size(256, 256));
  // (341 - 224) / 2 = 58.5 rounds half to even: 58; (256 - 224) / 2 = 16.
  EXPECT_EQ(av::eval_crop_window(cv::Size(1280, 960), t), cv::Rect(58, 16, 224, 224));
  // (343 - 224) / 2 = 59.5 -> 60.
  EXPECT_EQ(av::eval_crop_window(cv::Size(343, 256), t), cv::Rect(60, 16, 224, 224));
  // Non-square target: both sides exactly, floor(H / crop), floor(W / crop).
  av::EvalTransform ns = t;
  ns.height = 20;
  ns.width = 28;
  EXPECT_EQ(av::eval_resize_size(cv::Size(500, 100), ns), cv::Size(32, 22));
  // crop_pct > 1: the crop is larger than the resized image and reaches outside (zero padding).
  av::EvalTransform pad = t;
  pad.height = pad.width = 24;
  pad.crop_pct = 1.15;  // floor(24 / 1.15) = 20
  // 40 x 30 -> 26 x 20: left = round((26 - 24) / 2) = 1, top = -((24 - 20) // 2) = -2.
  EXPECT_EQ(av::eval_crop_window(cv::Size(40, 30), pad), cv::Rect(1, -2, 24, 24));
}

TEST(EvalTransform, WindowedResizeEqualsFullResizeThenCrop) {
  const cv::Mat rgb = pattern(640, 480, 3, "smooth");
  for (const char* interp : {"bilinear", "bicubic", "nearest", "lanczos"}) {
    av::EvalTransform t;
    t.interpolation = interp;
    std::vector<float> got(3 * 224 * 224);
    av::apply_eval_transform(rgb, t, got.data());
    EXPECT_EQ(got, full_resize_then_crop(rgb, t)) << interp;
  }
}

// Batch runs decode and preprocess on worker threads (each with its own scratch buffer, all sharing
// OpenCV's pool): results must not depend on that.
TEST(EvalTransform, ConcurrentCallsGiveTheSameResult) {
  const cv::Mat a = av::read_image(data_path("photo_97x61.jpg"));
  const cv::Mat b = pattern(700, 500, 3, "smooth");
  av::EvalTransform t;
  t.interpolation = "bicubic";
  std::vector<float> want_a(3 * 224 * 224), want_b(3 * 224 * 224);
  av::apply_eval_transform(a, t, want_a.data());
  av::apply_eval_transform(b, t, want_b.data());
  std::vector<int> mismatches(4, 0);
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&, i] {
      std::vector<float> got(3 * 224 * 224);
      for (int k = 0; k < 10; ++k) {
        const bool first = (i + k) % 2 == 0;
        av::apply_eval_transform(first ? a : b, t, got.data());
        mismatches[i] += got != (first ? want_a : want_b);
      }
    });
  }
  for (std::thread& th : threads) th.join();
  EXPECT_EQ(mismatches, std::vector<int>(4, 0));
}

TEST(EvalTransform, GrayInputEqualsItsRgbReplication) {
  const cv::Mat gray = pattern(90, 70, 1, "smooth");
  cv::Mat rgb;
  cv::merge(std::vector<cv::Mat>{gray, gray, gray}, rgb);
  av::EvalTransform t;
  t.height = t.width = 32;
  std::vector<float> a(3 * 32 * 32), b(3 * 32 * 32);
  av::apply_eval_transform(gray, t, a.data());
  av::apply_eval_transform(rgb, t, b.data());
  EXPECT_EQ(a, b);
}

TEST(EvalTransform, SixteenBitInputIsRoundedValueOver257) {
  const cv::Mat rgb8 = pattern(50, 40, 3, "smooth");
  cv::Mat rgb16;
  rgb8.convertTo(rgb16, CV_16U, 257.0);
  rgb16 += cv::Scalar::all(128);  // still rounds back to the same 8-bit value
  av::EvalTransform t;
  t.height = t.width = 16;
  std::vector<float> a(3 * 16 * 16), b(3 * 16 * 16);
  av::apply_eval_transform(rgb8, t, a.data());
  av::apply_eval_transform(rgb16, t, b.data());
  EXPECT_EQ(a, b);
}

TEST(ConvertTo8bit, RoundsValueOver257) {
  cv::Mat m(1, 7, CV_16UC1);
  const uint16_t in[7] = {0, 128, 129, 257, 385, 386, 65535};
  std::memcpy(m.data, in, sizeof in);
  const cv::Mat out = av::convert_to_8bit(m);
  ASSERT_EQ(out.type(), CV_8UC1);
  const uint8_t want[7] = {0, 0, 1, 1, 1, 2, 255};  // 385 / 257 = 1.498, 386 / 257 = 1.502
  for (int i = 0; i < 7; ++i) EXPECT_EQ(out.at<uint8_t>(0, i), want[i]) << in[i];
}

TEST(EvalTransform, RejectsInvalidTransformsAndImages) {
  const cv::Mat img = pattern(20, 20, 3, "noise");
  std::vector<float> dst(3 * 224 * 224);
  auto bad = [&](auto change) {
    av::EvalTransform t;
    change(t);
    return t;
  };
  EXPECT_THROW(av::apply_eval_transform(img, bad([](auto& t) { t.channels = 2; }), dst.data()),
               std::invalid_argument);
  EXPECT_THROW(av::apply_eval_transform(img, bad([](auto& t) { t.height = 0; }), dst.data()),
               std::invalid_argument);
  EXPECT_THROW(av::apply_eval_transform(img, bad([](auto& t) { t.crop_pct = 0; }), dst.data()),
               std::invalid_argument);
  EXPECT_THROW(av::apply_eval_transform(img, bad([](auto& t) { t.crop_pct = NAN; }), dst.data()),
               std::invalid_argument);
  EXPECT_THROW(av::apply_eval_transform(img, bad([](auto& t) { t.mean = {0.5}; }), dst.data()),
               std::invalid_argument);
  EXPECT_THROW(av::apply_eval_transform(img, bad([](auto& t) { t.std[1] = 0; }), dst.data()),
               std::invalid_argument);
  EXPECT_THROW(av::apply_eval_transform(img, bad([](auto& t) { t.interpolation = "cubic"; }), dst.data()),
               std::invalid_argument);
  EXPECT_THROW(av::apply_eval_transform(cv::Mat(), av::EvalTransform{}, dst.data()), std::invalid_argument);
  EXPECT_THROW(av::apply_eval_transform(cv::Mat(4, 4, CV_32FC3), av::EvalTransform{}, dst.data()),
               std::invalid_argument);
}
