// pydicom's public test corpus (Debian python3-pydicom) against references from two other decoders:
// pydicom itself and DCMTK's dcm2pnm / dcmj2pnm / dcml2pnm, extracted by
// tests/data/dicom/make_corpus_reference.py into tests/data/dicom/corpus_reference.json.
//
// Every file either decodes to the stored values both references agree on (exactly), or fails with
// the reason listed below. Where the references disagree, or neither decodes a file we decode, the
// table says which one we follow and why.
#include "vision/dicom.h"

#include "test_dicom_digest.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <map>

namespace {
using attnvision::test::float_digest;
using attnvision::test::int_digest;
using attnvision::vision::DicomError;
using attnvision::vision::DicomReadOptions;
using attnvision::vision::read_dicom;
using Kind = DicomError::Kind;
using nlohmann::json;

const std::string kCorpus = "/usr/lib/python3/dist-packages/pydicom/data/test_files";

json load_reference(const std::string& name) {
  std::ifstream in(std::string(ATTNVISION_TEST_DATA_DIR) + "/dicom/" + name);
  return json::parse(in);
}

// Files that must fail, with the kind of error and a phrase its message must contain.
struct ExpectedFailure {
  Kind kind;
  const char* phrase;
  const char* why;
};

const std::map<std::string, ExpectedFailure>& expected_failures() {
  static const std::map<std::string, ExpectedFailure> table = {
      {"MR_truncated.dcm",
       {Kind::corrupt, "(7FE0,0010) declares 8192 bytes but only 8130 remain", "truncated"}},
      {"rtplan_truncated.dcm", {Kind::corrupt, "declares", "truncated RT plan"}},
      {"JPEG2000-embedded-sequence-delimiter.dcm",
       {Kind::corrupt, "JPEG 2000 frame 1 is",
        "codestream SIZ overwritten; pydicom: decompression bomb, DCMTK: no J2K"}},
      {"meta_missing_tsyntax.dcm", {Kind::corrupt, "missing Rows", "Pixel Data without Image Pixel module"}},
      {"nested_priv_SQ.dcm", {Kind::corrupt, "missing Rows", "Pixel Data without Image Pixel module"}},
      {"no_meta.dcm",
       {Kind::not_dicom, "not a DICOM file", "stray first byte; pydicom finds one bogus element"}},
      {"README.txt", {Kind::not_dicom, "not a DICOM file", "text"}},
      {"dicomdirtests/README.txt", {Kind::not_dicom, "not a DICOM file", "text"}},
      {"dicomdirtests/TINY_ALPHA/README", {Kind::not_dicom, "not a DICOM file", "text"}},
      {"rtplan.dump", {Kind::not_dicom, "not a DICOM file", "text"}},
      {"rtstruct.dump", {Kind::not_dicom, "not a DICOM file", "text"}},
      {"test1.json", {Kind::not_dicom, "not a DICOM file", "JSON"}},
      {"test_PN.json", {Kind::not_dicom, "not a DICOM file", "JSON"}},
      {"zipMR.gz", {Kind::not_dicom, "not a DICOM file", "gzip"}},
  };
  return table;
}

// Decoded files where one reference is wrong, or none decodes.
// pydicom_only / dcmtk_only: compare exactly with that one, not with the other;
// dcmtk_pydicom_close: exactly with DCMTK, within two levels with pydicom (YBR rounding conventions);
// stored_values: both agree on stored values, but DCMTK renders without the modality transform we apply;
// none: no reference decodes it.
enum class Follow { pydicom_only, dcmtk_only, dcmtk_pydicom_close, stored_values, none };
struct Deviation {
  Follow follow;
  const char* why;
};

const std::map<std::string, Deviation>& deviations() {
  static const std::map<std::string, Deviation> table = {
      // dcm2pnm swaps the two 16-bit halves of 32-bit cells in big endian OW Pixel Data; pydicom reads them
      // as
      // big endian 32-bit values, and so do we (the values then equal those of the little endian twin).
      {"rtdose_expb.dcm", {Follow::pydicom_only, "DCMTK misorders 32-bit big endian OW cells"}},
      {"rtdose_expb_1frame.dcm", {Follow::pydicom_only, "DCMTK misorders 32-bit big endian OW cells"}},
      // Uncompressed YBR_FULL_422 to RGB: we reproduce DCMTK's arithmetic exactly; pydicom rounds differently
      // (checked against pydicom within 2 levels below).
      {"SC_ybr_full_422_uncompressed.dcm", {Follow::dcmtk_pydicom_close, "YBR->RGB rounding convention"}},
      // JP2-wrapped J2K: Pillow rejects it, DCMTK has no JPEG 2000; checked by content in
      // TextGbrReadsAsColouredText.
      {"GDCMJ2K_TextGBR.dcm", {Follow::none, "no reference decoder reads it"}},
  };
  return table;
}

void expect_int_digest(const json& ref, const attnvision::test::IntDigest& got, const std::string& what) {
  EXPECT_EQ(ref["shape"].get<std::vector<int64_t>>(), got.shape) << what;
  EXPECT_EQ(ref["min"].get<int64_t>(), got.min) << what;
  EXPECT_EQ(ref["max"].get<int64_t>(), got.max) << what;
  EXPECT_EQ(ref["sum"].get<int64_t>(), got.sum) << what;
  EXPECT_EQ(std::stoull(ref["hash"].get<std::string>()), got.hash) << what;
}

void expect_close_digest(const json& ref, const attnvision::test::IntDigest& got, int64_t tolerance,
                         const std::string& what) {
  EXPECT_EQ(ref["shape"].get<std::vector<int64_t>>(), got.shape) << what;
  EXPECT_NEAR(ref["mean"].get<double>(), got.mean, double(tolerance)) << what;
  const auto samples = ref["samples"].get<std::vector<int64_t>>();
  for (size_t i = 0; i < samples.size(); ++i)
    EXPECT_NEAR(samples[i], got.samples[i], tolerance) << what << " sample " << i;
}

void expect_modality(const json& ref, const std::vector<cv::Mat>& frames, const std::string& what) {
  const auto got = float_digest(frames);
  auto near = [](double a, double b) { return std::abs(a - b) <= 1e-3 + 1e-5 * std::abs(a); };
  EXPECT_PRED2(near, ref["min"].get<double>(), got.min) << what;
  EXPECT_PRED2(near, ref["max"].get<double>(), got.max) << what;
  EXPECT_PRED2(near, ref["mean"].get<double>(), got.mean) << what;
  const auto samples = ref["samples"].get<std::vector<double>>();
  for (size_t i = 0; i < samples.size(); ++i)
    EXPECT_PRED2(near, samples[i], got.samples[i]) << what << " sample " << i;
}

// Our 8-bit rendering through each window the reference rendered (DCMTK: the file's windows, VOI LUTs,
// min-max and presets; numpy: percentiles). Exact, except by one grey level where our modality values
// keep fractions that DCMTK truncates (non-integer rescale) and for percentiles (float32 vs float64
// order statistics).
void expect_windows(const json& windows, const attnvision::vision::DicomFrames& image,
                    bool fractional_rescale, bool trust_dcmtk) {
  for (const auto& [spec, ref] : windows.items()) {
    if (ref.contains("error")) continue;  // DCMTK could not render it (no JPEG 2000 in DCMTK)
    const bool from_dcmtk = spec.rfind("percentile", 0) != 0;
    if (from_dcmtk && !trust_dcmtk) continue;
    const auto window = attnvision::vision::resolve_window(spec, image);
    const auto got = int_digest(attnvision::vision::window_to_8bit(image, window));
    if (fractional_rescale || spec.rfind("percentile", 0) == 0) {
      expect_close_digest(ref, got, 1, "window " + spec);
    } else {
      expect_int_digest(ref, got, "window " + spec);
    }
  }
}

bool fractional_rescale(const attnvision::vision::DicomInfo& info) {
  return info.rescale_slope != std::floor(info.rescale_slope) ||
         info.rescale_intercept != std::floor(info.rescale_intercept);
}

class DicomCorpus : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!std::filesystem::is_directory(kCorpus)) GTEST_SKIP() << "python3-pydicom's corpus is not installed";
  }
};

