// `attnvision bench`: forward-only throughput of a model on random input (for a detector with --second-stage,
// the forward and what `detect` does after it), next to this machine's measured matmul peak in the same
// precision, so images/s always comes with the GFLOP/s it achieves, and the thread plan and precision it ran with.
#include "models/kernels/packed_linear.h"
#include "models/registry.h"
#include "pipelines/commands/cli_options.h"
#include "pipelines/commands/command.h"
#include "pipelines/model_loader.h"
#include "models/heads/centernet.h"
#include "pipelines/tasks/detect/crop_classifier.h"

#include <ATen/ops/mkldnn_linear.h>
#include <torch/torch.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <optional>

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
  // A detector's second stage to time with it: each forward's peaks decoded, its crops_per_image strongest ones
  // per image cut and classified, and rescored (what `detect` does after the network).
  std::string second_stage;
  int64_t crops_per_image = 10;
};

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

struct MatmulPeak {
  double gflops = 0;        // the best of the kernels below: what the percentage is taken of
  double openblas = 0;      // fp32 only: OpenBLAS sgemm on every core
  double onednn = 0;        // oneDNN on torch's threads: the best of ATen's entry point and its matmul primitive
};

// Best of five 2048^3 products, in GFLOP/s.
template <typename Fn>
double best_gflops(const Fn& product) {
  const int64_t n = 2048;
  product();
  double best = 0;
  for (int i = 0; i < 5; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    product();
    best = std::max(best, 2.0 * n * n * n / seconds_since(t0) / 1e9);
  }
  return best;
}

// What this machine's matrix products reach in `precision`, through each library the networks use: fp32 in
// OpenBLAS (on every core, whatever the model's plan gives it) and in oneDNN, bf16 in oneDNN. oneDNN's figure is
// the better of ATen's entry point (its inner product in fp32, its matmul in bf16) and the matmul primitive on
// packed weights that a ViT prepared for inference runs its Linear layers on (models/kernels/packed_linear.h),
// so that a network is measured against the fastest product it could have used.
MatmulPeak matmul_peak(models::Precision precision, const models::ThreadPlan& plan) {
  const int64_t n = 2048;
  MatmulPeak peak;
  const torch::Tensor a = torch::randn({n, n}), b = torch::randn({n, n});
  const torch::ScalarType dtype =
      precision == models::Precision::kBFloat16 ? torch::kBFloat16 : torch::kFloat32;
  if (precision == models::Precision::kBFloat16) {
    const torch::Tensor a16 = a.to(torch::kBFloat16), b16 = b.to(torch::kBFloat16);
    peak.onednn = best_gflops([&] { torch::mm(a16, b16); });
  } else {
    models::apply_threads({plan.torch_threads, models::available_cores()});
    peak.openblas = best_gflops([&] { torch::mm(a, b); });
    models::apply_threads({models::available_cores(), 1});
    const torch::Tensor a_onednn = a.to_mkldnn(), b_onednn = b.to_mkldnn();
    peak.onednn = best_gflops([&] { at::mkldnn_linear(a_onednn, b_onednn); });
  }
  models::apply_threads({models::available_cores(), 1});
  const models::PackedLinear packed(b, torch::Tensor(), dtype);
  const torch::Tensor a_packed = a.to(dtype);
  peak.onednn = std::max(peak.onednn, best_gflops([&] { packed(a_packed); }));
  models::apply_threads(plan);
  peak.gflops = std::max(peak.openblas, peak.onednn);
  return peak;
}

std::string omp_wait_policy() {
  const char* policy = std::getenv("OMP_WAIT_POLICY");
  return policy && *policy ? policy : "default";
}

// Whether the heap's fresh memory may come in transparent huge pages: the mapping that holds a new 64 MB block
// (larger than anything tcmalloc keeps free at start-up, so taken from the kernel now), as /proc/self/smaps
// says it (THPeligible). True when the binary's allocator asks for them (pipelines/cli/huge_pages.h) and the
// kernel gives them.
bool heap_in_huge_pages() {
  const std::unique_ptr<char[]> block(new char[size_t{64} << 20]);
  static_cast<volatile char*>(block.get())[0] = 0;  // used, so the allocation stays
  const auto at = reinterpret_cast<uintptr_t>(block.get());
  std::ifstream smaps("/proc/self/smaps");
  bool inside = false;
  for (std::string line; std::getline(smaps, line);) {
    unsigned long lo = 0, hi = 0;
    char dash = 0;
    // A mapping's first line is "lo-hi perms ..."; its fields follow as "Name: value".
    if (std::sscanf(line.c_str(), "%lx%c%lx ", &lo, &dash, &hi) == 3 && dash == '-') {
      inside = lo <= at && at < hi;
    } else if (inside && line.rfind("THPeligible:", 0) == 0) {
      return std::atoi(line.c_str() + std::strlen("THPeligible:")) == 1;
    }
  }
  return false;
}

