#include "datasets/coco.h"

#include "vision/files/atomic_write.h"

#include <nlohmann/json.hpp>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <unordered_map>
#include <unordered_set>

namespace attnvision::datasets {

namespace {

using nlohmann::json;

// Where a value sits, for messages: the file and the entry ("annotations[3]", "entry 4").
struct Where {
  const std::string& path;
  std::string entry;

  [[noreturn]] void fail(const std::string& problem) const {
    throw CocoError(path + ": " + entry + ": " + problem);
  }
};

// A value for a message: scalars as written (cut short), containers by their type, so the line stays one
// line.
std::string shown(const json& v) {
  if (v.is_structured()) return std::string("an ") + v.type_name();
  const std::string s = v.dump();
  return s.size() > 40 ? s.substr(0, 37) + "..." : s;
}

json parse_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw CocoError(path + ": cannot open: " + std::strerror(errno));
  try {
    return json::parse(in);
  } catch (const json::parse_error& e) {
    // what() is "[json.exception.parse_error.101] parse error at line L, column C: ..."; keep from "parse
    // error".
    const std::string what = e.what();
    const size_t start = what.find("] ");
    throw CocoError(path +
                    ": malformed JSON: " + (start == std::string::npos ? what : what.substr(start + 2)));
  }
}

const json& field(const json& entry, const char* key, const Where& at) {
  if (!entry.is_object()) at.fail("must be an object, not " + shown(entry));
  const auto it = entry.find(key);
  if (it == entry.end()) at.fail(std::string("missing '") + key + "'");
  return *it;
}

int64_t integer(const json& entry, const char* key, const Where& at) {
  const json& v = field(entry, key, at);
  const bool fits =
      v.is_number_integer() &&
      !(v.is_number_unsigned() && v.get<uint64_t>() > uint64_t(std::numeric_limits<int64_t>::max()));
  if (!fits) at.fail(std::string("'") + key + "' must be a 64-bit integer, not " + shown(v));
  return v.get<int64_t>();
}

double number(const json& entry, const char* key, const Where& at) {
  const json& v = field(entry, key, at);
  // nlohmann reads a literal too large for a double (1e999) as infinity: refuse it like a wrong type.
  if (!v.is_number() || !std::isfinite(v.get<double>()))
    at.fail(std::string("'") + key + "' must be a finite number, not " + shown(v));
  return v.get<double>();
}

std::string text(const json& entry, const char* key, const Where& at) {
  const json& v = field(entry, key, at);
  if (!v.is_string()) at.fail(std::string("'") + key + "' must be a string, not " + shown(v));
  return v.get<std::string>();
}

CocoBox box(const json& entry, const Where& at) {
  const json& v = field(entry, "bbox", at);
  if (!v.is_array() || v.size() != 4) at.fail("'bbox' must be [x, y, width, height], not " + shown(v));
  CocoBox b{};
  for (size_t i = 0; i < 4; ++i) {
    if (!v[i].is_number() || !std::isfinite(v[i].get<double>()))
      at.fail("'bbox' must hold four finite numbers, not " + shown(v[i]) + " at [" + std::to_string(i) + "]");
    b[i] = v[i].get<double>();
  }
  // A negative size has no area, and pycocotools' IoU would quietly give such a box 0 with everything.
  if (b[2] < 0 || b[3] < 0) at.fail("'bbox' has a negative width or height: " + v.dump());
  return b;
}

const json& list(const json& root, const char* key, const std::string& path) {
  if (!root.is_object()) throw CocoError(path + ": must be a JSON object with 'images', not " + shown(root));
  const auto it = root.find(key);
  if (it == root.end()) throw CocoError(path + ": missing '" + key + "'");
  if (!it->is_array()) throw CocoError(path + ": '" + key + "' must be a list, not " + shown(*it));
  return *it;
}

// Ids seen in one list, to name the first entry that used an id again.
class UniqueIds {
 public:
  explicit UniqueIds(std::string list) : list_(std::move(list)) {}
  void add(int64_t id, size_t index, const Where& at) {
    const auto [it, fresh] = first_.emplace(id, index);
    if (!fresh)
      at.fail("duplicate id " + std::to_string(id) + " (also " + list_ + "[" + std::to_string(it->second) +
              "])");
  }
  bool contains(int64_t id) const { return first_.count(id) != 0; }

 private:
  std::string list_;
  std::unordered_map<int64_t, size_t> first_;
};

CocoImage read_image(const json& e, const Where& at) {
  CocoImage image{integer(e, "id", at), text(e, "file_name", at), integer(e, "width", at),
                  integer(e, "height", at)};
  if (image.width <= 0 || image.height <= 0)
    at.fail("width and height must be positive, not " + std::to_string(image.width) + " x " +
            std::to_string(image.height));
  return image;
}

CocoAnnotation read_annotation(const json& e, const Where& at) {
  CocoAnnotation a;
  a.id = integer(e, "id", at);
  if (a.id == 0)
    at.fail(
        "id 0 cannot be evaluated (pycocotools reads a match with id 0 as no match); number annotations from "
        "1");
  a.image_id = integer(e, "image_id", at);
  a.category_id = integer(e, "category_id", at);
  a.bbox = box(e, at);
  a.area = number(e, "area", at);
  if (a.area < 0) at.fail("'area' must not be negative, not " + shown(e["area"]));
  const int64_t crowd = integer(e, "iscrowd", at);
  if (crowd != 0 && crowd != 1) at.fail("'iscrowd' must be 0 or 1, not " + std::to_string(crowd));
  a.iscrowd = crowd == 1;
  return a;
}

// The `images` list of an instances or captions file, each checked, their ids recorded in `ids`.
std::vector<CocoImage> read_images(const json& root, const std::string& path, UniqueIds& ids) {
  std::vector<CocoImage> out;
  const json& images = list(root, "images", path);
  for (size_t i = 0; i < images.size(); ++i) {
    const Where at{path, "images[" + std::to_string(i) + "]"};
    out.push_back(read_image(images[i], at));
    ids.add(out.back().id, i, at);
  }
  return out;
}

}  // namespace

