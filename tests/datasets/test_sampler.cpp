// epoch_order: permutations from (seed, epoch), the same on every machine, and DistributedSampler-style
// shards that cover the epoch.
#include "datasets/sampler.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <set>
#include <stdexcept>

namespace ad = attnvision::datasets;

namespace {

std::vector<int64_t> iota(int64_t n) {
  std::vector<int64_t> v(static_cast<size_t>(n));
  std::iota(v.begin(), v.end(), int64_t{0});
  return v;
}

std::vector<int64_t> sorted(std::vector<int64_t> v) {
  std::sort(v.begin(), v.end());
  return v;
}

TEST(Sampler, EpochOrderIsAPermutation) {
  for (int64_t n : {0, 1, 2, 7, 1000}) {
    const std::vector<int64_t> order = ad::epoch_order(n, 42, 3);
    EXPECT_EQ(sorted(order), iota(n)) << "n = " << n;
  }
  EXPECT_NE(ad::epoch_order(1000, 42, 3), iota(1000));
}

TEST(Sampler, EpochOrderDependsOnSeedAndEpochOnly) {
  EXPECT_EQ(ad::epoch_order(500, 7, 2), ad::epoch_order(500, 7, 2));
  EXPECT_NE(ad::epoch_order(500, 7, 2), ad::epoch_order(500, 7, 3));
  EXPECT_NE(ad::epoch_order(500, 7, 2), ad::epoch_order(500, 8, 2));
  EXPECT_EQ(ad::epoch_order(500, 7, 2, 0, 1, false), iota(500));
}

// Pinned output: the order must not change between machines, compilers or releases (a resumed run
// replays the same epochs). The values come from tests/data/datasets/epoch_order_reference.py, an
// independent Python implementation of std::mt19937_64, the bounded draw and Fisher-Yates.
TEST(Sampler, EpochOrderIsPinned) {
  EXPECT_EQ(ad::epoch_order(12, 42, 0), (std::vector<int64_t>{9, 3, 1, 2, 7, 4, 8, 5, 11, 10, 0, 6}));
  EXPECT_EQ(ad::epoch_order(12, 42, 1), (std::vector<int64_t>{6, 0, 9, 3, 4, 11, 1, 7, 5, 10, 8, 2}));
}

TEST(Sampler, MersenneTwisterIsTheStandardOne) {
  // The standard's required check: the 10000th output of a default-constructed std::mt19937_64.
  std::mt19937_64 rng;
  rng.discard(9999);
  EXPECT_EQ(rng(), 9981545732273789042ull);
}

// torch.utils.data.DistributedSampler, literally: pad by wrapping, then every world-th from rank.
std::vector<int64_t> torch_shard(std::vector<int64_t> order, int rank, int world) {
  const size_t n = order.size();
  const size_t total = (n + world - 1) / world * world;
  for (size_t i = 0; order.size() < total; ++i) order.push_back(order[i % n]);
  std::vector<int64_t> shard;
  for (size_t i = static_cast<size_t>(rank); i < total; i += static_cast<size_t>(world))
    shard.push_back(order[i]);
  return shard;
}

TEST(Sampler, ShardsMatchDistributedSampler) {
  for (int64_t n : {1, 2, 9, 10, 12, 101}) {
    for (int world : {1, 2, 3, 4, 16}) {
      const std::vector<int64_t> full = ad::epoch_order(n, 5, 1);
      for (int rank = 0; rank < world; ++rank) {
        const std::vector<int64_t> shard = ad::epoch_order(n, 5, 1, rank, world);
        EXPECT_EQ(static_cast<int64_t>(shard.size()), (n + world - 1) / world);
        EXPECT_EQ(shard, torch_shard(full, rank, world))
            << "n " << n << " rank " << rank << " world " << world;
      }
    }
  }
}

TEST(Sampler, ShardsAreDisjointAndCover) {
  const int64_t n = 1000;
  const int world = 4;  // divides n: no padding, the shards partition the epoch
  std::vector<int64_t> all;
  for (int rank = 0; rank < world; ++rank) {
    const std::vector<int64_t> shard = ad::epoch_order(n, 11, 4, rank, world);
    all.insert(all.end(), shard.begin(), shard.end());
  }
  EXPECT_EQ(sorted(all), iota(n));
  // 10 over 3 ranks: 4 each, the two padding indices repeat the start of the epoch.
  std::multiset<int64_t> seen;
  for (int rank = 0; rank < 3; ++rank) {
    for (int64_t i : ad::epoch_order(10, 11, 4, rank, 3)) seen.insert(i);
  }
  EXPECT_EQ(seen.size(), 12u);
  EXPECT_EQ(std::set<int64_t>(seen.begin(), seen.end()).size(), 10u);
  const std::vector<int64_t> order = ad::epoch_order(10, 11, 4);
  EXPECT_EQ(seen.count(order[0]), 2u);
  EXPECT_EQ(seen.count(order[1]), 2u);
}

TEST(Sampler, InvalidArgumentsThrow) {
  EXPECT_THROW(ad::epoch_order(-1, 0, 0), std::invalid_argument);
  EXPECT_THROW(ad::epoch_order(10, 0, 0, 2, 2), std::invalid_argument);
  EXPECT_THROW(ad::epoch_order(10, 0, 0, -1, 2), std::invalid_argument);
  EXPECT_THROW(ad::epoch_order(10, 0, 0, 0, 0), std::invalid_argument);
  EXPECT_TRUE(ad::epoch_order(0, 0, 0, 1, 2).empty());
}

TEST(Sampler, UniformBelowCoversItsRange) {
  std::mt19937_64 rng(3);
  std::vector<int> counts(6);
  for (int i = 0; i < 6000; ++i) ++counts[ad::uniform_below(rng, 6)];
  for (int c : counts) EXPECT_NEAR(c, 1000, 150);
  EXPECT_EQ(ad::uniform_below(rng, 1), 0u);
  EXPECT_THROW(ad::uniform_below(rng, 0), std::invalid_argument);
  for (int i = 0; i < 1000; ++i) {
    const double u = ad::uniform_unit(rng);
    ASSERT_TRUE(u >= 0.0 && u < 1.0);
  }
}

}  // namespace
