// `attnvision bench`: forward-only throughput of a model on random input, next to this machine's
// measured fp32 matmul peak, so images/s always comes with the GFLOP/s it achieves.
#include "models/registry.h"
#include "pipelines/commands/cli_options.h"
#include "pipelines/commands/command.h"
#include "pipelines/model_loader.h"

#include <torch/torch.h>

#include <chrono>
#include <cstdio>
#include <memory>

namespace attnvision::pipelines {

namespace {

struct BenchOptions {
  ModelChoice model;
  ThreadOptions threads;
  int64_t batch = 16;
  int iters = 10;
  int warmup = 2;
  int64_t size = 0;
  bool json = false;
};

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Best of a few 2048^3 sgemms: what OpenBLAS reaches on this machine with the current thread setting.
double matmul_peak_gflops() {
  const int64_t n = 2048;
  torch::Tensor a = torch::randn({n, n}), b = torch::randn({n, n});
  torch::mm(a, b);
  double best = 0;
  for (int i = 0; i < 3; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    torch::mm(a, b);
    best = std::max(best, 2.0 * n * n * n / seconds_since(t0) / 1e9);
  }
  return best;
}

int run_bench(BenchOptions o) {
  o.model.random_init = true;  // throughput does not depend on the weights' values
  LoadedModel m = load_model(o.model);
  if (o.size > 0) m.cfg.input_size = {m.cfg.in_chans, o.size, o.size};
  apply_thread_options(o.threads, m.cfg.arch);
  torch::InferenceMode guard;
  torch::Tensor x = torch::randn({o.batch, m.cfg.in_chans, m.cfg.input_size[1], m.cfg.input_size[2]});
  for (int i = 0; i < o.warmup; ++i) m.net->logits(x);
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < o.iters; ++i) m.net->logits(x);
  const double s = seconds_since(t0);
  const double ips = o.batch * o.iters / s;
  const double gflops = models::forward_gflops(m.cfg) * ips;
  const double peak = matmul_peak_gflops();
  if (o.json) {
    std::printf("%s\n", nlohmann::json{{"model", m.cfg.name},
                                       {"batch", o.batch},
                                       {"input_size", m.cfg.input_size},
                                       {"iters", o.iters},
                                       {"images_per_s", ips},
                                       {"gflops_per_image", models::forward_gflops(m.cfg)},
                                       {"achieved_gflop_s", gflops},
                                       {"matmul_peak_gflop_s", peak},
                                       {"torch_threads", at::get_num_threads()}}
                                .dump()
                                .c_str());
  } else {
    std::printf("%s batch %ld at %ldx%ld: %.2f images/s, %.1f GFLOP/s (%.0f%% of the %.1f GFLOP/s matmul peak)\n",
                m.cfg.name.c_str(), o.batch, m.cfg.input_size[1], m.cfg.input_size[2], ips, gflops, 100 * gflops / peak,
                peak);
  }
  return 0;
}

}  // namespace

CommandRun define_bench(CLI::App& app) {
  auto o = std::make_shared<BenchOptions>();
  add_model_options(app, o->model);
  add_thread_options(app, o->threads);
  app.add_option("--batch,-b", o->batch, "images per forward")->capture_default_str()->check(CLI::Range(1, 1024));
  app.add_option("--iters", o->iters, "timed forwards")->capture_default_str()->check(CLI::Range(1, 100000));
  app.add_option("--warmup", o->warmup, "untimed forwards first")->capture_default_str()->check(CLI::Range(0, 1000));
  app.add_option("--size", o->size, "square input size (0: the model's default)")->capture_default_str();
  app.add_flag("--json", o->json, "print one JSON object");
  return [o] { return run_bench(*o); };
}

}  // namespace attnvision::pipelines
