#include "pipelines/commands/commands.h"

#include "models/runtime.h"
#include "pipelines/commands/cmd_dicom.h"
#include "pipelines/tasks/task.h"
#include "pipelines/version.h"

#include <iostream>

namespace attnvision::pipelines {

CommandRun define_models(CLI::App& app);    // pipelines/commands/models_list.cpp
CommandRun define_forward(CLI::App& app);   // pipelines/commands/forward.cpp
CommandRun define_bench(CLI::App& app);     // pipelines/commands/bench.cpp
CommandRun define_train(CLI::App& app);     // pipelines/commands/train.cpp
CommandRun define_eval(CLI::App& app);      // pipelines/commands/eval.cpp
CommandRun define_eval_detect(CLI::App& app);  // pipelines/commands/eval_detect.cpp
CommandRun define_eval_caption(CLI::App& app);  // pipelines/commands/eval_caption.cpp
CommandRun define_eval_saliency(CLI::App& app);  // pipelines/commands/eval_saliency.cpp
CommandRun define_batch(CLI::App& app);     // pipelines/commands/batch.cpp
CommandRun define_synth(CLI::App& app);     // pipelines/commands/synth.cpp
CommandRun define_convert(CLI::App& app);   // pipelines/commands/convert.cpp

// The fixed commands; every task row (pipelines/tasks/) adds its own subcommand after them.
const std::vector<CommandSpec>& command_table() {
  static const std::vector<CommandSpec> table = [] {
    std::vector<CommandSpec> commands = {
      {"models", "list registered models with parameters and GFLOPs", define_models},
      {"batch", "run tasks over files and folders into an output folder with a resumable manifest", define_batch},
      {"forward", "run a model on a stored tensor and save logits, features and feature maps", define_forward},
      {"bench", "time a model's forward pass and report images/s and GFLOP/s", define_bench},
      {"train", "train a classifier or detector from a recipe (configs/train/*.yaml); data-parallel with --nproc", define_train},
      {"eval", "a model's task metric on a labelled set (classification: accuracy, per class, confusion)", define_eval},
      {"eval-detect", "COCO box mAP of a results file against instances (pycocotools' 12 numbers)", define_eval_detect},
      {"eval-caption", "BLEU-1..4, ROUGE-L and CIDEr-D of caption results against COCO captions (coco-caption's numbers)",
       define_eval_caption},
      {"eval-saliency", "saliency against a phantom set's known lesions: pointing game, IoU, deletion/insertion, "
                        "lesion sensitivity, false regions, slice AUROC", define_eval_saliency},
      {"dicom", "inspect, window and export DICOM scans (info, PNG, float TIFF)", define_dicom},
      {"convert", "rewrite a checkpoint (ours, timm or torchvision) as a self-describing attnvision checkpoint, "
                  "optionally float16", define_convert},
      {"synth", "generate synthetic data sets (scenes: Fashion-MNIST detection and captioning; phantoms: CT series with known lesions)", define_synth},
    };
    for (const TaskRow& task : task_table()) commands.push_back({task.name, task.summary, task.define_command});
    return commands;
  }();
  return table;
}

int run_cli(int argc, char** argv) {
  models::keep_freed_memory();
  CLI::App app{"attnvision: attention-based vision pipeline (ResNet + SE/ECA/CBAM, ViT)", "attnvision"};
  app.set_version_flag("--version,-V", std::string("attnvision ") + version());
  app.require_subcommand(1, 1);
  app.fallthrough(false);
  app.footer("Run `attnvision COMMAND --help` for a command's options and defaults.");

  std::vector<std::pair<CLI::App*, CommandRun>> commands;
  for (const CommandSpec& spec : command_table()) {
    CLI::App* sub = app.add_subcommand(spec.name, spec.summary);
    commands.emplace_back(sub, spec.define(*sub));
  }

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::string where = "attnvision";
    for (const CLI::App* sub : app.get_subcommands()) where += " " + sub->get_name();
    std::cerr << where << ": " << e.what() << " (see " << where << " --help)\n";
    return 2;
  }

  for (auto& [sub, run] : commands) {
    if (!sub->parsed()) continue;
    try {
      return run();
    } catch (const std::exception& e) {
      std::cerr << "attnvision " << sub->get_name() << ": " << e.what() << "\n";
      return 1;
    }
  }
  return 2;
}

}  // namespace attnvision::pipelines
