// Thread settings for inference and training. Debian's libtorch starts with one intra-op thread and its
// set_num_threads does not reach OpenBLAS (which runs every Linear / matmul), so both are set here.
#pragma once

#include <c10/core/ScalarType.h>

#include <string>

namespace attnvision::models {

// Numeric precision of a training forward pass.
enum class Precision {
  kFloat32,   // everything in float32
  kBFloat16,  // autocast: convolutions and matrix products in bfloat16 (oneDNN), weights, gradients,
              // norms and the optimiser in float32. On this 2-core AVX512-BF16 machine it trained the
              // Fashion-MNIST ResNet about 1.5x faster than float32 at batch 128 (1.9x at batch 256) and the
              // small ViT about 6x faster (README, "Training").
};
Precision parse_precision(const std::string& name);  // "fp32" | "bf16"; std::invalid_argument otherwise
const char* to_string(Precision p);

// Whether this CPU runs bfloat16 natively (AVX512-BF16: oneDNN's bf16 convolutions and matrix products).
// Without it oneDNN has no bf16 instructions to run them on, so inference stays in float32 there.
// ATTNVISION_NO_BF16=1 answers false on any CPU (to run, or test, the fallback).
bool cpu_has_native_bf16();

// The precision inference runs in when `requested` is asked for: bf16 only where the CPU has it natively.
// `note` gets the one line to tell the user (what was found and what runs), empty for fp32 as asked.
Precision inference_precision(Precision requested, std::string& note);

struct ThreadPlan {
  int torch_threads = 0;  // intra-op (convolutions, element-wise); 0: all cores
  int blas_threads = 0;   // OpenBLAS (Linear, matmul); 0: all cores
};

// Applies the plan; returns the plan as applied (zeros resolved). Safe to call more than once.
ThreadPlan apply_threads(ThreadPlan plan);

// The plan that measured fastest here (2-core AVX-512) for an architecture. Torch gets every core and
// OpenBLAS one, except to train a ViT in float32: its Linear layers then run in OpenBLAS, on every core, and
// torch runs on one thread (idle OpenMP threads spin and steal OpenBLAS's cores). Everywhere else OpenBLAS
// has little or nothing to do and its idle threads would spin against torch's: inference convolutions run in
// oneDNN (ResNet-50 at batch 1: 27.3 images/s with OpenBLAS on one thread, 22.9 on both), a ViT prepared for
// inference runs its matrix products in oneDNN too (vit.cpp, PackableLinear), and in bfloat16 every
// convolution and matrix product does. Training a CNN, OpenBLAS's only work is the small classifier
// (Fashion-MNIST ResNet: 12% more images/s than with OpenBLAS on both cores).
ThreadPlan default_threads(const char* arch, bool training = false, Precision precision = Precision::kFloat32);

// Keeps freed tensor memory in the process instead of handing it back to the kernel, where glibc's malloc
// is the allocator. glibc serves blocks over its mmap threshold (at most 32 MB) with fresh mappings, so
// every forward pass page-faults its large activations anew; on this VM that alone made ResNet-50
// (batch 16) 3-4x slower, and DICOM decoding paid 9.3 ms of page faults per 512x512 slice. The CLI calls
// it once at start-up; the `attnvision` binary itself links tcmalloc (pipelines/cli/CMakeLists.txt says
// why), which keeps freed memory on its own and ignores these settings, so this serves programs and tests
// that link the library with glibc's allocator.
void keep_freed_memory();

// Cores this process may run on (sched affinity), at least 1.
int available_cores();

// Autocast on the CPU for the scope's lifetime when `p` is kBFloat16, as Python's
// `torch.autocast("cpu", dtype=torch.bfloat16)` does: ops on autocast's lists take bfloat16 inputs, the
// rest run as they are. Outputs of such ops are bfloat16; cast what must be float32 (the loss's logits).
class AutocastScope {
 public:
  explicit AutocastScope(Precision p);
  ~AutocastScope();
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;

 private:
  bool active_ = false;
  bool was_enabled_ = false;
  c10::ScalarType previous_dtype_ = c10::ScalarType::Float;
};

// Float32 within its scope whatever autocast the caller runs under: for a frozen part whose outputs must not
// depend on the precision its host trains in (a captioner's embedded detector).
class NoAutocastScope {
 public:
  NoAutocastScope();
  ~NoAutocastScope();
  NoAutocastScope(const NoAutocastScope&) = delete;
  NoAutocastScope& operator=(const NoAutocastScope&) = delete;

 private:
  bool was_enabled_ = false;
};

}  // namespace attnvision::models