struct Counts {
  int decoded = 0, failed = 0, non_image = 0;
};

// Checks every entry of a reference file against our reader (see the top of this file).
Counts check_reference(const json& reference, const std::string& root,
                       const std::map<std::string, ExpectedFailure>& failures,
                       const std::map<std::string, Deviation>& deviation_table) {
  Counts counts;
  for (const json& entry : reference["entries"]) {
    const std::string file = entry["file"];
    const std::string path = root + "/" + file;
    SCOPED_TRACE(file);
    const json& pyd = entry["pydicom"];
    const bool has_dcmtk = entry.contains("dcmtk") && entry["dcmtk"]["status"] == "decoded";
    const bool has_pydicom = pyd["status"] == "image";

    DicomReadOptions stored_options;
    stored_options.apply_modality_lut = false;
    stored_options.depth = CV_64F;
    attnvision::vision::DicomFrames stored;
    try {
      stored = read_dicom(path, stored_options);
    } catch (const DicomError& e) {
      const std::string message = e.what();
      EXPECT_EQ(message.rfind(path + ": ", 0), 0u) << "message must start with the path: " << message;
      EXPECT_EQ(message.find('\n'), std::string::npos);
      const auto failure = failures.find(file);
      if (failure != failures.end()) {
        EXPECT_EQ(int(failure->second.kind), int(e.kind())) << message;
        EXPECT_NE(message.find(failure->second.phrase), std::string::npos) << message;
        ++counts.failed;
      } else if (pyd["status"] == "no_pixel_data") {
        EXPECT_EQ(int(Kind::not_image), int(e.kind())) << message;
        EXPECT_NE(message.find("not an image"), std::string::npos) << message;
        ++counts.non_image;
      } else {
        ADD_FAILURE() << "unexpected failure: " << message;
      }
      EXPECT_FALSE(has_dcmtk || has_pydicom) << "a reference decodes it but we fail: " << message;
      continue;
    }
    ++counts.decoded;
    EXPECT_EQ(failures.count(file), 0u) << "expected to fail but decoded";
    const auto got = int_digest(stored.frames);
    const auto deviation = deviation_table.find(file);
    const bool listed = deviation != deviation_table.end();
    const Follow follow = listed ? deviation->second.follow : Follow::none;
    if (!listed) {
      EXPECT_TRUE(has_dcmtk || has_pydicom) << "decoded, but no reference to compare with";
    }
    if (has_dcmtk && follow != Follow::pydicom_only) {
      expect_int_digest(entry["dcmtk"]["stored"], got, "dcmtk");
    }
    if (has_pydicom && follow == Follow::dcmtk_pydicom_close) {
      expect_close_digest(pyd["stored"], got, 2, "pydicom");
    } else if (has_pydicom && follow != Follow::dcmtk_only) {
      expect_int_digest(pyd["stored"], got, "pydicom");
    }
    if (has_pydicom && pyd.contains("modality")) {
      const auto values = read_dicom(path);  // modality values, float32
      expect_modality(pyd["modality"], values.frames, "modality");
      const bool trust_dcmtk = follow != Follow::pydicom_only && follow != Follow::stored_values;
      expect_windows(pyd["windows"], values, fractional_rescale(values.info), trust_dcmtk);
    }
  }
  return counts;
}

