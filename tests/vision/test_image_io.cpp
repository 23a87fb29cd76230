// read_image / read_image_info / read_image_size: every format and mode against the pixels Pillow wrote
// or decoded, EXIF orientation, and hostile input (tests/data/vision/make_refs.py makes the files).
#include "vision/image_io.h"

#include "vision/exif.h"
#include "vision/vision_test_data.h"

#include <gtest/gtest.h>
#include <opencv2/core.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <sstream>
#include <string>

namespace av = attnvision::vision;
namespace fs = std::filesystem;
using av::testing_data::data_path;
using av::testing_data::differing_bytes;
using av::testing_data::pattern;
using av::testing_data::read_bytes;
using av::testing_data::read_raw;
using av::testing_data::write_bytes;

namespace {

// A fresh folder per test, removed afterwards.
class TempDir {
 public:
  TempDir() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    path_ = fs::temp_directory_path() /
            ("attnvision_" + std::string(info->name()) + "_" + std::to_string(::getpid()));
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  fs::path path_;
};

// The ImageError's message for reading `path`, or "" when it reads fine.
std::string read_error(const std::string& path, const av::ImageReadOptions& options = {}) {
  try {
    av::read_image(path, options);
  } catch (const av::ImageError& e) {
    return e.what();
  }
  return "";
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

cv::Mat gray_alpha_as_rgba() {
  const cv::Mat gray = read_raw("fmt_gray.u8", 8, 12, CV_8UC1);
  const cv::Mat alpha = pattern(12, 8, 1, "noise");
  cv::Mat rgba;
  cv::merge(std::vector<cv::Mat>{gray, gray, gray, alpha}, rgba);
  return rgba;
}

}  // namespace

TEST(ReadImage, EveryFormatAndModeGivesTheStoredPixels) {
  const cv::Mat rgb = read_raw("fmt_rgb.u8", 8, 12, CV_8UC3);
  const cv::Mat gray = read_raw("fmt_gray.u8", 8, 12, CV_8UC1);
  const cv::Mat rgba = read_raw("fmt_rgba.u8", 8, 12, CV_8UC4);
  const cv::Mat g16 = read_raw("fmt_g16.u16", 8, 12, CV_16UC1);
  const cv::Mat rgb16 = read_raw("fmt_rgb16.u16", 8, 12, CV_16UC3);
  const struct {
    const char* file;
    cv::Mat want;
  } cases[] = {
      {"fmt_rgb.png", rgb},
      {"fmt_rgb.bmp", rgb},
      {"fmt_rgb.tif", rgb},
      {"fmt_rgb.webp", rgb},
      {"fmt_rgb.ppm", rgb},
      {"fmt_gray.png", gray},
      {"fmt_gray.tif", gray},
      {"fmt_gray.pgm", gray},
      {"fmt_gray.bmp", gray},
      {"fmt_rgba.png", rgba},
      {"fmt_rgba.webp", rgba},
      {"fmt_la.png", gray_alpha_as_rgba()},
      {"fmt_g16.png", g16},
      {"fmt_g16.tif", g16},
      {"fmt_g16.pgm", g16},
      {"fmt_rgb_plain.ppm", rgb},
      {"fmt_gray_plain.pgm", gray},
      {"fmt_rgb16.png", rgb16},
      {"fmt_rgb16.ppm", rgb16},
      {"fmt_pal.png", read_raw("fmt_pal.u8", 8, 12, CV_8UC3)},
      {"fmt_palt.png", read_raw("fmt_palt.u8", 8, 12, CV_8UC4)},
      {"fmt_bw.pbm", read_raw("fmt_bw.u8", 8, 12, CV_8UC1)},
  };
  for (const auto& c : cases) {
    const cv::Mat got = av::read_image(data_path(c.file));
    EXPECT_EQ(got.type(), c.want.type()) << c.file;
    EXPECT_EQ(differing_bytes(got, c.want), 0) << c.file;
  }
}

TEST(ReadImage, RgbaTiffIsUnpremultiplied) {
  // libtiff's RGBA reader premultiplies unassociated alpha; read_image undoes it, exactly where alpha is
  // 255 and within half a step of 255 / alpha elsewhere (alpha 0 keeps no colour at all).
  const cv::Mat want = read_raw("fmt_rgba.u8", 8, 12, CV_8UC4);
  const cv::Mat got = av::read_image(data_path("fmt_rgba.tif"));
  ASSERT_EQ(got.type(), CV_8UC4);
  ASSERT_EQ(got.size(), want.size());
  for (int y = 0; y < want.rows; ++y) {
    for (int x = 0; x < want.cols; ++x) {
      const cv::Vec4b g = got.at<cv::Vec4b>(y, x), w = want.at<cv::Vec4b>(y, x);
      ASSERT_EQ(g[3], w[3]);
      if (w[3] == 0) continue;
      const double tolerance = w[3] == 255 ? 0.0 : 255.0 / (2.0 * w[3]) + 1.0;
      for (int k = 0; k < 3; ++k)
        EXPECT_LE(std::abs(g[k] - w[k]), tolerance) << x << "," << y << " alpha " << int(w[3]);
    }
  }
}

TEST(ReadImage, JpegDecodesLikePillow) {
  for (const char* name : {"photo_97x61.jpg", "photo_50x83.jpg", "gray_64x48.jpg"}) {
    const cv::Mat got = av::read_image(data_path(name));
    const cv::Mat want = av::read_image(data_path(std::string(name) + ".pil.png"));
    EXPECT_EQ(differing_bytes(got, want), 0) << name;
  }
  EXPECT_EQ(av::read_image(data_path("gray_64x48.jpg")).type(), CV_8UC1);
}

TEST(ReadImage, ExifOrientationIsApplied) {
  av::ImageReadOptions stored;
  stored.apply_exif_orientation = false;
  const cv::Mat jpeg_stored = av::read_image(data_path("exif_raw.jpg.pil.png"));
  const cv::Mat src = av::read_image(data_path("exif_src.png"));
  for (int o = 1; o <= 8; ++o) {
    const std::string n = std::to_string(o);
    const cv::Mat shown = av::read_image(data_path("exif_" + n + ".ref.png"));
    // JPEG against Pillow's ImageOps.exif_transpose of its own decode.
    EXPECT_EQ(differing_bytes(av::read_image(data_path("exif_" + n + ".jpg")),
                              av::read_image(data_path("exif_" + n + ".jpg.pil.png"))),
              0)
        << o;
    EXPECT_EQ(differing_bytes(av::read_image(data_path("exif_" + n + ".jpg"), stored), jpeg_stored), 0) << o;
    // TIFF: OpenCV orients by itself; read_image keeps that, or undoes it on request.
    EXPECT_EQ(differing_bytes(av::read_image(data_path("exif_" + n + ".tif")), shown), 0) << o;
    EXPECT_EQ(differing_bytes(av::read_image(data_path("exif_" + n + ".tif"), stored), src), 0) << o;
    for (const char* ext : {".png", ".webp"}) {
      const std::string file = data_path("exif_" + n + ext);
      if (!fs::exists(file)) continue;
      EXPECT_EQ(differing_bytes(av::read_image(file), shown), 0) << file;
      EXPECT_EQ(differing_bytes(av::read_image(file, stored), src), 0) << file;
    }
    const av::ImageInfo info = av::read_image_info(data_path("exif_" + n + ".jpg"));
    EXPECT_EQ(info.orientation, o);
    EXPECT_EQ(info.stored_size, cv::Size(12, 8));
    EXPECT_EQ(av::read_image_size(data_path("exif_" + n + ".jpg")),
              o >= 5 ? cv::Size(8, 12) : cv::Size(12, 8));
  }
  EXPECT_EQ(differing_bytes(av::read_image(data_path("exif_g16_6.tif")),
                            read_raw("exif_g16_6.u16", 12, 8, CV_16UC1)),
            0);
}

TEST(ReadImageReduced, GivesPillowsDraftDecodeExactly) {
  const std::vector<uint8_t> bytes = read_bytes(data_path("draft_refs.txt"));
  std::istringstream manifest(std::string(bytes.begin(), bytes.end()));
  av::ImageReadOptions stored;  // Pillow's draft knows no EXIF: compare in the stored orientation
  stored.apply_exif_orientation = false;
  int cases = 0;
  for (std::string input, ref; manifest >> input;) {
    cv::Size at_least;
    manifest >> at_least.width >> at_least.height >> ref;
    cv::Size full;
    const cv::Mat got = av::read_image_reduced(data_path(input), at_least, &full, stored);
    const cv::Mat want = av::read_image(data_path(ref));
    EXPECT_EQ(got.size(), want.size()) << input << " at least " << at_least;
    EXPECT_EQ(got.type(), want.type()) << input;
    EXPECT_EQ(differing_bytes(got, want), 0) << input << " at least " << at_least;
    EXPECT_EQ(full, av::read_image(data_path(input), stored).size()) << input;
    ++cases;
  }
  EXPECT_EQ(cases, 6);
  // The 1/2, 1/4 and 1/8 cases are all there, and a request as large as the image reads it in full.
  EXPECT_EQ(av::read_image_reduced(data_path("photo_97x61.jpg"), {24, 24}, nullptr).size(), cv::Size(49, 31));
  EXPECT_EQ(av::read_image_reduced(data_path("photo_97x61.jpg"), {12, 12}, nullptr).size(), cv::Size(25, 16));
  EXPECT_EQ(av::read_image_reduced(data_path("photo_50x83.jpg"), {6, 10}, nullptr).size(), cv::Size(7, 11));
  EXPECT_EQ(differing_bytes(av::read_image_reduced(data_path("photo_97x61.jpg"), {49, 31}, nullptr),
                            av::read_image(data_path("photo_97x61.jpg"))),
            0);
}

TEST(ReadImageReduced, AppliesTheOrientationAfterReducing) {
  // exif_6.jpg is stored 12 x 8 and shown 8 x 12: "at least 3 x 2" as shown is 2 x 3 as stored, which 1/2
  // keeps (6 x 4 stored) and 1/4 does not (3 x 2).
  cv::Size full;
  const cv::Mat shown = av::read_image_reduced(data_path("exif_6.jpg"), {3, 2}, &full);
  EXPECT_EQ(full, cv::Size(8, 12));
  EXPECT_EQ(differing_bytes(shown, av::apply_exif_orientation(av::read_image(data_path("exif_6.jpg.draft_2x3.pil.png")), 6)),
            0);
}

TEST(ReadImageReduced, LeavesOtherFormatsAndEmptyRequestsExact) {
  for (const char* name : {"fmt_rgb.png", "fmt_rgb.bmp", "fmt_rgb.tif", "fmt_rgb.webp", "fmt_g16.pgm", "rgba_40x30.png"}) {
    cv::Size full;
    const cv::Mat got = av::read_image_reduced(data_path(name), {1, 1}, &full);
    EXPECT_EQ(differing_bytes(got, av::read_image(data_path(name))), 0) << name;
    EXPECT_EQ(full, got.size()) << name;
  }
  EXPECT_EQ(differing_bytes(av::read_image_reduced(data_path("photo_97x61.jpg"), {}, nullptr),
                            av::read_image(data_path("photo_97x61.jpg"))),
            0);
  // Errors are read_image's: one line naming the file.
  try {
    av::read_image_reduced(data_path("missing.jpg"), {8, 8}, nullptr);
    FAIL() << "no error for a missing file";
  } catch (const av::ImageError& e) {
    EXPECT_NE(std::string(e.what()).find("missing.jpg"), std::string::npos) << e.what();
  }
}

TEST(ReadImageSize, ReadsTheHeaderOfEveryFormat) {
  for (const char* name : {"fmt_rgb.png", "fmt_rgb.bmp", "fmt_rgb.tif", "fmt_rgb.webp", "fmt_rgb.ppm",
                           "fmt_gray.pgm", "fmt_bw.pbm", "fmt_rgba.webp", "fmt_g16.tif", "fmt_g16.pgm"}) {
    EXPECT_EQ(av::read_image_size(data_path(name)), cv::Size(12, 8)) << name;
  }
  EXPECT_EQ(av::read_image_size(data_path("photo_97x61.jpg")), cv::Size(97, 61));
  EXPECT_EQ(av::read_image_size(data_path("exif_6.webp")), cv::Size(8, 12));
  EXPECT_EQ(av::read_image_info(data_path("exif_6.webp")).format, "WebP");
  // Header only: the bomb's size is reported, nothing is decoded.
  EXPECT_EQ(av::read_image_size(data_path("bomb_100000x100000.png")), cv::Size(100000, 100000));
  EXPECT_THROW(av::read_image_size(data_path("missing.png")), av::ImageError);
}

TEST(ReadImage, RefusesADecompressionBombBeforeAllocating) {
  const auto start = std::chrono::steady_clock::now();
  const std::string err = read_error(data_path("bomb_100000x100000.png"));
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_TRUE(contains(err, "100000 x 100000")) << err;
  EXPECT_TRUE(contains(err, "limit")) << err;
  EXPECT_LT(seconds, 1.0);
}

TEST(ReadImage, HonoursPixelAndFileSizeLimits) {
  const std::string photo = data_path("photo_97x61.jpg");
  av::ImageReadOptions o;
  o.max_pixels = 97 * 61;
  EXPECT_EQ(av::read_image(photo, o).size(), cv::Size(97, 61));
  o.max_pixels = 97 * 61 - 1;
  EXPECT_TRUE(contains(read_error(photo, o), "more than the limit of 5916")) << read_error(photo, o);
  av::ImageReadOptions small_file;
  small_file.max_file_bytes = 1000;
  EXPECT_TRUE(contains(read_error(photo, small_file), "more than the limit of 1000"))
      << read_error(photo, small_file);
}

TEST(ReadImage, HostileInputsGiveOneLineErrorsNamingTheFileAndPrintNothing) {
  TempDir dir;
  const std::vector<uint8_t> jpeg = read_bytes(data_path("photo_97x61.jpg"));
  const std::vector<uint8_t> png = read_bytes(data_path("fmt_rgb.png"));
  auto prefix = [](std::vector<uint8_t> v, size_t n) {
    v.resize(n);
    return v;
  };
  // The JPEG's SOF0 declares 65500 x 65500; the PNG's IHDR width 0; a byte of the PNG's IDAT flipped.
  std::vector<uint8_t> jpeg_huge = jpeg;
  for (size_t i = 2; i + 8 < jpeg_huge.size(); ++i) {
    if (jpeg_huge[i] == 0xFF && jpeg_huge[i + 1] == 0xC0) {
      jpeg_huge[i + 5] = jpeg_huge[i + 7] = 0xFF;
      jpeg_huge[i + 6] = jpeg_huge[i + 8] = 0xDC;
      break;
    }
  }
  std::vector<uint8_t> png_zero = png;
  png_zero[16] = png_zero[17] = png_zero[18] = png_zero[19] = 0;
  std::vector<uint8_t> png_flip = png;
  png_flip[png.size() - 20] ^= 0x40;
  const std::string text = "hello, world\n";

  struct Case {
    std::string name;
    std::vector<uint8_t> bytes;
    std::string expect;
  };
  const std::vector<Case> cases = {
      {"empty.png", {}, "file is empty"},
      {"notes.jpg", std::vector<uint8_t>(text.begin(), text.end()), "unknown image format"},
      {"anim.gif", {'G', 'I', 'F', '8', '9', 'a', 1, 0, 1, 0, 0, 0, 0}, "unsupported image format (GIF)"},
      {"half.jpg", prefix(jpeg, jpeg.size() / 2), "JPEG data is truncated"},
      {"cut_header.jpg", prefix(jpeg, 30), "JPEG header is truncated"},
      {"zero_segment.jpg", {0xFF, 0xD8, 0xFF, 0xE0, 0, 0, 0, 0}, "JPEG header is corrupt"},
      {"huge.jpg", jpeg_huge, "65500 x 65500"},
      {"half.png", prefix(png, png.size() / 2), "PNG data is truncated"},
      {"zero.png", png_zero, "declares size 0 x 8"},
      {"flipped.png", png_flip, "CRC mismatch"},
      {"half.tif", prefix(read_bytes(data_path("exif_1.tif")), 300), "TIFF"},
      {"half.webp", prefix(read_bytes(data_path("fmt_rgb.webp")), 200), "WebP data is truncated"},
      {"short.bmp", prefix(read_bytes(data_path("fmt_rgb.bmp")), 330), "BMP pixel data is truncated"},
      {"short.ppm", prefix(read_bytes(data_path("fmt_rgb.ppm")), 290), "PNM pixel data is truncated"},
      {"short_plain.ppm", prefix(read_bytes(data_path("fmt_rgb_plain.ppm")), 400),
       "PNM pixel data is truncated"},
      {"line\nbreak.jpg", std::vector<uint8_t>(text.begin(), text.end()), "line?break.jpg: unknown"},
  };
  std::vector<std::pair<std::string, std::string>> paths;  // path, expected part of the message
  for (const Case& c : cases) {
    write_bytes(dir.file(c.name), c.bytes);
    paths.emplace_back(dir.file(c.name), c.expect);
  }
  paths.emplace_back(dir.file("missing.jpg"), "no such file");
  fs::create_directory(dir.file("folder.jpg"));
  paths.emplace_back(dir.file("folder.jpg"), "is a directory");
  ASSERT_EQ(::mkfifo(dir.file("pipe.png").c_str(), 0600), 0);
  paths.emplace_back(dir.file("pipe.png"), "not a regular file");  // and no hang waiting for a writer
  paths.emplace_back(data_path("bomb_100000x100000.png"), "limit");
  paths.emplace_back(data_path("float.tif"), "unsupported sample type");
  paths.emplace_back(data_path("anim.webp"), "animated WebP");

  for (const auto& [path, expect] : paths) {
    ::testing::internal::CaptureStderr();
    const std::string err = read_error(path);
    const std::string printed = ::testing::internal::GetCapturedStderr();
    std::string shown = path;
    for (char& ch : shown) ch = ch == '\n' ? '?' : ch;
    EXPECT_EQ(err.rfind(shown + ": ", 0), 0u) << err;
    EXPECT_TRUE(contains(err, expect)) << "expected '" << expect << "' in: " << err;
    EXPECT_FALSE(contains(err, "\n")) << err;
    EXPECT_EQ(printed, "") << path;
  }
  EXPECT_THROW(av::read_image_size(dir.file("pipe.png")), av::ImageError);
  EXPECT_THROW(av::read_image_size(dir.file("half.png")), av::ImageError);
}

// Every strict prefix of a valid file is refused (never half a picture), and flipped bytes give a
// picture or an ImageError, nothing else: no crash, no other exception.
TEST(ReadImage, TruncatedAndDamagedFilesNeverCrash) {
  TempDir dir;
  const std::string path = dir.file("fuzz");
  int refused = 0, decoded_damaged = 0;
  ::testing::internal::CaptureStderr();  // libjpeg may still warn about damaged entropy-coded data
  for (const char* name : {"photo_50x83.jpg", "gray_64x48.jpg", "fmt_rgb.png", "fmt_rgba.png", "exif_3.png",
                           "exif_1.tif", "fmt_g16.tif", "fmt_rgb.webp", "exif_6.webp", "fmt_rgb.bmp",
                           "fmt_rgb.ppm", "fmt_g16.pgm", "fmt_bw.pbm", "fmt_gray_plain.pgm"}) {
    const std::vector<uint8_t> bytes = read_bytes(data_path(name));
    const size_t step = bytes.size() > 800 ? 3 : 1;
    for (size_t n = 1; n < bytes.size(); n += step) {
      write_bytes(path, std::vector<uint8_t>(bytes.begin(), bytes.begin() + static_cast<ptrdiff_t>(n)));
      const std::string err = read_error(path);
      EXPECT_FALSE(err.empty()) << name << " cut to " << n << " bytes was decoded";
      EXPECT_FALSE(contains(err, "\n")) << err;
      ++refused;
    }
    for (size_t i = 0; i < bytes.size(); i += step) {
      std::vector<uint8_t> damaged = bytes;
      damaged[i] ^= static_cast<uint8_t>(0x5A + i);
      write_bytes(path, damaged);
      try {
        const cv::Mat m = av::read_image(path);
        EXPECT_FALSE(m.empty());
        ++decoded_damaged;
      } catch (const av::ImageError& e) {
        EXPECT_FALSE(contains(e.what(), "\n")) << e.what();
        ++refused;
      }
    }
  }
  const std::string printed = ::testing::internal::GetCapturedStderr();
  size_t lines = 0;
  for (char ch : printed) lines += ch == '\n';
  std::cout << "[          ] " << refused << " refused, " << decoded_damaged << " damaged files decoded, "
            << lines << " lines on stderr from the decoders\n";
}

TEST(ImageExtensions, KnowsTheSupportedSuffixesCaseInsensitively) {
  for (const char* p :
       {"a.jpg", "b.JPEG", "dir.x/c.Png", "d.tif", "e.TIFF", "f.bmp", "g.webp", "h.ppm", "i.pgm", "j.pnm"}) {
    EXPECT_TRUE(av::has_image_extension(p)) << p;
  }
  for (const char* p : {"a.gif", "b.dcm", "jpg", "dir.jpg/file", "c.jpg.txt", ".hidden", "d."}) {
    EXPECT_FALSE(av::has_image_extension(p)) << p;
  }
  EXPECT_EQ(av::image_extensions().size(), 10u);
}
