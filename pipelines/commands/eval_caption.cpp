// `attnvision eval-caption`: BLEU-1..4, ROUGE-L and CIDEr-D of a caption results file against a COCO captions
// file, as coco-caption (pycocoevalcap) scores them (pipelines/metrics/caption_scores.h says how exactly), or,
// with --oracle, of each image's best own reference: the ceiling a captioner is measured against. It reads the
// two JSON files only and never opens an image.
#include "datasets/coco.h"
#include "pipelines/commands/command.h"
#include "pipelines/config.h"
#include "pipelines/metrics/caption_scores.h"

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <memory>

namespace attnvision::pipelines {

namespace {

struct EvalCaptionOptions {
  std::string gt;
  std::string results;
  bool oracle = false;
  bool json = false;
};

int run_eval_caption(const EvalCaptionOptions& o) {
  if (o.results.empty() == !o.oracle) throw ConfigError("eval-caption: give --results FILE, or --oracle (not both)");
  // Reader errors are one line "PATH: ENTRY: problem"; run_cli prints it and exits 1.
  const datasets::CocoCaptions gt = datasets::read_coco_captions(o.gt);
  const std::vector<CaptionPair> pairs =
      o.oracle ? oracle_pairs(gt, o.gt) : caption_pairs(gt, o.gt, datasets::read_caption_results(o.results, gt), o.results);
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
                                "folder's captions.json)")
      ->required();
  app.add_option("--results", o->results,
                 "caption results JSON: a list of {image_id, caption}, exactly one for every image of --gt");
  app.add_flag("--oracle", o->oracle,
               "score, instead of results, each image's own reference that has the highest CIDEr-D against all of "
               "them: the ceiling for a captioner on this set");
  app.add_flag("--json", o->json,
               "print {Bleu_1, Bleu_2, Bleu_3, Bleu_4, ROUGE_L, CIDEr, images} as one JSON object at full double "
               "precision");
  app.footer(
      "Captions are tokenised as coco-caption's PTBTokenizer leaves them (lower case, punctuation dropped); BLEU is "
      "corpus-level, ROUGE-L and CIDEr-D are means over images.");
  return [o] { return run_eval_caption(*o); };
}

}  // namespace attnvision::pipelines
