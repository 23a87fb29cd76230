// The generator table and each generator's command-line face.
#include "datasets/synth/generator.h"

#include "datasets/labeled_images.h"
#include "datasets/synth/crops.h"
#include "datasets/synth/phantoms.h"
#include "datasets/synth/scenes.h"

#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdio>
#include <map>
#include <memory>

namespace attnvision::datasets::synth {

namespace {

// A sane bound on --images: the JSON files are built in memory, a few KB per image (COCO has 120k images).
constexpr int64_t kMaxImages = 1'000'000;

// A plain line on stderr every few seconds (no redrawn meter: these runs mostly go to logs).
std::function<void(int64_t)> progress_lines(const char* what, int64_t total) {
  using Clock = std::chrono::steady_clock;
  const Clock::time_point start = Clock::now();
  auto last = std::make_shared<Clock::time_point>(start);
  return [=](int64_t done) {
    const Clock::time_point now = Clock::now();
    if (done == total || now - *last < std::chrono::seconds(5)) return;
    *last = now;
    const double seconds = std::chrono::duration<double>(now - start).count();
    std::fprintf(stderr, "%s: %lld/%lld images, %.0f/s\n", what, static_cast<long long>(done),
                 static_cast<long long>(total), done / seconds);
  };
}

// ---------------------------------------------------------------------------------------------------
// scenes

struct ScenesCli {
  std::string out;
  int64_t images = 0;
  SceneOptions scene;
};

int run_scenes(const ScenesCli& o) {
  const LabeledImages source = load_labeled_images("fashion-mnist:" + o.scene.split);
  const SceneSetSummary s =
      write_scene_set(source, o.scene, o.images, o.out, progress_lines("synth scenes", o.images));
  std::printf("wrote %lld images with %lld items to %s (images/, instances.json, captions.json)\n",
              static_cast<long long>(s.images), static_cast<long long>(s.items), o.out.c_str());
  return 0;
}

std::function<int()> define_scenes(CLI::App& app) {
  auto o = std::make_shared<ScenesCli>();
  app.footer(
      "Items come from Fashion-MNIST's matching split, found in $ATTNVISION_FASHION_MNIST_DIR or "
      "/usr/share/datasets/fashion-mnist (Debian's dataset-fashion-mnist). Each item: resized to s x s "
      "(s in 16..64), tinted from a named palette, placed so that no two boxes overlap by more than 20% "
      "of the smaller one. Output: OUT/images/<split>_s<seed>_<index>.png, OUT/captions.json (COCO "
      "captions, five per image) and OUT/instances.json (COCO boxes of the visible pixels), written last. "
      "The same seed, split and count give byte-identical files.");
  app.add_option("--out,-o", o->out, "output folder (created; files of the same names are replaced)")
      ->required();
  app.add_option("--images,-n", o->images, "number of images to compose")
      ->required()
      ->check(CLI::Range(int64_t{1}, kMaxImages));
  app.add_option("--seed", o->scene.seed, "random seed; file names carry it, so seeds give disjoint sets")
      ->required();
  app.add_option("--split", o->scene.split, "train | test: the Fashion-MNIST split the items come from")
      ->required()
      ->check(CLI::IsMember({"train", "test"}));
  app.add_option("--size", o->scene.size, "canvas side in pixels (square RGB images)")
      ->capture_default_str()
      ->check(CLI::Range(64, 2048));
  return [o] { return run_scenes(*o); };
}

// ---------------------------------------------------------------------------------------------------
// phantoms

// Series are written one after another, 8-24 slices each; 10000 series is ~160000 slices (tens of GB).
constexpr int64_t kMaxSeries = 10'000;

struct PhantomsCli {
  std::string out;
  int64_t series = 0;
  PhantomOptions phantom;
};

int run_phantoms(const PhantomsCli& o) {
  const int64_t slices = count_phantom_slices(o.phantom, o.series);
  const PhantomSetSummary s =
      write_phantom_set(o.phantom, o.series, o.out, progress_lines("synth phantoms", slices));
  std::printf(
      "wrote %lld series, %lld slices (%lld clean), %lld lesions to %s (series_*/, masks/, lesions.json)\n",
      static_cast<long long>(s.series), static_cast<long long>(s.slices),
      static_cast<long long>(s.clean_slices), static_cast<long long>(s.lesions), o.out.c_str());
  return 0;
}

std::function<int()> define_phantoms(CLI::App& app) {
  auto o = std::make_shared<PhantomsCli>();
  app.footer(
      "Each series is one made-up patient's axial CT, 8-24 slices one slice thickness apart (1-5 mm), from "
      "the lung apex down to the kidneys: body wall, lungs with branching vessels, spine and ribs, heart and "
      "great vessels, liver, spleen, kidneys, stomach with an air-fluid level. Pixels: 512 x 512 at 0.6-0.9 "
      "mm or 256 x 256 at 1.2-1.8 mm, blur and noise of 5-25 HU (white or correlated), 16 bits allocated "
      "with 12 or 16 stored, signed or unsigned, HU = stored - 1024 (clamped to what fits). About half the "
      "slices carry 1-3 lesions of 4-30 mm: soft-tissue nodules inside the lungs, hypo- or hyper-dense "
      "lesions (40-100 HU) inside liver, spleen or muscle. Output: OUT/series_<seed>_<k>/slice_<i>.dcm (CT "
      "Image Storage), OUT/masks/series_<seed>_<k>/slice_<i>_l<j>.png (one 0/255 mask per lesion) and "
      "slice_<i>.png (their union), and OUT/lesions.json (per series and slice: file, UIDs, lesions with "
      "center_px, diameter_mm, contrast_hu, organ, mask), written last. The same seed and size give "
      "identical files; other seeds give other UIDs and folder names, hence disjoint sets.");
  app.add_option("--out,-o", o->out, "output folder (created; files of the same names are replaced)")
      ->required();
  app.add_option("--series,-n", o->series, "number of series (patients) to generate")
      ->required()
      ->check(CLI::Range(int64_t{1}, kMaxSeries));
  // CLI11 reads "-3" into an unsigned seed as 2^64 - 3: refuse it instead.
  app.add_option("--seed", o->phantom.seed, "random seed; folder names and UIDs derive from it")
      ->required()
      ->check(CLI::NonNegativeNumber);
  app.add_option("--size", o->phantom.size, "image side in pixels (default: drawn per series)")
      ->check(CLI::IsMember({256, 512}));
  app.add_option("--lesion-sizes", o->phantom.lesion_sizes,
                 "how lesion diameters are drawn from 4-30 mm: uniform (the default, the phantoms' own "
                 "distribution) or log-uniform (a third of the lesions under 8 mm, for training sets)")
      ->transform(CLI::CheckedTransformer(
          std::map<std::string, LesionSizes>{{"uniform", LesionSizes::uniform},
                                             {"log-uniform", LesionSizes::log_uniform}},
          CLI::ignore_case))
      ->option_text("uniform|log-uniform");
  return [o] { return run_phantoms(*o); };
}

// ---------------------------------------------------------------------------------------------------
// crops

struct CropsCli {
  std::string from;
  std::string out;
  CropOptions crop;
};

int run_crops(const CropsCli& o) {
  std::function<void(int64_t)> lines;  // made once the image count is known
  const CropSetSummary s = write_crop_set(o.from, o.crop, o.out, [&](int64_t done, int64_t total) {
    if (!lines) lines = progress_lines("synth crops", total);
    lines(done);
  });
  std::printf("wrote %lld crops of %lld images to %s (one folder per category id, labels.txt)\n",
              static_cast<long long>(s.crops), static_cast<long long>(s.images), o.out.c_str());
  return 0;
}

std::function<int()> define_crops(CLI::App& app) {
  auto o = std::make_shared<CropsCli>();
  app.footer(
      "The training set of a detector's second stage (detect --classifier): per box of FROM/instances.json, the "
      "square of side max(w, h) x 1.15 around its centre, resampled to size x size exactly as the detect task "
      "cuts its detections (bilinear at twice the size, averaged 2 x 2; edge pixels repeated past the image). "
      "Output: OUT/<category id, two digits>/<annotation id>.png, an image folder `attnvision train` reads "
      "(configs/train/scenes_crop_classifier.yaml), and OUT/labels.txt.");
  app.add_option("--from", o->from, "a scenes folder (images/ and instances.json), e.g. from `synth scenes`")
      ->required();
  app.add_option("--out,-o", o->out, "output folder (created; files of the same names are replaced)")->required();
  app.add_option("--size", o->crop.size, "crop side in pixels (the classifier's input size; detect reads it back)")
      ->capture_default_str()
      ->check(CLI::Range(8, 512));
  return [o] { return run_crops(*o); };
}

}  // namespace

const std::vector<GeneratorRow>& generator_table() {
  static const std::vector<GeneratorRow> table = {
      {"scenes", "Fashion-MNIST scenes: 1-6 tinted items per image, COCO boxes and captions", define_scenes},
      {"phantoms",
       "CT phantom series (DICOM, HU) with lung nodules and organ lesions, masks and lesions.json",
       define_phantoms},
      {"crops", "square crops of a scenes folder's boxes, one folder per class: a detector's second stage learns on them",
       define_crops},
  };
  return table;
}

}  // namespace attnvision::datasets::synth
