// `attnvision classify`: files and folders -> top-k classes per image, as text or JSON lines.
#include "datasets/batch.h"
#include "datasets/image_batches.h"
#include "models/saliency/saliency.h"
#include "pipelines/commands/cli_options.h"
#include "pipelines/commands/command.h"
#include "pipelines/model_loader.h"
#include "pipelines/report/progress.h"
#include "vision/inputs.h"
#include "vision/image_write.h"
#include "vision/overlay.h"

#include <torch/torch.h>

#include <cstdio>
#include <filesystem>
#include <iostream>
#include <memory>

namespace attnvision::pipelines {

namespace {

struct ClassifyOptions {
  std::vector<std::string> paths;
  ModelChoice model;
  ThreadOptions threads;
  int64_t topk = 5;
  int64_t batch = 16;
  int workers = 0;
  int64_t max_pixels = 200'000'000;
  bool json = false;
  std::string saliency;  // method name; empty: none
  std::string saliency_dir = "saliency";
  int64_t saliency_class = -1;
};

bool accept_image(const std::string& path) { return vision::has_image_extension(path); }

vision::EvalTransform eval_transform(const models::ModelCfg& c) {
  vision::EvalTransform t;
  t.channels = c.in_chans;
  t.height = c.input_size[1];
  t.width = c.input_size[2];
  t.crop_pct = c.crop_pct;
  t.interpolation = c.interpolation;
  t.mean = c.mean;
  t.std = c.std;
  return t;
}

// "path: problem" unless the reader already led with the path.
std::string error_line(const datasets::BatchItem& item) {
  return item.error.rfind(item.path, 0) == 0 ? item.error : item.path + ": " + item.error;
}

// "photos/a/b.jpg" -> "<dir>/photos__a__b.gradcam" (inputs from different folders may share a name).
std::string saliency_stem(const ClassifyOptions& o, const std::string& path) {
  std::string flat = std::filesystem::path(path).lexically_normal().replace_extension().string();
  for (char& c : flat)
    if (c == '/') c = '_';
  while (!flat.empty() && (flat[0] == '_' || flat[0] == '.')) flat.erase(0, 1);
  return (std::filesystem::path(o.saliency_dir) / (flat + "." + o.saliency)).string();
}

// The overlay (PNG, on the original image) and the raw map (float TIFF, on the model-input grid).
void write_saliency(const ClassifyOptions& o, const std::string& path, const torch::Tensor& map,
                    const vision::EvalTransform& t) {
  const cv::Mat grid = datasets::map_to_mat(map);
  const cv::Mat image = vision::read_image(path);  // decoded again: batches hold only the model input
  const std::string stem = saliency_stem(o, path);
  vision::write_png(stem + ".png", vision::overlay_heatmap(image, vision::map_to_image(grid, image.size(), t)));
  vision::write_float_tiff(stem + ".tiff", {grid});
}

void print_result(const ClassifyOptions& o, const std::string& path, const torch::Tensor& scores,
                  const torch::Tensor& indices, const std::vector<std::string>& labels) {
  const auto s = scores.accessor<float, 1>();
  const auto ix = indices.accessor<int64_t, 1>();
  if (o.json) {
    nlohmann::json top = nlohmann::json::array();
    for (int64_t k = 0; k < s.size(0); ++k)
      top.push_back({{"index", ix[k]}, {"label", labels[ix[k]]}, {"score", s[k]}});
    std::printf("%s\n", nlohmann::json{{"path", path}, {"topk", top}}.dump().c_str());
    return;
  }
  std::printf("%s\n", path.c_str());
  for (int64_t k = 0; k < s.size(0); ++k) std::printf("  %6.2f%%  %s (%ld)\n", 100.0 * s[k], labels[ix[k]].c_str(), ix[k]);
}

int run_classify(const ClassifyOptions& o) {
  LoadedModel m = load_model(o.model);
  apply_thread_options(o.threads, m.cfg.arch);
  const vision::InputScan scan = vision::scan_inputs(o.paths, accept_image);
  size_t failed = 0;
  for (const std::string& p : scan.missing) {
    std::fprintf(stderr, "%s: no such file or folder\n", p.c_str());
    if (o.json) std::printf("%s\n", nlohmann::json{{"path", p}, {"error", "no such file or folder"}}.dump().c_str());
    ++failed;
  }
  if (scan.files.empty() && scan.missing.empty()) throw ConfigError("no images found in the given paths");

  datasets::LoaderOptions lo;
  lo.batch_size = o.batch;
  lo.workers = o.workers;
  lo.read.max_pixels = o.max_pixels;
  const vision::EvalTransform transform = eval_transform(m.cfg);
  datasets::ImageBatchLoader loader(scan.files, transform, lo);
  const int64_t k = std::min<int64_t>(o.topk, m.cfg.num_classes);
  if (!o.saliency.empty()) std::filesystem::create_directories(o.saliency_dir);
  Progress progress("classify", scan.files.size());
  c10::InferenceMode guard(o.saliency.empty());  // gradient-based saliency needs autograd
  datasets::ImageBatch batch;
  while (loader.next(batch)) {
    torch::Tensor top_scores, top_indices, maps;
    if (batch.images.defined()) {
      torch::Tensor logits;
      if (o.saliency.empty()) {
        logits = m.net->logits(batch.images);
      } else {
        models::SaliencyResult r = models::explain(*m.net, batch.images, {o.saliency, o.saliency_class});
        logits = r.logits;
        maps = r.maps;
      }
      std::tie(top_scores, top_indices) = torch::softmax(logits, 1).topk(k, 1);
    }
    size_t row = 0;
    for (size_t i = 0; i < batch.items.size(); ++i) {
      const datasets::BatchItem& item = batch.items[i];
      if (!item.ok()) {
        ++failed;
        std::fprintf(stderr, "%s\n", error_line(item).c_str());
        if (o.json) std::printf("%s\n", nlohmann::json{{"path", item.path}, {"error", item.error}}.dump().c_str());
        continue;
      }
      print_result(o, item.path, top_scores[row], top_indices[row], m.labels);
      if (maps.defined()) write_saliency(o, item.path, maps[row], transform);
      ++row;
    }
    std::fflush(stdout);
    progress.advance(batch.items.size(), failed);
  }
  progress.finish();
  const size_t total = scan.files.size() + scan.missing.size();
  std::fprintf(stderr, "classified %zu images in %.2f s (%.2f images/s)\n", total - failed, progress.elapsed_s(),
               (total - failed) / std::max(1e-9, progress.elapsed_s()));
  if (failed) std::fprintf(stderr, "%zu of %zu inputs failed\n", failed, total);
  return failed ? 1 : 0;
}

}  // namespace

CommandRun define_classify(CLI::App& app) {
  auto o = std::make_shared<ClassifyOptions>();
  app.add_option("paths", o->paths, "image files and folders (folders are searched recursively)")->required();
  add_model_options(app, o->model);
  add_thread_options(app, o->threads);
  app.add_option("--topk,-k", o->topk, "classes to print per image")->capture_default_str()->check(CLI::Range(1, 1000));
  app.add_option("--batch,-b", o->batch, "images per forward pass")->capture_default_str()->check(CLI::Range(1, 4096));
  app.add_option("--workers", o->workers, "decode threads (0: all cores)")->capture_default_str()->check(CLI::Range(0, 256));
  app.add_option("--max-pixels", o->max_pixels, "refuse images with more pixels than this, before decoding")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 40));
  app.add_flag("--json", o->json, "one JSON object per image: {path, topk: [{index, label, score}]} or {path, error}");
  std::string methods;
  for (const std::string& line : models::saliency_method_help()) methods += "\n  " + line;
  app.add_option("--saliency", o->saliency, "also write a saliency overlay (PNG) and raw map (float TIFF) per image:" + methods);
  app.add_option("--saliency-dir", o->saliency_dir, "folder for saliency outputs")->capture_default_str();
  app.add_option("--saliency-class", o->saliency_class, "class to explain (-1: each image's top-1)")->capture_default_str();
  return [o] { return run_classify(*o); };
}

}  // namespace attnvision::pipelines
