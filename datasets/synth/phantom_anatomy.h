// The body model behind the CT phantoms (internal to datasets/synth/phantom*.cpp): one series' anatomy,
// drawn once from the series' random stream, painted as a tissue map at any level along the body.
//
// Frame: millimetres from the body's centre, x to the patient's left (image right), y to the back (image
// down); the level s runs from the lung apex (0) towards the feet (kBodyLengthMm: the lower poles of the
// kidneys). Every organ is a function of s that is continuous in s, so neighbouring slices look alike:
// lungs fill the upper levels, the heart the middle of the chest, liver, spleen, stomach and kidneys the
// lower ones (the liver dome and the lung bases overlap, as they do under the diaphragm).
#pragma once

#include "datasets/synth/phantoms.h"

#include <opencv2/core/mat.hpp>

#include <array>
#include <random>
#include <vector>

namespace attnvision::datasets::synth {

constexpr double kBodyLengthMm = 430.0;

// A uniform double in [lo, hi).
double uniform(std::mt19937_64& rng, double lo, double hi);

// One segment of a lung's vessel tree in the lung's own frame (origin at the lung's centre, unit = its
// semi-axes, u towards the side wall): it starts where its parent ends, at the parent's angle plus `turn`
// (plus a slow sinusoidal drift along s, so the tree moves smoothly from slice to slice).
struct VesselSegment {
  int parent = -1;  // an earlier segment, or -1 for a trunk starting at the hilum
  int generation = 0;
  double turn = 0.0;    // radians
  double length = 0.0;  // lung semi-axes
  double width_mm = 0.0;
  double drift = 0.0, drift_period_mm = 1.0, drift_phase = 0.0;
};

// A vessel running across the slice plane: a dot over a range of levels, sliding slowly with s.
struct VesselDot {
  double u = 0.0, v = 0.0, du = 0.0, dv = 0.0;  // lung frame at `top`, change per mm of level
  double radius_mm = 1.0;
  double top = 0.0, bottom = 0.0;  // levels
};

// A rib slot: where a rib crosses the slice on the inner chest wall when the level falls on the rib.
struct RibSlot {
  double angle = 0.0;  // radians from the back (0) over the side (pi / 2) to the front (pi)
  double period_mm = 30.0, phase = 0.0;
  double length_mm = 8.0;
};

// A bowel loop (small bowel or colon): a walled circle with fluid, air, or air over fluid.
struct BowelLoop {
  cv::Point2d centre;  // body frame at `top`
  cv::Point2d slide;   // mm per mm of level
  double radius_mm = 10.0;
  double top = 0.0, bottom = 0.0;
  double air_fraction = 0.0;  // 0: fluid only, 1: air only, between: an air-fluid level
};

struct PhantomAnatomy {
  // Placement on the image.
  int size = 512;
  double mm_per_px = 0.7;
  cv::Point2d centre_px;  // where the body's centre lies

  // Body: semi-axes, layer thicknesses, and the scale k of every organ size (1 = an average adult).
  double half_width = 170.0, half_depth = 120.0, fat_mm = 15.0, muscle_mm = 9.0, scale = 1.0;
  bool contrast_enhanced = false;

  // Levels (mm below the apex) where organs start and end.
  double heart_top = 100.0, heart_bottom = 225.0, arch_level = 45.0;
  double lung_end_right = 265.0, lung_end_left = 280.0;
  double liver_top = 205.0, liver_bottom = 395.0, spleen_top = 225.0, spleen_bottom = 335.0;
  double stomach_top = 210.0, stomach_bottom = 300.0, kidney_top_left = 285.0, kidney_offset_right = 15.0;
  bool gallbladder = true;

  // Shapes.
  double lung_width = 1.0, lung_depth = 1.0, heart_size = 1.0, liver_size = 1.0, stomach_air = 0.3;
  std::array<double, 3> lung_ripple{}, lung_ripple_phase{};  // low-order wobble of the lung outline
  double vertebra_period_mm = 28.0, vertebra_phase_mm = 0.0, disc_mm = 7.0;

  std::array<std::vector<VesselSegment>, 2> lung_trees;  // [0] right lung (image left), [1] left lung
  std::array<std::vector<VesselDot>, 2> lung_dots;
  std::array<std::vector<RibSlot>, 2> ribs;  // [0] right side, [1] left side
  std::vector<BowelLoop> bowel;

  // Hounsfield units: one value per tissue, lungs from front to back, texture amplitude per tissue.
  std::array<float, kTissueCount> hu{};
  std::array<float, kTissueCount> texture_hu{};
  double lung_front_hu = -870.0, lung_back_hu = -740.0;
};

// A series' anatomy for an image of `size` pixels of `mm_per_px`.
PhantomAnatomy draw_anatomy(std::mt19937_64& rng, int size, double mm_per_px);

// The tissue map (CV_8UC1 of Tissue) at level `level_mm`.
cv::Mat paint_tissues(const PhantomAnatomy& anatomy, double level_mm);

// A tissue's HU before texture, blur and noise at image row `row` (lungs grow denser towards the back).
double base_hu(const PhantomAnatomy& anatomy, Tissue tissue, int row);

}  // namespace attnvision::datasets::synth
