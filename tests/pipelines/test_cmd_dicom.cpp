// The `dicom` subcommand through its CLI11 definition: outputs, exit codes and one-line errors.
// Rendered PNGs are compared with DCMTK's dcm2pnm (an independent renderer), TIFFs with Pillow's reading.
#include "pipelines/commands/cmd_dicom.h"

#include "vision/dicom.h"

#include <gtest/gtest.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace {
namespace fs = std::filesystem;
using nlohmann::json;

const std::string kData = std::string(ATTNVISION_TEST_DATA_DIR) + "/dicom";

struct Result {
  int rc = -1;
  std::string out, err;
  std::vector<std::string> err_lines() const {
    std::vector<std::string> lines;
    std::istringstream in(err);
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    return lines;
  }
  std::vector<json> out_json() const {
    std::vector<json> objects;
    std::istringstream in(out);
    for (std::string line; std::getline(in, line);) objects.push_back(json::parse(line));
    return objects;
  }
};

Result dicom(const std::vector<std::string>& args) {
  CLI::App app("dicom");
  const attnvision::pipelines::CommandRun run = attnvision::pipelines::define_dicom(app);
  std::vector<const char*> argv = {"dicom"};
  for (const std::string& a : args) argv.push_back(a.c_str());
  app.parse(int(argv.size()), argv.data());
  Result r;
  testing::internal::CaptureStdout();
  testing::internal::CaptureStderr();
  r.rc = run();
  r.out = testing::internal::GetCapturedStdout();
  r.err = testing::internal::GetCapturedStderr();
  return r;
}

std::string shell(const std::string& command) {
  std::string out;
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  std::array<char, 4096> buffer{};
  while (pipe && fgets(buffer.data(), int(buffer.size()), pipe)) out += buffer.data();
  if (pipe) pclose(pipe);
  return out;
}

class CmdDicom : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("attnvision_cmd_dicom_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string out(const std::string& name) const { return (dir_ / name).string(); }
  fs::path dir_;
};

TEST_F(CmdDicom, InfoPrintsOneJsonObjectPerFileAndOneLinePerError) {
  const std::string ct = kData + "/synthetic/ct_signed12_junkbits.dcm";
  const std::string broken = kData + "/hostile/truncated_pixels.dcm";
  const Result r = dicom({ct, broken, kData + "/synthetic/enhanced_ct_3frames.dcm", "no/such.dcm"});
  EXPECT_EQ(r.rc, 1);
  const std::vector<json> objects = r.out_json();
  ASSERT_EQ(objects.size(), 2u) << r.out;
  EXPECT_EQ(objects[0]["path"], ct);
  EXPECT_EQ(objects[0]["rows"], 16);
  EXPECT_EQ(objects[0]["columns"], 12);
  EXPECT_EQ(objects[0]["photometric"], "MONOCHROME2");
  EXPECT_EQ(objects[0]["transfer_syntax"]["uid"], "1.2.840.10008.1.2.1");
  EXPECT_EQ(objects[0]["rescale"]["slope"], 2.5);
  EXPECT_EQ(objects[0]["windows"][1]["explanation"], "LUNG");
  EXPECT_EQ(objects[1]["frames"], 3);
  EXPECT_EQ(objects[1]["spacing"], json({0.75, 0.8}));
  const auto errors = r.err_lines();
  ASSERT_EQ(errors.size(), 2u) << r.err;
  EXPECT_EQ(errors[0], "no/such.dcm: no such file or directory");
  EXPECT_EQ(errors[1].rfind(broken + ": ", 0), 0u) << errors[1];
}

TEST_F(CmdDicom, NonImageObjectsAreReportedNotFailed) {
  const std::string sr = "/usr/lib/python3/dist-packages/pydicom/data/test_files/test-SR.dcm";
  if (!fs::exists(sr)) GTEST_SKIP() << "python3-pydicom's corpus is not installed";
  const Result info = dicom({sr, "--info"});
  EXPECT_EQ(info.rc, 0);
  const auto objects = info.out_json();
  ASSERT_EQ(objects.size(), 1u);
  EXPECT_EQ(objects[0]["image"], false);
  EXPECT_EQ(objects[0]["sop_class"], "ComprehensiveSRStorage");
  const Result png = dicom({sr, "--png", out("sr.png")});
  EXPECT_EQ(png.rc, 0);
  EXPECT_EQ(png.err, sr + ": skipped, not an image (ComprehensiveSRStorage, no Pixel Data)\n");
  EXPECT_FALSE(fs::exists(out("sr.png")));
}

TEST_F(CmdDicom, PngEqualsDcm2pnmRendering) {
  if (shell("command -v dcm2pnm").empty()) GTEST_SKIP() << "DCMTK's command-line tools are not installed";
  const std::string file = kData + "/synthetic/series/a0.dcm";
  for (const auto& [spec, dcmtk] : std::vector<std::pair<std::string, std::string>>{
           {"lung", "+Ww -600 1500"}, {"40,400", "+Ww 40 400"}, {"minmax", "+Wm"}}) {
    SCOPED_TRACE(spec);
    const Result r = dicom({file, "--window", spec, "--png", out("a0.png")});
    ASSERT_EQ(r.rc, 0) << r.err;
    shell("dcm2pnm " + dcmtk + " +op '" + file + "' '" + out("a0.pgm") + "'");
    const cv::Mat ours = cv::imread(out("a0.png"), cv::IMREAD_UNCHANGED);
    const cv::Mat theirs = cv::imread(out("a0.pgm"), cv::IMREAD_UNCHANGED);
    ASSERT_FALSE(ours.empty());
    ASSERT_FALSE(theirs.empty());
    EXPECT_EQ(cv::norm(ours, theirs, cv::NORM_INF), 0.0);
  }
}

