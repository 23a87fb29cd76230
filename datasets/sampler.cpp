#include "datasets/sampler.h"

#include <numeric>
#include <stdexcept>
#include <string>
#include <utility>

namespace attnvision::datasets {

uint64_t uniform_below(std::mt19937_64& rng, uint64_t bound) {
  if (bound == 0) throw std::invalid_argument("uniform_below: the bound must be positive");
  // 2^64 mod bound: draws below it would make the low values more likely.
  const uint64_t threshold = (0 - bound) % bound;
  for (;;) {
    const uint64_t x = rng();
    if (x >= threshold) return x % bound;
  }
}

double uniform_unit(std::mt19937_64& rng) { return static_cast<double>(rng() >> 11) * 0x1.0p-53; }

void fisher_yates(std::vector<int64_t>& values, std::mt19937_64& rng) {
  for (size_t i = values.size(); i > 1; --i) {
    const size_t j = static_cast<size_t>(uniform_below(rng, i));
    std::swap(values[i - 1], values[j]);
  }
}

std::vector<int64_t> epoch_order(int64_t n, uint64_t seed, int64_t epoch, int rank, int world, bool shuffle) {
  if (n < 0) throw std::invalid_argument("epoch_order: negative sample count " + std::to_string(n));
  if (world < 1 || rank < 0 || rank >= world) {
    throw std::invalid_argument("epoch_order: rank " + std::to_string(rank) + " is not in 0.." +
                                std::to_string(world - 1) + " (world " + std::to_string(world) + ")");
  }
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), int64_t{0});
  if (shuffle) {
    std::mt19937_64 rng(seed + static_cast<uint64_t>(epoch));
    fisher_yates(order, rng);
  }
  if (n == 0) return {};
  const int64_t per_rank = (n + world - 1) / world;
  std::vector<int64_t> shard(static_cast<size_t>(per_rank));
  // Position k of the padded order is order[k mod n]: the wrap-around repeats the start of the epoch.
  for (int64_t i = 0; i < per_rank; ++i)
    shard[static_cast<size_t>(i)] = order[static_cast<size_t>((rank + i * world) % n)];
  return shard;
}

}  // namespace attnvision::datasets
