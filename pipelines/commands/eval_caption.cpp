// `attnvision eval-caption`: BLEU-1..4, ROUGE-L and CIDEr-D of a caption results file against a COCO captions
// file, as coco-caption (pycocoevalcap) scores them (pipelines/metrics/caption_scores.h says how exactly), or,
// with --oracle, of each image's best own reference: the ceiling a captioner is measured against. It reads the
// two JSON files only and never opens an image. With --data, it captions a scenes folder's images with a model
// (beam search) and scores those captions against the folder's captions.json in one go.
#include "datasets/augment.h"
#include "datasets/caption_set.h"
#include "datasets/coco.h"
#include "pipelines/commands/cli_options.h"
#include "pipelines/commands/command.h"
#include "pipelines/config.h"
#include "pipelines/metrics/caption_scores.h"
#include "pipelines/report/progress.h"
#include "pipelines/tasks/caption/caption_task.h"

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <memory>

namespace attnvision::pipelines {

namespace {

struct EvalCaptionOptions {
  std::string gt;
  std::string results;
  bool oracle = false;
  bool json = false;
  std::string data;         // a scenes folder to caption and score
  CaptionOptions captioner; // the model and its decoding, for --data
  ThreadOptions threads;
  std::string write_results;  // --data: also keep the captions as a results file
};

// Captions every image of a scenes folder (its captions.json's images, decoded whole into memory) as results.
std::vector<datasets::CocoCaptionResult> caption_folder(const EvalCaptionOptions& o) {
  Captioner captioner(o.captioner);
  apply_thread_options(o.threads, captioner.model());
  const models::ModelCfg& cfg = captioner.model().cfg;
  datasets::CaptionSetOptions so;
  so.channels = cfg.in_chans;
  so.vocabulary = &captioner.vocabulary();
  const datasets::CaptionSet set = datasets::load_caption_set(o.data, so);
  if (set.images.size(2) != cfg.input_size[1] || set.images.size(3) != cfg.input_size[2])
    throw ConfigError(o.data + ": images are " + std::to_string(set.images.size(3)) + "x" +
                      std::to_string(set.images.size(2)) + ", the model takes " + std::to_string(cfg.input_size[2]) +
                      "x" + std::to_string(cfg.input_size[1]));
  std::vector<datasets::CocoCaptionResult> results;
  const int64_t n = set.images.size(0), batch = o.captioner.batch;
  Progress progress("caption", static_cast<size_t>(n));
  torch::InferenceMode guard;
  for (int64_t begin = 0; begin < n; begin += batch) {
    const int64_t m = std::min(batch, n - begin);
    const torch::Tensor x = datasets::normalize_batch(set.images.narrow(0, begin, m), cfg.mean, cfg.std);
    const std::vector<datasets::Tokens> words = captioner.caption(x);
    for (int64_t i = 0; i < m; ++i)
      results.push_back({set.image_ids[static_cast<size_t>(begin + i)], datasets::join_tokens(words[static_cast<size_t>(i)])});
    progress.advance(static_cast<size_t>(m), 0);
  }
  progress.finish();
  std::fprintf(stderr, "captioned %lld images in %.2f s (%.1f images/s, beam %lld)\n", static_cast<long long>(n),
               progress.elapsed_s(), static_cast<double>(n) / std::max(1e-9, progress.elapsed_s()),
               static_cast<long long>(o.captioner.beam));
  return results;
}

int run_eval_caption(EvalCaptionOptions o) {
  const int given = !o.results.empty() + o.oracle + !o.data.empty();
  if (given == 0) throw ConfigError("eval-caption: give one of --results FILE, --oracle or --data SCENES_DIR");
  if (given > 1) throw ConfigError("eval-caption: --results, --oracle and --data each say what to score: give one, not both");
  if (!o.data.empty()) {
    if (!o.gt.empty()) throw ConfigError("eval-caption: --data scores against its own captions.json; leave out --gt");
    o.gt = (std::filesystem::path(o.data) / "captions.json").string();
  } else if (o.gt.empty()) {
    throw ConfigError("eval-caption: --gt FILE is needed with --results or --oracle");
  }
  // Reader errors are one line "PATH: ENTRY: problem"; run_cli prints it and exits 1.
  const datasets::CocoCaptions gt = datasets::read_coco_captions(o.gt);
  std::vector<CaptionPair> pairs;
  if (o.oracle) {
    pairs = oracle_pairs(gt, o.gt);
  } else if (!o.data.empty()) {
    const std::vector<datasets::CocoCaptionResult> results = caption_folder(o);
    if (!o.write_results.empty()) datasets::write_caption_results(o.write_results, results);
    pairs = caption_pairs(gt, o.gt, results, "the captions of " + o.data);
  } else {
    pairs = caption_pairs(gt, o.gt, datasets::read_caption_results(o.results, gt), o.results);
  }
  const CaptionScores s = score_captions(pairs);
  if (o.json) {
    std::printf("%s\n", s.to_json().dump().c_str());  // doubles print with enough digits to read back exactly
  } else {
    const double values[] = {s.bleu[0], s.bleu[1], s.bleu[2], s.bleu[3], s.rouge_l, s.cider_d};
    for (size_t i = 0; i < kCaptionScoreNames.size(); ++i) std::printf("%s: %.3f\n", kCaptionScoreNames[i], values[i]);
    std::printf("images: %lld\n", static_cast<long long>(s.images));
  }
  return 0;
}

}  // namespace

CommandRun define_eval_caption(CLI::App& app) {
  auto o = std::make_shared<EvalCaptionOptions>();
  app.add_option("--gt", o->gt, "COCO captions JSON: images and annotations {id, image_id, caption} (e.g. a scenes "
                                "folder's captions.json); needed with --results and --oracle");
  app.add_option("--results", o->results,
                 "caption results JSON: a list of {image_id, caption}, exactly one for every image of --gt");
  app.add_flag("--oracle", o->oracle,
               "score, instead of results, each image's own reference that has the highest CIDEr-D against all of "
               "them: the ceiling for a captioner on this set");
  app.add_option("--data", o->data,
                 "a scenes folder (attnvision synth scenes): caption its images with the model (beam search) and "
                 "score them against its captions.json");
  add_model_options(app, o->captioner.model);
  app.get_option("--model")->description(
      "--data: registered model name or model YAML; with neither --model nor --weights, the shipped scenes captioner");
  add_thread_options(app, o->threads);
  app.add_option("--beam", o->captioner.beam, "--data: beams per image (1: greedy)")->capture_default_str()->check(CLI::Range(1, 64));
  app.add_option("--max-words", o->captioner.max_words, "--data: longest caption (0: the model's own)")
      ->capture_default_str()
      ->check(CLI::Range(0, 512));
  app.add_option("--length-alpha", o->captioner.length_alpha, "--data: beams ranked by sum log p / length^alpha")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 4.0));
  app.add_option("--batch,-b", o->captioner.batch, "--data: images per forward pass")->capture_default_str()->check(CLI::Range(1, 4096));
  app.add_option("--write-results", o->write_results, "--data: also write the captions as a COCO caption results file");
  app.add_flag("--json", o->json,
               "print {Bleu_1, Bleu_2, Bleu_3, Bleu_4, ROUGE_L, CIDEr, images} as one JSON object at full double "
               "precision");
  app.footer(
      "Captions are tokenised as coco-caption's PTBTokenizer leaves them (lower case, punctuation dropped); BLEU is "
      "corpus-level, ROUGE-L and CIDEr-D are means over images.");
  return [o] { return run_eval_caption(*o); };
}

}  // namespace attnvision::pipelines
