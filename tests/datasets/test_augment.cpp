// normalize_batch and augment_batch: values equal to the eval transform's, the crop / flip geometry,
// timm-style erasing, determinism from the rng, and speed on a training-sized batch.
#include "datasets/augment.h"

#include "vision/transforms.h"

#include <gtest/gtest.h>
#include <opencv2/core.hpp>

#include <set>
#include <utility>

namespace ad = attnvision::datasets;
namespace av = attnvision::vision;

namespace {

const std::vector<double> kMean{0.5};
const std::vector<double> kStd{0.25};

// n copies of one H x W gray image whose pixels are all different and non-zero (so a shift is unique and
// padding, value 0, is recognisable).
torch::Tensor distinct_copies(int64_t n, int64_t h, int64_t w) {
  const torch::Tensor one = torch::arange(1, h * w + 1, torch::kLong).remainder(255).add(1).to(torch::kUInt8);
  return one.reshape({1, 1, h, w}).expand({n, 1, h, w}).contiguous();
}

torch::Tensor random_batch(int64_t n, int64_t c, int64_t h, int64_t w, uint64_t seed) {
  torch::manual_seed(seed);
  return torch::randint(0, 256, {n, c, h, w}, torch::kUInt8);
}

// The image (1 x H x W uint8) moved by (dy, dx) as augment_batch's crop does, optionally flipped after.
torch::Tensor shifted(const torch::Tensor& image, int64_t dy, int64_t dx, bool flip) {
  const int64_t p = std::max(std::abs(dy), std::abs(dx));
  const int64_t h = image.size(1), w = image.size(2);
  const torch::Tensor padded = torch::constant_pad_nd(image, {p, p, p, p}, 0);
  const torch::Tensor crop = padded.narrow(1, p + dy, h).narrow(2, p + dx, w);
  return flip ? crop.flip({2}) : crop;
}

TEST(Augment, NormalizeEqualsTheEvalTransform) {
  // Bit for bit the values vision::apply_eval_transform computes for the same pixels (crop_pct 1, same size).
  const torch::Tensor batch = random_batch(2, 3, 9, 7, 1);
  const std::vector<double> mean{0.485, 0.456, 0.406}, std{0.229, 0.224, 0.225};
  const torch::Tensor x = ad::normalize_batch(batch, mean, std);
  ASSERT_EQ(x.scalar_type(), torch::kFloat32);
  ASSERT_EQ(x.sizes(), batch.sizes());
  av::EvalTransform t;
  t.height = 9;
  t.width = 7;
  t.crop_pct = 1.0;
  t.mean = mean;
  t.std = std;
  for (int64_t i = 0; i < 2; ++i) {
    const torch::Tensor hwc = batch[i].permute({1, 2, 0}).contiguous();
    const cv::Mat rgb(9, 7, CV_8UC3, hwc.data_ptr<uint8_t>());
    torch::Tensor expected = torch::empty({3, 9, 7}, torch::kFloat32);
    av::apply_eval_transform(rgb, t, expected.data_ptr<float>());
    EXPECT_TRUE(torch::equal(x[i], expected)) << "image " << i;
  }
  const torch::Tensor ends =
      ad::normalize_batch(torch::tensor({0, 255}, torch::kUInt8).reshape({2, 1, 1, 1}), kMean, kStd);
  EXPECT_FLOAT_EQ(ends[0].item<float>(), -2.0f);
  EXPECT_FLOAT_EQ(ends[1].item<float>(), 2.0f);
}

TEST(Augment, NormalizeRefusesBadInput) {
  const torch::Tensor batch = random_batch(1, 1, 4, 4, 2);
  EXPECT_THROW(ad::normalize_batch(batch.to(torch::kFloat32), kMean, kStd), std::invalid_argument);
  EXPECT_THROW(ad::normalize_batch(batch[0], kMean, kStd), std::invalid_argument);
  EXPECT_THROW(ad::normalize_batch(batch, {0.5, 0.5}, {1, 1}), std::invalid_argument);
  EXPECT_THROW(ad::normalize_batch(batch, kMean, {0.0}), std::invalid_argument);
}

TEST(Augment, NoOpOptionsGiveExactlyNormalize) {
  const torch::Tensor batch = random_batch(8, 3, 5, 6, 3);
  const std::vector<double> mean{0.1, 0.2, 0.3}, std{0.5, 0.6, 0.7};
  std::mt19937_64 rng(1);
  const torch::Tensor out = ad::augment_batch(batch, {}, mean, std, rng);
  EXPECT_TRUE(torch::equal(out, ad::normalize_batch(batch, mean, std)));
}

TEST(Augment, ShapesAndDtype) {
  const torch::Tensor batch = random_batch(5, 3, 12, 10, 4);
  ad::AugmentOptions o;
  o.crop_padding = 3;
  o.hflip = true;
  o.erase_prob = 1.0;
  std::mt19937_64 rng(2);
  const torch::Tensor out = ad::augment_batch(batch, o, {0, 0, 0}, {1, 1, 1}, rng);
  EXPECT_EQ(out.scalar_type(), torch::kFloat32);
  EXPECT_EQ(out.sizes(), batch.sizes());
  EXPECT_TRUE(out.is_contiguous());
}

TEST(Augment, FlipCommutesWithAugmentAndIsItsOwnInverse) {
  // With hflip alone each image is either kept or mirrored: augmenting the mirrored batch with the same
  // rng state gives the mirrored result, and both outcomes occur.
  const torch::Tensor batch = random_batch(64, 2, 6, 7, 5);
  const std::vector<double> mean{0.5, 0.5}, std{0.5, 0.5};
  ad::AugmentOptions o;
  o.hflip = true;
  std::mt19937_64 rng_a(9), rng_b(9);
  const torch::Tensor a = ad::augment_batch(batch, o, mean, std, rng_a);
  const torch::Tensor b = ad::augment_batch(batch.flip({3}).contiguous(), o, mean, std, rng_b);
  EXPECT_TRUE(torch::equal(a, b.flip({3})));
  const torch::Tensor plain = ad::normalize_batch(batch, mean, std);
  int kept = 0, flipped = 0;
  for (int64_t i = 0; i < 64; ++i) {
    if (torch::equal(a[i], plain[i]))
      ++kept;
    else if (torch::equal(a[i], plain[i].flip({2})))
      ++flipped;
  }
  EXPECT_EQ(kept + flipped, 64);
  EXPECT_GT(kept, 16);
  EXPECT_GT(flipped, 16);
}

// Which (dy, dx, flip) made each output image from `image`, or a failure when none or several fit.
std::set<std::tuple<int64_t, int64_t, bool>> find_shifts(const torch::Tensor& out_u8,
                                                         const torch::Tensor& image, int64_t p, bool flips) {
  std::set<std::tuple<int64_t, int64_t, bool>> seen;
  for (int64_t i = 0; i < out_u8.size(0); ++i) {
    int matches = 0;
    for (int64_t dy = -p; dy <= p; ++dy) {
      for (int64_t dx = -p; dx <= p; ++dx) {
        for (bool flip : {false, true}) {
          if (flip && !flips) continue;
          if (torch::equal(out_u8[i], shifted(image, dy, dx, flip))) {
            ++matches;
            seen.insert({dy, dx, flip});
          }
        }
      }
    }
    EXPECT_EQ(matches, 1) << "image " << i;
  }
  return seen;
}

// Back from normalised floats (mean 0, std 1) to the uint8 pixels, exactly.
torch::Tensor to_u8(const torch::Tensor& x) { return x.mul(255.0f).round().to(torch::kUInt8); }

TEST(Augment, PaddedCropShiftsContentWithZeroFill) {
  const int64_t p = 2;
  const torch::Tensor batch = distinct_copies(300, 8, 9);
  ad::AugmentOptions o;
  o.crop_padding = p;
  std::mt19937_64 rng(4);
  const torch::Tensor out = to_u8(ad::augment_batch(batch, o, {0.0}, {1.0}, rng));
  // Every image is the original moved by some (dy, dx) in -2..2 with zeros shifted in; all 25 occur.
  EXPECT_EQ(find_shifts(out, batch[0], p, false).size(), 25u);
}

TEST(Augment, CropThenFlip) {
  const int64_t p = 1;
  const torch::Tensor batch = distinct_copies(200, 5, 6);
  ad::AugmentOptions o;
  o.crop_padding = p;
  o.hflip = true;
  std::mt19937_64 rng(5);
  const torch::Tensor out = to_u8(ad::augment_batch(batch, o, {0.0}, {1.0}, rng));
  EXPECT_EQ(find_shifts(out, batch[0], p, true).size(), 18u);
}

TEST(Augment, CropSizeTakesEveryWindowOfThePaddedImage) {
  // A 4 x 4 window of a 6 x 7 image padded by 1: offsets -1..3 down and -1..4 across, all 30 drawn, each output
  // exactly that window (zeros where it overhangs), mirrored when the flip was drawn.
  const int64_t p = 1, h = 6, w = 7, side = 4;
  const torch::Tensor batch = distinct_copies(800, h, w);
  ad::AugmentOptions o;
  o.crop_padding = p;
  o.crop_size = side;
  o.hflip = true;
  std::mt19937_64 rng(6);
  const torch::Tensor out = to_u8(ad::augment_batch(batch, o, {0.0}, {1.0}, rng));
  ASSERT_EQ(out.sizes(), (std::vector<int64_t>{800, 1, side, side}));
  const torch::Tensor padded = torch::constant_pad_nd(batch[0], {p, p, p, p}, 0);
  std::set<std::tuple<int64_t, int64_t, bool>> seen;
  for (int64_t i = 0; i < out.size(0); ++i) {
    int matches = 0;
    for (int64_t dy = -p; dy <= h + p - side; ++dy)
      for (int64_t dx = -p; dx <= w + p - side; ++dx)
        for (bool flip : {false, true}) {
          torch::Tensor window = padded.narrow(1, p + dy, side).narrow(2, p + dx, side);
          if (flip) window = window.flip({2});
          if (torch::equal(out[i], window)) ++matches, seen.insert({dy, dx, flip});
        }
    EXPECT_EQ(matches, 1) << "image " << i;
  }
  EXPECT_EQ(seen.size(), 60u);
  // Without padding or flip the window stays inside the image; at the image's own size it is the identity.
  o = {};
  o.crop_size = side;
  const torch::Tensor inside = to_u8(ad::augment_batch(batch, o, {0.0}, {1.0}, rng));
  EXPECT_GT(inside.min().item<int>(), 0) << "no padding comes in";
  o.crop_size = 0;
  EXPECT_TRUE(torch::equal(ad::augment_batch(batch, o, kMean, kStd, rng), ad::normalize_batch(batch, kMean, kStd)));
}

TEST(Augment, SameSeedSameOutput) {
  const torch::Tensor batch = random_batch(32, 1, 28, 28, 6);
  ad::AugmentOptions o;
  o.crop_padding = 4;
  o.hflip = true;
  o.erase_prob = 0.5;
  std::mt19937_64 a(77), b(77), c(78);
  const torch::Tensor first = ad::augment_batch(batch, o, kMean, kStd, a);
  EXPECT_TRUE(torch::equal(first, ad::augment_batch(batch, o, kMean, kStd, b)));
  EXPECT_FALSE(torch::equal(first, ad::augment_batch(batch, o, kMean, kStd, c)));
  EXPECT_EQ(a(), b());  // the same number of draws taken
  // The global torch generator plays no part.
  std::mt19937_64 d(77);
  torch::manual_seed(12345);
  EXPECT_TRUE(torch::equal(first, ad::augment_batch(batch, o, kMean, kStd, d)));
}

TEST(Augment, ErasingReplacesOneRectanglePerImageWithNoise) {
  const int64_t n = 200, h = 20, w = 24;
  const torch::Tensor batch = torch::full({n, 2, h, w}, 128, torch::kUInt8);
  ad::AugmentOptions o;
  o.erase_prob = 1.0;
  std::mt19937_64 rng(8);
  const torch::Tensor out = ad::augment_batch(batch, o, {0.5, 0.5}, {0.5, 0.5}, rng);
  const torch::Tensor plain = ad::normalize_batch(batch, {0.5, 0.5}, {0.5, 0.5});
  const torch::Tensor changed = out.ne(plain);
  std::vector<torch::Tensor> noise;
  int erased = 0;
  for (int64_t i = 0; i < n; ++i) {
    EXPECT_TRUE(torch::equal(changed[i][0], changed[i][1])) << "both channels erased in the same place";
    const torch::Tensor rows = changed[i][0].any(1).nonzero(), cols = changed[i][0].any(0).nonzero();
    if (rows.numel() == 0) continue;
    ++erased;
    const int64_t eh = rows.max().item<int64_t>() - rows.min().item<int64_t>() + 1;
    const int64_t ew = cols.max().item<int64_t>() - cols.min().item<int64_t>() + 1;
    EXPECT_EQ(changed[i][0].sum().item<int64_t>(), eh * ew) << "image " << i << ": not a rectangle";
    EXPECT_LT(eh, h);
    EXPECT_LT(ew, w);
    // Area between 2% and 1/3 of the image, give or take the rounding of each side.
    EXPECT_GE((eh + 1) * (ew + 1), 0.02 * h * w);
    EXPECT_LE((eh - 1) * (ew - 1), h * w / 3.0);
    noise.push_back(out[i].masked_select(changed[i]));
  }
  // A fitting rectangle is nearly always found within the 10 tries.
  EXPECT_GT(erased, 190);
  const torch::Tensor z = torch::cat(noise);
  EXPECT_NEAR(z.mean().item<double>(), 0.0, 0.05);
  EXPECT_NEAR(z.std().item<double>(), 1.0, 0.05);
}

TEST(Augment, ErasingProbability) {
  const torch::Tensor batch = torch::full({400, 1, 16, 16}, 7, torch::kUInt8);
  ad::AugmentOptions o;
  o.erase_prob = 0.25;
  std::mt19937_64 rng(10);
  const torch::Tensor changed =
      ad::augment_batch(batch, o, kMean, kStd, rng).ne(ad::normalize_batch(batch, kMean, kStd));
  const int64_t erased = changed.flatten(1).any(1).sum().item<int64_t>();
  EXPECT_GT(erased, 60);
  EXPECT_LT(erased, 140);
}

TEST(Augment, InvalidOptionsThrow) {
  const torch::Tensor batch = random_batch(2, 1, 4, 4, 11);
  std::mt19937_64 rng(1);
  const auto fails = [&](ad::AugmentOptions o) {
    EXPECT_THROW(ad::augment_batch(batch, o, kMean, kStd, rng), std::invalid_argument);
  };
  ad::AugmentOptions o;
  o.crop_padding = -1;
  fails(o);
  o = {};
  o.erase_prob = 1.5;
  fails(o);
  o = {};
  o.erase_prob = 0.5;
  o.erase_min_area = 0.5;
  o.erase_max_area = 0.1;
  fails(o);
  o = {};
  o.erase_prob = 0.5;
  o.erase_min_aspect = 0.0;
  fails(o);
  o = {};
  o.crop_size = -1;
  fails(o);
  o.crop_size = 5;  // larger than the 4 x 4 images
  fails(o);
  o.crop_padding = 1;  // fits the padded 6 x 6
  EXPECT_NO_THROW(ad::augment_batch(batch, o, kMean, kStd, rng));
}

}  // namespace

