// Sample orders for training: one permutation per epoch, sharded for data-parallel ranks.
//
// Everything here must give the same numbers on every machine (a resumed or distributed run has to see
// the same order), so the randomness is std::mt19937_64, whose output the standard fixes, used through
// our own bounded draws: std::uniform_int_distribution and std::shuffle are implementation-defined.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

namespace attnvision::datasets {

// A uniform integer in 0..bound-1 (bound >= 1), by rejection: portable and unbiased.
uint64_t uniform_below(std::mt19937_64& rng, uint64_t bound);
// A uniform double in [0, 1) from the top 53 bits of one draw.
double uniform_unit(std::mt19937_64& rng);
// Fisher-Yates, from the last element down (the order numpy's and Python's shuffles use).
void fisher_yates(std::vector<int64_t>& values, std::mt19937_64& rng);

// The sample order of one epoch: a permutation of 0..n-1 drawn from std::mt19937_64(seed + epoch) (the
// seed torch's DistributedSampler uses), or 0..n-1 when !shuffle. Then rank's shard: every world-th
// index starting at rank, the order first padded by wrapping around to a multiple of world, so every rank
// gets ceil(n / world) indices (torch DistributedSampler with drop_last=False). Throws
// std::invalid_argument for n < 0, world < 1 or rank outside 0..world-1.
std::vector<int64_t> epoch_order(int64_t n, uint64_t seed, int64_t epoch, int rank = 0, int world = 1,
                                 bool shuffle = true);

}  // namespace attnvision::datasets