TEST_F(CmdDicom, RawWritesFloatTiffPagesOfModalityValues) {
  const std::string file = kData + "/synthetic/enhanced_ct_3frames.dcm";
  const Result r = dicom({file, "--raw", out("ct.tiff")});
  ASSERT_EQ(r.rc, 0) << r.err;
  // Pillow reads it as 32-bit float pages ("F").
  const std::string pil = shell("/usr/bin/python3 -c \"from PIL import Image; im = Image.open('" +
                                out("ct.tiff") + "'); print(im.mode, im.n_frames, im.size)\"");
  EXPECT_EQ(pil, "F 3 (8, 8)\n");
  std::vector<cv::Mat> pages;
  ASSERT_TRUE(cv::imreadmulti(out("ct.tiff"), pages, cv::IMREAD_UNCHANGED));
  const auto image = attnvision::vision::read_dicom(file);
  ASSERT_EQ(pages.size(), 3u);
  for (size_t f = 0; f < 3; ++f) EXPECT_EQ(cv::norm(pages[f], image.frames[f], cv::NORM_INF), 0.0);
}

TEST_F(CmdDicom, ColourRawHasThreeSamplesPerPixel) {
  const std::string file = kData + "/synthetic/rgb_planar1_2frames.dcm";
  const Result r = dicom({file, "--raw", out("rgb.tiff"), "--png", out("rgb.png")});
  ASSERT_EQ(r.rc, 0) << r.err;
  // Baseline TIFF tags of the first page, read by hand: no compression, RGB, 3 samples of IEEE float.
  const std::string tags = shell(
      "/usr/bin/python3 -c \"import struct; d = open('" + out("rgb.tiff") +
      "', 'rb').read(); o = struct.unpack('<I', d[4:8])[0]; n = struct.unpack('<H', d[o:o + 2])[0]; "
      "t = {struct.unpack('<H', d[o + 2 + 12 * i:o + 4 + 12 * i])[0]: d[o + 10 + 12 * i:o + 14 + 12 * i] "
      "for i in range(n)}; v = lambda k: struct.unpack('<H', t[k][:2])[0]; "
      "print(v(259), v(262), v(277), struct.unpack('<HHH', d[struct.unpack('<I', t[339])[0]:][:6]))\"");
  EXPECT_EQ(tags, "1 2 3 (3, 3, 3)\n");
  std::vector<cv::Mat> pages;
  ASSERT_TRUE(cv::imreadmulti(out("rgb.tiff"), pages, cv::IMREAD_UNCHANGED));
  ASSERT_EQ(pages.size(), 2u);
  EXPECT_EQ(pages[0].type(), CV_32FC3);
  const auto image = attnvision::vision::read_dicom(file);
  cv::Mat rgb;
  cv::cvtColor(pages[1], rgb, cv::COLOR_BGR2RGB);  // OpenCV hands TIFF RGB back as BGR
  cv::Mat expected;
  image.frames[1].convertTo(expected, CV_32FC3);
  EXPECT_EQ(cv::norm(rgb, expected, cv::NORM_INF), 0.0);
  // Two frames: two PNGs with a frame suffix.
  EXPECT_TRUE(fs::exists(out("rgb_0001.png")));
  EXPECT_TRUE(fs::exists(out("rgb_0002.png")));
}

TEST_F(CmdDicom, FolderToFolderAndSeries) {
  const std::string folder = kData + "/synthetic/series";
  const Result r = dicom({folder, "--png", out("pngs"), "--series"});
  EXPECT_EQ(r.rc, 0) << r.err;
  for (const char* name : {"a0.png", "a1.png", "a2.png", "a3.png", "b0.png", "b1.png"})
    EXPECT_TRUE(fs::exists(out("pngs/") + name)) << name;
  EXPECT_EQ(r.err, folder + "/notes.txt: skipped, not a DICOM file\n");
  const auto series = r.out_json();
  ASSERT_EQ(series.size(), 2u);
  EXPECT_EQ(series[0]["ordering"], "position");
  EXPECT_EQ(series[0]["files"][0], folder + "/a1.dcm");
  EXPECT_EQ(series[0]["files"][3], folder + "/a0.dcm");
  EXPECT_EQ(series[1]["ordering"], "instance_number");
}

TEST_F(CmdDicom, CheckDecodesAndReportsOnlyFailures) {
  const Result r = dicom({kData + "/synthetic", "--check"});
  EXPECT_EQ(r.rc, 0) << r.err;
  EXPECT_TRUE(r.out.empty()) << r.out;
  const Result bad =
      dicom({kData + "/hostile/jpeg_bomb.dcm", kData + "/synthetic/palette_16bit.dcm", "--check"});
  EXPECT_EQ(bad.rc, 1);
  ASSERT_EQ(bad.err_lines().size(), 1u) << bad.err;
  EXPECT_NE(bad.err.find("JPEG frame 1 is 65000x65000x1"), std::string::npos) << bad.err;
}

TEST_F(CmdDicom, HelpShowsDefaults) {
  CLI::App app("dicom");
  attnvision::pipelines::define_dicom(app);
  const std::string help = app.help();
  EXPECT_NE(help.find("--window"), std::string::npos);
  EXPECT_NE(help.find("--window TEXT=auto"), std::string::npos) << help;
}

TEST_F(CmdDicom, BadWindowIsOneLinePerFile) {
  const Result r = dicom({kData + "/synthetic/series/a0.dcm", "--window", "liver", "--png", out("x.png")});
  EXPECT_EQ(r.rc, 1);
  const auto errors = r.err_lines();
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_NE(errors[0].find("unknown window preset 'liver'"), std::string::npos) << errors[0];
}

}  // namespace
