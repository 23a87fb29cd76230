// Fashion-MNIST scenes: canvases of 1 to 6 tinted Fashion-MNIST items on varied backgrounds, with COCO
// instance boxes and reference captions: a detection and captioning set that needs no download beyond
// Debian's dataset-fashion-mnist.
//
// Everything drawn for image i comes from std::mt19937_64 streams seeded by (seed, split, i) and read only
// through the project's own bounded draws (datasets/sampler.h) and integer arithmetic, so a scene is the
// same on every machine and image i does not depend on how many images are generated.
//
// Annotation conventions (other tools read them): an item's pixels are those where its resized image is
// >= 32 of 255; later items are painted over earlier ones, only on their own item pixels; an item's visible
// pixels are the ones no later item covers. bbox = [x0, y0, x1 - x0 + 1, y1 - y0 + 1] over the visible
// pixels, area = their count.
#pragma once

#include "datasets/labeled_images.h"

#include <opencv2/core/mat.hpp>

#include <cstdint>
#include <functional>
#include <random>
#include <string>
#include <vector>

namespace attnvision::datasets::synth {

// Categories are the Fashion-MNIST classes (fashion_mnist_classes()) in label order: COCO id = label + 1.

// The tints items are painted in. Names are single lower-case words: captions use them as they are.
struct NamedColour {
  const char* name;
  cv::Vec3b rgb;
};
const std::vector<NamedColour>& tint_palette();

struct SceneOptions {
  std::string split = "train";  // "train" | "test": also which Fashion-MNIST split the items come from
  uint64_t seed = 0;
  int size = 128;  // canvas side in pixels, >= 64
  int min_items = 1;
  int max_items = 6;
  int min_side = 16;  // an item's 28 x 28 image is resized to s x s, s uniform in min_side..max_side
  int max_side = 64;
  // The largest allowed overlap of two items' boxes, as a fraction of the smaller box's area.
  double max_overlap = 0.2;
};

struct SceneItem {
  int64_t source_index = 0;  // row of the source set
  int category = 0;          // Fashion-MNIST label 0..9
  std::string colour;        // a tint_palette() name
  cv::Rect placed;           // where the s x s resized image was drawn (side = placed.width)
  cv::Rect box;              // the tight box of all its item pixels, before later items covered any
  cv::Rect bbox;             // the tight box of its visible pixels: the annotation
  int64_t area = 0;          // its visible pixel count
};

struct Scene {
  cv::Mat image;                 // size x size CV_8UC3, RGB
  cv::Mat owner;                 // size x size CV_8UC1: k + 1 where item k is visible, 0 on background
  std::string background;        // the background kind: flat, gradient, noise, stripes, checks
  std::vector<SceneItem> items;  // in painting order; every one has area > 0
};

// True when boxes a and b overlap by at most max_overlap times the smaller of their areas.
bool overlap_allowed(const cv::Rect& a, const cv::Rect& b, double max_overlap);

// An item's pixels on a canvas: a binary mask (CV_8UC1, non-zero = item pixel) with its top-left at `at`.
struct PlacedMask {
  cv::Mat mask;
  cv::Point at;
};

// The owner map of items painted in order on a canvas of `size`: k + 1 where item k is the last one with
// an item pixel there, 0 elsewhere. Parts of a mask outside the canvas are clipped. At most 254 items.
cv::Mat owner_map(cv::Size size, const std::vector<PlacedMask>& items);

struct VisiblePart {
  cv::Rect bbox;  // empty when the item has no visible pixel
  int64_t area = 0;
};
// Each of `count` items' visible box and pixel count in an owner map.
std::vector<VisiblePart> visible_parts(const cv::Mat& owner, size_t count);

// A std::mt19937_64 for image `index` of (seed, split); `stream` separates independent uses (the scene,
// its captions) so that changing one never shifts the other's draws.
std::mt19937_64 scene_rng(uint64_t seed, const std::string& split, int64_t index, uint64_t stream);

// Scene `index` of the set (options.seed, options.split), its items drawn from `source` (N x 1 x H x W
// uint8 images, labels 0..9). Placement keeps every pair of items within max_overlap, both for their full
// boxes and for their visible boxes, retrying positions and sizes a bounded number of times before it
// drops an item; the first item always fits. Throws std::invalid_argument for bad options or source.
Scene compose_scene(const LabeledImages& source, const SceneOptions& options, int64_t index);

// The bare file name of image `index`: "<split>_s<seed>_<index, 6 digits>.png".
std::string scene_file_name(const SceneOptions& options, int64_t index);

struct SceneSetSummary {
  int64_t images = 0;
  int64_t items = 0;
};

// Writes images 0..count-1 to out_dir/images/, then out_dir/captions.json and out_dir/instances.json last
// (so a folder with instances.json is complete), every file through vision/files/atomic_write.h.
// `progress` is called after each image with the number done. Throws std::invalid_argument for count < 1
// and std::runtime_error naming the file when writing fails.
SceneSetSummary write_scene_set(const LabeledImages& source, const SceneOptions& options, int64_t count,
                                const std::string& out_dir,
                                const std::function<void(int64_t done)>& progress = {});

}  // namespace attnvision::datasets::synth