int run_bench(BenchOptions o) {
  o.model.random_init = true;  // throughput does not depend on the weights' values
  LoadedModel m = load_model(o.model);
  if (o.size > 0) m.cfg.input_size = {m.cfg.in_chans, o.size, o.size};
  const models::ThreadPlan plan = apply_thread_options(o.threads, m);
  torch::InferenceMode guard;
  torch::Tensor x = torch::randn({o.batch, m.cfg.in_chans, m.cfg.input_size[1], m.cfg.input_size[2]});
  std::optional<CropClassifier> second_stage;
  if (!o.second_stage.empty()) {
    if (m.cfg.task != "detection")
      throw ConfigError("bench: --second-stage is a detector's, and " + m.cfg.name + " is a " + m.cfg.task + " model");
    CropClassifierOptions stage;
    stage.weights = o.second_stage;
    // Every one of the kept peaks is cropped, whatever a random network scores it: a fixed amount of work.
    stage.min_score = 1e-6;
    second_stage = make_second_stage(stage, m);
  }
  const int64_t kept = std::min(o.crops_per_image, m.cfg.detection.max_detections);
  auto run = [&] {
    if (!second_stage) return m.net->logits(x);
    const models::Forward f = m.net->forward(x);
    const torch::Tensor peaks = models::centernet_decode(f, m.cfg.detection.max_detections, m.cfg.detection.output_stride);
    return second_stage->rescore(peaks.narrow(1, 0, kept), x);
  };
  for (int i = 0; i < o.warmup; ++i) run();
  // Each forward is timed on its own: the mean rate is what a run of forwards gets, and the fastest forward is
  // measured the way the peak is (the best of a few products), so the share of the peak compares like with like
  // and does not move with whatever else the machine did during the longer of the two measurements.
  double total = 0, fastest = 0;
  for (int i = 0; i < o.iters; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    run();
    const double s = seconds_since(t0);
    total += s;
    fastest = i == 0 ? s : std::min(fastest, s);
  }
  const double gflops_per_image =
      models::forward_gflops(m.cfg) + (second_stage ? kept * models::forward_gflops(second_stage->model().cfg) : 0.0);
  const double ips = o.batch * o.iters / total, fastest_ips = o.batch / fastest;
  const double gflops = gflops_per_image * ips, fastest_gflops = gflops_per_image * fastest_ips;
  const MatmulPeak peak = matmul_peak(m.precision, plan);
  const double percent_of_peak = 100 * fastest_gflops / peak.gflops;
  const char* precision = models::to_string(m.precision);
  if (o.json) {
    std::printf("%s\n", nlohmann::json{{"model", m.cfg.name},
                                       {"batch", o.batch},
                                       {"input_size", m.cfg.input_size},
                                       {"iters", o.iters},
                                       {"precision", precision},
                                       {"precision_asked", models::to_string(o.model.precision)},
                                       {"cpu_native_bf16", models::cpu_has_native_bf16()},
                                       {"images_per_s", ips},
                                       {"gflops_per_image", gflops_per_image},
                                       {"achieved_gflop_s", gflops},
                                       {"fastest_forward_images_per_s", fastest_ips},
                                       {"fastest_forward_gflop_s", fastest_gflops},
                                       {"percent_of_matmul_peak", percent_of_peak},
                                       {"matmul_peak_gflop_s", peak.gflops},
                                       {"matmul_peak_openblas_gflop_s", peak.openblas},
                                       {"matmul_peak_onednn_gflop_s", peak.onednn},
                                       {"matmul_peak_precision", precision},
                                       {"torch_threads", plan.torch_threads},
                                       {"blas_threads", plan.blas_threads},
                                       {"workers", 0},
                                       {"omp_wait_policy", omp_wait_policy()},
                                       {"heap_huge_pages", heap_in_huge_pages()},
                                       {"cores", models::available_cores()},
                                       {"second_stage", o.second_stage},
                                       {"crops_per_image", second_stage ? kept : 0}}
                                .dump()
                                .c_str());
  } else {
    std::printf("%s batch %ld at %ldx%ld, %s: %.2f images/s, %.1f GFLOP/s; fastest forward %.1f GFLOP/s, %.0f%% of "
                "the %.1f GFLOP/s %s matmul peak; threads: torch %d, OpenBLAS %d, no decode workers\n",
                m.cfg.name.c_str(), o.batch, m.cfg.input_size[1], m.cfg.input_size[2], precision, ips, gflops,
                fastest_gflops, percent_of_peak, peak.gflops, precision, plan.torch_threads, plan.blas_threads);
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
  app.add_option("--second-stage", o->second_stage,
                 "a detector only: also time its second stage, this crop classifier (a checkpoint; `convert "
                 "--random-init` makes one): each forward's peaks decoded and the --crops-per-image strongest of "
                 "each image cut, classified and rescored, as `detect` does");
  app.add_option("--crops-per-image", o->crops_per_image, "with --second-stage: crops classified per image")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000));
  app.add_flag("--json", o->json,
               "print one JSON object: {model, batch, input_size, iters, precision, precision_asked, cpu_native_bf16, "
               "images_per_s (the mean over --iters), gflops_per_image, achieved_gflop_s (at the mean), "
               "fastest_forward_images_per_s, fastest_forward_gflop_s, percent_of_matmul_peak (the fastest forward's "
               "GFLOP/s against the peak), matmul_peak_gflop_s (the best of OpenBLAS and oneDNN), "
               "matmul_peak_openblas_gflop_s (fp32; 0 in bf16), matmul_peak_onednn_gflop_s, matmul_peak_precision, "
               "torch_threads, blas_threads, workers (0: bench decodes nothing), omp_wait_policy, heap_huge_pages (fresh heap memory may come in transparent huge pages), cores, second_stage, crops_per_image}");
  app.footer("Without --weights the network is random (throughput does not depend on the weights). The matmul peak "
             "is the best of five 2048x2048 products in the run's precision, through the faster library: fp32 in "
             "OpenBLAS (every core) and in oneDNN (torch's threads), bf16 in oneDNN.");
  return [o] { return run_bench(*o); };
}

}  // namespace attnvision::pipelines
