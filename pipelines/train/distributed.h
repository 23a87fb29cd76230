// Data-parallel training across processes with LibTorch's own distributed engine (c10d, Gloo backend).
// Each process holds a full replica; gradients are averaged by all-reduce after every backward pass, so the
// replicas take identical steps. One machine: `attnvision train ... --nproc N` starts the N processes.
// Several machines: start one process per rank with RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT set (as
// torchrun does); GLOO_SOCKET_IFNAME picks the network interface when the default one is wrong.
#pragma once

#include <torch/nn/module.h>
#include <torch/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace attnvision::pipelines {

class DataParallel {
 public:
  // From the environment (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT); nullptr when WORLD_SIZE is unset or 1.
  // Throws std::runtime_error with one line when the variables are inconsistent or the group cannot form.
  static std::unique_ptr<DataParallel> from_env();
  ~DataParallel();

  int rank() const { return rank_; }
  int world() const { return world_; }

  // Rank 0's parameters and buffers, copied into every replica (call once after building the model).
  void broadcast_state(torch::nn::Module& module);
  // Gradients summed across ranks and divided by the world size, in one flat all-reduce.
  void average_gradients(torch::nn::Module& module);
  // Floating buffers (BatchNorm running statistics, which each rank updates from its own shard) averaged.
  void average_buffers(torch::nn::Module& module);
  // Sums of per-rank counters (e.g. correct predictions and samples), in place.
  void sum(torch::Tensor& values);
  // A digest of every parameter and buffer, compared across ranks; throws if any replica differs, else
  // returns the common digest.
  int64_t check_replicas_identical(torch::nn::Module& module, const std::string& when);
  void barrier();

 private:
  DataParallel(int rank, int world, const std::string& addr, int port);
  struct Group;
  std::unique_ptr<Group> group_;
  int rank_ = 0;
  int world_ = 1;
};

// Runs this program again `nproc` times with `args` (argv without the program and without --nproc) and
// RANK / WORLD_SIZE / MASTER_ADDR=127.0.0.1 / MASTER_PORT (a free port) set, OMP threads split between
// them; waits for all. When one fails the others are stopped. Returns the first non-zero exit code, or 0.
int launch_local_workers(int nproc, const std::vector<std::string>& args);

}  // namespace attnvision::pipelines
