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
#include <unordered_map>

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

// The input's caption as a COCO result; false (and a line on stderr) when it has no image id or several frames.
bool add_result(const InputResult& r, const std::unordered_map<std::string, int64_t>& ids,
                const std::string& coco_images, std::vector<datasets::CocoCaptionResult>& results) {
  const std::string name = std::filesystem::path(r.input->path).filename().string();
  const auto id = ids.find(name);
  if (id == ids.end()) {
    std::fprintf(stderr, "%s: '%s' is not among the images of %s; left out of the results\n", r.input->path.c_str(),
                 name.c_str(), coco_images.c_str());
    return false;
  }
  const nlohmann::json& out = r.outputs["caption"];
  if (!out.contains("caption")) {
    std::fprintf(stderr, "%s: a multi-frame input is not one COCO image; left out of the results\n",
                 r.input->path.c_str());
    return false;
  }
  results.push_back({id->second, out["caption"].get<std::string>()});
  return true;
}

int run_caption(CaptionCommandOptions o) {
  if (o.results.empty() != o.coco_images.empty())
    throw ConfigError("--results and --coco-images go together: the image ids of a results file come from the "
                      "COCO images list");
  const auto ids = o.coco_images.empty() ? std::unordered_map<std::string, int64_t>{} : coco_image_ids_by_name(o.coco_images);
  o.task.attention = !o.attention_dir.empty();
  std::unique_ptr<TaskRunner> task = make_caption_runner(o.task);
  std::vector<datasets::CocoCaptionResult> results;
  size_t unmatched = 0;
  const size_t failed = run_task_command("caption", *task, o.inputs, o.attention_dir.empty() ? "." : o.attention_dir,
                                         "captioned", [&](const InputResult& r) {
                                           if (!r.ok()) return true;
                                           print_result(o, r);
                                           if (!o.results.empty() && !add_result(r, ids, o.coco_images, results)) ++unmatched;
                                           return false;
                                         });
  if (!o.results.empty()) {
    datasets::write_caption_results(o.results, results);
    std::fprintf(stderr, "wrote %zu captions to %s\n", results.size(), o.results.c_str());
  }
  if (unmatched) std::fprintf(stderr, "%zu inputs had no COCO image id\n", unmatched);
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
  return [o] { return run_caption(*o); };
}

}  // namespace attnvision::pipelines