// Boxes move with their pixels: for many draws of crop and flip, each image's box is exactly the bounding
// box of its bright block after augmentation (cut to the image, or padding when the block left it).
TEST(Augment, BoxesFollowTheirPixels) {
  const int64_t n = 64, h = 12, w = 16;
  torch::Tensor images = torch::zeros({n, 1, h, w}, torch::kUInt8);
  torch::Tensor boxes = torch::full({n, 2, 5}, -1.0f);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t x = i % 13, y = (i / 13) % 9, bw = 1 + i % 3, bh = 2 + i % 2;  // some blocks touch the edges
    images[i][0].narrow(0, y, bh).narrow(1, x, bw).fill_(200);
    boxes[i][0] = torch::tensor({static_cast<float>(i % 10), static_cast<float>(x), static_cast<float>(y),
                                 static_cast<float>(bw), static_cast<float>(bh)});
  }
  ad::AugmentOptions o;
  o.crop_padding = 4;
  o.hflip = true;
  std::mt19937_64 rng(7);
  for (const int64_t side : {0, 8}) {  // the image's size, then an 8 x 8 window
    o.crop_size = side;
    torch::Tensor moved = boxes;
    const torch::Tensor x = ad::augment_batch(images, o, kMean, kStd, rng, &moved);
    ASSERT_EQ(x.size(2), side ? side : h);
    EXPECT_TRUE(torch::equal(boxes.select(2, 0).select(1, 1), torch::full({n}, -1.0f))) << "the input is not changed";
    int cut = 0;
    for (int64_t i = 0; i < n; ++i) {
      const torch::Tensor bright = x[i][0].gt(1.0).nonzero();  // (200 / 255 - 0.5) / 0.25 = 1.14; padding is -2
      EXPECT_TRUE(torch::equal(moved[i][1], torch::full({5}, -1.0f))) << "padding rows stay padding";
      if (bright.size(0) == 0) {
        EXPECT_TRUE(torch::equal(moved[i][0], torch::full({5}, -1.0f))) << "image " << i << ": " << moved[i][0];
        continue;
      }
      const float y0 = bright.select(1, 0).min().item<float>(), y1 = bright.select(1, 0).max().item<float>() + 1;
      const float x0 = bright.select(1, 1).min().item<float>(), x1 = bright.select(1, 1).max().item<float>() + 1;
      const torch::Tensor want = torch::tensor({static_cast<float>(i % 10), x0, y0, x1 - x0, y1 - y0});
      EXPECT_TRUE(torch::equal(moved[i][0], want)) << "image " << i << ": " << moved[i][0] << " want " << want;
      cut += (x1 - x0) < boxes[i][0][3].item<float>() || (y1 - y0) < boxes[i][0][4].item<float>();
    }
    EXPECT_GT(cut, 0) << "the draws should cut some boxes at the border";
  }
  o.crop_size = 0;
  // Erasing would hide objects the boxes keep: refused.
  o.erase_prob = 0.5;
  torch::Tensor again = boxes;
  EXPECT_THROW(ad::augment_batch(images, o, kMean, kStd, rng, &again), std::invalid_argument);
}

