#include "pipelines/commands/cli_options.h"

#include "models/runtime.h"

namespace attnvision::pipelines {

void add_model_options(CLI::App& app, ModelChoice& c, bool inference) {
  app.add_option("--model,-m", c.model,
                 "registered model name (see `attnvision models`) or a model YAML file; with neither --model nor "
                 "--weights, the shipped Fashion-MNIST classifier (models/pretrained/)");
  app.add_option("--weights,-w", c.weights,
                 "weights: our checkpoint (carries its config, so --model is optional), a timm safetensors file "
                 "or a torch.save state_dict");
  app.add_option("--set", c.sets, "override a model config key, e.g. --set num_classes=10 (repeatable)");
  app.add_option("--labels", c.labels_file, "class names, one per line, in class-index order");
  app.add_flag("--random-init", c.random_init, "run without weights (untrained; for smoke tests and benchmarks)");
  if (!inference) return;
  app.add_option_function<std::string>(
         "--precision", [&c](const std::string& p) { c.precision = models::parse_precision(p); },
         "fp32 (default) or bf16: convolutions and matrix products in bfloat16 through oneDNN, 1.1-2.0x the fp32 "
         "images/s measured here on CPUs with AVX512-BF16 (elsewhere fp32, said on stderr)")
      ->check(CLI::IsMember({"fp32", "bf16"}));
}

void add_thread_options(CLI::App& app, ThreadOptions& t) {
  app.add_option("--threads", t.torch_threads, "torch intra-op threads (0: the model's default plan)")
      ->capture_default_str()
      ->check(CLI::Range(0, 1024));
  app.add_option("--blas-threads", t.blas_threads, "OpenBLAS threads for Linear/matmul (0: all cores)")
      ->capture_default_str()
      ->check(CLI::Range(0, 1024));
}

models::ThreadPlan apply_thread_options(const ThreadOptions& t, const LoadedModel& model) {
  models::ThreadPlan plan = models::default_threads(model.cfg.arch.c_str(), /*training=*/false, model.precision);
  if (t.torch_threads > 0) plan.torch_threads = t.torch_threads;
  if (t.blas_threads > 0) plan.blas_threads = t.blas_threads;
  return models::apply_threads(plan);
}

}  // namespace attnvision::pipelines