TEST_F(DicomCorpus, EveryFileDecodesLikeTheReferencesOrFailsForTheListedReason) {
  const Counts counts =
      check_reference(load_reference("corpus_reference.json"), kCorpus, expected_failures(), deviations());
  // The corpus as Debian ships it (pydicom 2.3): a guard against silently skipping most of it.
  EXPECT_GE(counts.decoded, 60);
  EXPECT_GE(counts.non_image, 40);
  EXPECT_EQ(counts.failed, int(expected_failures().size()));
}

// Our own tiny files (tests/data/dicom/make_synthetic.py) for what the corpus lacks: LUT sequences,
// palettes, planar colour, YBR_FULL, bits above HighBit, MONOCHROME1 windows, enhanced multi-frame.
TEST(DicomSynthetic, EveryFileDecodesLikeTheReferences) {
  const std::map<std::string, ExpectedFailure> failures = {
      {"series/notes.txt", {Kind::not_dicom, "not a DICOM file", "text"}}};
  const std::map<std::string, Deviation> deviation_table = {
      {"ybr_full_8bit.dcm", {Follow::dcmtk_pydicom_close, "YBR->RGB rounding convention"}},
      // pydicom 2.3's convert_color_space handles 8-bit data only.
      {"ybr_full_16bit_planar1.dcm", {Follow::dcmtk_only, "pydicom converts 8-bit YBR only"}},
      // DCMTK 3.6.7's renderer ignores the per-frame Pixel Value Transformation of enhanced objects.
      {"enhanced_ct_3frames.dcm", {Follow::stored_values, "per-frame rescale"}}};
  const Counts counts =
      check_reference(load_reference("synthetic_reference.json"),
                      std::string(ATTNVISION_TEST_DATA_DIR) + "/dicom/synthetic", failures, deviation_table);
  EXPECT_EQ(counts.decoded, 15);
  EXPECT_EQ(counts.failed, 1);
}

// GDCMJ2K_TextGBR.dcm is the words "red", "green", "blue" in those colours on grey; no other decoder here
// reads its JP2-wrapped codestream, so check the content: grey background, and pure red, green and blue
// pixels in three bands from top to bottom.
TEST_F(DicomCorpus, TextGbrReadsAsColouredText) {
  const auto image = read_dicom(kCorpus + "/GDCMJ2K_TextGBR.dcm");
  ASSERT_EQ(image.frames.size(), 1u);
  const cv::Mat& rgb = image.frames[0];
  ASSERT_EQ(rgb.type(), CV_8UC3);
  EXPECT_EQ(rgb.at<cv::Vec3b>(0, 0), cv::Vec3b(128, 128, 128));
  auto mean_row = [&](const cv::Vec3b& colour) {
    double sum = 0;
    int n = 0;
    for (int r = 0; r < rgb.rows; ++r)
      for (int c = 0; c < rgb.cols; ++c)
        if (rgb.at<cv::Vec3b>(r, c) == colour) sum += r, ++n;
    EXPECT_GT(n, 500);
    return n ? sum / n : -1.0;
  };
  const double red = mean_row({255, 0, 0}), green = mean_row({0, 255, 0}), blue = mean_row({0, 0, 255});
  EXPECT_LT(red, green);
  EXPECT_LT(green, blue);
}

// The big endian RT dose files hold the same dose grid as their little endian twins.
TEST_F(DicomCorpus, BigEndianDoseEqualsLittleEndianTwin) {
  const auto le = read_dicom(kCorpus + "/rtdose.dcm"), be = read_dicom(kCorpus + "/rtdose_expb.dcm");
  ASSERT_EQ(le.frames.size(), 15u);
  ASSERT_EQ(be.frames.size(), 15u);
  for (size_t f = 0; f < 15; ++f) EXPECT_EQ(cv::norm(le.frames[f], be.frames[f], cv::NORM_INF), 0.0) << f;
}

}  // namespace
