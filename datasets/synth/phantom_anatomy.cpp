#include "datasets/synth/phantom_anatomy.h"

#include "datasets/sampler.h"

#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cmath>

namespace attnvision::datasets::synth {

namespace {

constexpr double kPi = 3.14159265358979323846;
// OpenCV draws with fractional coordinates in fixed point: 4 bits = 1/16 pixel, so organ outlines move
// smoothly (not in whole pixels) from slice to slice.
constexpr int kShift = 4;
constexpr double kFixedOne = 1 << kShift;

double smoothstep(double edge0, double edge1, double x) {
  const double t = std::clamp((x - edge0) / (edge1 - edge0), 0.0, 1.0);
  return t * t * (3.0 - 2.0 * t);
}

// 0 outside (a, d), rising smoothly over a..b, 1 over b..c, falling over c..d: how much of an organ the
// level cuts through.
double plateau(double s, double a, double b, double c, double d) {
  return smoothstep(a, b, s) * (1.0 - smoothstep(c, d, s));
}

cv::Point2d rotate(cv::Point2d p, double degrees) {
  const double r = degrees * kPi / 180.0;
  return {p.x * std::cos(r) - p.y * std::sin(r), p.x * std::sin(r) + p.y * std::cos(r)};
}

// Draws tissues into a tissue map (or any CV_8UC1 mask) in body-frame millimetres.
class Canvas {
 public:
  Canvas(const PhantomAnatomy& anatomy, cv::Mat& map) : a_(anatomy), map_(map) {}

  void ellipse(Tissue t, cv::Point2d centre, cv::Size2d semi, double angle_deg = 0.0) const {
    if (semi.width <= 0.0 || semi.height <= 0.0) return;
    cv::ellipse(map_, fixed(centre), fixed_size(semi), angle_deg, 0, 360, value(t), cv::FILLED, cv::LINE_8,
                kShift);
  }
  void circle(Tissue t, cv::Point2d centre, double radius) const { ellipse(t, centre, {radius, radius}); }
  // The outline of an ellipse from one angle to another (degrees, clockwise on the image), `width_mm` wide.
  void arc(Tissue t, cv::Point2d centre, cv::Size2d semi, double from_deg, double to_deg,
           double width_mm) const {
    cv::ellipse(map_, fixed(centre), fixed_size(semi), 0.0, from_deg, to_deg, value(t), pixels(width_mm),
                cv::LINE_8, kShift);
  }
  void line(Tissue t, cv::Point2d from, cv::Point2d to, double width_mm) const {
    cv::line(map_, fixed(from), fixed(to), value(t), pixels(width_mm), cv::LINE_8, kShift);
  }
  void polygon(Tissue t, const std::vector<cv::Point2d>& points) const {
    std::vector<cv::Point> fixed_points;
    fixed_points.reserve(points.size());
    for (const cv::Point2d& p : points) fixed_points.push_back(fixed(p));
    cv::fillPoly(map_, std::vector<std::vector<cv::Point>>{fixed_points}, value(t), cv::LINE_8, kShift);
  }
  // The part of an axis-aligned ellipse in front of (above, on the image) the line y = level: the air over
  // a fluid level in a supine patient.
  void cap(Tissue t, cv::Point2d centre, cv::Size2d semi, double level) const {
    if (semi.width <= 0.0 || semi.height <= 0.0) return;
    const double q = std::clamp((level - centre.y) / semi.height, -1.0, 1.0);
    const double from = kPi - std::asin(q), to = 2.0 * kPi + std::asin(q);
    std::vector<cv::Point2d> points;
    constexpr int kSteps = 32;
    for (int i = 0; i <= kSteps; ++i) {
      const double th = from + (to - from) * i / kSteps;
      points.push_back({centre.x + semi.width * std::cos(th), centre.y + semi.height * std::sin(th)});
    }
    polygon(t, points);
  }

 private:
  static cv::Scalar value(Tissue t) { return cv::Scalar(static_cast<int>(t)); }
  cv::Point fixed(cv::Point2d mm) const {
    return {cvRound((a_.centre_px.x + mm.x / a_.mm_per_px) * kFixedOne),
            cvRound((a_.centre_px.y + mm.y / a_.mm_per_px) * kFixedOne)};
  }
  cv::Size fixed_size(cv::Size2d mm) const {
    return {cvRound(mm.width / a_.mm_per_px * kFixedOne), cvRound(mm.height / a_.mm_per_px * kFixedOne)};
  }
  int pixels(double mm) const { return std::max(1, cvRound(mm / a_.mm_per_px)); }

