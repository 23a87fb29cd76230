// The trainer every task uses: a model, a labelled image set and a recipe (TrainCfg) in; checkpoints, a CSV
// log of the curves and a PNG plot of them out. SGD (Nesterov) or AdamW with weight decay on weights only,
// linear warm-up then cosine decay per step, label smoothing, gradient clipping, fixed seeds, a checkpoint
// every epoch that --resume continues exactly, the best model on validation kept, data-parallel across
// processes when a DataParallel group is given.
//
// Run folder (cfg.output): last.safetensors and best.safetensors (our checkpoint: weights + model config,
// runnable with `--weights FILE` alone), state.pt (optimiser state, epoch, history: what resume needs),
// log.csv, curves.png, config.json (the resolved recipe), summary.json (size, accuracy, speed, time), and
// test.json / test_confusion.png when the recipe names test data.
#pragma once

#include "models/runtime.h"
#include "pipelines/train/train_config.h"

#include <cstdint>
#include <string>

namespace attnvision::pipelines {

class DataParallel;

struct TrainOptions {
  bool resume = false;       // continue from cfg.output/state.pt
  int64_t stop_after = 0;    // stop (resumably) once this many epochs are done; 0: train to the end
  models::ThreadPlan threads;  // torch and OpenBLAS threads; a zero keeps the architecture's default plan
  int core_share = 0;          // cores this process may use (a --nproc worker's share); 0: all
};

struct TrainSummary {
  int64_t epochs_done = 0;
  std::string metric = "acc";     // what the two scores below are: the task metric's score_name() ("acc", "mAP")
  double best_val_accuracy = -1;  // -1 without validation
  double test_accuracy = -1;      // -1 without test data
  double images_per_s = 0;        // training throughput of the last epoch (all processes together)
  double train_seconds = 0;       // wall time of the epochs run by this call
  double total_train_seconds = 0; // wall time of all epochs of the run, resumed pieces included
};

TrainSummary train(const TrainCfg& cfg, const TrainOptions& options, DataParallel* dp = nullptr);

// A run's stored recipe (to_json(cfg).dump()) with the keys added since it started at their defaults, which the
// run had in effect, so that they do not stop a resume: its model section read again through today's ModelCfg,
// augment.crop_size at 0 (whole images) and augment.foreground_crops at 0 where they are missing. A model
// section that cannot be read today is left as stored, and the comparison then names it.
std::string with_todays_defaults(const std::string& stored_recipe);

// The learning rate at `step` (0-based) of `total_steps`, for a run with `steps_per_epoch`.
double scheduled_lr(const TrainCfg& cfg, int64_t step, int64_t steps_per_epoch);

}  // namespace attnvision::pipelines
