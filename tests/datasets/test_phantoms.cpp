// CT phantoms: the documented distribution, anatomy along the body, tissue HU, lesions (inside their organ,
// masks exactly their pixels, size and contrast), noise, stored-value formats, determinism, speed, and the
// written set read back through the project's own DICOM reader (and dicom3tools' dciodvfy when installed).
#include "datasets/synth/phantoms.h"

#include "test_util.h"
#include "vision/dicom.h"
#include "vision/dicom_ct_writer.h"
#include "vision/files/atomic_write.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <sstream>

namespace sy = attnvision::datasets::synth;
namespace vi = attnvision::vision;
namespace fs = std::filesystem;
using attnvision::testing::ScratchDir;
using nlohmann::json;
using sy::Tissue;

namespace {

constexpr double kPi = 3.14159265358979323846;
constexpr const char* kCtImageStorage = "1.2.840.10008.5.1.4.1.1.2";

sy::PhantomOptions options(uint64_t seed, int size = 256) {
  sy::PhantomOptions o;
  o.seed = seed;
  o.size = size;
  return o;
}

int64_t count_tissue(const cv::Mat& tissue, Tissue t) {
  return cv::countNonZero(tissue == static_cast<uint8_t>(t));
}

cv::Mat tissue_mask(const cv::Mat& tissue, const std::vector<Tissue>& tissues) {
  cv::Mat mask = cv::Mat::zeros(tissue.size(), CV_8UC1);
  for (const Tissue t : tissues) mask |= tissue == static_cast<uint8_t>(t);
  return mask;
}

// The same series with its slice 0 at `level_mm` below the lung apex.
sy::PhantomSeries at_level(sy::PhantomSeries series, double level_mm) {
  series.first_level_mm = level_mm;
  return series;
}

// The same series without noise or blur: pixels are then exactly base HU + texture (+ lesion).
sy::PhantomSeries noiseless(sy::PhantomSeries series) {
  series.noise_hu = 0.0;
  series.blur_px = 0.0;
  return series;
}

double mean_where(const cv::Mat& hu, const cv::Mat& mask) { return cv::mean(hu, mask)[0]; }

double median_where(const cv::Mat& hu, const cv::Mat& mask) {
  std::vector<float> values;
  for (int y = 0; y < hu.rows; ++y)
    for (int x = 0; x < hu.cols; ++x)
      if (mask.at<uint8_t>(y, x)) values.push_back(hu.at<float>(y, x));
  std::nth_element(values.begin(), values.begin() + values.size() / 2, values.end());
  return values[values.size() / 2];
}

cv::Mat all_lesions(const sy::PhantomSlice& s) {
  cv::Mat all = cv::Mat::zeros(s.hu.size(), CV_8UC1);
  for (const sy::PhantomLesion& lesion : s.lesions) all |= lesion.mask;
  return all;
}

cv::Mat eroded(const cv::Mat& mask, int r) {
  cv::Mat out;
  cv::erode(mask, out, cv::getStructuringElement(cv::MORPH_ELLIPSE, cv::Size(2 * r + 1, 2 * r + 1)));
  return out;
}

// The largest over the smallest distance from the centre to the outline (1 for a disc, up to the pixel
// grid's roughness).
double radius_ratio(const sy::PhantomLesion& lesion) {
  const cv::Mat edge = lesion.mask & ~eroded(lesion.mask, 1);
  double lo = 1e9, hi = 0.0;
  for (int y = 0; y < edge.rows; ++y)
    for (int x = 0; x < edge.cols; ++x)
      if (edge.at<uint8_t>(y, x)) {
        const double r = std::hypot(x - lesion.center_px.x, y - lesion.center_px.y);
        lo = std::min(lo, r), hi = std::max(hi, r);
      }
  return hi / std::max(lo, 0.5);
}

// The pixels between `inner` and `outer` pixels from the mask's pixels (a ring around a lesion).
cv::Mat ring_around(const cv::Mat& mask, int inner, int outer) {
  const auto grown = [&](int r) {
    cv::Mat out;
    cv::dilate(mask, out, cv::getStructuringElement(cv::MORPH_ELLIPSE, cv::Size(2 * r + 1, 2 * r + 1)));
    return out;
  };
  return grown(outer) & ~grown(inner);
}

std::string run(const std::string& command) { return attnvision::testing::run_shell(command); }

json read_json(const fs::path& path) {
  std::ifstream in(path);
  return json::parse(in);
}

TEST(PhantomSeries, DrawsTheDocumentedDistribution) {
  std::set<int> sizes, bits;
  std::set<bool> signs, correlated;
  for (int64_t k = 0; k < 40; ++k) {
    const sy::PhantomSeries s = sy::draw_phantom_series(options(3, 0), k);
    sizes.insert(s.size);
    bits.insert(s.dicom.bits_stored);
    signs.insert(s.dicom.is_signed);
    correlated.insert(s.noise_correlation_px > 0.0);
    const double lo = s.size == 512 ? 0.6 : 1.2, hi = s.size == 512 ? 0.9 : 1.8;
    EXPECT_GE(s.pixel_spacing, lo);
    EXPECT_LE(s.pixel_spacing, hi);
    EXPECT_GE(s.slice_count, 8);
    EXPECT_LE(s.slice_count, 24);
    EXPECT_GE(s.slice_thickness, 1.0);
    EXPECT_LE(s.slice_thickness, 5.0);
    EXPECT_GE(s.noise_hu, 5.0);
    EXPECT_LE(s.noise_hu, 25.0);
    EXPECT_EQ(s.folder, "series_3_" + std::string(k < 10 ? "000" : "00") + std::to_string(k));
    EXPECT_EQ(s.dicom.rescale_intercept, -1024.0);
    EXPECT_GE(s.dicom.windows.size(), 2u);
    EXPECT_NE(s.dicom.patient_name.find('^'), std::string::npos) << s.dicom.patient_name;
    EXPECT_EQ(s.dicom.series_instance_uid.rfind("2.25.", 0), 0u);
    EXPECT_EQ(sy::draw_phantom_series(options(3, 256), k).size, 256) << "--size wins over the draw";
  }
  EXPECT_EQ(sizes, (std::set<int>{256, 512}));
  EXPECT_EQ(bits, (std::set<int>{12, 16}));
  EXPECT_EQ(signs.size(), 2u);
  EXPECT_EQ(correlated.size(), 2u) << "white and correlated noise";
}

TEST(PhantomSlices, AnatomyFollowsTheLevel) {
  const sy::PhantomSeries series = sy::draw_phantom_series(options(4), 0);
  const sy::PhantomSlice chest = sy::render_phantom_slice(options(4), at_level(series, 150.0), 0);
  const sy::PhantomSlice belly = sy::render_phantom_slice(options(4), at_level(series, 340.0), 0);
  // Lungs fill much of the chest.
  const int64_t body = static_cast<int64_t>(chest.tissue.total()) - count_tissue(chest.tissue, Tissue::air) -
                       count_tissue(chest.tissue, Tissue::table);
  EXPECT_GT(count_tissue(chest.tissue, Tissue::lung), body / 4);
  EXPECT_GT(count_tissue(chest.tissue, Tissue::lung_vessel), 0);
  EXPECT_GT(count_tissue(chest.tissue, Tissue::myocardium), 0);
  EXPECT_EQ(count_tissue(chest.tissue, Tissue::liver), 0);
  EXPECT_EQ(count_tissue(chest.tissue, Tissue::kidney), 0);
  EXPECT_EQ(count_tissue(belly.tissue, Tissue::lung), 0);
  EXPECT_GT(count_tissue(belly.tissue, Tissue::liver), 0);
  EXPECT_GT(count_tissue(belly.tissue, Tissue::kidney), 0);
  for (const sy::PhantomSlice* s : {&chest, &belly}) {
    EXPECT_GT(count_tissue(s->tissue, Tissue::fat), 0);
    EXPECT_GT(count_tissue(s->tissue, Tissue::muscle), 0);
    EXPECT_GT(count_tissue(s->tissue, Tissue::cortical_bone), 0) << "spine and ribs";
  }
  // The stomach, with its air-fluid level, in the upper abdomen (below the bronchi, above the bowel loops):
  // air inside the body, in front of (above) fluid.
  const cv::Mat upper = sy::render_phantom_slice(options(4), at_level(series, 240.0), 0).tissue;
  cv::Mat inside_air = upper == static_cast<uint8_t>(Tissue::air);
  cv::floodFill(inside_air, cv::Point(0, 0), cv::Scalar(0));
  ASSERT_GT(cv::countNonZero(inside_air), 0);
  const cv::Mat fluid = upper == static_cast<uint8_t>(Tissue::fluid);
  ASSERT_GT(cv::countNonZero(fluid), 0);
  EXPECT_LT(cv::boundingRect(inside_air).y, cv::boundingRect(fluid).br().y);
  // Smoothly: neighbouring slices share almost all of their tissue labels.
  const sy::PhantomSlice next = sy::render_phantom_slice(options(4), at_level(series, 151.0), 0);
  EXPECT_LT(cv::countNonZero(next.tissue != chest.tissue), static_cast<int>(chest.tissue.total() / 20));
}

TEST(PhantomSlices, TissuesHaveTheirHounsfieldUnits) {
  for (int64_t k = 0; k < 4; ++k) {
    SCOPED_TRACE("series " + std::to_string(k));
    const sy::PhantomSeries series = noiseless(sy::draw_phantom_series(options(5), k));
    const sy::PhantomSlice chest = sy::render_phantom_slice(options(5), at_level(series, 140.0), 0);
    const sy::PhantomSlice belly = sy::render_phantom_slice(options(5), at_level(series, 320.0), 0);
    // Texture adds a few HU (its amplitude times a unit Gaussian field): allow 4 amplitudes.
    const auto expect_range = [](const sy::PhantomSlice& s, Tissue t, double lo, double hi) {
      const cv::Mat mask = (s.tissue == static_cast<uint8_t>(t)) & ~all_lesions(s);
      if (cv::countNonZero(mask) == 0) return;
      const double mean = mean_where(s.hu, mask);
      EXPECT_GE(mean, lo) << sy::tissue_name(t);
      EXPECT_LE(mean, hi) << sy::tissue_name(t);
    };
    expect_range(chest, Tissue::fat, -125.0, -80.0);
    expect_range(chest, Tissue::muscle, 35.0, 65.0);
    expect_range(chest, Tissue::lung, -900.0, -700.0);
    expect_range(chest, Tissue::cortical_bone, 300.0, 1500.0);
    expect_range(chest, Tissue::marrow, 300.0, 1500.0);
    expect_range(belly, Tissue::liver, 45.0, 125.0);
    expect_range(belly, Tissue::fat, -125.0, -80.0);
    // Denser towards the back: the posterior half of the lungs is heavier than the anterior half.
    const cv::Mat lung = (chest.tissue == static_cast<uint8_t>(Tissue::lung)) & ~all_lesions(chest);
    const cv::Rect box = cv::boundingRect(lung);
    const cv::Rect front(box.x, box.y, box.width, box.height / 2);
    const cv::Rect back(box.x, box.y + box.height / 2, box.width, box.height - box.height / 2);
    EXPECT_GT(mean_where(chest.hu(back), lung(back)), mean_where(chest.hu(front), lung(front)) + 10.0);
  }
}

// Without noise and blur, a lesion's pixels are exactly the ones that stand out from its organ: the mask
// is the lesion, pixel for pixel.
TEST(PhantomSlices, MasksAreExactlyTheLesionPixels) {
  int checked = 0;
  for (int64_t k = 0; k < 6; ++k) {
    const sy::PhantomSeries series = noiseless(sy::draw_phantom_series(options(6), k));
    for (int i = 0; i < series.slice_count; ++i) {
      const sy::PhantomSlice s = sy::render_phantom_slice(options(6), series, i);
      const cv::Mat all = all_lesions(s);
      for (const sy::PhantomLesion& lesion : s.lesions) {
        SCOPED_TRACE(lesion.organ + " lesion in series " + std::to_string(k) + " slice " + std::to_string(i));
        const cv::Mat others = all & ~lesion.mask;
        const cv::Mat organ = tissue_mask(s.tissue, sy::organ_tissues(lesion.organ)) & ~others;
        // A nodule (20..60 HU) against aerated lung (vessels are dense too, so they are left out); an organ
        // lesion against its organ's HU around it, half its contrast away.
        const bool nodule = lesion.organ == "lung";
        const cv::Mat compared = nodule ? organ & (s.tissue == static_cast<uint8_t>(Tissue::lung)) : organ;
        double threshold = -300.0;
        if (!nodule) {
          const cv::Mat ring = ring_around(lesion.mask, 1, 2) & organ;
          ASSERT_GT(cv::countNonZero(ring), 0);
          threshold = median_where(s.hu, ring) + 0.5 * lesion.contrast_hu;
        }
        const cv::Rect near = cv::boundingRect(ring_around(lesion.mask, 0, 2));
        for (int y = near.y; y < near.br().y; ++y) {
          for (int x = near.x; x < near.br().x; ++x) {
            const float v = s.hu.at<float>(y, x);
            const bool stands_out = lesion.contrast_hu > 0 ? v > threshold : v < threshold;
            if (lesion.mask.at<uint8_t>(y, x)) {
              ASSERT_TRUE(stands_out) << "mask pixel (" << x << ", " << y << ") HU " << v;
            } else if (compared.at<uint8_t>(y, x)) {
              ASSERT_FALSE(stands_out) << "organ pixel (" << x << ", " << y << ") HU " << v;
            }
          }
        }
        ++checked;
      }
    }
  }
  EXPECT_GT(checked, 20);
}

// Placement, size and contrast over a draw of about 200 slices, and the share of clean slices. Contrast is
// measured without noise (the noise test checks that separately), with the series' blur.
TEST(PhantomSlices, LesionsLieInsideTheirOrganWithTheirSizeAndContrast) {
  int slices = 0, clean = 0;
  std::set<std::string> organs;
  bool lobulated = false, round = false;
  for (int64_t k = 0; slices < 200; ++k) {
    const sy::PhantomSeries series = sy::draw_phantom_series(options(7), k);
    sy::PhantomSeries quiet_series = noiseless(series);
    quiet_series.blur_px = series.blur_px;
    for (int i = 0; i < series.slice_count; ++i, ++slices) {
      const sy::PhantomSlice s = sy::render_phantom_slice(options(7), series, i);
      const sy::PhantomSlice quiet = sy::render_phantom_slice(options(7), quiet_series, i);
      clean += s.lesions.empty();
      ASSERT_LE(s.lesions.size(), 3u);
      ASSERT_EQ(quiet.lesions.size(), s.lesions.size()) << "noise draws apart from lesion draws";
      cv::Mat taken = cv::Mat::zeros(s.hu.size(), CV_8UC1);
      const cv::Mat all = all_lesions(s);
      for (size_t j = 0; j < s.lesions.size(); ++j) {
        const sy::PhantomLesion& lesion = s.lesions[j];
        SCOPED_TRACE(lesion.organ + " lesion in series " + std::to_string(k) + " slice " + std::to_string(i));
        organs.insert(lesion.organ);
        ASSERT_EQ(lesion.mask.type(), CV_8UC1);
        ASSERT_EQ(lesion.mask.size(), s.hu.size());
        ASSERT_EQ(cv::countNonZero(quiet.lesions[j].mask != lesion.mask), 0);
        EXPECT_EQ(cv::countNonZero((lesion.mask != 0) & (lesion.mask != 255)), 0) << "0/255 only";
        EXPECT_EQ(lesion.mask.at<uint8_t>(lesion.center_px), 255);
        EXPECT_GE(lesion.diameter_mm, 4.0);
        EXPECT_LE(lesion.diameter_mm, 30.0);
        // Inside the organ: every mask pixel is organ tissue.
        const cv::Mat organ = tissue_mask(s.tissue, sy::organ_tissues(lesion.organ));
        EXPECT_EQ(cv::countNonZero(lesion.mask & ~organ), 0);
        EXPECT_EQ(cv::countNonZero(lesion.mask & taken), 0) << "lesions do not overlap";
        taken |= lesion.mask;
        // Area: a disc of the mean diameter (lobulation changes it by a few percent; tiny lesions by a
        // few pixels of rasterisation).
        const double radius_px = 0.5 * lesion.diameter_mm / series.pixel_spacing;
        const double disc = kPi * radius_px * radius_px;
        const double area = cv::countNonZero(lesion.mask);
        EXPECT_NEAR(area, disc, 0.15 * disc + 4.0 * radius_px + 3.0);
        // Its extent along each axis is about the diameter (0.7..1.3 of it with lobulation).
        const cv::Rect box = cv::boundingRect(lesion.mask);
        const double diameter_px = 2.0 * radius_px;
        EXPECT_GE(std::max(box.width, box.height), 0.7 * diameter_px - 1.0);
        EXPECT_LE(std::max(box.width, box.height), 1.3 * diameter_px + 2.0);
        if (radius_px > 6) {  // a disc this large has a ratio of about 1.15 on the pixel grid
          const double ratio = radius_ratio(lesion);
          lobulated |= ratio > 1.3;
          round |= ratio < 1.2;
        }
        // The lesion's core (2 pixels in from its edge) against its organ 2..4 pixels out, where the blur
        // brings in nothing from other tissues (organ pixels 3 pixels from any other tissue).
        const cv::Mat core = eroded(lesion.mask, 2);
        const cv::Mat around = ring_around(lesion.mask, 2, 4) & eroded(organ & ~(all & ~lesion.mask), 3);
        if (lesion.organ == "lung") {
          EXPECT_GT(lesion.contrast_hu, 600.0);
          const cv::Mat aerated =
              ring_around(lesion.mask, 2, 4) & (s.tissue == static_cast<uint8_t>(Tissue::lung));
          ASSERT_GT(cv::countNonZero(aerated), 0);
          EXPECT_LT(median_where(s.hu, aerated), -500.0) << "a nodule lies in aerated lung";
          if (cv::countNonZero(core) > 0) {
            EXPECT_GE(mean_where(quiet.hu, core), 20.0 - 20.0);
            EXPECT_LE(mean_where(quiet.hu, core), 60.0 + 20.0);
          }
        } else {
          EXPECT_GE(std::abs(lesion.contrast_hu), 40.0);
          EXPECT_LE(std::abs(lesion.contrast_hu), 100.0);
          if (cv::countNonZero(core) > 0 && cv::countNonZero(around) > 0) {
            EXPECT_NEAR(mean_where(quiet.hu, core) - mean_where(quiet.hu, around), lesion.contrast_hu,
                        10.0 + 0.1 * std::abs(lesion.contrast_hu));
          }
        }
      }
    }
  }
  EXPECT_GE(clean, 0.4 * slices) << clean << " clean of " << slices;
  EXPECT_LE(clean, 0.6 * slices) << clean << " clean of " << slices;
  EXPECT_TRUE(organs.count("lung") && organs.count("liver") && organs.count("muscle")) << organs.size();
  EXPECT_TRUE(lobulated) << "some lesions are lobulated";
  EXPECT_TRUE(round) << "some lesions are round";
}

// Every lesion organ gets lesions: at the level of the upper abdomen all four are cut.
TEST(PhantomSlices, EveryOrganHostsLesions) {
  std::map<std::string, int> counts;
  for (int64_t k = 0; k < 80 && counts.size() < sy::lesion_organs().size(); ++k) {
    const sy::PhantomSeries series = at_level(sy::draw_phantom_series(options(15), k), 255.0);
    for (const sy::PhantomLesion& lesion : sy::render_phantom_slice(options(15), series, 0).lesions)
      ++counts[lesion.organ];
  }
  for (const std::string& organ : sy::lesion_organs()) EXPECT_GT(counts[organ], 0) << organ;
}

// --lesion-sizes log-uniform: the same 4-30 mm, with far more small lesions than the uniform draw, and a set of
// its own (other UIDs than the uniform set of the same seed).
TEST(PhantomSlices, LogUniformSizesDrawMoreSmallLesions) {
  const auto small_share = [](sy::LesionSizes sizes, int* lesions) {
    sy::PhantomOptions o = options(16);
    o.lesion_sizes = sizes;
    int small = 0;
    *lesions = 0;
    for (int64_t k = 0; k < 150; ++k) {
      const sy::PhantomSeries series = sy::draw_phantom_series(o, k);
      for (int i = 0; i < std::min(4, series.slice_count); ++i)
        for (const sy::PhantomLesion& lesion : sy::render_phantom_slice(o, series, i).lesions) {
          EXPECT_GE(lesion.diameter_mm, 4.0);
          EXPECT_LE(lesion.diameter_mm, 30.0);
          small += lesion.diameter_mm < 8.0;
          ++*lesions;
        }
    }
    return static_cast<double>(small) / *lesions;
  };
  int uniform_lesions = 0, log_lesions = 0;
  const double uniform = small_share(sy::LesionSizes::uniform, &uniform_lesions);
  const double log_uniform = small_share(sy::LesionSizes::log_uniform, &log_lesions);
  ASSERT_GT(uniform_lesions, 250);
  ASSERT_GT(log_lesions, 250);
  // Drawn: 4/26 = 15% and ln 2 / ln 7.5 = 34% under 8 mm, a little more where a lesion had to shrink to fit
  // (whole sets: 16-18% and 35%); the bounds leave about three standard errors of these few hundred lesions.
  EXPECT_LT(uniform, 0.26) << uniform_lesions << " lesions";
  EXPECT_GT(log_uniform, 0.27) << log_lesions << " lesions";
  EXPECT_GT(log_uniform, uniform + 0.08);

  sy::PhantomOptions log_options = options(16);
  log_options.lesion_sizes = sy::LesionSizes::log_uniform;
  EXPECT_NE(sy::draw_phantom_series(log_options, 0).dicom.series_instance_uid,
            sy::draw_phantom_series(options(16), 0).dicom.series_instance_uid);
}

TEST(PhantomSlices, NoiseHasItsSigmaAndCorrelation) {
  int white = 0, correlated = 0;
  for (int64_t k = 0; white == 0 || correlated == 0; ++k) {
    ASSERT_LT(k, 20);
    const sy::PhantomSeries series = sy::draw_phantom_series(options(8), k);
    sy::PhantomSeries sharp = noiseless(series);
    sharp.blur_px = series.blur_px;  // the same blur: the difference is then the noise alone
    const cv::Mat noisy = sy::render_phantom_slice(options(8), series, 0).hu;
    const cv::Mat clean = sy::render_phantom_slice(options(8), sharp, 0).hu;
    // Pixels away from the format's clamp (air can reach -1024).
    const cv::Mat usable = (clean > -900.0f) & (clean < 900.0f);
    cv::Mat diff = noisy - clean;
    cv::Scalar mean, sd;
    cv::meanStdDev(diff, mean, sd, usable);
    EXPECT_NEAR(sd[0], series.noise_hu, 0.08 * series.noise_hu + 0.3) << "series " << k;
    // Correlation of horizontal neighbours.
    const cv::Mat a = diff(cv::Rect(0, 0, diff.cols - 1, diff.rows));
    const cv::Mat b = diff(cv::Rect(1, 0, diff.cols - 1, diff.rows));
    const cv::Mat both =
        usable(cv::Rect(0, 0, diff.cols - 1, diff.rows)) & usable(cv::Rect(1, 0, diff.cols - 1, diff.rows));
    cv::Mat product;
    cv::multiply(a, b, product);
    const double rho = cv::mean(product, both)[0] / (sd[0] * sd[0]);
    if (series.noise_correlation_px > 0.0) {
      EXPECT_GT(rho, 0.3) << "series " << k;
      ++correlated;
    } else {
      EXPECT_LT(std::abs(rho), 0.1) << "series " << k;
      ++white;
    }
  }
}

TEST(PhantomSlices, StoredFormatsClampTheirRange) {
  const sy::PhantomSeries drawn = sy::draw_phantom_series(options(9), 0);
  for (const int bits : {12, 16}) {
    for (const bool is_signed : {false, true}) {
      sy::PhantomSeries series = drawn;
      series.dicom.bits_stored = bits;
      series.dicom.is_signed = is_signed;
      const sy::PhantomSlice s = sy::render_phantom_slice(options(9), at_level(series, 150.0), 0);
      const vi::HuRange range = vi::ct_hu_range(bits, is_signed, -1024.0);
      double lo = 0.0, hi = 0.0;
      cv::minMaxLoc(s.hu, &lo, &hi);
      EXPECT_GE(lo, range.lowest);
      EXPECT_LE(hi, range.highest);
      cv::Mat rounded;
      s.hu.convertTo(rounded, CV_32S);
      rounded.convertTo(rounded, CV_32F);
      EXPECT_EQ(cv::countNonZero(rounded != s.hu), 0) << "whole HU";
    }
  }
  EXPECT_EQ(vi::ct_hu_range(12, false, -1024.0).highest, 3071.0);
  EXPECT_EQ(vi::ct_hu_range(12, false, -1024.0).lowest, -1024.0);
  EXPECT_EQ(vi::ct_hu_range(12, true, -1024.0).highest, 1023.0);
  EXPECT_EQ(vi::ct_hu_range(16, true, -1024.0).lowest, -33792.0);
}

TEST(PhantomSlices, SameSeedSamePixelsOtherSeedOtherUids) {
  const sy::PhantomSeries a = sy::draw_phantom_series(options(10), 1);
  const sy::PhantomSeries b = sy::draw_phantom_series(options(10), 1);
  const sy::PhantomSlice sa = sy::render_phantom_slice(options(10), a, 2);
  const sy::PhantomSlice sb = sy::render_phantom_slice(options(10), b, 2);
  EXPECT_EQ(cv::norm(sa.hu, sb.hu, cv::NORM_INF), 0.0);
  EXPECT_EQ(sa.dicom.sop_instance_uid, sb.dicom.sop_instance_uid);
  EXPECT_EQ(a.dicom.series_instance_uid, b.dicom.series_instance_uid);
  ASSERT_EQ(sa.lesions.size(), sb.lesions.size());
  for (size_t j = 0; j < sa.lesions.size(); ++j)
    EXPECT_EQ(cv::countNonZero(sa.lesions[j].mask != sb.lesions[j].mask), 0);

  const sy::PhantomSeries other = sy::draw_phantom_series(options(11), 1);
  EXPECT_NE(other.dicom.series_instance_uid, a.dicom.series_instance_uid);
  EXPECT_NE(other.dicom.study_instance_uid, a.dicom.study_instance_uid);
  EXPECT_NE(other.folder, a.folder);
  std::set<std::string> uids;
  for (const sy::PhantomSeries* s : {&a, &other})
    for (int i = 0; i < s->slice_count; ++i)
      uids.insert(sy::render_phantom_slice(options(s == &a ? 10 : 11), *s, i).dicom.sop_instance_uid);
  EXPECT_EQ(uids.size(), static_cast<size_t>(a.slice_count + other.slice_count));
  // Slices differ from each other, and the size option is part of a series' identity.
  EXPECT_GT(cv::norm(sa.hu, sy::render_phantom_slice(options(10), a, 3).hu, cv::NORM_L1), 0.0);
  EXPECT_NE(sy::draw_phantom_series(options(10, 512), 1).dicom.series_instance_uid,
            a.dicom.series_instance_uid);
}

TEST(PhantomSlices, BadArgumentsAreRefused) {
  EXPECT_THROW(sy::draw_phantom_series(options(1, 300), 0), std::invalid_argument);
  EXPECT_THROW(sy::draw_phantom_series(options(1), -1), std::invalid_argument);
  const sy::PhantomSeries s = sy::draw_phantom_series(options(1), 0);
  EXPECT_THROW(sy::render_phantom_slice(options(1), s, s.slice_count), std::invalid_argument);
  EXPECT_THROW(sy::render_phantom_slice(options(1), s, -1), std::invalid_argument);
  ScratchDir dir;
  EXPECT_THROW(sy::write_phantom_set(options(1), 0, dir / "out"), std::invalid_argument);
  EXPECT_THROW(sy::organ_tissues("brain"), std::invalid_argument);
}

// The written set: every slice reads back through vision/dicom.h as CT Image Storage with the rendered
// HU, stepping along the slice normal; lesions.json and the masks describe the rendered lesions.
TEST(PhantomSet, WritesReadableCtSeriesWithMasksAndLesionsJson) {
  ScratchDir dir;
  const fs::path out = dir.path() / "phantoms";
  const sy::PhantomOptions o = options(13);
  int64_t progress_calls = 0;
  const sy::PhantomSetSummary summary =
      sy::write_phantom_set(o, 2, out.string(), [&](int64_t) { ++progress_calls; });
  EXPECT_EQ(summary.series, 2);
  EXPECT_EQ(summary.slices, sy::count_phantom_slices(o, 2));
  EXPECT_EQ(progress_calls, summary.slices);

  const json set = read_json(out / "lesions.json");
  ASSERT_EQ(set["series"].size(), 2u);
  int64_t lesions = 0, clean = 0;
  for (int64_t k = 0; k < 2; ++k) {
    const sy::PhantomSeries series = sy::draw_phantom_series(o, k);
    const json& js = set["series"][k];
    EXPECT_EQ(js["folder"].get<std::string>(), series.folder);
    EXPECT_EQ(js["series_instance_uid"].get<std::string>(), series.dicom.series_instance_uid);
    ASSERT_EQ(js["slices"].size(), static_cast<size_t>(series.slice_count));
    std::array<double, 3> previous{};
    for (int i = 0; i < series.slice_count; ++i) {
      SCOPED_TRACE("series " + std::to_string(k) + " slice " + std::to_string(i));
      const json& jslice = js["slices"][i];
      const sy::PhantomSlice rendered = sy::render_phantom_slice(o, series, i);
      const vi::DicomFrames back = vi::read_dicom((out / jslice["file"].get<std::string>()).string());
      const vi::DicomInfo& info = back.info;
      EXPECT_EQ(info.modality, "CT");
      EXPECT_EQ(info.sop_class_uid, kCtImageStorage);
      EXPECT_EQ(info.sop_instance_uid, jslice["sop_instance_uid"].get<std::string>());
      EXPECT_EQ(info.series_instance_uid, series.dicom.series_instance_uid);
      EXPECT_EQ(info.instance_number.value_or(-1), i + 1);
      EXPECT_EQ(info.rows, 256);
      EXPECT_EQ(info.bits_allocated, 16);
      EXPECT_EQ(info.bits_stored, series.dicom.bits_stored);
      EXPECT_EQ(info.is_signed, series.dicom.is_signed);
      EXPECT_EQ(info.rescale_slope, 1.0);
      EXPECT_EQ(info.rescale_intercept, -1024.0);
      ASSERT_TRUE(info.pixel_spacing && info.slice_thickness && info.image_orientation);
      EXPECT_NEAR((*info.pixel_spacing)[0], series.pixel_spacing, 1e-9);
      EXPECT_NEAR(*info.slice_thickness, series.slice_thickness, 1e-9);
      EXPECT_FALSE(info.windows.empty());
      ASSERT_EQ(info.image_positions.size(), 1u);
      const std::array<double, 3> position = info.image_positions[0];
      if (i > 0) {
        // Along the normal (row x column direction), one slice thickness per slice, and not sideways.
        const auto& d = *info.image_orientation;
        const std::array<double, 3> normal = {d[1] * d[5] - d[2] * d[4], d[2] * d[3] - d[0] * d[5],
                                              d[0] * d[4] - d[1] * d[3]};
        double along = 0.0, step2 = 0.0;
        for (int c = 0; c < 3; ++c) {
          along += (position[c] - previous[c]) * normal[c];
          step2 += (position[c] - previous[c]) * (position[c] - previous[c]);
        }
        EXPECT_NEAR(std::abs(along), series.slice_thickness, 1e-6);
        EXPECT_NEAR(std::sqrt(step2), series.slice_thickness, 1e-6);
      }
      previous = position;
      ASSERT_EQ(back.frames.size(), 1u);
      EXPECT_EQ(cv::norm(back.frames[0], rendered.hu, cv::NORM_INF), 0.0) << "the file holds the HU";

      const json& jl = jslice["lesions"];
      ASSERT_EQ(jl.size(), rendered.lesions.size());
      cv::Mat all = cv::Mat::zeros(rendered.hu.size(), CV_8UC1);
      for (size_t j = 0; j < jl.size(); ++j) {
        const sy::PhantomLesion& lesion = rendered.lesions[j];
        EXPECT_EQ(jl[j]["center_px"], json::array({lesion.center_px.x, lesion.center_px.y}));
        EXPECT_NEAR(jl[j]["diameter_mm"].get<double>(), lesion.diameter_mm, 0.006);
        EXPECT_NEAR(jl[j]["contrast_hu"].get<double>(), lesion.contrast_hu, 0.006);
        EXPECT_EQ(jl[j]["organ"].get<std::string>(), lesion.organ);
        const cv::Mat mask =
            cv::imread((out / jl[j]["mask"].get<std::string>()).string(), cv::IMREAD_UNCHANGED);
        ASSERT_EQ(mask.type(), CV_8UC1);
        EXPECT_EQ(cv::countNonZero(mask != lesion.mask), 0);
        all |= mask;
        // A nodule's centre is soft tissue (once it is a few pixels across: blur spreads a smaller one).
        const float centre = back.frames[0].at<float>(lesion.center_px);
        if (lesion.organ == "lung" && lesion.diameter_mm >= 5.0 * series.pixel_spacing) {
          EXPECT_GT(centre, -300.0f) << "nodule centre";
        }
        ++lesions;
      }
      if (jl.empty()) {
        EXPECT_TRUE(jslice["mask"].is_null());
        ++clean;
      } else {
        const cv::Mat mask =
            cv::imread((out / jslice["mask"].get<std::string>()).string(), cv::IMREAD_UNCHANGED);
        EXPECT_EQ(cv::countNonZero(mask != all), 0) << "the slice's mask is the union";
      }
    }
  }
  EXPECT_EQ(lesions, summary.lesions);
  EXPECT_EQ(clean, summary.clean_slices);
  // No temporaries left behind.
  for (const auto& entry : fs::recursive_directory_iterator(out))
    EXPECT_FALSE(vi::is_temporary_name(entry.path().string())) << entry.path();
}

TEST(PhantomSet, SlicesPassDciodvfy) {
  if (run("command -v dciodvfy").empty()) GTEST_SKIP() << "dicom3tools (dciodvfy) is not installed";
  ScratchDir dir;
  const sy::PhantomSeries drawn = sy::draw_phantom_series(options(14), 0);
  for (const int bits : {12, 16}) {
    for (const bool is_signed : {false, true}) {
      sy::PhantomSeries series = drawn;
      series.dicom.bits_stored = bits;
      series.dicom.is_signed = is_signed;
      const sy::PhantomSlice s = sy::render_phantom_slice(options(14), series, 0);
      const std::string path = dir / ("slice_" + std::to_string(bits) + (is_signed ? "s" : "u") + ".dcm");
      vi::write_ct_image(path, s.hu, s.dicom);
      const std::string report = run("dciodvfy '" + path + "'");
      EXPECT_EQ(report.find("Error"), std::string::npos) << report;
      EXPECT_NE(report.find("CTImage"), std::string::npos) << report;
      EXPECT_EQ(cv::norm(vi::read_dicom(path).frames[0], s.hu, cv::NORM_INF), 0.0);
    }
  }
}

TEST(PhantomUids, AreUuidDerivedAndDeterministic) {
  const std::string uid = vi::dicom_uid_from_bits(~uint64_t{0}, ~uint64_t{0});
  EXPECT_EQ(uid.rfind("2.25.", 0), 0u);
  EXPECT_LE(uid.size(), 64u);
  EXPECT_EQ(uid.find_first_not_of("0123456789.", 0), std::string::npos);
  EXPECT_EQ(vi::dicom_uid_from_bits(1, 2), vi::dicom_uid_from_bits(1, 2));
  EXPECT_NE(vi::dicom_uid_from_bits(1, 2), vi::dicom_uid_from_bits(1, 3));
}

}  // namespace