  const PhantomAnatomy& a_;
  cv::Mat& map_;
};

// Where the spine lies at a level: measured from the back, which keeps the paraspinal muscles between
// the spine and the subcutaneous fat whatever the body's shape.
struct Spine {
  double canal_y, canal_r, body_y, body_r;
};

// What depends on the level alone, computed once per slice.
struct Level {
  double s;
  double fat;         // subcutaneous fat thickness (thicker over the abdomen)
  cv::Size2d cavity;  // semi-axes of the space inside the body wall
  Spine spine;
};

Level level_at(const PhantomAnatomy& a, double s) {
  const double k = a.scale;
  Level l;
  l.s = s;
  l.fat = a.fat_mm * (0.7 + 0.6 * smoothstep(200.0, 320.0, s));
  l.cavity = {a.half_width - l.fat - a.muscle_mm, a.half_depth - l.fat - a.muscle_mm};
  l.spine.canal_r = 7.0 * k;
  l.spine.canal_y = a.half_depth - l.fat - 42.0 * k;
  l.spine.body_r = k * (15.0 + 5.0 * smoothstep(230.0, 330.0, s));  // lumbar bodies are larger
  l.spine.body_y = l.spine.canal_y - l.spine.canal_r - 2.0 * k - l.spine.body_r;
  return l;
}

// A lung's outline at a level: an ellipse that grows from the apex, slides back and thins towards its
// base (where the liver, spleen and stomach domes take its place), cut flat at the mediastinum.
struct LungFrame {
  bool present = false;
  double side = 1.0;  // -1: right lung (image left), +1: left lung
  cv::Point2d centre;
  cv::Size2d semi;
  double medial = 0.0;  // |x| of the mediastinal border
};

LungFrame lung_frame(const PhantomAnatomy& a, const Level& l, int side) {
  LungFrame f;
  f.side = side == 0 ? -1.0 : 1.0;
  const double end = side == 0 ? a.lung_end_right : a.lung_end_left;
  const double fade = 1.0 - smoothstep(end - 35.0, end, l.s);
  if (fade <= 0.02) return f;
  f.present = true;
  const double grow = 0.35 + 0.65 * smoothstep(-5.0, 70.0, l.s);
  const double base = smoothstep(190.0, end, l.s);
  const cv::Size2d& c = l.cavity;
  f.centre = {f.side * 0.47 * c.width, c.height * (-0.05 + 0.30 * base + 0.15 * (1.0 - grow))};
  const double shrink = std::sqrt(fade);
  f.semi = {0.52 * c.width * a.lung_width * grow * shrink,
            0.92 * c.height * a.lung_depth * grow * (1.0 - 0.4 * base) * shrink};
  f.medial = a.scale * (side == 0 ? 16.0 : 19.0);
  return f;
}

cv::Point2d in_lung(const LungFrame& f, double u, double v) {
  return {f.centre.x + f.side * u * f.semi.width, f.centre.y + v * f.semi.height};
}

void paint_lungs(const Canvas& c, const PhantomAnatomy& a, const Level& l) {
  constexpr int kPoints = 72;
  for (int side = 0; side < 2; ++side) {
    const LungFrame f = lung_frame(a, l, side);
    if (!f.present) continue;
    std::vector<cv::Point2d> outline;
    for (int i = 0; i < kPoints; ++i) {
      const double th = 2.0 * kPi * i / kPoints;
      double r = 1.0;
      for (int order = 0; order < 3; ++order)
        r += a.lung_ripple[order] * std::cos((order + 2) * th + a.lung_ripple_phase[order]);
      cv::Point2d p = in_lung(f, r * std::cos(th), r * std::sin(th));
      p.x = f.side < 0 ? std::min(p.x, -f.medial) : std::max(p.x, f.medial);
      outline.push_back(p);
    }
    c.polygon(Tissue::lung, outline);
  }
}

// Vessel trees and cross-sections, kept to what is still lung once every other organ is painted.
void paint_lung_vessels(const PhantomAnatomy& a, const Level& l, cv::Mat& tissue) {
  cv::Mat vessels = cv::Mat::zeros(tissue.size(), CV_8UC1);
  const Canvas c(a, vessels);
  // Near the hila the trunks lie in the slice; further up and down only their finer branches do.
  const double hilum =
      plateau(l.s, a.heart_top - 50.0, a.heart_top - 10.0, a.heart_top + 40.0, a.heart_top + 80.0);
  const int first_generation = static_cast<int>(std::floor(2.0 * (1.0 - hilum) + 0.5));
  for (int side = 0; side < 2; ++side) {
    const LungFrame f = lung_frame(a, l, side);
    if (!f.present) continue;
    const std::vector<VesselSegment>& tree = a.lung_trees[side];
    std::vector<cv::Point2d> ends(tree.size());
    std::vector<double> angles(tree.size());
    for (size_t i = 0; i < tree.size(); ++i) {
      const VesselSegment& seg = tree[i];
      const cv::Point2d start = seg.parent < 0 ? cv::Point2d(-0.55, 0.05) : ends[seg.parent];
      angles[i] = (seg.parent < 0 ? 0.0 : angles[seg.parent]) + seg.turn +
                  seg.drift * std::sin(2.0 * kPi * l.s / seg.drift_period_mm + seg.drift_phase);
      ends[i] = start + seg.length * cv::Point2d(std::cos(angles[i]), std::sin(angles[i]));
      if (seg.generation >= first_generation)
        c.line(Tissue::lung_vessel, in_lung(f, start.x, start.y), in_lung(f, ends[i].x, ends[i].y),
               seg.width_mm);
    }
    for (const VesselDot& d : a.lung_dots[side]) {
      if (l.s < d.top || l.s > d.bottom) continue;
      const double ds = l.s - d.top;
      c.circle(Tissue::lung_vessel, in_lung(f, d.u + d.du * ds, d.v + d.dv * ds), d.radius_mm);
    }
  }
  vessels &= tissue == static_cast<uint8_t>(Tissue::lung);
  tissue.setTo(static_cast<int>(Tissue::lung_vessel), vessels);
}

void paint_airways(const Canvas& c, const PhantomAnatomy& a, const Level& l) {
  const double k = a.scale;
  const Spine& sp = l.spine;
  if (l.s < a.stomach_top + 10.0)  // the oesophagus, just in front of the spine
    c.ellipse(Tissue::soft_tissue, {5.0 * k, sp.body_y - sp.body_r - 7.0 * k}, {7.0 * k, 5.0 * k});
  const double airway_y = sp.body_y - sp.body_r - 22.0 * k;
  const double carina = a.heart_top - 5.0;
  if (l.s < carina) {
    c.ellipse(Tissue::soft_tissue, {0.0, airway_y}, {11.0 * k, 10.0 * k});
    c.ellipse(Tissue::air, {0.0, airway_y}, {9.0 * k, 8.0 * k});
  } else if (l.s < carina + 25.0) {  // the main bronchi, heading for the hila
    const double t = (l.s - carina) / 25.0;
    for (const double side : {-1.0, 1.0}) {
      const cv::Point2d p{side * (6.0 + 28.0 * t) * k, airway_y + 4.0 * k * t};
      c.circle(Tissue::soft_tissue, p, 7.0 * k);
      c.circle(Tissue::air, p, 5.0 * k);
    }
  }
}

void paint_heart(const Canvas& c, const PhantomAnatomy& a, const Level& l) {
  const double g = plateau(l.s, a.heart_top, a.heart_top + 40.0, a.heart_bottom - 35.0, a.heart_bottom);
  if (g <= 0.02) return;
  const double t = (l.s - a.heart_top) / (a.heart_bottom - a.heart_top);
  const cv::Size2d& cav = l.cavity;
  const cv::Point2d centre{cav.width * (0.10 + 0.04 * t), -cav.height * (0.18 - 0.12 * t)};
  const double grow = std::sqrt(g) * a.heart_size;
  const cv::Size2d semi{0.34 * cav.width * grow, 0.40 * cav.height * grow};
  constexpr double kAxis = -30.0;  // the apex points forwards and to the left
  const double pad = 4.0 * a.scale;
  c.ellipse(Tissue::visceral_fat, centre, {semi.width + pad, semi.height + pad}, kAxis);
  c.ellipse(Tissue::myocardium, centre, semi, kAxis);
  // Ventricles (in the heart's own frame): the left one towards the apex, the right one in front.
  c.ellipse(Tissue::blood, centre + rotate({0.22 * semi.width, 0.12 * semi.height}, kAxis),
            {0.40 * semi.width, 0.42 * semi.height}, kAxis);
  c.ellipse(Tissue::blood, centre + rotate({-0.20 * semi.width, -0.30 * semi.height}, kAxis),
            {0.42 * semi.width, 0.30 * semi.height}, kAxis);
}

void paint_great_vessels(const Canvas& c, const PhantomAnatomy& a, const Level& l) {
  const double k = a.scale, s = l.s;
  const Spine& sp = l.spine;
  const cv::Size2d& cav = l.cavity;
  // The descending aorta runs left of the spine in the chest and in front of it in the abdomen.
  const double abdomen = smoothstep(230.0, 300.0, s);
  const cv::Point2d chest_aorta{sp.body_r * 0.85 + 4.0 * k, sp.body_y - sp.body_r * 0.75};
  const cv::Point2d belly_aorta{sp.body_r * 0.35, sp.body_y - sp.body_r - 11.0 * k};
  const cv::Point2d descending = chest_aorta + abdomen * (belly_aorta - chest_aorta);
  const cv::Point2d ascending{-0.06 * cav.width, -0.32 * cav.height};
  if (s >= a.arch_level - 8.0 && s <= a.arch_level + 10.0)
    c.line(Tissue::blood, ascending, descending, 24.0 * k);
  if (s > a.arch_level + 4.0) c.circle(Tissue::blood, descending, k * (11.0 - 2.0 * abdomen));
  if (s > a.arch_level + 4.0 && s < a.heart_top + 35.0) c.circle(Tissue::blood, ascending, 14.0 * k);
  if (s < a.arch_level - 2.0) {  // the arch's branches
    c.circle(Tissue::blood, {-0.08 * cav.width, -0.30 * cav.height}, 6.0 * k);
    c.circle(Tissue::blood, {0.02 * cav.width, -0.30 * cav.height}, 4.0 * k);
    c.circle(Tissue::blood, {0.10 * cav.width, -0.20 * cav.height}, 5.0 * k);
  }
  if (s > 5.0 && s < a.heart_top + 15.0)
    c.circle(Tissue::blood, {-0.22 * cav.width, -0.28 * cav.height}, 9.0 * k);
  if (s > a.heart_top - 15.0 && s < a.heart_top + 15.0) {  // pulmonary trunk and arteries
    const cv::Point2d trunk{0.16 * cav.width, -0.36 * cav.height};
    if (s < a.heart_top)
      for (const double side : {-1.0, 1.0})
        c.line(Tissue::blood, trunk, {side * 0.34 * cav.width, -0.02 * cav.height}, 16.0 * k);
    c.circle(Tissue::blood, trunk, 13.0 * k);
  }
  if (s > a.heart_bottom - 15.0)  // inferior vena cava (inside the liver at its upper levels)
    c.circle(Tissue::blood, {-sp.body_r - 10.0 * k, sp.body_y - sp.body_r - 6.0 * k}, 11.0 * k);
}

void paint_bowel(const Canvas& c, const PhantomAnatomy& a, const Level& l) {
  for (const BowelLoop& loop : a.bowel) {
    const double g = plateau(l.s, loop.top, loop.top + 8.0, loop.bottom - 8.0, loop.bottom);
    if (g <= 0.05) continue;
    const cv::Point2d centre = loop.centre + (l.s - loop.top) * loop.slide;
    const double r = loop.radius_mm * std::sqrt(g);
    const double inner = r - 2.5 * a.scale;
    c.circle(Tissue::soft_tissue, centre, r);
    c.circle(Tissue::fluid, centre, inner);
    if (loop.air_fraction > 0.0)
      c.cap(Tissue::air, centre, {inner, inner}, centre.y - inner + 2.0 * inner * loop.air_fraction);
  }
}

void paint_upper_abdomen(const Canvas& c, const PhantomAnatomy& a, const Level& l) {
  const double k = a.scale, s = l.s;
  const cv::Size2d& cav = l.cavity;
  const Spine& sp = l.spine;
  // Stomach: wall, fluid, and the air that rises to the front of a supine patient.
  const double stomach =
      plateau(s, a.stomach_top, a.stomach_top + 20.0, a.stomach_bottom - 20.0, a.stomach_bottom);
  if (stomach > 0.02) {
    const cv::Point2d centre{0.34 * cav.width, -0.22 * cav.height};
    const cv::Size2d semi{0.27 * cav.width * std::sqrt(stomach), 0.32 * cav.height * std::sqrt(stomach)};
    const cv::Size2d inner{semi.width - 3.0 * k, semi.height - 3.0 * k};
    c.ellipse(Tissue::soft_tissue, centre, semi);
    c.ellipse(Tissue::fluid, centre, inner);
    c.cap(Tissue::air, centre, inner, centre.y - inner.height + 2.0 * inner.height * a.stomach_air);
  }
  // Liver: the dome first (over the lung bases), the right lobe sliding outwards and forwards below.
  const double liver = plateau(s, a.liver_top, a.liver_top + 45.0, a.liver_bottom - 70.0, a.liver_bottom);
  if (liver > 0.02) {
    const double low = smoothstep(290.0, a.liver_bottom, s);
    const double grow = std::sqrt(liver) * a.liver_size * (1.0 - 0.35 * low);
    c.ellipse(Tissue::liver, {-cav.width * (0.36 + 0.14 * low), -cav.height * (0.02 + 0.15 * low)},
              {0.56 * cav.width * grow, 0.78 * cav.height * grow}, 10.0);
    const double left_lobe = plateau(s, a.liver_top + 5.0, a.liver_top + 40.0, 285.0, 320.0);
    if (left_lobe > 0.02)
      c.ellipse(Tissue::liver, {0.02 * cav.width, -0.52 * cav.height},
                {0.42 * cav.width * left_lobe, 0.25 * cav.height * left_lobe}, -12.0);
  }
  const double gallbladder = plateau(s, 300.0, 312.0, 338.0, 350.0);
  if (a.gallbladder && gallbladder > 0.05)
    c.ellipse(Tissue::fluid, {-0.22 * cav.width, -0.42 * cav.height},
              {14.0 * k * gallbladder, 11.0 * k * gallbladder});
  const double spleen =
      plateau(s, a.spleen_top, a.spleen_top + 25.0, a.spleen_bottom - 25.0, a.spleen_bottom);
  if (spleen > 0.02)
    c.ellipse(Tissue::spleen, {0.62 * cav.width, 0.30 * cav.height},
              {0.17 * cav.width * std::sqrt(spleen), 0.32 * cav.height * std::sqrt(spleen)}, -35.0);
  const double pancreas = plateau(s, 262.0, 275.0, 305.0, 320.0);
  if (pancreas > 0.02)
    c.ellipse(Tissue::soft_tissue, {0.06 * cav.width, sp.body_y - sp.body_r - 32.0 * k},
              {0.33 * cav.width * pancreas, 8.0 * k * pancreas}, -10.0);
  for (const double side : {-1.0, 1.0}) {
    const double top = a.kidney_top_left + (side < 0 ? a.kidney_offset_right : 0.0);
    const double kidney = plateau(s, top, top + 25.0, top + 85.0, top + 110.0);
    if (kidney > 0.02) {
      const cv::Point2d centre{side * (sp.body_r + 40.0 * k), sp.body_y - 4.0 * k};
      const cv::Size2d semi{22.0 * k * std::sqrt(kidney), 30.0 * k * std::sqrt(kidney)};
      const double axis = -side * 30.0;
      c.ellipse(Tissue::kidney, centre, semi, axis);
      // The renal sinus fat opens towards the front and the midline.
      c.ellipse(Tissue::visceral_fat, centre + rotate({-side * 0.45 * semi.width, -0.25 * semi.height}, axis),
                {0.35 * semi.width, 0.30 * semi.height}, axis);
    }
    const double psoas = smoothstep(310.0, 400.0, s);
    if (psoas > 0.02)
      c.ellipse(Tissue::muscle, {side * (sp.body_r + (10.0 + 6.0 * psoas) * k), sp.body_y - 0.1 * sp.body_r},
                {k * (5.0 + 12.0 * psoas), k * (7.0 + 10.0 * psoas)});
  }
}

void paint_spine(const Canvas& c, const PhantomAnatomy& a, const Level& l) {
  const double k = a.scale;
  const Spine& sp = l.spine;
  for (const double side : {-1.0, 1.0})  // paraspinal muscles, between the spine and the fat
    c.ellipse(Tissue::muscle, {side * (sp.canal_r + 18.0 * k), sp.canal_y + 14.0 * k}, {20.0 * k, 28.0 * k},
              side * 8.0);
  const double cortex = std::max(1.5 * k, a.mm_per_px);
  const bool disc =
      std::fmod(l.s - a.vertebra_phase_mm + 10.0 * a.vertebra_period_mm, a.vertebra_period_mm) < a.disc_mm;
  const cv::Point2d body{0.0, sp.body_y};
  if (disc) {
    c.ellipse(Tissue::disc, body, {sp.body_r * 1.05, sp.body_r * 0.95});
  } else {
    c.ellipse(Tissue::cortical_bone, body, {sp.body_r, sp.body_r * 0.92});
    c.ellipse(Tissue::marrow, body, {sp.body_r - cortex, sp.body_r * 0.92 - cortex});
  }
  const cv::Point2d canal{0.0, sp.canal_y};
  c.arc(Tissue::cortical_bone, canal, {sp.canal_r + 2.0 * k, sp.canal_r + 2.0 * k}, -30.0, 210.0, 3.5 * k);
  c.line(Tissue::cortical_bone, canal + cv::Point2d(0.0, sp.canal_r + 3.0 * k),
         canal + cv::Point2d(0.0, sp.canal_r + 30.0 * k), 6.0 * k);
  for (const double side : {-1.0, 1.0}) {
    const cv::Point2d from = canal + cv::Point2d(side * (sp.canal_r + 1.0 * k), -1.0 * k);
    const cv::Point2d to = canal + cv::Point2d(side * (sp.canal_r + 24.0 * k), 3.0 * k);
    c.line(Tissue::cortical_bone, from, to, 7.0 * k);
    c.line(Tissue::marrow, from, to, 7.0 * k - 2.0 * cortex);
  }
  c.ellipse(Tissue::fluid, canal, {sp.canal_r, sp.canal_r * 0.9});
}

// A bone cross-section: cortex around marrow (all cortex when too thin for marrow at this pixel size).
void paint_bone(const Canvas& c, const PhantomAnatomy& a, cv::Point2d centre, cv::Size2d semi, double angle) {
  const double cortex = std::max(1.2 * a.scale, a.mm_per_px);
  c.ellipse(Tissue::cortical_bone, centre, semi, angle);
  if (semi.width > cortex && semi.height > cortex)
    c.ellipse(Tissue::marrow, centre, {semi.width - cortex, semi.height - cortex}, angle);
}

void paint_ribs(const Canvas& c, const PhantomAnatomy& a, const Level& l) {
  const double k = a.scale;
  const cv::Size2d wall{l.cavity.width + 1.5 * k, l.cavity.height + 1.5 * k};
  for (int side = 0; side < 2; ++side) {
    const double sign = side == 0 ? -1.0 : 1.0;
    for (const RibSlot& rib : a.ribs[side]) {
      const double front = rib.angle / kPi;  // 0 at the back, 1 at the front
      // The first ribs are short and posterior; the lowest ones reach only the back and sides.
      if (l.s < 40.0 * front - 10.0 || l.s > 330.0 - 60.0 * front) continue;
      const double cycle = l.s / rib.period_mm + rib.phase + 0.15 * rib.angle;
      if (cycle - std::floor(cycle) > 0.42) continue;  // an intercostal space
      const cv::Point2d at{sign * wall.width * std::sin(rib.angle), wall.height * std::cos(rib.angle)};
      const cv::Point2d along{sign * wall.width * std::cos(rib.angle), -wall.height * std::sin(rib.angle)};
      paint_bone(c, a, at, {rib.length_mm, 3.5 * k}, std::atan2(along.y, along.x) * 180.0 / kPi);
    }
  }
  if (l.s > 25.0 && l.s < a.heart_bottom - 5.0) {  // sternum (the manubrium is wider)
    const double width = k * (13.0 + 6.0 * (1.0 - smoothstep(25.0, 70.0, l.s)));
    paint_bone(c, a, {0.0, -(l.cavity.height + 0.4 * a.muscle_mm)}, {width, 5.5 * k}, 0.0);
  }
}

// ---------------------------------------------------------------------------------------------------
// Drawing a series' anatomy

std::vector<VesselSegment> draw_vessel_tree(std::mt19937_64& rng, double k) {
  std::vector<VesselSegment> tree;
  const int trunks = 3 + static_cast<int>(uniform_below(rng, 2));
  constexpr int kGenerations = 5;
  for (int t = 0; t < trunks; ++t) {
    VesselSegment trunk;
    // Fanned out from the hilum towards the front, the side wall and the back.
    trunk.turn = -1.3 + 2.6 * (t + uniform(rng, 0.2, 0.8)) / trunks;
    trunk.length = uniform(rng, 0.35, 0.45);
    trunk.width_mm = k * uniform(rng, 5.0, 7.0);
    const size_t first = tree.size();
    tree.push_back(trunk);
    // Breadth first: every segment of a generation forks in two.
    for (size_t i = first; i < tree.size(); ++i) {
      if (tree[i].generation + 1 >= kGenerations) continue;
      for (const double direction : {-1.0, 1.0}) {
        VesselSegment child;
        child.parent = static_cast<int>(i);
        child.generation = tree[i].generation + 1;
        child.turn = direction * uniform(rng, 0.25, 0.6);
        child.length = tree[i].length * uniform(rng, 0.6, 0.8);
        child.width_mm = tree[i].width_mm * 0.7;
        tree.push_back(child);
      }
    }
  }
  for (VesselSegment& seg : tree) {
    seg.drift = uniform(rng, 0.1, 0.35);
    seg.drift_period_mm = uniform(rng, 40.0, 140.0);
    seg.drift_phase = uniform(rng, 0.0, 2.0 * kPi);
  }
  return tree;
}

std::vector<VesselDot> draw_vessel_dots(std::mt19937_64& rng, double k, double lung_end) {
  std::vector<VesselDot> dots(40 + uniform_below(rng, 31));
  for (VesselDot& d : dots) {
    do {
      d.u = uniform(rng, -1.0, 1.0);
      d.v = uniform(rng, -1.0, 1.0);
    } while (d.u * d.u + d.v * d.v > 0.9);
    d.du = uniform(rng, -0.004, 0.004);
    d.dv = uniform(rng, -0.004, 0.004);
    d.radius_mm = k * uniform(rng, 0.8, 2.6);
    d.top = uniform(rng, -40.0, lung_end);
    d.bottom = d.top + uniform(rng, 15.0, 90.0);
  }
  return dots;
}

std::vector<RibSlot> draw_ribs(std::mt19937_64& rng, double k) {
  std::vector<RibSlot> ribs(9 + uniform_below(rng, 3));
  for (size_t i = 0; i < ribs.size(); ++i) {
    ribs[i].angle = 0.45 + 2.3 * (i + 0.5) / ribs.size() + uniform(rng, -0.06, 0.06);
    ribs[i].period_mm = uniform(rng, 26.0, 36.0);
    ribs[i].phase = uniform(rng, 0.0, 1.0);
    ribs[i].length_mm = k * uniform(rng, 7.0, 11.0);
  }
  return ribs;
}

std::vector<BowelLoop> draw_bowel(std::mt19937_64& rng, const PhantomAnatomy& a) {
  const double k = a.scale;
  const cv::Size2d cav{a.half_width - a.fat_mm - a.muscle_mm, a.half_depth - a.fat_mm - a.muscle_mm};
  std::vector<BowelLoop> loops(8 + uniform_below(rng, 7));
  for (BowelLoop& b : loops) {
    b.centre = {uniform(rng, -0.7, 0.7) * cav.width, uniform(rng, -0.85, 0.25) * cav.height};
    b.slide = {uniform(rng, -0.25, 0.25), uniform(rng, -0.25, 0.25)};
    b.radius_mm = k * uniform(rng, 7.0, 15.0);
    b.top = uniform(rng, 260.0, 400.0);
    b.bottom = b.top + uniform(rng, 25.0, 80.0);
    const double kind = uniform_unit(rng);
    b.air_fraction = kind < 0.5 ? 0.0 : kind < 0.75 ? 1.0 : uniform(rng, 0.2, 0.7);
  }
  // Ascending and descending colon along the flanks, partly filled with air.
  for (const double side : {-1.0, 1.0}) {
    BowelLoop colon;
    colon.centre = {side * 0.68 * cav.width, 0.05 * cav.height};
    colon.radius_mm = k * uniform(rng, 14.0, 20.0);
    colon.top = side < 0 ? 320.0 : 300.0;
    colon.bottom = kBodyLengthMm + 50.0;
    colon.air_fraction = uniform(rng, 0.3, 1.0);
    loops.push_back(colon);
  }
  return loops;
}

void draw_hounsfield_units(std::mt19937_64& rng, PhantomAnatomy& a) {
  const auto set = [&](Tissue t, double hu, double texture) {
    a.hu[static_cast<size_t>(t)] = static_cast<float>(hu);
    a.texture_hu[static_cast<size_t>(t)] = static_cast<float>(texture);
  };
  const bool e = a.contrast_enhanced;
  const double fat = uniform(rng, -120.0, -85.0);
  a.lung_front_hu = uniform(rng, -900.0, -850.0);
  a.lung_back_hu = uniform(rng, -780.0, -700.0);
  const double blood = e ? uniform(rng, 150.0, 260.0) : uniform(rng, 35.0, 50.0);
  set(Tissue::air, -1000.0, 0.0);
  set(Tissue::table, uniform(rng, 0.0, 200.0), 0.0);
  set(Tissue::fat, fat, 6.0);
  set(Tissue::visceral_fat, fat + uniform(rng, 5.0, 25.0), 10.0);
  set(Tissue::muscle, uniform(rng, 40.0, 60.0), 5.0);
  set(Tissue::lung, 0.5 * (a.lung_front_hu + a.lung_back_hu), 20.0);
  set(Tissue::lung_vessel, blood, 5.0);
  set(Tissue::soft_tissue, uniform(rng, 35.0, 55.0), 5.0);
  set(Tissue::blood, blood, 3.0);
  set(Tissue::myocardium, e ? uniform(rng, 90.0, 130.0) : uniform(rng, 40.0, 55.0), 4.0);
  set(Tissue::liver, e ? uniform(rng, 90.0, 120.0) : uniform(rng, 50.0, 70.0), 5.0);
  set(Tissue::spleen, e ? uniform(rng, 100.0, 130.0) : uniform(rng, 40.0, 55.0), 4.0);
  set(Tissue::kidney, e ? uniform(rng, 140.0, 200.0) : uniform(rng, 30.0, 45.0), 6.0);
  set(Tissue::fluid, uniform(rng, 0.0, 20.0), 3.0);
  set(Tissue::cortical_bone, uniform(rng, 700.0, 1400.0), 25.0);
  // Cancellous bone: its texture stays small enough to keep it above 300 HU.
  set(Tissue::marrow, uniform(rng, 340.0, 450.0), 10.0);
  set(Tissue::disc, uniform(rng, 70.0, 100.0), 5.0);
}

}  // namespace

double uniform(std::mt19937_64& rng, double lo, double hi) { return lo + (hi - lo) * uniform_unit(rng); }

PhantomAnatomy draw_anatomy(std::mt19937_64& rng, int size, double mm_per_px) {
  PhantomAnatomy a;
  a.size = size;
  a.mm_per_px = mm_per_px;
  const double fov = size * mm_per_px;
  // The body fills most of the field of view, off centre a little (the table sits under its back).
  a.half_width = 0.5 * fov * uniform(rng, 0.70, 0.86);
  a.half_depth = a.half_width * uniform(rng, 0.62, 0.78);
  a.centre_px = {0.5 * size + uniform(rng, -0.03, 0.03) * fov / mm_per_px,
                 0.5 * size + uniform(rng, -0.02, 0.04) * fov / mm_per_px};
  a.scale = a.half_width / 170.0;
  const double k = a.scale;
  a.fat_mm = k * uniform(rng, 8.0, 28.0);
  a.muscle_mm = k * uniform(rng, 6.0, 12.0);
  a.contrast_enhanced = uniform_unit(rng) < 0.4;

  a.arch_level = uniform(rng, 38.0, 52.0);
  a.heart_top = uniform(rng, 95.0, 110.0);
  a.heart_bottom = uniform(rng, 215.0, 235.0);
  a.lung_end_left = uniform(rng, 270.0, 295.0);
  a.lung_end_right = a.lung_end_left - uniform(rng, 5.0, 20.0);  // the liver lifts the right diaphragm
  a.liver_top = uniform(rng, 195.0, 215.0);
  a.liver_bottom = uniform(rng, 370.0, 410.0);
  a.spleen_top = uniform(rng, 220.0, 240.0);
  a.spleen_bottom = a.spleen_top + uniform(rng, 90.0, 115.0);
  a.stomach_top = uniform(rng, 205.0, 225.0);
  a.stomach_bottom = a.stomach_top + uniform(rng, 70.0, 100.0);
  a.kidney_top_left = uniform(rng, 280.0, 300.0);
  a.kidney_offset_right = uniform(rng, 5.0, 20.0);
  a.gallbladder = uniform_unit(rng) < 0.7;

  a.lung_width = uniform(rng, 0.9, 1.05);
  a.lung_depth = uniform(rng, 0.9, 1.05);
  a.heart_size = uniform(rng, 0.9, 1.1);
  a.liver_size = uniform(rng, 0.9, 1.1);
  a.stomach_air = uniform(rng, 0.1, 0.5);
  for (int i = 0; i < 3; ++i) {
    a.lung_ripple[i] = uniform(rng, 0.0, 0.04);
    a.lung_ripple_phase[i] = uniform(rng, 0.0, 2.0 * kPi);
  }
  a.vertebra_period_mm = k * uniform(rng, 26.0, 30.0);
  a.vertebra_phase_mm = uniform(rng, 0.0, a.vertebra_period_mm);
  a.disc_mm = k * uniform(rng, 5.0, 8.0);

  for (int side = 0; side < 2; ++side) {
    a.lung_trees[side] = draw_vessel_tree(rng, k);
    a.lung_dots[side] = draw_vessel_dots(rng, k, side == 0 ? a.lung_end_right : a.lung_end_left);
    a.ribs[side] = draw_ribs(rng, k);
  }
  a.bowel = draw_bowel(rng, a);
  draw_hounsfield_units(rng, a);
  return a;
}

cv::Mat paint_tissues(const PhantomAnatomy& a, double level_mm) {
  const Level l = level_at(a, level_mm);
  const double k = a.scale;
  cv::Mat tissue(a.size, a.size, CV_8UC1, cv::Scalar(static_cast<int>(Tissue::air)));
  const Canvas c(a, tissue);
  // The table top and its lower shell under the patient's back.
  for (const double depth : {4.0, 30.0})
    c.line(Tissue::table, {-0.85 * a.half_width, a.half_depth + depth * k},
           {0.85 * a.half_width, a.half_depth + depth * k}, depth < 10.0 ? 4.0 * k : 2.0 * k);
  c.ellipse(Tissue::fat, {0.0, 0.0}, {a.half_width, a.half_depth});
  c.ellipse(Tissue::muscle, {0.0, 0.0}, {a.half_width - l.fat, a.half_depth - l.fat});
  c.ellipse(Tissue::visceral_fat, {0.0, 0.0}, l.cavity);
  // Organs are drawn over the whole cavity and may overshoot it; the wall is put back afterwards.
  const cv::Mat wall = tissue.clone();
  const cv::Mat outside = tissue != static_cast<uint8_t>(Tissue::visceral_fat);

  paint_bowel(c, a, l);
  paint_lungs(c, a, l);
  paint_upper_abdomen(c, a, l);  // over the lung bases: the diaphragm's domes
  paint_airways(c, a, l);
  paint_heart(c, a, l);
  paint_great_vessels(c, a, l);
  wall.copyTo(tissue, outside);
  paint_spine(c, a, l);
  paint_ribs(c, a, l);
  paint_lung_vessels(a, l, tissue);
  return tissue;
}

double base_hu(const PhantomAnatomy& a, Tissue tissue, int row) {
  if (tissue != Tissue::lung) return a.hu[static_cast<size_t>(tissue)];
  // Gravity: the dependent (back) parts of supine lungs hold more blood and less air.
  const double y_mm = (row - a.centre_px.y) * a.mm_per_px;  // OpenCV draws pixel centres at integers
  const double t = std::clamp((y_mm + 0.8 * a.half_depth) / (1.6 * a.half_depth), 0.0, 1.0);
  return a.lung_front_hu + (a.lung_back_hu - a.lung_front_hu) * t;
}

}  // namespace attnvision::datasets::synth
