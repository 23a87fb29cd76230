#!/usr/bin/env python3
"""Reference values for tests/datasets/test_sampler.cpp (EpochOrderIsPinned), computed without C++.

std::mt19937_64 (its algorithm and seeding are fixed by the C++ standard, [rand.eng.mers]), the rejection
draw of datasets::uniform_below and Fisher-Yates from the last element down, as datasets/sampler.cpp
does. Run: python3 epoch_order_reference.py
"""

MASK = 2**64 - 1


class MT19937_64:
    def __init__(self, seed):
        self.mt = [seed & MASK]
        for i in range(1, 312):
            prev = self.mt[-1]
            self.mt.append((6364136223846793005 * (prev ^ (prev >> 62)) + i) & MASK)
        self.index = 312

    def __call__(self):
        if self.index >= 312:
            for k in range(312):
                y = (self.mt[k] & 0xFFFFFFFF80000000) | (self.mt[(k + 1) % 312] & 0x7FFFFFFF)
                v = self.mt[(k + 156) % 312] ^ (y >> 1)
                self.mt[k] = v ^ 0xB5026F5AA96619E9 if y & 1 else v
            self.index = 0
        x = self.mt[self.index]
        self.index += 1
        x ^= (x >> 29) & 0x5555555555555555
        x ^= (x << 17) & 0x71D67FFFEDA60000
        x ^= (x << 37) & 0xFFF7EEE000000000
        x ^= x >> 43
        return x & MASK


def uniform_below(rng, bound):
    threshold = (2**64 - bound) % bound
    while True:
        x = rng()
        if x >= threshold:
            return x % bound


def epoch_order(n, seed, epoch):
    rng = MT19937_64(seed + epoch)
    order = list(range(n))
    for i in range(n, 1, -1):
        j = uniform_below(rng, i)
        order[i - 1], order[j] = order[j], order[i - 1]
    return order


if __name__ == "__main__":
    check = MT19937_64(5489)
    for _ in range(9999):
        check()
    assert check() == 9981545732273789042  # the standard's own check of mt19937_64
    for epoch in (0, 1):
        print(f"epoch_order(12, 42, {epoch}) =", epoch_order(12, 42, epoch))
