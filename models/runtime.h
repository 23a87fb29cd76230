// Thread settings for inference and training. Debian's libtorch starts with one intra-op thread and its
// set_num_threads does not reach OpenBLAS (which runs every Linear / matmul), so both are set here.
#pragma once

namespace attnvision::models {

struct ThreadPlan {
  int torch_threads = 0;  // intra-op (convolutions, element-wise); 0: all cores
  int blas_threads = 0;   // OpenBLAS (Linear, matmul); 0: all cores
};

// Applies the plan; returns the plan as applied (zeros resolved). Safe to call more than once.
ThreadPlan apply_threads(ThreadPlan plan);

// The plan that measured fastest here for an architecture: CNNs use every core in torch; a ViT runs
// torch on one thread and OpenBLAS on all (idle OpenMP threads spin and steal OpenBLAS's cores).
// Training a CNN, OpenBLAS gets one thread: its only work is the small classifier, and its idle threads
// spin against torch's (Fashion-MNIST ResNet, 2 cores: 12% more images/s than with OpenBLAS on both).
ThreadPlan default_threads(const char* arch, bool training = false);

// Keeps freed tensor memory in the process instead of handing it back to the kernel. glibc serves
// blocks over its mmap threshold (at most 32 MB) with fresh mappings, so every forward pass page-faults
// its large activations anew; on this VM that alone made ResNet-50 (batch 16) 3-4x slower, and DICOM
// decoding paid 9.3 ms of page faults per 512x512 slice. The CLI calls it once at start-up.
void keep_freed_memory();

// Cores this process may run on (sched affinity), at least 1.
int available_cores();

}  // namespace attnvision::models
