#include "models/runtime.h"

#include <ATen/Parallel.h>
#include <ATen/autocast_mode.h>

#include <dlfcn.h>
#include <malloc.h>
#include <sched.h>

#include <cstdlib>
#include <cstring>
#include <stdexcept>

namespace attnvision::models {

int available_cores() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) return std::max(1, CPU_COUNT(&set));
  return 1;
}

void keep_freed_memory() {
  mallopt(M_MMAP_MAX, 0);                  // large blocks come from the heap and are reused after free
  mallopt(M_TRIM_THRESHOLD, 1 << 30);      // and the heap's top is not returned to the kernel eagerly
}

ThreadPlan default_threads(const char* arch, bool training, Precision precision) {
  const int cores = available_cores();
  if (std::strcmp(arch, "vit") == 0 && training && precision == Precision::kFloat32) return {1, cores};
  return {cores, 1};
}

ThreadPlan apply_threads(ThreadPlan plan) {
  const int cores = available_cores();
  if (plan.torch_threads <= 0) plan.torch_threads = cores;
  if (plan.blas_threads <= 0) plan.blas_threads = cores;
  at::set_num_threads(plan.torch_threads);
  // OpenBLAS is reached through libblas.so.3 (Debian's alternative); look the setter up in whatever BLAS
  // the process loaded, so a reference BLAS (no such symbol) is simply left alone.
  using SetThreads = void (*)(int);
  if (auto set = reinterpret_cast<SetThreads>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))) set(plan.blas_threads);
  return plan;
}

Precision parse_precision(const std::string& name) {
  if (name == "fp32") return Precision::kFloat32;
  if (name == "bf16") return Precision::kBFloat16;
  throw std::invalid_argument("precision '" + name + "': expected fp32 or bf16");
}

const char* to_string(Precision p) { return p == Precision::kBFloat16 ? "bf16" : "fp32"; }

bool cpu_has_native_bf16() {
  if (const char* off = std::getenv("ATTNVISION_NO_BF16"); off && *off && std::strcmp(off, "0") != 0) return false;
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512bf16");
}

Precision inference_precision(Precision requested, std::string& note) {
  note.clear();
  if (requested != Precision::kBFloat16) return requested;
  if (!cpu_has_native_bf16()) {
    note = "precision bf16: this CPU has no AVX512-BF16; running in fp32";
    return Precision::kFloat32;
  }
  note = "precision bf16: AVX512-BF16 found; convolutions and matrix products run in bfloat16 (oneDNN)";
  return Precision::kBFloat16;
}

AutocastScope::AutocastScope(Precision p) : active_(p == Precision::kBFloat16) {
  if (!active_) return;
  was_enabled_ = at::autocast::is_cpu_enabled();
  previous_dtype_ = at::autocast::get_autocast_cpu_dtype();
  at::autocast::set_cpu_enabled(true);
  at::autocast::set_autocast_cpu_dtype(at::kBFloat16);
  at::autocast::increment_nesting();
}

NoAutocastScope::NoAutocastScope() : was_enabled_(at::autocast::is_cpu_enabled()) {
  at::autocast::set_cpu_enabled(false);
}

NoAutocastScope::~NoAutocastScope() { at::autocast::set_cpu_enabled(was_enabled_); }

AutocastScope::~AutocastScope() {
  if (!active_) return;
  // The outermost scope drops autocast's cache of weights already cast to bfloat16, as Python's does.
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  at::autocast::set_cpu_enabled(was_enabled_);
  at::autocast::set_autocast_cpu_dtype(previous_dtype_);
}

}  // namespace attnvision::models
