// Series grouping on the synthetic folder (tests/data/dicom/make_synthetic.py): series A's instance
// numbers disagree with its slice positions on purpose, series B has no positions.
#include "vision/dicom_series.h"

#include <gtest/gtest.h>

#include <filesystem>

namespace {
using namespace attnvision::vision;
namespace fs = std::filesystem;

const std::string kSeries = std::string(ATTNVISION_TEST_DATA_DIR) + "/dicom/synthetic/series";
const std::string kCorpus = "/usr/lib/python3/dist-packages/pydicom/data/test_files";

std::vector<std::string> names(const DicomSeries& s) {
  std::vector<std::string> out;
  for (const DicomInfo& info : s.instances) out.push_back(fs::path(info.path).filename().string());
  return out;
}

TEST(DicomSeries, GroupsBySeriesAndOrdersAlongTheNormal) {
  std::vector<std::string> files;
  for (const auto& entry : fs::directory_iterator(kSeries)) files.push_back(entry.path().string());
  const SeriesScan scan = group_series(files);
  ASSERT_EQ(scan.series.size(), 2u);
  // Series 10 (A): the generator places a0..a3 at offsets 10, -5, 0, 5 along the oblique normal.
  EXPECT_EQ(scan.series[0].series_number.value_or(0), 10);
  EXPECT_EQ(scan.series[0].ordering, "position");
  EXPECT_EQ(names(scan.series[0]), (std::vector<std::string>{"a1.dcm", "a2.dcm", "a3.dcm", "a0.dcm"}));
  EXPECT_EQ(scan.series[0].description, "Oblique A");
  EXPECT_TRUE(scan.series[0].warnings.empty());
  // Series 11 (B): no positions; instance numbers 2 (b0) and 1 (b1).
  EXPECT_EQ(scan.series[1].ordering, "instance_number");
  EXPECT_EQ(names(scan.series[1]), (std::vector<std::string>{"b1.dcm", "b0.dcm"}));
  ASSERT_EQ(scan.skipped.size(), 1u);  // notes.txt
  EXPECT_TRUE(scan.skipped[0].error);
  EXPECT_NE(scan.skipped[0].reason.find("not a DICOM file"), std::string::npos);
}

TEST(DicomSeries, NonImageObjectsAreSkippedNotFatal) {
  if (!fs::is_directory(kCorpus)) GTEST_SKIP() << "python3-pydicom's corpus is not installed";
  const std::vector<std::string> files = {kSeries + "/a0.dcm",       kCorpus + "/test-SR.dcm",
                                          kCorpus + "/rtplan.dcm",   kCorpus + "/dicomdirtests/DICOMDIR",
                                          kCorpus + "/CT_small.dcm", kCorpus + "/MR_small.dcm"};
  const SeriesScan scan = group_series(files);
  EXPECT_EQ(scan.series.size(), 3u);  // a0, CT_small, MR_small: three series
  ASSERT_EQ(scan.skipped.size(), 3u);
  for (const auto& skipped : scan.skipped) {
    EXPECT_FALSE(skipped.error) << skipped.path;
    EXPECT_EQ(skipped.reason.rfind("not an image (", 0), 0u) << skipped.reason;
  }
}

}  // namespace