TEST(Augment, MasksFollowTheirPixelsExactly) {
  // A mask equal to the image's bright pixels stays equal to them, whatever crop and flip each image drew.
  const int64_t n = 32, h = 12, w = 16;
  torch::Tensor images = torch::zeros({n, 2, h, w}, torch::kUInt8);
  torch::Tensor masks = torch::zeros({n, h, w}, torch::kUInt8);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t x = i % 13, y = (i / 13) % 9, bw = 1 + i % 4, bh = 2 + i % 3;
    images[i].narrow(1, y, bh).narrow(2, x, bw).fill_(200);
    masks[i].narrow(0, y, bh).narrow(1, x, bw).fill_(1);
  }
  ad::AugmentOptions o;
  o.crop_padding = 4;
  o.hflip = true;
  std::mt19937_64 rng(3), same(3);
  const torch::Tensor before = masks.clone();
  torch::Tensor moved = masks;
  const torch::Tensor x = ad::augment_batch(images, o, {0.5, 0.5}, {0.25, 0.25}, rng, &moved);
  EXPECT_TRUE(torch::equal(masks, before)) << "the input is not changed";
  ASSERT_EQ(moved.sizes(), masks.sizes());
  ASSERT_EQ(moved.scalar_type(), torch::kUInt8);
  EXPECT_TRUE(torch::equal(moved, x.select(1, 0).gt(1.0).to(torch::kUInt8)));
  EXPECT_TRUE(torch::equal(moved, x.select(1, 1).gt(1.0).to(torch::kUInt8)));
  EXPECT_FALSE(torch::equal(moved, masks)) << "the draws should have moved some masks";
  // The draws are the images' own: the same seed without masks gives the same pixels.
  EXPECT_TRUE(torch::equal(ad::augment_batch(images, o, {0.5, 0.5}, {0.25, 0.25}, same), x));
  torch::Tensor wrong = torch::zeros({n, h, w + 1}, torch::kUInt8);
  EXPECT_THROW(ad::augment_batch(images, o, {0.5, 0.5}, {0.25, 0.25}, rng, &wrong), std::invalid_argument);
  // A window smaller than the image crops the masks to the same window.
  o.crop_size = 8;
  torch::Tensor window = masks;
  const torch::Tensor patch = ad::augment_batch(images, o, {0.5, 0.5}, {0.25, 0.25}, rng, &window);
  ASSERT_EQ(window.sizes(), (std::vector<int64_t>{n, 8, 8}));
  EXPECT_TRUE(torch::equal(window, patch.select(1, 0).gt(1.0).to(torch::kUInt8)));
  EXPECT_GT(window.sum().item<int64_t>(), 0);
}

