#include "datasets/synth/phantoms.h"

#include "datasets/sampler.h"
#include "datasets/synth/phantom_anatomy.h"

#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iterator>
#include <stdexcept>

namespace attnvision::datasets::synth {

namespace {

constexpr double kPi = 3.14159265358979323846;
constexpr int kMinSlices = 8, kMaxSlices = 24;
constexpr double kMinFovMm = 0.6 * 512, kMaxFovMm = 0.9 * 512;
constexpr double kSliceThicknesses[] = {1.0, 1.25, 2.0, 2.5, 3.0, 5.0};
constexpr double kMinLesionMm = 4.0, kMaxLesionMm = 30.0;
// Organ tissue kept free around a lesion (and between lesions), so that its surroundings are its organ.
constexpr double kLesionMarginMm = 2.0;
constexpr int kMaxLesionsPerSlice = 3;
// Centres drawn per lesion size before a smaller size is tried (a nodule's may be refused, see below).
constexpr int kCentreTries = 8;

// Independent streams drawn from one (seed, size, series, slice) key.
enum class Stream : uint64_t { series = 1, slice = 2, uid = 3 };

// SplitMix64's finaliser: spreads neighbouring keys over the whole 64-bit space.
uint64_t mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// The key of one use of randomness. "phantoms" separates it from other generators' keys; the size option
// takes part because it changes what a series looks like (and so must change its UIDs).
uint64_t key(const PhantomOptions& o, int64_t series, int64_t slice, Stream stream) {
  uint64_t h = mix(0x7068616e746f6d73ULL ^ o.seed);  // "phantoms"
  // Log-uniform sizes change the slices too, so they change the keys; uniform ones leave the keys (and so
  // every set written before the option existed) as they were.
  if (o.lesion_sizes == LesionSizes::log_uniform) h = mix(h ^ 0x6c6f6775ULL);  // "logu"
  for (const uint64_t part : {static_cast<uint64_t>(o.size), static_cast<uint64_t>(series),
                              static_cast<uint64_t>(slice), static_cast<uint64_t>(stream)})
    h = mix(h ^ part);
  return h;
}

std::mt19937_64 stream(const PhantomOptions& o, int64_t series, int64_t slice, Stream s) {
  return std::mt19937_64(key(o, series, slice, s));
}

// A UID that only (seed, size, series, slice, role) decide: a regenerated set keeps its UIDs, and
// another seed gives others.
std::string uid(const PhantomOptions& o, int64_t series, int64_t slice, uint64_t role) {
  const uint64_t h = key(o, series, slice, Stream::uid) ^ role;
  return vision::dicom_uid_from_bits(mix(h), mix(h + 1));
}
constexpr int64_t kSeriesWide = -1;  // the slice index of series-level UIDs
enum Role : uint64_t { kStudyUid = 11, kSeriesUid = 12, kFrameUid = 13, kInstanceUid = 14 };

void check_options(const PhantomOptions& o) {
  if (o.size != 0 && o.size != 256 && o.size != 512)
    throw std::invalid_argument("phantoms: size must be 256 or 512 (or 0: drawn per series), got " +
                                std::to_string(o.size));
}

std::string zero_padded(int64_t value, int digits) {
  char text[32];
  std::snprintf(text, sizeof text, "%0*lld", digits, static_cast<long long>(value));
  return text;
}

// Made-up names from syllables, so that no name belongs to a real person by design.
std::string made_up_name(std::mt19937_64& rng, int syllables) {
  static const char* const kSyllables[] = {"ka",  "lo", "mi", "ren", "dra", "vel", "tor",
                                           "sa",  "ni", "bo", "zel", "qua", "fen", "ri",
                                           "mar", "tu", "xo", "len", "pi",  "dun"};
  std::string name;
  for (int i = 0; i < syllables; ++i) name += kSyllables[uniform_below(rng, std::size(kSyllables))];
  name[0] = static_cast<char>(name[0] - 'a' + 'A');
  return name;
}

std::string date(std::mt19937_64& rng, int first_year, int last_year) {
  const int year = first_year + static_cast<int>(uniform_below(rng, last_year - first_year + 1));
  const int month = 1 + static_cast<int>(uniform_below(rng, 12));
  const int day = 1 + static_cast<int>(uniform_below(rng, 28));
  return zero_padded(year, 4) + zero_padded(month, 2) + zero_padded(day, 2);
}

// Patient, study, series and display settings: everything a slice's header shares with its series.
vision::CtImageAttributes series_attributes(const PhantomOptions& o, const PhantomSeries& s,
                                            std::mt19937_64& rng) {
  vision::CtImageAttributes a;
  a.patient_name =
      made_up_name(rng, 2 + static_cast<int>(uniform_below(rng, 2))) + "^" + made_up_name(rng, 2);
  a.patient_id = "AVP" + std::to_string(o.seed) + "-" + std::to_string(s.index);
  a.patient_sex = uniform_below(rng, 2) ? "F" : "M";
  a.patient_birth_date = date(rng, 1935, 2000);
  a.study_date = date(rng, 2015, 2024);
  a.study_time = zero_padded(7 + uniform_below(rng, 12), 2) + zero_padded(uniform_below(rng, 60), 2) +
                 zero_padded(uniform_below(rng, 60), 2);
  a.study_id = zero_padded(s.index + 1, 5);
  a.accession_number = "AV" + zero_padded(static_cast<int64_t>(rng() % 10'000'000'000ULL), 10);
  const double last_level = s.first_level_mm + (s.slice_count - 1) * s.slice_thickness;
  a.study_description = last_level < 230.0         ? "CT phantom chest"
                        : s.first_level_mm > 260.0 ? "CT phantom abdomen"
                                                   : "CT phantom chest abdomen";
  a.series_description = "attnvision phantom " + zero_padded(s.index, 4);
  a.series_number = 2;
  a.study_instance_uid = uid(o, s.index, kSeriesWide, kStudyUid);
  a.series_instance_uid = uid(o, s.index, kSeriesWide, kSeriesUid);
  a.frame_of_reference_uid = uid(o, s.index, kSeriesWide, kFrameUid);
  a.derivation_description =
      "Synthetic CT phantom: attnvision synth phantoms, seed " + std::to_string(o.seed);
  a.pixel_spacing = {s.pixel_spacing, s.pixel_spacing};
  a.slice_thickness = s.slice_thickness;
  a.bits_stored = uniform_below(rng, 2) ? 16 : 12;
  a.is_signed = uniform_below(rng, 2) == 1;
  a.rescale_intercept = -1024.0;
  const vision::CtWindow soft{std::round(uniform(rng, 35.0, 60.0)), std::round(uniform(rng, 350.0, 450.0)),
                              "SOFT TISSUE"};
  const vision::CtWindow lung{std::round(uniform(rng, -650.0, -500.0)),
                              std::round(uniform(rng, 1200.0, 1600.0)), "LUNG"};
  // A chest series opens in the lung window, an abdominal one in the soft-tissue window.
  a.windows = s.first_level_mm + 0.5 * (last_level - s.first_level_mm) < 200.0
                  ? std::vector<vision::CtWindow>{lung, soft}
                  : std::vector<vision::CtWindow>{soft, lung};
  // The patient frame's origin lies near the body's centre, shifted like a real table position; whole
  // hundredths of a millimetre keep the header's decimals short.
  const PhantomAnatomy& anatomy = *s.anatomy;
  const auto hundredths = [](double mm) { return std::round(mm * 100.0) / 100.0; };
  const double table_x = uniform(rng, -20.0, 20.0), table_y = uniform(rng, -20.0, 20.0);
  const double table_z = 0.5 * std::round(2.0 * uniform(rng, -100.0, 500.0));
  a.image_position = {hundredths(table_x - anatomy.centre_px.x * s.pixel_spacing),
                      hundredths(table_y - anatomy.centre_px.y * s.pixel_spacing),
                      table_z - s.first_level_mm};
  return a;
}

// ---------------------------------------------------------------------------------------------------
// Lesions

struct OrganRow {
  const char* name;
  std::vector<Tissue> tissues;
  double weight;  // how often lesions are drawn in it (among the organs the slice cuts through)
};

const std::vector<OrganRow>& organ_table() {
  static const std::vector<OrganRow> table = {
      {"lung", {Tissue::lung, Tissue::lung_vessel}, 0.4},
      {"liver", {Tissue::liver}, 0.3},
      {"spleen", {Tissue::spleen}, 0.1},
      {"muscle", {Tissue::muscle}, 0.2},
  };
  return table;
}

cv::Mat organ_mask(const cv::Mat& tissue, const std::vector<Tissue>& tissues) {
  cv::Mat mask = cv::Mat::zeros(tissue.size(), CV_8UC1);
  for (const Tissue t : tissues) mask |= tissue == static_cast<uint8_t>(t);
  return mask;
}

// A lesion's outline: r(theta) = radius * (1 + sum_k a_k cos(k theta + phase_k)), k = 2..5. All a_k = 0 is
// a disc; their sum bounds how far the outline reaches beyond the mean radius.
struct Outline {
  double radius_px = 1.0;
  std::array<double, 4> amplitude{}, phase{};
  double reach() const {
    double sum = 0.0;
    for (const double a : amplitude) sum += a;
    return radius_px * (1.0 + sum);
  }
  bool contains(int dx, int dy) const {
    const double th = std::atan2(double(dy), double(dx));
    double r = 1.0;
    for (size_t k = 0; k < amplitude.size(); ++k) r += amplitude[k] * std::cos((k + 2) * th + phase[k]);
    return double(dx) * dx + double(dy) * dy <= radius_px * radius_px * r * r;
  }
};

// Round (lobulation near 0) to lobulated (up to 0.25 spread over four lobe counts).
Outline draw_outline(std::mt19937_64& rng) {
  Outline o;
  const double lobulation = 0.25 * std::pow(uniform_unit(rng), 2.0);
  double weights[4], total = 0.0;
  for (double& w : weights) total += (w = uniform(rng, 0.1, 1.0));
  for (size_t k = 0; k < 4; ++k) {
    o.amplitude[k] = lobulation * weights[k] / total;
    o.phase[k] = uniform(rng, 0.0, 2.0 * kPi);
  }
  return o;
}

// The pixels where an organ has room for a lesion of this reach: the organ's distance to anything else
// (occupied pixels included) must exceed reach + margin.
struct Room {
  cv::Mat distance;  // CV_32F over the organ's bounding box plus one pixel
  cv::Point origin;  // image position of distance(0, 0)
};

Room room_in(const cv::Mat& organ) {
  Room room;
  const cv::Rect box = cv::boundingRect(organ);
  if (box.empty()) return room;
  // A zero border: the image edge counts as outside the organ.
  cv::Mat padded;
  cv::copyMakeBorder(organ(box), padded, 1, 1, 1, 1, cv::BORDER_CONSTANT, cv::Scalar(0));
  cv::distanceTransform(padded, room.distance, cv::DIST_L2, cv::DIST_MASK_PRECISE);
  room.origin = box.tl() - cv::Point(1, 1);
  return room;
}

// A uniformly drawn pixel with at least `need` pixels of room, if any.
bool draw_centre(const Room& room, double need, std::mt19937_64& rng, cv::Point& centre) {
  if (room.distance.empty()) return false;
  const float threshold = static_cast<float>(need);
  uint64_t count = 0;
  for (int y = 0; y < room.distance.rows; ++y) {
    const float* d = room.distance.ptr<float>(y);
    for (int x = 0; x < room.distance.cols; ++x) count += d[x] >= threshold;
  }
  if (count == 0) return false;
  uint64_t pick = uniform_below(rng, count);
  for (int y = 0; y < room.distance.rows; ++y) {
    const float* d = room.distance.ptr<float>(y);
    for (int x = 0; x < room.distance.cols; ++x)
      if (d[x] >= threshold && pick-- == 0) {
        centre = room.origin + cv::Point(x, y);
        return true;
      }
  }
  return false;
}

// Whether a nodule at `centre` would sit in aerated lung: at least 60% of the ring just outside its
// reach is lung rather than vessel. (Placement counts vessels as lung, so that the vessel trees do not cut
// the lungs into pieces too small for larger nodules; this keeps nodules out of the hila's vessel bundles.)
bool aerated_around(const cv::Mat& tissue, cv::Point centre, double reach, double margin) {
  const double inner = reach + 1.0, outer = reach + margin + 1.0;
  const int r = static_cast<int>(std::ceil(outer));
  int lung = 0, vessel = 0;
  for (int dy = -r; dy <= r; ++dy) {
    for (int dx = -r; dx <= r; ++dx) {
      const double d2 = double(dx) * dx + double(dy) * dy;
      const cv::Point p = centre + cv::Point(dx, dy);
      if (d2 < inner * inner || d2 > outer * outer || !cv::Rect(0, 0, tissue.cols, tissue.rows).contains(p))
        continue;
      const uint8_t t = tissue.at<uint8_t>(p);
      lung += t == static_cast<uint8_t>(Tissue::lung);
      vessel += t == static_cast<uint8_t>(Tissue::lung_vessel);
    }
  }
  return 10 * lung >= 6 * (lung + vessel);
}

cv::Mat lesion_mask(cv::Size size, cv::Point centre, const Outline& outline) {
  cv::Mat mask = cv::Mat::zeros(size, CV_8UC1);
  const int reach = static_cast<int>(std::ceil(outline.reach()));
  for (int dy = -reach; dy <= reach; ++dy) {
    const int y = centre.y + dy;
    if (y < 0 || y >= size.height) continue;
    uint8_t* row = mask.ptr<uint8_t>(y);
    for (int dx = -reach; dx <= reach; ++dx) {
      const int x = centre.x + dx;
      if (x >= 0 && x < size.width && outline.contains(dx, dy)) row[x] = 255;
    }
  }
  return mask;
}

struct SliceCanvas {
  const PhantomSeries& series;
  const cv::Mat& tissue;
  cv::Mat& hu;             // base HU with texture, before blur and noise
  const cv::Mat& texture;  // the unit texture field the HU carries
  cv::Mat occupied;        // lesions and their margins
};

// One draw from the rng either way, so both distributions consume their streams alike.
double draw_lesion_diameter(LesionSizes sizes, std::mt19937_64& rng) {
  if (sizes == LesionSizes::log_uniform)
    return std::exp(uniform(rng, std::log(kMinLesionMm), std::log(kMaxLesionMm)));
  return uniform(rng, kMinLesionMm, kMaxLesionMm);
}

// Draws a lesion's organ among those the slice cuts through, then a size that fits it (halving the excess
// over the smallest size a few times before trying another organ). Returns false when none fits.
bool add_lesion(SliceCanvas& c, LesionSizes sizes, std::mt19937_64& rng, std::vector<PhantomLesion>& lesions) {
  const PhantomAnatomy& anatomy = *c.series.anatomy;
  const double mm_per_px = c.series.pixel_spacing;
  const double margin_px = std::max(2.0, kLesionMarginMm / mm_per_px);
  std::vector<const OrganRow*> candidates;
  for (const OrganRow& row : organ_table()) candidates.push_back(&row);
  while (!candidates.empty()) {
    double total = 0.0;
    for (const OrganRow* row : candidates) total += row->weight;
    double pick = uniform(rng, 0.0, total);
    size_t chosen = 0;
    while (chosen + 1 < candidates.size() && pick >= candidates[chosen]->weight)
      pick -= candidates[chosen++]->weight;
    const OrganRow& organ = *candidates[chosen];
    candidates.erase(candidates.begin() + static_cast<std::ptrdiff_t>(chosen));

    const cv::Mat free = organ_mask(c.tissue, organ.tissues) & ~c.occupied;
    const Room room = room_in(free);
    Outline outline = draw_outline(rng);
    double diameter = draw_lesion_diameter(sizes, rng);
    const bool nodule = organ.tissues.front() == Tissue::lung;
    cv::Point centre;
    for (int attempt = 0; attempt < 5; ++attempt, diameter = kMinLesionMm + 0.5 * (diameter - kMinLesionMm)) {
      outline.radius_px = 0.5 * diameter / mm_per_px;
      bool placed = false;
      for (int t = 0; t < kCentreTries && !placed; ++t) {
        if (!draw_centre(room, outline.reach() + margin_px + 1.0, rng, centre)) break;
        placed = !nodule || aerated_around(c.tissue, centre, outline.reach(), margin_px);
      }
      if (!placed) continue;
      PhantomLesion lesion;
      lesion.center_px = centre;
      lesion.diameter_mm = diameter;
      lesion.organ = organ.name;
      lesion.mask = lesion_mask(c.hu.size(), centre, outline);
      double lesion_hu;
      if (nodule) {  // a soft-tissue nodule in aerated lung
        lesion_hu = uniform(rng, 20.0, 60.0);
        lesion.contrast_hu = lesion_hu - base_hu(anatomy, Tissue::lung, centre.y);
      } else {  // hypo- or hyper-dense against its organ
        lesion.contrast_hu = (uniform_below(rng, 2) ? 1.0 : -1.0) * uniform(rng, 40.0, 100.0);
        lesion_hu = anatomy.hu[static_cast<size_t>(organ.tissues.front())] + lesion.contrast_hu;
      }
      // A lesion keeps a soft-tissue texture of its own, over the same field as its surroundings.
      const float texture_hu = anatomy.texture_hu[static_cast<size_t>(Tissue::soft_tissue)];
      const cv::Rect box = cv::boundingRect(lesion.mask);
      for (int y = box.y; y < box.br().y; ++y) {
        const uint8_t* m = lesion.mask.ptr<uint8_t>(y);
        float* out = c.hu.ptr<float>(y);
        const float* tex = c.texture.ptr<float>(y);
        for (int x = box.x; x < box.br().x; ++x)
          if (m[x]) out[x] = static_cast<float>(lesion_hu) + texture_hu * tex[x];
      }
      cv::circle(c.occupied, centre, static_cast<int>(std::ceil(outline.reach() + margin_px)),
                 cv::Scalar(255), cv::FILLED);
      lesions.push_back(std::move(lesion));
      return true;
    }
  }
  return false;
}

// About half the slices are clean: 0 lesions with probability 1/2, then 1, 2, 3 with 1/4, 3/20, 1/10.
int draw_lesion_count(std::mt19937_64& rng) {
  const double u = uniform_unit(rng);
  return u < 0.5 ? 0 : u < 0.75 ? 1 : u < 0.9 ? 2 : kMaxLesionsPerSlice;
}

// ---------------------------------------------------------------------------------------------------
// Pixels

// A smooth unit-variance field (coarse Gaussian noise, upsampled): tissue texture that varies over a few
// millimetres, so organs are not flat.
cv::Mat texture_field(cv::Size size, cv::RNG& noise) {
  cv::Mat coarse(std::max(4, size.height / 16), std::max(4, size.width / 16), CV_32FC1);
  noise.fill(coarse, cv::RNG::NORMAL, 0.0, 1.0);
  cv::Mat field;
  cv::resize(coarse, field, size, 0, 0, cv::INTER_CUBIC);
  return field;
}

cv::Mat base_image(const PhantomAnatomy& anatomy, const cv::Mat& tissue, const cv::Mat& texture) {
  cv::Mat hu(tissue.size(), CV_32FC1);
  for (int y = 0; y < tissue.rows; ++y) {
    const uint8_t* t = tissue.ptr<uint8_t>(y);
    const float* tex = texture.ptr<float>(y);
    float* out = hu.ptr<float>(y);
    const float lung = static_cast<float>(base_hu(anatomy, Tissue::lung, y));
    for (int x = 0; x < tissue.cols; ++x) {
      const float base = t[x] == static_cast<uint8_t>(Tissue::lung) ? lung : anatomy.hu[t[x]];
      out[x] = base + anatomy.texture_hu[t[x]] * tex[x];
    }
  }
  return hu;
}

int odd_kernel(double sigma) { return 2 * static_cast<int>(std::ceil(3.0 * sigma)) + 1; }

// Scanner noise: white, or Gaussian-filtered and rescaled so that its standard deviation stays `sigma`
// (a separable filter k scales it by sum(k_i^2)).
void add_noise(cv::Mat& hu, double sigma, double correlation_px, cv::RNG& noise) {
  cv::Mat n(hu.size(), CV_32FC1);
  noise.fill(n, cv::RNG::NORMAL, 0.0, 1.0);
  double scale = sigma;
  if (correlation_px > 0.0) {
    const int ksize = odd_kernel(correlation_px);
    cv::GaussianBlur(n, n, cv::Size(ksize, ksize), correlation_px, correlation_px, cv::BORDER_REFLECT101);
    const cv::Mat k = cv::getGaussianKernel(ksize, correlation_px, CV_64F);
    scale = sigma / k.dot(k);
  }
  cv::scaleAdd(n, scale, hu, hu);
}

// Whole HU within what the series' stored values hold (so the file holds exactly these values).
void quantise(cv::Mat& hu, const PhantomSeries& s) {
  const vision::HuRange range =
      vision::ct_hu_range(s.dicom.bits_stored, s.dicom.is_signed, s.dicom.rescale_intercept);
  for (int y = 0; y < hu.rows; ++y) {
    float* p = hu.ptr<float>(y);
    for (int x = 0; x < hu.cols; ++x)
      p[x] = static_cast<float>(
          std::clamp(static_cast<double>(std::nearbyint(p[x])), range.lowest, range.highest));
  }
}

}  // namespace

const char* tissue_name(Tissue tissue) {
  static const char* const kNames[kTissueCount] = {
      "air",         "table",       "fat",           "visceral_fat", "muscle", "lung",
      "lung_vessel", "soft_tissue", "blood",         "myocardium",   "liver",  "spleen",
      "kidney",      "fluid",       "cortical_bone", "marrow",       "disc"};
  const int index = static_cast<int>(tissue);
  return index < kTissueCount ? kNames[index] : "unknown";
}

const std::vector<std::string>& lesion_organs() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> n;
    for (const OrganRow& row : organ_table()) n.push_back(row.name);
    return n;
  }();
  return names;
}

std::vector<Tissue> organ_tissues(const std::string& organ) {
  for (const OrganRow& row : organ_table())
    if (organ == row.name) return row.tissues;
  throw std::invalid_argument("phantoms: unknown lesion organ '" + organ + "'");
}

PhantomSeries draw_phantom_series(const PhantomOptions& options, int64_t index) {
  check_options(options);
  if (index < 0) throw std::invalid_argument("phantoms: negative series index " + std::to_string(index));
  std::mt19937_64 rng = stream(options, index, kSeriesWide, Stream::series);
  PhantomSeries s;
  s.index = index;
  s.folder = "series_" + std::to_string(options.seed) + "_" + zero_padded(index, 4);
  const int drawn_size = uniform_below(rng, 2) ? 512 : 256;  // drawn either way: --size changes nothing else
  s.size = options.size ? options.size : drawn_size;
  // Both sizes see the same field of view (512 x 0.6-0.9 mm = 256 x 1.2-1.8 mm = 307.2-460.8 mm), in whole
  // millimetres: the spacing is then exact in binary and in the header's decimals.
  const int fov_lo = static_cast<int>(std::ceil(kMinFovMm)), fov_hi = static_cast<int>(std::floor(kMaxFovMm));
  s.pixel_spacing = (fov_lo + static_cast<int>(uniform_below(rng, fov_hi - fov_lo + 1))) / double(s.size);
  s.slice_thickness = kSliceThicknesses[uniform_below(rng, std::size(kSliceThicknesses))];
  s.slice_count = kMinSlices + static_cast<int>(uniform_below(rng, kMaxSlices - kMinSlices + 1));
  const double span = (s.slice_count - 1) * s.slice_thickness;
  s.first_level_mm = 0.5 * std::round(2.0 * uniform(rng, 0.0, kBodyLengthMm - span));
  s.blur_px = uniform(rng, 0.4, 0.9);
  s.noise_hu = uniform(rng, 5.0, 25.0);
  s.noise_correlation_px = uniform_below(rng, 2) ? uniform(rng, 0.6, 1.4) : 0.0;
  s.anatomy = std::make_shared<const PhantomAnatomy>(draw_anatomy(rng, s.size, s.pixel_spacing));
  s.dicom = series_attributes(options, s, rng);
  s.dicom.sop_instance_uid = uid(options, index, 0, kInstanceUid);
  return s;
}

PhantomSlice render_phantom_slice(const PhantomOptions& options, const PhantomSeries& series, int slice) {
  if (slice < 0 || slice >= series.slice_count)
    throw std::invalid_argument("phantoms: slice " + std::to_string(slice) + " outside 0.." +
                                std::to_string(series.slice_count - 1));
  std::mt19937_64 rng = stream(options, series.index, slice, Stream::slice);
  cv::RNG noise(rng());
  const PhantomAnatomy& anatomy = *series.anatomy;
  PhantomSlice out;
  out.index = slice;
  out.level_mm = series.first_level_mm + slice * series.slice_thickness;
  out.tissue = paint_tissues(anatomy, out.level_mm);
  const cv::Mat texture = texture_field(out.tissue.size(), noise);
  cv::Mat hu = base_image(anatomy, out.tissue, texture);

  SliceCanvas canvas{series, out.tissue, hu, texture, cv::Mat::zeros(out.tissue.size(), CV_8UC1)};
  const int wanted = draw_lesion_count(rng);
  for (int i = 0; i < wanted; ++i) add_lesion(canvas, options.lesion_sizes, rng, out.lesions);

  const int ksize = odd_kernel(series.blur_px);
  cv::GaussianBlur(hu, hu, cv::Size(ksize, ksize), series.blur_px, series.blur_px, cv::BORDER_REPLICATE);
  add_noise(hu, series.noise_hu, series.noise_correlation_px, noise);
  quantise(hu, series);
  out.hu = hu;

  out.dicom = series.dicom;
  out.dicom.sop_instance_uid = uid(options, series.index, slice, kInstanceUid);
  out.dicom.instance_number = slice + 1;
  out.dicom.image_position[2] = series.dicom.image_position[2] - slice * series.slice_thickness;
  return out;
}

int64_t count_phantom_slices(const PhantomOptions& options, int64_t series_count) {
  int64_t total = 0;
  for (int64_t k = 0; k < series_count; ++k) total += draw_phantom_series(options, k).slice_count;
  return total;
}

}  // namespace attnvision::datasets::synth
