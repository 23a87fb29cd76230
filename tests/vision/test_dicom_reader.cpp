// Attributes, options and windowing of the DICOM reader on the synthetic files of
// tests/data/dicom/make_synthetic.py: the expected values are the ones that script writes.
#include "vision/dicom.h"

#include <gtest/gtest.h>
#include <opencv2/core.hpp>

#include <cmath>
#include <fstream>
#include <iterator>

namespace {
using namespace attnvision::vision;
using Kind = DicomError::Kind;

std::string synthetic(const std::string& name) {
  return std::string(ATTNVISION_TEST_DATA_DIR) + "/dicom/synthetic/" + name;
}

TEST(DicomReader, WindowsRescaleAndBitsFromTheFile) {
  const DicomInfo info = read_dicom_info(synthetic("ct_signed12_junkbits.dcm"));
  EXPECT_EQ(info.modality, "CT");
  EXPECT_EQ(info.rows, 16);
  EXPECT_EQ(info.columns, 12);
  EXPECT_EQ(info.bits_allocated, 16);
  EXPECT_EQ(info.bits_stored, 12);
  EXPECT_EQ(info.high_bit, 11);
  EXPECT_TRUE(info.is_signed);
  EXPECT_DOUBLE_EQ(info.rescale_slope, 2.5);
  EXPECT_DOUBLE_EQ(info.rescale_intercept, -1024);
  EXPECT_EQ(info.rescale_type, "HU");
  ASSERT_EQ(info.windows.size(), 2u);
  EXPECT_DOUBLE_EQ(info.windows[0].center, 40);
  EXPECT_DOUBLE_EQ(info.windows[0].width, 400);
  EXPECT_EQ(info.windows[0].name, "SOFT TISSUE");
  EXPECT_DOUBLE_EQ(info.windows[1].center, -600);
  EXPECT_EQ(info.windows[1].name, "LUNG");
  EXPECT_EQ(info.transfer_syntax_uid, "1.2.840.10008.1.2.1");
  EXPECT_FALSE(info.lossy);
}

TEST(DicomReader, StoredValuesIgnoreBitsAboveHighBit) {
  DicomReadOptions options;
  options.apply_modality_lut = false;
  const DicomFrames stored = read_dicom(synthetic("ct_signed12_junkbits.dcm"), options);
  double lo = 0, hi = 0;
  cv::minMaxLoc(stored.frames[0], &lo, &hi);
  EXPECT_GE(lo, -2048);  // signed 12-bit range despite random bits 12..15 in every cell
  EXPECT_LE(hi, 2047);
  const DicomFrames modality = read_dicom(synthetic("ct_signed12_junkbits.dcm"));
  EXPECT_FLOAT_EQ(modality.frames[0].at<float>(3, 4), float(stored.frames[0].at<float>(3, 4) * 2.5 - 1024));
}

TEST(DicomReader, ShiftedBitsAndMonochrome1) {
  const DicomFrames image = read_dicom(synthetic("mono1_bits10_shifted.dcm"));
  EXPECT_TRUE(image.info.monochrome1());
  EXPECT_EQ(image.info.bits_stored, 10);
  EXPECT_EQ(image.info.high_bit, 11);
  double lo = 0, hi = 0;
  cv::minMaxLoc(image.frames[0], &lo, &hi);
  EXPECT_GE(lo, 0);
  EXPECT_LE(hi, 1023);
  // MONOCHROME1 displays inverted: the smallest value is the brightest.
  const Window window = minmax_window(image.frames);
  const std::vector<cv::Mat> shown = window_to_8bit(image, window);
  cv::Point low_at, high_at;
  cv::minMaxLoc(image.frames[0], nullptr, nullptr, &low_at, &high_at);
  EXPECT_EQ(shown[0].at<uint8_t>(low_at), 255);
  EXPECT_EQ(shown[0].at<uint8_t>(high_at), 0);
}

TEST(DicomReader, ModalityAndVoiLutSequences) {
  const DicomInfo modality = read_dicom_info(synthetic("modality_lut_8bit.dcm"));
  ASSERT_TRUE(modality.modality_lut.has_value());
  EXPECT_EQ(modality.modality_lut->data.size(), 200u);
  EXPECT_EQ(modality.modality_lut->first_mapped, 10);
  EXPECT_EQ(modality.modality_lut->explanation, "SQUARE");

  const DicomInfo voi = read_dicom_info(synthetic("voi_lut_signed.dcm"));
  ASSERT_EQ(voi.voi_luts.size(), 2u);
  EXPECT_EQ(voi.voi_luts[0].first_mapped, -1000);  // signed data: the descriptor's first value is signed
  EXPECT_EQ(voi.voi_luts[1].first_mapped, 0);
  EXPECT_EQ(voi.voi_luts[0].bits, 12);
  EXPECT_EQ(voi.voi_luts[0].explanation, "CURVE 1");
  EXPECT_TRUE(voi.windows.empty());
}

TEST(DicomReader, ColourLayouts) {
  const DicomFrames palette = read_dicom(synthetic("palette_16bit.dcm"));
  EXPECT_TRUE(palette.info.color());
  EXPECT_EQ(palette.frames[0].type(), CV_16UC3);
  const DicomFrames planar = read_dicom(synthetic("rgb_planar1_2frames.dcm"));
  ASSERT_EQ(planar.frames.size(), 2u);
  EXPECT_EQ(planar.frames[1].type(), CV_8UC3);
  EXPECT_EQ(planar.info.planar_configuration, 1);
  // window_to_8bit passes 8-bit colour through and scales 16-bit colour.
  const auto shown = window_to_8bit(palette, Window{});
  EXPECT_EQ(shown[0].type(), CV_8UC3);
}

TEST(DicomReader, EnhancedMultiFrameGeometryAndPerFrameRescale) {
  DicomReadOptions stored_options;
  stored_options.apply_modality_lut = false;
  const DicomFrames stored = read_dicom(synthetic("enhanced_ct_3frames.dcm"), stored_options);
  const DicomFrames image = read_dicom(synthetic("enhanced_ct_3frames.dcm"));
  const DicomInfo& info = image.info;
  ASSERT_EQ(info.frames, 3);
  ASSERT_TRUE(info.pixel_spacing.has_value());
  EXPECT_DOUBLE_EQ((*info.pixel_spacing)[0], 0.75);
  EXPECT_DOUBLE_EQ((*info.pixel_spacing)[1], 0.8);
  EXPECT_DOUBLE_EQ(info.slice_thickness.value_or(0), 2.5);
  ASSERT_EQ(info.image_positions.size(), 3u);
  for (int k = 0; k < 3; ++k) EXPECT_DOUBLE_EQ(info.image_positions[size_t(k)][2], 50 - 2.5 * k);
  ASSERT_EQ(info.frame_rescale.size(), 3u);
  for (int k = 0; k < 3; ++k) {
    EXPECT_DOUBLE_EQ(info.frame_rescale[size_t(k)][1], -1024 - 10 * k);
    EXPECT_FLOAT_EQ(image.frames[size_t(k)].at<float>(2, 3),
                    stored.frames[size_t(k)].at<float>(2, 3) - 1024 - 10 * k);
  }
  ASSERT_FALSE(info.windows.empty());
  EXPECT_DOUBLE_EQ(info.windows[0].center, 40);
}

TEST(DicomReader, NonImageObjectsAreReportedAsSuch) {
  const std::string sr = "/usr/lib/python3/dist-packages/pydicom/data/test_files/test-SR.dcm";
  if (!std::ifstream(sr)) GTEST_SKIP() << "python3-pydicom's corpus is not installed";
  const DicomInfo info = read_dicom_info(sr);
  EXPECT_FALSE(info.has_pixel_data);
  EXPECT_EQ(info.sop_class_uid, "1.2.840.10008.5.1.4.1.1.88.33");
  try {
    read_dicom(sr);
    FAIL() << "an SR has no pixels";
  } catch (const DicomError& e) {
    EXPECT_EQ(e.kind(), Kind::not_image);
    EXPECT_EQ(std::string(e.what()), sr + ": not an image (ComprehensiveSRStorage, no Pixel Data)");
  }
}

TEST(DicomReader, LimitsRefuseBeforeDecoding) {
  DicomReadOptions small;
  small.max_frame_pixels = 100;  // the file has 16 x 12 = 192
  try {
    read_dicom(synthetic("ct_signed12_junkbits.dcm"), small);
    FAIL();
  } catch (const DicomError& e) {
    EXPECT_EQ(e.kind(), Kind::too_large);
  }
  DicomReadOptions little_memory;
  little_memory.max_decoded_bytes = 3 * 8 * 8 * 4 - 1;  // one byte short of 3 float frames of 8 x 8
  EXPECT_THROW(read_dicom(synthetic("enhanced_ct_3frames.dcm"), little_memory), DicomError);
  little_memory.max_decoded_bytes += 1;
  EXPECT_NO_THROW(read_dicom(synthetic("enhanced_ct_3frames.dcm"), little_memory));
  DicomReadOptions shallow;
  shallow.max_nesting = 1;  // the enhanced CT nests its functional groups two deep
  EXPECT_THROW(read_dicom(synthetic("enhanced_ct_3frames.dcm"), shallow), DicomError);
}

TEST(DicomReader, BufferAndFileReadAlike) {
  const std::string path = synthetic("voi_lut_signed.dcm");
  std::ifstream in(path, std::ios::binary);
  const std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const DicomFrames a = read_dicom(path), b = read_dicom_buffer(bytes.data(), bytes.size(), "memory");
  EXPECT_EQ(cv::norm(a.frames[0], b.frames[0], cv::NORM_INF), 0.0);
  EXPECT_EQ(b.info.path, "memory");
}

// ---- windowing --------------------------------------------------------------------------------------

TEST(DicomWindow, PresetsAndSpecs) {
  EXPECT_EQ(window_preset_names().size(), 5u);
  const Window lung = window_preset("Lung");
  EXPECT_DOUBLE_EQ(lung.center, -600);
  EXPECT_DOUBLE_EQ(lung.width, 1500);
  EXPECT_THROW(window_preset("liver"), std::invalid_argument);
  const DicomFrames ct = read_dicom(synthetic("ct_signed12_junkbits.dcm"));
  EXPECT_EQ(resolve_window("auto", ct).name, "SOFT TISSUE");
  EXPECT_EQ(resolve_window("file:2", ct).name, "LUNG");
  EXPECT_THROW(resolve_window("file:3", ct), std::invalid_argument);
  EXPECT_THROW(resolve_window("voi-lut", ct), std::invalid_argument);
  const Window cw = resolve_window("-100.5,250", ct);
  EXPECT_DOUBLE_EQ(cw.center, -100.5);
  EXPECT_DOUBLE_EQ(cw.width, 250);
  EXPECT_THROW(resolve_window("40,-1", ct), std::invalid_argument);
  EXPECT_THROW(resolve_window("40,", ct), std::invalid_argument);
  EXPECT_THROW(resolve_window("percentile:99,1", ct), std::invalid_argument);
  EXPECT_EQ(resolve_window("bone", ct).name, "bone");
  const DicomFrames voi = read_dicom(synthetic("voi_lut_signed.dcm"));
  EXPECT_TRUE(resolve_window("auto", voi).lut.has_value());
  EXPECT_EQ(resolve_window("voi-lut:2", voi).name, "CURVE 2");
}

// The VOI LUT functions of PS3.3 C.11.2.1.2 evaluated at hand-picked points.
TEST(DicomWindow, VoiFunctionsFollowTheStandard) {
  cv::Mat x = (cv::Mat_<float>(1, 6) << -1000, 0, 39.5, 40, 100, 1000);
  Window linear;
  linear.center = 40;
  linear.width = 101;  // LINEAR: 0 at x <= c - 0.5 - 50 = -10.5, 255 above 89.5
  cv::Mat y = window_to_8bit(x, linear, false);
  EXPECT_EQ(y.at<uint8_t>(0), 0);
  EXPECT_EQ(y.at<uint8_t>(1), int(((0 - 39.5) / 100 + 0.5) * 255));
  EXPECT_EQ(y.at<uint8_t>(2), 127);  // ((39.5 - 39.5) / 100 + 0.5) * 255 = 127.5
  EXPECT_EQ(y.at<uint8_t>(4), 255);
  EXPECT_EQ(window_to_8bit(x, linear, true).at<uint8_t>(0), 255);

  Window exact = linear;
  exact.function = Window::Function::linear_exact;
  exact.width = 100;  // LINEAR_EXACT: ((x - c) / w + 0.5) * 255 inside [c - w/2, c + w/2]
  y = window_to_8bit(x, exact, false);
  EXPECT_EQ(y.at<uint8_t>(1), int((-40.0 / 100 + 0.5) * 255));
  EXPECT_EQ(y.at<uint8_t>(3), 127);

  Window sigmoid = exact;
  sigmoid.function = Window::Function::sigmoid;  // 255 / (1 + exp(-4 (x - c) / w))
  y = window_to_8bit(x, sigmoid, false);
  EXPECT_EQ(y.at<uint8_t>(1), int(255 / (1 + std::exp(-4 * (0 - 40.0) / 100))));
  EXPECT_EQ(y.at<uint8_t>(4), int(255 / (1 + std::exp(-4 * (100 - 40.0) / 100))));
}

}  // namespace
