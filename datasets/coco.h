// COCO object detection files (https://cocodataset.org/#format-data): the instances file (images, box
// annotations, categories) and a detector's results (a JSON array of {image_id, category_id, bbox, score}).
// Plain records and strict readers: these files come from other tools and other people, so every entry is
// checked (types, duplicate ids, box sizes, references) before anything is evaluated, and a problem is one
// line naming the file and the entry. Only what box detection needs is read (segmentations, licenses, urls
// and any other keys are skipped, not rejected).
#pragma once

#include <array>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace attnvision::datasets {

// [x, y, width, height] in pixels, x and y of the top-left corner: COCO's box layout, kept as is so that
// IoUs are computed on exactly the numbers the file holds.
using CocoBox = std::array<double, 4>;

struct CocoImage {
  int64_t id = 0;
  std::string file_name;
  int64_t width = 0;
  int64_t height = 0;
};

struct CocoAnnotation {
  int64_t id = 0;
  int64_t image_id = 0;
  int64_t category_id = 0;
  CocoBox bbox{};
  double area = 0;  // the object's area as the file gives it (a mask's area, not the box's); areas rank by it
  bool iscrowd = false;  // a crowd region: matching a detection to it neither helps nor hurts
};

struct CocoCategory {
  int64_t id = 0;
  std::string name;
};

// Lists in the file's order (the evaluation depends on it: ties between equal IoUs go by annotation order).
struct CocoInstances {
  std::vector<CocoImage> images;
  std::vector<CocoAnnotation> annotations;
  std::vector<CocoCategory> categories;
};

// One detection, as detectors write them for the COCO evaluation server.
struct CocoResult {
  int64_t image_id = 0;
  int64_t category_id = 0;
  CocoBox bbox{};
  double score = 0;
};

// Every reader error; what() is one line "PATH: ENTRY: problem".
class CocoError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// What an instances file must hold.
enum class CocoContent {
  // A ground truth: `images`, `annotations` and `categories` are all required and all checked.
  kInstances,
  // A list of images to run a detector on (COCO's image_info files, or a whole instances file): only
  // `images` is required and read; `annotations` and `categories` are skipped whether present or not, and
  // the returned lists are empty.
  kImagesOnly,
};

// Reads an instances file. Checked: valid JSON; a top-level object; each entry an object with its fields
// of the right type (ids integers, bbox four finite numbers with width and height >= 0, area a finite
// number >= 0, iscrowd 0 or 1, image width and height positive); image, annotation and category ids each
// unique; every annotation's image_id and category_id naming a listed image and category. Annotation id 0 is
// refused too: pycocotools (whose numbers evaluate_coco_bbox reproduces) records a match by the ground
// truth's id and reads id 0 as "unmatched", so such an object could never count as found.
CocoInstances read_coco_instances(const std::string& path, CocoContent content = CocoContent::kInstances);

// Reads a results file against its ground truth: a JSON array of objects with integer image_id and
// category_id, bbox (as above) and a finite score. An image_id that is not among gt's images is an error
// (pycocotools refuses such a file too: "Results do not correspond to current coco set"); a category_id
// that gt does not list is accepted and left out of the evaluation, as pycocotools does.
std::vector<CocoResult> read_coco_results(const std::string& path, const CocoInstances& gt);

// Writes results as a COCO results file (atomically, numbers at full precision so they read back exactly).
void write_coco_results(const std::string& path, const std::vector<CocoResult>& results);

// --- Captions (captions_*.json and caption results) ---------------------------------------------------------

struct CocoCaption {
  int64_t id = 0;
  int64_t image_id = 0;
  std::string caption;  // as written: the evaluation tokenises it
};

struct CocoCaptions {
  std::vector<CocoImage> images;
  std::vector<CocoCaption> annotations;  // the reference captions, in the file's order
};

// One generated caption, as captioners write them for the COCO evaluation server.
struct CocoCaptionResult {
  int64_t image_id = 0;
  std::string caption;
};

// Reads a captions file: `images` as read_coco_instances checks them, `annotations` each with an integer id
// (unique), an image_id among the images and a string caption. An image without a reference caption is
// allowed here (a captioner can still run on it); the evaluation refuses it.
CocoCaptions read_coco_captions(const std::string& path);

// Reads caption results: a JSON array of {image_id, caption}. An image_id that is not among gt's images, or
// that has a caption already, is an error naming the entry (the evaluation scores one caption per image).
std::vector<CocoCaptionResult> read_caption_results(const std::string& path, const CocoCaptions& gt);

// Writes caption results (atomically), in the order given.
void write_caption_results(const std::string& path, const std::vector<CocoCaptionResult>& results);

}  // namespace attnvision::datasets
