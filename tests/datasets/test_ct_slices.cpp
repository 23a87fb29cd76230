// A phantom folder as the anomaly model's training set: lesions.json read back, every slice on the model grid
// with its lesion mask on the same grid, a lesion visible where the truth says it is, and one-line errors for a broken set.
#include "datasets/ct_slices.h"
#include "datasets/lesion_truth.h"
#include "datasets/preprocess.h"
#include "datasets/synth/phantoms.h"
#include "test_util.h"
#include "vision/dicom.h"
#include "vision/image_io.h"

#include <opencv2/core.hpp>

#include <torch/torch.h>

#include <filesystem>

namespace attnvision::datasets {
namespace {

vision::CtInputSpec spec() {
  models::ModelCfg cfg;
  cfg.name = "t";
  cfg.task = "anomaly";
  cfg.in_chans = 2;
  cfg.input_size = {2, 128, 128};
  cfg.ct.spacing_mm = 3.0;
  cfg.ct.windows = {"lung", "40,400"};
  return ct_input_spec_for(cfg);
}

// `series` series of 256 px phantoms (seed 11) written to `dir`.
synth::PhantomSetSummary write_phantoms(const testing::ScratchDir& dir, int64_t series) {
  synth::PhantomOptions o;
  o.seed = 11;
  o.size = 256;
  return synth::write_phantom_set(o, series, dir.path().string());
}

TEST(CtAnomalySet, RefusesASetLargerThanItsLimitBeforeDecoding) {
  testing::ScratchDir dir;
  const synth::PhantomSetSummary summary = write_phantoms(dir, 1);
  // Two windows and a mask: three bytes per grid pixel and slice.
  const int64_t needed = summary.slices * 3 * 128 * 128;
  try {
    load_ct_anomaly_set(dir.path().string(), spec(), needed - 1);
    FAIL() << "a set one byte over its limit was loaded";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(dir.path().string() + ": " + std::to_string(summary.slices) + " slices"),
              std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("MiB limit"), std::string::npos) << e.what();
  }
  EXPECT_EQ(load_ct_anomaly_set(dir.path().string(), spec(), needed).size(), summary.slices);
  EXPECT_GE(ct_set_budget(), int64_t{1} << 30);  // any machine that trains has a gigabyte and a half
}

TEST(CtAnomalySet, EverySliceOnTheModelGridLabelledByItsLesions) {
  testing::ScratchDir dir;
  const synth::PhantomSetSummary summary = write_phantoms(dir, 2);
  const std::vector<TruthSeries> truth = read_lesion_truth(dir.path().string());
  ASSERT_EQ(truth.size(), 2u);
  const LabeledImages set = load_ct_anomaly_set(dir.path().string(), spec());
  ASSERT_EQ(set.size(), summary.slices);
  EXPECT_EQ(set.images.sizes(), (std::vector<int64_t>{summary.slices, 2, 128, 128}));
  EXPECT_EQ(set.labels.sizes(), (std::vector<int64_t>{summary.slices, 128, 128}));
  EXPECT_EQ(set.labels.max().item<int64_t>(), 1);
  const torch::Tensor labels = slice_labels(set.labels);
  EXPECT_EQ(labels.sum().item<int64_t>(), summary.slices - summary.clean_slices);
  EXPECT_EQ(set.classes, (std::vector<std::string>{"clean", "lesion"}));
  int64_t row = 0;
  for (const TruthSeries& s : truth)
    for (const TruthSlice& slice : s.slices) {
      EXPECT_EQ(labels[row].item<int64_t>(), slice.lesions.empty() ? 0 : 1) << slice.file;
      EXPECT_TRUE(std::filesystem::exists(slice.file));
      if (!slice.lesions.empty()) {
        // The mask on the model grid covers the lesions' area in mm^2 (plus at most a pixel's rim: any coverage
        // counts), and lies where the lesions are: their pixels are brighter or darker than the slice around.
        const vision::DicomFrames dicom = vision::read_dicom(slice.file);
        const double source_mm = (*dicom.info.pixel_spacing)[0];
        const cv::Mat source_mask = vision::read_image(slice.mask);
        const double area_mm2 = cv::countNonZero(source_mask) * source_mm * source_mm;
        const double grid_mm2 = set.labels[row].sum().item<double>() * 3.0 * 3.0;
        EXPECT_GE(grid_mm2, 0.9 * area_mm2) << slice.file;
        EXPECT_LE(grid_mm2, 2.0 * area_mm2 + 3 * 9.0 * 30) << slice.file;
      }
      ++row;
    }
}

TEST(CtAnomalySet, AMissingOrBrokenTruthFileIsOneLineNamingIt) {
  testing::ScratchDir dir;
  EXPECT_THROW(read_lesion_truth(dir.path().string()), LesionTruthError);
  testing::write_text(dir / "lesions.json", R"({"series": [{"folder": "a", "slices": []}]})");
  try {
    read_lesion_truth(dir.path().string());
    FAIL();
  } catch (const LesionTruthError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("lesions.json"), std::string::npos);
    EXPECT_NE(what.find("series_instance_uid"), std::string::npos);
    EXPECT_EQ(what.find('\n'), std::string::npos);
  }
}

TEST(CtInputSpecFor, WindowsArePresetsOrCenterWidth) {
  const vision::CtInputSpec s = spec();
  ASSERT_EQ(s.windows.size(), 2u);
  EXPECT_EQ(s.windows[0].center, -600);
  EXPECT_EQ(s.windows[1].center, 40);
  EXPECT_EQ(s.windows[1].width, 400);
  models::ModelCfg cfg;
  cfg.task = "anomaly";
  cfg.ct.windows = {"lungs"};
  EXPECT_THROW(ct_input_spec_for(cfg), std::invalid_argument);
  cfg.ct.windows = {"40,-1"};
  EXPECT_THROW(ct_input_spec_for(cfg), std::invalid_argument);
}

}  // namespace
}  // namespace attnvision::datasets