CocoInstances read_coco_instances(const std::string& path, CocoContent content) {
  const json root = parse_file(path);
  CocoInstances coco;
  UniqueIds image_ids("images");
  coco.images = read_images(root, path, image_ids);
  if (content == CocoContent::kImagesOnly) return coco;

  UniqueIds category_ids("categories");
  const json& categories = list(root, "categories", path);
  for (size_t i = 0; i < categories.size(); ++i) {
    const Where at{path, "categories[" + std::to_string(i) + "]"};
    coco.categories.push_back({integer(categories[i], "id", at), text(categories[i], "name", at)});
    category_ids.add(coco.categories.back().id, i, at);
  }

  UniqueIds annotation_ids("annotations");
  const json& annotations = list(root, "annotations", path);
  for (size_t i = 0; i < annotations.size(); ++i) {
    const Where at{path, "annotations[" + std::to_string(i) + "]"};
    const CocoAnnotation a = read_annotation(annotations[i], at);
    annotation_ids.add(a.id, i, at);
    if (!image_ids.contains(a.image_id))
      at.fail("image_id " + std::to_string(a.image_id) + " is not in 'images'");
    if (!category_ids.contains(a.category_id))
      at.fail("category_id " + std::to_string(a.category_id) + " is not in 'categories'");
    coco.annotations.push_back(a);
  }
  return coco;
}

std::vector<CocoResult> read_coco_results(const std::string& path, const CocoInstances& gt) {
  const json root = parse_file(path);
  if (!root.is_array())
    throw CocoError(path + ": must be a JSON list of {image_id, category_id, bbox, score}, not " +
                    shown(root));
  std::unordered_set<int64_t> image_ids;
  for (const CocoImage& image : gt.images) image_ids.insert(image.id);
  std::vector<CocoResult> results;
  results.reserve(root.size());
  for (size_t i = 0; i < root.size(); ++i) {
    const json& e = root[i];
    const Where at{path, "entry " + std::to_string(i)};
    CocoResult r{integer(e, "image_id", at), integer(e, "category_id", at), box(e, at),
                 number(e, "score", at)};
    if (!image_ids.count(r.image_id))
      at.fail("image_id " + std::to_string(r.image_id) + " is not an image of the ground truth");
    results.push_back(r);
  }
  return results;
}

void write_coco_results(const std::string& path, const std::vector<CocoResult>& results) {
  nlohmann::ordered_json out = nlohmann::ordered_json::array();
  for (const CocoResult& r : results)
    out.push_back(
        {{"image_id", r.image_id}, {"category_id", r.category_id}, {"bbox", r.bbox}, {"score", r.score}});
  vision::write_text_atomically(path, out.dump() + "\n");
}

CocoCaptions read_coco_captions(const std::string& path) {
  const json root = parse_file(path);
  CocoCaptions coco;
  UniqueIds image_ids("images");
  coco.images = read_images(root, path, image_ids);
  UniqueIds caption_ids("annotations");
  const json& annotations = list(root, "annotations", path);
  for (size_t i = 0; i < annotations.size(); ++i) {
    const Where at{path, "annotations[" + std::to_string(i) + "]"};
    const json& e = annotations[i];
    CocoCaption c{integer(e, "id", at), integer(e, "image_id", at), text(e, "caption", at)};
    caption_ids.add(c.id, i, at);
    if (!image_ids.contains(c.image_id)) at.fail("image_id " + std::to_string(c.image_id) + " is not in 'images'");
    coco.annotations.push_back(std::move(c));
  }
  return coco;
}

std::vector<CocoCaptionResult> read_caption_results(const std::string& path, const CocoCaptions& gt) {
  const json root = parse_file(path);
  if (!root.is_array()) throw CocoError(path + ": must be a JSON list of {image_id, caption}, not " + shown(root));
  std::unordered_set<int64_t> image_ids;
  for (const CocoImage& image : gt.images) image_ids.insert(image.id);
  std::unordered_map<int64_t, size_t> answered;  // image id -> the entry that captioned it
  std::vector<CocoCaptionResult> results;
  for (size_t i = 0; i < root.size(); ++i) {
    const Where at{path, "entry " + std::to_string(i)};
    CocoCaptionResult r{integer(root[i], "image_id", at), text(root[i], "caption", at)};
    if (!image_ids.count(r.image_id))
      at.fail("image_id " + std::to_string(r.image_id) + " is not an image of the ground truth");
    if (const auto [it, fresh] = answered.emplace(r.image_id, i); !fresh)
      at.fail("image_id " + std::to_string(r.image_id) + " has a caption already (entry " + std::to_string(it->second) +
              "); one caption per image is scored");
    results.push_back(std::move(r));
  }
  return results;
}

void write_caption_results(const std::string& path, const std::vector<CocoCaptionResult>& results) {
  nlohmann::ordered_json out = nlohmann::ordered_json::array();
  for (const CocoCaptionResult& r : results) out.push_back({{"image_id", r.image_id}, {"caption", r.caption}});
  vision::write_text_atomically(path, out.dump() + "\n");
}

}  // namespace attnvision::datasets
