// Secondary Capture output: valid for dciodvfy (dicom3tools), readable by DCMTK's dcm2pnm / dcmdump with
// the pixels we wrote, in the source's study with references back to the source.
#include "vision/dicom_writer.h"
#include "test_util.h"

#include <gtest/gtest.h>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <array>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <set>

namespace {
using namespace attnvision::vision;
namespace fs = std::filesystem;

std::string synthetic(const std::string& name) {
  return std::string(ATTNVISION_TEST_DATA_DIR) + "/dicom/synthetic/" + name;
}

std::string run(const std::string& command) { return attnvision::testing::run_shell(command); }

bool have(const std::string& tool) { return !run("command -v " + tool).empty(); }

// One attribute as dcmdump prints it (a path like 0008,2112.0008,1155 reaches into a sequence): the
// text between [ and ] on the line of the last tag of the path.
std::string dump_value(const std::string& file, const std::string& tag) {
  std::string leaf = "(" + tag.substr(tag.rfind('.') == std::string::npos ? 0 : tag.rfind('.') + 1) + ")";
  for (char& c : leaf) c = char(std::tolower(static_cast<unsigned char>(c)));
  const std::string line = run("dcmdump -q +P " + tag + " '" + file + "' | grep -F '" + leaf + "' | head -1");
  const size_t open = line.find('['), close = line.find(']');
  if (open != std::string::npos && close != std::string::npos) return line.substr(open + 1, close - open - 1);
  return line;
}

cv::Mat pattern(int rows, int cols) {
  cv::Mat rgb(rows, cols, CV_8UC3);
  for (int r = 0; r < rows; ++r)
    for (int c = 0; c < cols; ++c)
      rgb.at<cv::Vec3b>(r, c) = cv::Vec3b(uint8_t(r * 13), uint8_t(c * 7), uint8_t(r * c));
  return rgb;
}

class DicomWriter : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("attnvision_sc_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string out(const std::string& name) const { return (dir_ / name).string(); }
  fs::path dir_;
};

TEST_F(DicomWriter, SecondaryCaptureIsValidAndInTheSourceStudy) {
  const std::string source = synthetic("ct_signed12_junkbits.dcm");
  const cv::Mat rgb = pattern(40, 30);
  SecondaryCaptureOptions options;
  options.series_description = "Grad-CAM overlay";
  options.derivation_description = "Grad-CAM of resnet18 layer4, jet colour map, alpha 0.4";
  const std::string path = out("sc.dcm");
  const std::string uid = write_secondary_capture(source, rgb, path, options);
  ASSERT_TRUE(fs::exists(path));
  EXPECT_EQ(uid.rfind("2.25.", 0), 0u);

  // Our reader: same pixels, same study, new series.
  const DicomFrames back = read_dicom(path);
  const DicomInfo source_info = read_dicom_info(source);
  ASSERT_EQ(back.frames.size(), 1u);
  EXPECT_EQ(cv::norm(back.frames[0], rgb, cv::NORM_INF), 0.0);
  EXPECT_EQ(back.info.sop_class_uid, "1.2.840.10008.5.1.4.1.1.7");
  EXPECT_EQ(back.info.sop_instance_uid, uid);
  EXPECT_EQ(back.info.study_instance_uid, source_info.study_instance_uid);
  EXPECT_NE(back.info.series_instance_uid, source_info.series_instance_uid);
  EXPECT_EQ(back.info.series_description, "Grad-CAM overlay");

  // DCMTK's tools read it back: dcm2pnm renders our pixels, dcmdump shows the references.
  if (!have("dcm2pnm")) GTEST_SKIP() << "DCMTK's command-line tools are not installed";
  run("dcm2pnm +op '" + path + "' '" + out("sc.ppm") + "'");
  cv::Mat ppm = cv::imread(out("sc.ppm"), cv::IMREAD_COLOR);
  ASSERT_FALSE(ppm.empty());
  cv::cvtColor(ppm, ppm, cv::COLOR_BGR2RGB);
  EXPECT_EQ(cv::norm(ppm, rgb, cv::NORM_INF), 0.0);
  EXPECT_EQ(dump_value(path, "0010,0010"), "Synthetic^Phantom");
  EXPECT_EQ(dump_value(path, "0010,0020"), "SYN001");
  EXPECT_EQ(dump_value(path, "0008,0050"), "ACC1");
  EXPECT_EQ(dump_value(path, "0008,2111"), options.derivation_description);
  EXPECT_EQ(dump_value(path, "0008,2112.0008,1155"), source_info.sop_instance_uid);  // SourceImageSequence
  EXPECT_EQ(dump_value(path, "0008,1140.0008,1155"),
            source_info.sop_instance_uid);  // ReferencedImageSequence
  EXPECT_EQ(dump_value(path, "0008,0064"), "WSD");
  EXPECT_EQ(dump_value(path, "0020,0011"), "1001");  // the source's series number + 1000
}

TEST_F(DicomWriter, PassesDciodvfyWithoutErrors) {
  if (!have("dciodvfy")) GTEST_SKIP() << "dicom3tools (dciodvfy) is not installed";
  for (const char* name : {"ct_signed12_junkbits.dcm", "enhanced_ct_3frames.dcm", "palette_16bit.dcm"}) {
    SCOPED_TRACE(name);
    SecondaryCaptureOptions options;
    options.source_frame = 1;
    const std::string path = out(std::string(name) + ".sc.dcm");
    write_secondary_capture(synthetic(name), pattern(64, 48), path, options);
    const std::string report = run("dciodvfy '" + path + "'");
    EXPECT_EQ(report.find("Error"), std::string::npos) << report;
    EXPECT_NE(report.find("SCImage"), std::string::npos) << report;
  }
}

TEST_F(DicomWriter, MultiFrameSourceFrameAndSharedSeries) {
  if (!have("dcmdump")) GTEST_SKIP() << "DCMTK's command-line tools are not installed";
  SecondaryCaptureOptions options;
  options.series_instance_uid = new_dicom_uid();
  std::set<std::string> instances;
  for (int frame = 0; frame < 3; ++frame) {
    options.source_frame = frame;
    options.instance_number = frame + 1;
    const std::string path = out("f" + std::to_string(frame) + ".dcm");
    instances.insert(
        write_secondary_capture(synthetic("enhanced_ct_3frames.dcm"), pattern(8, 8), path, options));
    EXPECT_EQ(dump_value(path, "0008,2112.0008,1160"), std::to_string(frame + 1));  // ReferencedFrameNumber
    EXPECT_EQ(read_dicom_info(path).series_instance_uid, options.series_instance_uid);
  }
  EXPECT_EQ(instances.size(), 3u);
}

TEST(DicomUid, UuidDerivedAndUnique) {
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    const std::string uid = new_dicom_uid();
    ASSERT_EQ(uid.rfind("2.25.", 0), 0u);
    ASSERT_LE(uid.size(), 64u);
    ASSERT_EQ(uid.find_first_not_of("0123456789", 5), std::string::npos) << uid;
    ASSERT_NE(uid[5], '0') << uid;  // no leading zero in a UID component
    seen.insert(uid);
  }
  EXPECT_EQ(seen.size(), 1000u);
}

TEST_F(DicomWriter, ErrorsNameTheFile) {
  EXPECT_THROW(write_secondary_capture(out("missing.dcm"), pattern(4, 4), out("x.dcm")), DicomError);
  try {
    write_secondary_capture(synthetic("ct_signed12_junkbits.dcm"), cv::Mat(4, 4, CV_8UC1), out("x.dcm"));
    FAIL();
  } catch (const std::runtime_error& e) {
    EXPECT_EQ(std::string(e.what()).rfind(out("x.dcm") + ": ", 0), 0u) << e.what();
  }
  const std::string no_study = std::string(ATTNVISION_TEST_DATA_DIR) + "/dicom/hostile/windows_garbage.dcm";
  EXPECT_THROW(write_secondary_capture(no_study, pattern(4, 4), out("x.dcm")), DicomError);
  EXPECT_FALSE(fs::exists(out("x.dcm")));
}

}  // namespace
