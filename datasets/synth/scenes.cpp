#include "datasets/synth/scenes.h"

#include "datasets/sampler.h"
#include "datasets/synth/scene_captions.h"
#include "vision/files/atomic_write.h"
#include "vision/image_write.h"

#include <nlohmann/json.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <stdexcept>

namespace attnvision::datasets::synth {

namespace fs = std::filesystem;

namespace {

constexpr uint8_t kItemThreshold = 32;  // an item pixel: resized image >= 32 of 255
constexpr int kMaxCanvas = 2048;        // a sane upper bound: 2048 x 2048 x 3 bytes per image
// Placement tries: this many sizes per item, this many positions per size, then the item is dropped.
constexpr int kSizeTries = 3;
constexpr int kPositionTries = 24;
// Extra items tried when a scene would otherwise stay empty (only a source whose images nearly all stay
// below the item threshold once resized can get there).
constexpr int kFirstItemTries = 16;
constexpr uint64_t kSceneStream = 0;
constexpr uint64_t kCaptionStream = 1;

// A uniform integer in lo..hi.
int between(std::mt19937_64& rng, int lo, int hi) {
  return lo + static_cast<int>(uniform_below(rng, static_cast<uint64_t>(hi - lo + 1)));
}

// SplitMix64's finaliser: spreads (seed, split, index) over the whole 64-bit seed space, so neighbouring
// indices or seeds do not give related mt19937_64 states.
uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// ---------------------------------------------------------------------------------------------------
// Backgrounds. Integer arithmetic only (no libm), so every machine paints the same bytes.

// Dark to mid tones: every tint in the palette stands out against them.
cv::Vec3b background_colour(std::mt19937_64& rng) {
  cv::Vec3b c;
  for (int ch = 0; ch < 3; ++ch) c[ch] = static_cast<uint8_t>(between(rng, 0, 120));
  return c;
}

template <typename PixelAt>
void fill(cv::Mat& canvas, PixelAt pixel_at) {
  for (int y = 0; y < canvas.rows; ++y) {
    auto* row = canvas.ptr<cv::Vec3b>(y);
    for (int x = 0; x < canvas.cols; ++x) row[x] = pixel_at(x, y);
  }
}

// A coordinate along one of three directions (horizontal, vertical, diagonal) and its largest value.
struct Direction {
  int kind;
  int along(int x, int y) const { return kind == 0 ? x : kind == 1 ? y : x + y; }
  int extent(const cv::Mat& m) const { return along(m.cols - 1, m.rows - 1); }
};

void paint_flat(cv::Mat& canvas, std::mt19937_64& rng) {
  const cv::Vec3b c = background_colour(rng);
  canvas.setTo(cv::Scalar(c[0], c[1], c[2]));
}

void paint_gradient(cv::Mat& canvas, std::mt19937_64& rng) {
  const cv::Vec3b a = background_colour(rng);
  const cv::Vec3b b = background_colour(rng);
  const Direction d{between(rng, 0, 2)};
  const int span = std::max(1, d.extent(canvas));
  fill(canvas, [&](int x, int y) {
    const int t = d.along(x, y);
    cv::Vec3b c;
    for (int ch = 0; ch < 3; ++ch) c[ch] = static_cast<uint8_t>((a[ch] * (span - t) + b[ch] * t) / span);
    return c;
  });
}

void paint_noise(cv::Mat& canvas, std::mt19937_64& rng) {
  const cv::Vec3b base = background_colour(rng);
  const int amplitude = between(rng, 10, 40);
  fill(canvas, [&](int, int) {
    const int d = between(rng, -amplitude, amplitude);
    cv::Vec3b c;
    for (int ch = 0; ch < 3; ++ch) c[ch] = static_cast<uint8_t>(std::clamp(base[ch] + d, 0, 255));
    return c;
  });
}

void paint_stripes(cv::Mat& canvas, std::mt19937_64& rng) {
  const cv::Vec3b a = background_colour(rng);
  const cv::Vec3b b = background_colour(rng);
  const Direction d{between(rng, 0, 2)};
  const int width = between(rng, 3, 10);
  fill(canvas, [&](int x, int y) { return (d.along(x, y) / width) % 2 ? b : a; });
}

void paint_checks(cv::Mat& canvas, std::mt19937_64& rng) {
  const cv::Vec3b a = background_colour(rng);
  const cv::Vec3b b = background_colour(rng);
  const int cell = between(rng, 4, 16);
  fill(canvas, [&](int x, int y) { return (x / cell + y / cell) % 2 ? b : a; });
}

struct BackgroundRow {
  const char* name;
  void (*paint)(cv::Mat& canvas, std::mt19937_64& rng);
};

// Drawn uniformly per image; the name travels with the scene (captions describe it).
const std::vector<BackgroundRow>& background_table() {
  static const std::vector<BackgroundRow> table = {
      {"flat", paint_flat},       {"gradient", paint_gradient}, {"noise", paint_noise},
      {"stripes", paint_stripes}, {"checks", paint_checks},
  };
  return table;
}

// ---------------------------------------------------------------------------------------------------
// Items

void check_options(const SceneOptions& o) {
  const auto bad = [](const std::string& problem) { throw std::invalid_argument("scenes: " + problem); };
  if (o.split != "train" && o.split != "test") bad("unknown split '" + o.split + "' (train or test)");
  if (o.size < 64 || o.size > kMaxCanvas)
    bad("size " + std::to_string(o.size) + " is outside 64.." + std::to_string(kMaxCanvas));
  if (o.min_items < 1 || o.min_items > o.max_items || o.max_items > 254)
    bad("item counts must satisfy 1 <= min_items <= max_items <= 254");
  if (o.min_side < 1 || o.min_side > o.max_side || o.max_side > o.size)
    bad("item sides must satisfy 1 <= min_side <= max_side <= size");
  if (!(o.max_overlap >= 0.0 && o.max_overlap <= 1.0)) bad("max_overlap must be in 0..1");
}

// The source's layout is checked once, so rows can be read through raw pointers afterwards.
void check_source(const LabeledImages& s) {
  const torch::Tensor& im = s.images;
  if (!im.defined() || im.dim() != 4 || im.size(1) != 1 || im.scalar_type() != torch::kUInt8 ||
      !im.is_contiguous() || im.size(0) < 1)
    throw std::invalid_argument(s.source + ": scenes need N x 1 x H x W contiguous uint8 images, N >= 1");
  if (!s.labels.defined() || s.labels.scalar_type() != torch::kLong || !s.labels.is_contiguous() ||
      s.labels.dim() != 1 || s.labels.size(0) != im.size(0))
    throw std::invalid_argument(s.source + ": scenes need one contiguous int64 label per image");
}

// Row `row` of the source as a cv::Mat header over the tensor's memory (no copy).
cv::Mat source_image(const LabeledImages& s, int64_t row) {
  const int h = static_cast<int>(s.images.size(2));
  const int w = static_cast<int>(s.images.size(3));
  return cv::Mat(h, w, CV_8UC1, s.images.data_ptr<uint8_t>() + row * h * w);
}

int source_label(const LabeledImages& s, int64_t row) {
  const int64_t label = s.labels.data_ptr<int64_t>()[row];
  if (label < 0 || label >= static_cast<int64_t>(fashion_mnist_classes().size()))
    throw std::invalid_argument(s.source + ": label " + std::to_string(label) + " of row " +
                                std::to_string(row) + " is not a Fashion-MNIST class (0..9)");
  return static_cast<int>(label);
}

// Sets owner = id on the mask's item pixels (clipped to the canvas).
void paint_owner(cv::Mat& owner, const PlacedMask& m, uint8_t id) {
  for (int y = 0; y < m.mask.rows; ++y) {
    const int oy = m.at.y + y;
    if (oy < 0 || oy >= owner.rows) continue;
    const uint8_t* mask = m.mask.ptr<uint8_t>(y);
    uint8_t* out = owner.ptr<uint8_t>(oy);
    for (int x = 0; x < m.mask.cols; ++x) {
      const int ox = m.at.x + x;
      if (mask[x] && ox >= 0 && ox < owner.cols) out[ox] = id;
    }
  }
}

// The item's shading kept under its tint: brightness v >= 32 maps to 30%..100% of the tint (integer
// arithmetic: (v + 64) / 319).
void paint_item(cv::Mat& image, const cv::Mat& resized, cv::Point at, cv::Vec3b tint) {
  for (int y = 0; y < resized.rows; ++y) {
    const uint8_t* v = resized.ptr<uint8_t>(y);
    auto* out = image.ptr<cv::Vec3b>(at.y + y) + at.x;
    for (int x = 0; x < resized.cols; ++x) {
      if (v[x] < kItemThreshold) continue;
      for (int ch = 0; ch < 3; ++ch) out[x][ch] = static_cast<uint8_t>(tint[ch] * (v[x] + 64) / 319);
    }
  }
}

// The owner map and visible parts a scene would have with one more item, if every pair of items then
// keeps within the overlap rule (full boxes: the new one against each earlier one; visible boxes: every
// pair, since the new item shrinks earlier items' visible boxes) and every item keeps a visible pixel.
bool try_place(const Scene& scene, const PlacedMask& item, const cv::Rect& box, double max_overlap,
               cv::Mat& owner, std::vector<VisiblePart>& parts) {
  for (const SceneItem& earlier : scene.items)
    if (!overlap_allowed(box, earlier.box, max_overlap)) return false;
  owner = scene.owner.clone();
  paint_owner(owner, item, static_cast<uint8_t>(scene.items.size() + 1));
  parts = visible_parts(owner, scene.items.size() + 1);
  for (size_t a = 0; a < parts.size(); ++a) {
    if (parts[a].area == 0) return false;
    for (size_t b = a + 1; b < parts.size(); ++b)
      if (!overlap_allowed(parts[a].bbox, parts[b].bbox, max_overlap)) return false;
  }
  return true;
}

// Draws one item (source row, tint, size, position) and paints it if it can be placed within the
// bounded tries; returns whether it was.
bool add_item(Scene& scene, const LabeledImages& source, const SceneOptions& o, std::mt19937_64& rng) {
  SceneItem item;
  item.source_index = static_cast<int64_t>(uniform_below(rng, static_cast<uint64_t>(source.size())));
  item.category = source_label(source, item.source_index);
  const NamedColour& tint = tint_palette()[uniform_below(rng, tint_palette().size())];
  item.colour = tint.name;
  for (int size_try = 0; size_try < kSizeTries; ++size_try) {
    const int side = between(rng, o.min_side, o.max_side);
    cv::Mat resized;
    cv::resize(source_image(source, item.source_index), resized, cv::Size(side, side), 0, 0,
               cv::INTER_LINEAR);
    PlacedMask placed{resized >= kItemThreshold, {}};
    if (cv::countNonZero(placed.mask) == 0) continue;  // this size leaves no item pixel
    const cv::Rect inner = cv::boundingRect(placed.mask);
    for (int position_try = 0; position_try < kPositionTries; ++position_try) {
      placed.at = {between(rng, 0, o.size - side), between(rng, 0, o.size - side)};
      cv::Mat owner;
      std::vector<VisiblePart> parts;
      if (!try_place(scene, placed, inner + placed.at, o.max_overlap, owner, parts)) continue;
      paint_item(scene.image, resized, placed.at, tint.rgb);
      scene.owner = owner;
      item.placed = cv::Rect(placed.at, cv::Size(side, side));
      item.box = inner + placed.at;
      scene.items.push_back(item);
      for (size_t k = 0; k < parts.size(); ++k) {
        scene.items[k].bbox = parts[k].bbox;
        scene.items[k].area = parts[k].area;
      }
      return true;
    }
  }
  return false;
}

using nlohmann::ordered_json;

ordered_json categories_json() {
  ordered_json categories = ordered_json::array();
  for (size_t c = 0; c < fashion_mnist_classes().size(); ++c)
    categories.push_back({{"id", c + 1}, {"name", fashion_mnist_classes()[c]}, {"supercategory", "fashion"}});
  return categories;
}

}  // namespace


const std::vector<NamedColour>& tint_palette() {
  static const std::vector<NamedColour> palette = {
      {"red", {220, 40, 40}},     {"green", {40, 180, 60}},   {"blue", {60, 100, 235}},
      {"yellow", {240, 220, 40}}, {"orange", {250, 140, 30}}, {"purple", {150, 70, 200}},
      {"white", {250, 250, 250}}, {"pink", {250, 140, 200}},  {"brown", {160, 100, 50}},
      {"grey", {170, 170, 170}},
  };
  return palette;
}

bool overlap_allowed(const cv::Rect& a, const cv::Rect& b, double max_overlap) {
  const double smaller = static_cast<double>(std::min(a.area(), b.area()));
  return static_cast<double>((a & b).area()) <= max_overlap * smaller;
}

cv::Mat owner_map(cv::Size size, const std::vector<PlacedMask>& items) {
  if (items.size() > 254) throw std::invalid_argument("owner_map: at most 254 items");
  cv::Mat owner = cv::Mat::zeros(size, CV_8UC1);
  for (size_t k = 0; k < items.size(); ++k) paint_owner(owner, items[k], static_cast<uint8_t>(k + 1));
  return owner;
}

std::vector<VisiblePart> visible_parts(const cv::Mat& owner, size_t count) {
  struct Extent {
    int x0 = std::numeric_limits<int>::max(), y0 = std::numeric_limits<int>::max(), x1 = -1, y1 = -1;
    int64_t n = 0;
  };
  std::vector<Extent> extents(count);
  for (int y = 0; y < owner.rows; ++y) {
    const uint8_t* row = owner.ptr<uint8_t>(y);
    for (int x = 0; x < owner.cols; ++x) {
      if (row[x] == 0 || static_cast<size_t>(row[x]) > count) continue;  // 0: background
      Extent& e = extents[row[x] - 1];
      e.x0 = std::min(e.x0, x);
      e.y0 = std::min(e.y0, y);
      e.x1 = std::max(e.x1, x);
      e.y1 = std::max(e.y1, y);
      ++e.n;
    }
  }
  std::vector<VisiblePart> parts(count);
  for (size_t k = 0; k < count; ++k) {
    const Extent& e = extents[k];
    if (e.n > 0) parts[k] = {cv::Rect(e.x0, e.y0, e.x1 - e.x0 + 1, e.y1 - e.y0 + 1), e.n};
  }
  return parts;
}

std::mt19937_64 scene_rng(uint64_t seed, const std::string& split, int64_t index, uint64_t stream) {
  uint64_t h = splitmix64(seed);
  for (const char c : split) h = splitmix64(h ^ static_cast<uint8_t>(c));
  h = splitmix64(h ^ static_cast<uint64_t>(index));
  return std::mt19937_64(splitmix64(h ^ stream));
}

Scene compose_scene(const LabeledImages& source, const SceneOptions& options, int64_t index) {
  check_options(options);
  check_source(source);
  std::mt19937_64 rng = scene_rng(options.seed, options.split, index, kSceneStream);
  Scene scene;
  scene.image.create(options.size, options.size, CV_8UC3);
  const BackgroundRow& background = background_table()[uniform_below(rng, background_table().size())];
  scene.background = background.name;
  background.paint(scene.image, rng);
  scene.owner = cv::Mat::zeros(options.size, options.size, CV_8UC1);
  const int wanted = between(rng, options.min_items, options.max_items);
  for (int k = 0; k < wanted; ++k) add_item(scene, source, options, rng);
  for (int k = 0; k < kFirstItemTries && scene.items.empty(); ++k) add_item(scene, source, options, rng);
  if (scene.items.empty())
    throw std::runtime_error(source.source + ": no item with pixels >= 32 after resizing in " +
                             std::to_string(wanted + kFirstItemTries) + " draws");
  return scene;
}

std::string scene_file_name(const SceneOptions& options, int64_t index) {
  char digits[32];
  std::snprintf(digits, sizeof digits, "%06lld", static_cast<long long>(index));
  return options.split + "_s" + std::to_string(options.seed) + "_" + digits + ".png";
}

SceneSetSummary write_scene_set(const LabeledImages& source, const SceneOptions& options, int64_t count,
                                const std::string& out_dir,
                                const std::function<void(int64_t done)>& progress) {
  if (count < 1)
    throw std::invalid_argument("scenes: the image count must be at least 1, got " + std::to_string(count));
  check_options(options);
  check_source(source);
  const fs::path images_dir = fs::path(out_dir) / "images";
  fs::create_directories(images_dir);
  vision::remove_temporaries(out_dir);  // what a killed earlier run left behind

  ordered_json images = ordered_json::array();
  ordered_json instances = ordered_json::array();
  ordered_json captions = ordered_json::array();
  SceneSetSummary summary;
  for (int64_t i = 0; i < count; ++i) {
    const Scene scene = compose_scene(source, options, i);
    const std::string name = scene_file_name(options, i);
    vision::write_png((images_dir / name).string(), scene.image);
    const int64_t image_id = i + 1;
    images.push_back(
        {{"id", image_id}, {"file_name", name}, {"width", options.size}, {"height", options.size}});
    for (const SceneItem& item : scene.items) {
      instances.push_back({{"id", instances.size() + 1},
                           {"image_id", image_id},
                           {"category_id", item.category + 1},
                           {"bbox", {item.bbox.x, item.bbox.y, item.bbox.width, item.bbox.height}},
                           {"area", item.area},
                           {"iscrowd", 0},
                           {"attributes", {{"colour", item.colour}, {"source_index", item.source_index}}}});
    }
    std::mt19937_64 words = scene_rng(options.seed, options.split, i, kCaptionStream);
    for (const Caption& caption : caption_scene(scene, words))
      captions.push_back({{"id", captions.size() + 1}, {"image_id", image_id}, {"caption", caption.text}});
    summary.items += static_cast<int64_t>(scene.items.size());
    summary.images = i + 1;
    if (progress) progress(i + 1);
  }

  const ordered_json info = {{"description", "attnvision Fashion-MNIST scenes"},
                             {"source", source.source},
                             {"split", options.split},
                             {"seed", options.seed},
                             {"size", options.size}};
  const ordered_json captions_file = {{"info", info}, {"images", images}, {"annotations", captions}};
  vision::write_text_atomically((fs::path(out_dir) / "captions.json").string(), captions_file.dump() + "\n");
  const ordered_json instances_file = {
      {"info", info}, {"images", images}, {"annotations", instances}, {"categories", categories_json()}};
  vision::write_text_atomically((fs::path(out_dir) / "instances.json").string(),
                                instances_file.dump() + "\n");
  return summary;
}

}  // namespace attnvision::datasets::synth