TEST(Augment, ForegroundCropsHoldOneLesionWholeChosenUniformly) {
  // Each 64 x 64 mask holds a 2 x 2 object (value 1) and a 10 x 10 one (value 2) far apart; a 16 x 16
  // window can hold either whole but never both. With foreground_crops 1 every window holds one of them whole,
  // the small one about as often as the large one (objects are drawn, not pixels); at 0 few windows do.
  const int64_t n = 400, h = 64, w = 64;
  torch::Tensor images = torch::zeros({n, 1, h, w}, torch::kUInt8);
  torch::Tensor masks = torch::zeros({n, h, w}, torch::kUInt8);
  for (int64_t i = 0; i < n; ++i) {
    masks[i].narrow(0, 5 + i % 7, 2).narrow(1, 3 + i % 11, 2).fill_(1);
    masks[i].narrow(0, 40 + i % 9, 10).narrow(1, 44 + i % 5, 10).fill_(2);
  }
  const auto whole_objects = [&](double share, uint64_t seed) {
    ad::AugmentOptions o;
    o.crop_padding = 4;
    o.crop_size = 16;
    o.hflip = true;
    o.foreground_crops = share;
    std::mt19937_64 rng(seed);
    torch::Tensor moved = masks;
    ad::augment_batch(images, o, kMean, kStd, rng, &moved);
    std::pair<int, int> small_large{0, 0};
    for (int64_t i = 0; i < n; ++i) {
      const bool small = moved[i].eq(1).sum().item<int64_t>() == 4;
      const bool large = moved[i].eq(2).sum().item<int64_t>() == 100;
      EXPECT_FALSE(small && large);
      small_large.first += small, small_large.second += large;
    }
    return small_large;
  };
  const auto [small, large] = whole_objects(1.0, 5);
  EXPECT_EQ(small + large, n);
  EXPECT_GT(small, 150);
  EXPECT_GT(large, 150);
  const auto [small0, large0] = whole_objects(0.0, 5);
  EXPECT_LT(small0 + large0, 100);
  // An image without objects takes the uniform window; the option is refused outside 0..1.
  ad::AugmentOptions o;
  o.crop_size = 16;
  o.foreground_crops = 1.0;
  std::mt19937_64 rng(9);
  torch::Tensor empty = torch::zeros({n, h, w}, torch::kUInt8);
  EXPECT_EQ(ad::augment_batch(images, o, kMean, kStd, rng, &empty).sizes(),
            (std::vector<int64_t>{n, 1, 16, 16}));
  o.foreground_crops = 1.5;
  EXPECT_THROW(ad::augment_batch(images, o, kMean, kStd, rng, &empty), std::invalid_argument);
}
