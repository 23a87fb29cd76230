// `attnvision caption`: files and folders -> one sentence per image, printed as `path<TAB>caption` or JSON
// lines, optionally with where the decoder looked for each word (--attention-dir) and as a COCO caption
// results file (--results, image ids from --coco-images), through the batch runner.
#include "datasets/coco.h"
#include "pipelines/commands/task_command.h"
#include "pipelines/tasks/caption/caption_task.h"

#include <CLI/CLI.hpp>

#include <cstdio>
#include <filesystem>
#include <memory>

namespace attnvision::pipelines {

namespace {

struct CaptionCommandOptions {
  InputOptions inputs;
  CaptionOptions task;
  std::string attention_dir;
  std::string coco_images;
  std::string results;
};

void print_result(const CaptionCommandOptions& o, const InputResult& r) {
  nlohmann::json row = {{"path", r.input->path}};
  row.update(r.outputs["caption"]);
  if (o.inputs.json) {
    std::printf("%s\n", row.dump().c_str());
    return;
  }
  if (row.contains("caption")) {
    std::printf("%s\t%s\n", r.input->path.c_str(), row["caption"].get<std::string>().c_str());
    return;
  }
  for (const nlohmann::json& f : row.value("frames", nlohmann::json::array()))
    std::printf("%s#frame%d\t%s\n", r.input->path.c_str(), f["frame"].get<int>(), f["caption"].get<std::string>().c_str());
}

int run_caption(CaptionCommandOptions o) {
  CocoImageIds ids(o.coco_images, o.results);
  // One image file: its caption is some twenty beam steps of small products, where a second OpenMP thread costs
  // more in synchronisation than it brings (0.14-0.16 s a caption on two threads against 0.10-0.13 s on one,
  // 2026-12-05), and a cold start is what the user waits for (README, "Captioning from a cold start").
  if (o.inputs.threads.torch_threads == 0 && o.inputs.paths.size() == 1 &&
      std::filesystem::is_regular_file(o.inputs.paths[0]))
    o.inputs.threads.torch_threads = 1;
  o.task.attention = !o.attention_dir.empty();
  std::unique_ptr<TaskRunner> task = make_caption_runner(o.task);
  std::vector<datasets::CocoCaptionResult> results;
  const size_t failed = run_task_command("caption", *task, o.inputs, o.attention_dir.empty() ? "." : o.attention_dir,
                                         "captioned", [&](const InputResult& r) {
                                           if (!r.ok()) return true;
                                           print_result(o, r);
                                           if (!ids.wanted()) return false;
                                           if (const auto id = ids.of(r, "caption", "caption"))
                                             results.push_back({*id, r.outputs["caption"]["caption"].get<std::string>()});
                                           return false;
                                         });
  if (ids.wanted()) datasets::write_caption_results(o.results, results);
  const size_t unmatched = ids.report(results.size(), "captions");
  return failed || unmatched ? 1 : 0;
}

}  // namespace

CommandRun define_caption(CLI::App& app) {
  auto o = std::make_shared<CaptionCommandOptions>();
  add_input_options(app, o->inputs,
                    "one JSON object per input: {path, width, height, caption, tokens, logprob (of the caption and "
                    "its <end>), word_logprobs, score (the beam's ranking score)}, a multi-frame DICOM's per frame "
                    "under `frames`, or {path, error}");
  add_model_options(app, o->task.model);
  app.get_option("--model")->description(
      "registered model name or a model YAML file; with neither --model nor --weights, the shipped scenes "
      "captioner (models/pretrained/scenes_captioner.safetensors)");
  app.add_option("--beam", o->task.beam, "beams per image (1: greedy decoding)")->capture_default_str()->check(CLI::Range(1, 64));
  app.add_option("--max-words", o->task.max_words, "longest caption in words (0: the model's own max_words)")
      ->capture_default_str()
      ->check(CLI::Range(0, 512));
  app.add_option("--length-alpha", o->task.length_alpha,
                 "beams are ranked by (sum of log p) / length^alpha: 0 the raw sum, 1 the mean per word")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 4.0));
  app.add_option("--batch,-b", o->task.batch, "images per forward pass")->capture_default_str()->check(CLI::Range(1, 4096));
  app.add_option("--attention-dir", o->attention_dir,
                 "write per image a strip of overlays, one per word, showing where the decoder looked for it: "
                 "<dir>/<input path below its argument>.words.png");
  app.add_option("--coco-images", o->coco_images,
                 "a COCO JSON whose `images` give the image id of each input, by file name (captions, instances or "
                 "image info)");
  app.add_option("--results", o->results, "write a COCO caption results file [{image_id, caption}]; needs --coco-images");
  app.footer("A single image file is captioned on one torch thread unless --threads says otherwise: its beam "
             "steps are too small for a second thread to pay for itself.");
  return [o] { return run_caption(*o); };
}

}  // namespace attnvision::pipelines
