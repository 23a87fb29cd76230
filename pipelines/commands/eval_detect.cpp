// `attnvision eval-detect`: COCO box mAP of a results file against a COCO instances file, the twelve numbers
// pycocotools' COCOeval prints (pipelines/metrics/coco_map.h says how exactly they agree).
// Detecting and evaluating in one go (`--data SCENES_DIR [--weights FILE]`) comes with the detection task.
#include "datasets/coco.h"
#include "pipelines/commands/command.h"
#include "pipelines/metrics/coco_map.h"

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <memory>

namespace attnvision::pipelines {

namespace {

struct EvalDetectOptions {
  std::string gt;
  std::string results;
  bool json = false;
};

int run_eval_detect(const EvalDetectOptions& o) {
  // Reader errors are one line "PATH: ENTRY: problem"; run_cli prints it and exits 1.
  const datasets::CocoInstances gt = datasets::read_coco_instances(o.gt);
  const CocoEvalResult r = evaluate_coco_bbox(gt, datasets::read_coco_results(o.results, gt));
  if (o.json) {
    nlohmann::ordered_json j;  // summarize()'s order; doubles print with enough digits to read back exactly
    for (size_t s = 0; s < kCocoStatCount; ++s) j[kCocoStatNames[s]] = r.stats[s];
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("%s", format_coco_summary(r).c_str());
  }
  return 0;
}

}  // namespace

CommandRun define_eval_detect(CLI::App& app) {
  auto o = std::make_shared<EvalDetectOptions>();
  app.add_option("--gt", o->gt, "COCO instances JSON: images, annotations (bbox, area, iscrowd), categories")
      ->required();
  app.add_option("--results", o->results, "COCO results JSON: a list of {image_id, category_id, bbox, score}")
      ->required();
  app.add_flag("--json", o->json,
               "print {AP, AP50, AP75, APs, APm, APl, AR1, AR10, AR100, ARs, ARm, ARl} as one JSON object "
               "(-1 where undefined)");
  return [o] { return run_eval_detect(*o); };
}

}  // namespace attnvision::pipelines
