// `attnvision train RECIPE.yaml`: train a classifier from a recipe (configs/train/*.yaml), on one process or
// data-parallel on several (--nproc on this machine; RANK/WORLD_SIZE/MASTER_ADDR/MASTER_PORT across machines).
#include "pipelines/commands/cli_options.h"
#include "pipelines/commands/command.h"
#include "pipelines/train/distributed.h"
#include "pipelines/train/trainer.h"

#include <cstdio>
#include <cstdlib>
#include <memory>

namespace attnvision::pipelines {

namespace {

struct TrainCommandOptions {
  std::string recipe;
  std::vector<std::string> sets;
  TrainOptions train;
  ThreadOptions threads;  // per process; --nproc shares the cores out when they are left at 0
  int nproc = 1;
};

// The command line a worker process gets: the same as ours, without --nproc.
std::vector<std::string> worker_args(const TrainCommandOptions& o) {
  std::vector<std::string> args{"train", o.recipe};
  for (const std::string& s : o.sets) args.insert(args.end(), {"--set", s});
  if (o.train.resume) args.push_back("--resume");
  if (o.train.stop_after > 0) args.insert(args.end(), {"--stop-after", std::to_string(o.train.stop_after)});
  if (o.threads.torch_threads > 0) args.insert(args.end(), {"--threads", std::to_string(o.threads.torch_threads)});
  if (o.threads.blas_threads > 0) args.insert(args.end(), {"--blas-threads", std::to_string(o.threads.blas_threads)});
  return args;
}

int run_train(TrainCommandOptions o) {
  const TrainCfg cfg = load_train_cfg(o.recipe, o.sets);  // validated here, before any worker starts
  if (o.nproc > 1 && !std::getenv("WORLD_SIZE")) return launch_local_workers(o.nproc, worker_args(o));
  std::unique_ptr<DataParallel> dp = DataParallel::from_env();
  if (const char* t = std::getenv("ATTNVISION_WORKER_THREADS")) o.train.core_share = std::atoi(t);
  o.train.threads = {o.threads.torch_threads, o.threads.blas_threads};
  const TrainSummary s = train(cfg, o.train, dp.get());
  if (!dp || dp->rank() == 0) {
    std::printf("%s\n", nlohmann::json{{"output", cfg.output},
                                       {"epochs_done", s.epochs_done},
                                       {"metric", s.metric},
                                       {"best_val_accuracy", s.best_val_accuracy},
                                       {"test_accuracy", s.test_accuracy},
                                       {"images_per_s", s.images_per_s},
                                       {"train_seconds", s.train_seconds}}
                            .dump()
                            .c_str());
  }
  return 0;
}

}  // namespace

CommandRun define_train(CLI::App& app) {
  auto o = std::make_shared<TrainCommandOptions>();
  app.add_option("recipe", o->recipe, "training recipe YAML (see configs/train/)")->required()->check(CLI::ExistingFile);
  app.add_option("--set", o->sets, "override a recipe key, e.g. --set schedule.epochs=5 or --set model.attn=se (repeatable)");
  app.add_flag("--resume", o->train.resume, "continue the run in the recipe's output folder from its last epoch");
  app.add_option("--stop-after", o->train.stop_after, "stop after this many epochs (resumable later; 0: train to the end)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  add_thread_options(app, o->threads);
  app.add_option("--nproc", o->nproc, "data-parallel processes on this machine (Gloo all-reduce over loopback)")
      ->capture_default_str()
      ->check(CLI::Range(1, 64));
  app.footer(
      "Writes to the recipe's output folder: best.safetensors and last.safetensors (run them with --weights FILE), "
      "log.csv, curves.png, state.pt (for --resume), config.json, and test.json / test_confusion.png when the recipe "
      "names test data. Across machines, start one process per rank with RANK, WORLD_SIZE, MASTER_ADDR and "
      "MASTER_PORT set.");
  return [o] { return run_train(*o); };
}

}  // namespace attnvision::pipelines
