// decode_samples: the batch decoder's model inputs against the Python peer's preprocess, exact by default and
// through Pillow's draft mode with fast_jpeg (references: tests/data/vision/make_refs.py).
#include "datasets/samples.h"

#include <ATen/Parallel.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

namespace ds = attnvision::datasets;
namespace av = attnvision::vision;

namespace {

std::string vision_data(const std::string& name) { return std::string(ATTNVISION_TEST_DATA_DIR) + "/vision/" + name; }

// A CHW float32 reference written by make_refs.py.
torch::Tensor read_f32(const std::string& name, int64_t c, int64_t h, int64_t w) {
  std::ifstream in(vision_data(name), std::ios::binary);
  const std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  torch::Tensor t = torch::empty({c, h, w}, torch::kFloat32);
  EXPECT_EQ(bytes.size(), static_cast<size_t>(t.numel()) * sizeof(float)) << name;
  std::memcpy(t.data_ptr<float>(), bytes.data(), std::min(bytes.size(), static_cast<size_t>(t.nbytes())));
  return t;
}

// The peer's 24 x 24 bilinear transform at crop 0.875 (ImageNet mean and std).
ds::Preprocess small_preprocess() {
  ds::Preprocess p;
  p.image.height = p.image.width = 24;
  p.image.crop_pct = 0.875;
  p.image.interpolation = "bilinear";
  return p;
}

ds::SampleBatch decode(const std::string& name, const ds::DecodeOptions& options) {
  return ds::decode_samples({av::BatchInput{vision_data(name), av::InputKind::kImage, name}}, {small_preprocess()},
                            options);
}

TEST(DecodeSamples, ExactByDefault) {
  const ds::SampleBatch b = decode("photo_97x61.jpg", {});
  ASSERT_TRUE(b.samples.at(0).ok()) << b.samples[0].error;
  EXPECT_TRUE(torch::equal(b.inputs.at(0)[0], read_f32("eval_photo_97x61_bilinear_24_0.875.f32", 3, 24, 24)));
}

TEST(DecodeSamples, FastJpegIsThePeersPreprocessOfPillowsDraftDecode) {
  ds::DecodeOptions fast;
  fast.fast_jpeg = true;
  const ds::SampleBatch b = decode("photo_97x61.jpg", fast);
  ASSERT_TRUE(b.samples.at(0).ok()) << b.samples[0].error;
  // The resize to 27 x 27 keeps 1/2 (48 x 30 >= 27) and not 1/4: Pillow's draft((27, 27)), then the peer's steps.
  const torch::Tensor want = read_f32("eval_photo_97x61_draft_bilinear_24_0.875.f32", 3, 24, 24);
  EXPECT_TRUE(torch::equal(b.inputs.at(0)[0], want)) << (b.inputs[0][0] - want).abs().max().item<float>();
  // It is a different input from the exact one, and not far from it.
  const torch::Tensor exact = read_f32("eval_photo_97x61_bilinear_24_0.875.f32", 3, 24, 24);
  EXPECT_FALSE(torch::equal(want, exact));
  EXPECT_LT((want - exact).abs().mean().item<float>(), 0.1f);
  // The sample keeps the image's own size.
  EXPECT_EQ(b.samples[0].width, 97);
  EXPECT_EQ(b.samples[0].height, 61);
}

TEST(DecodeSamples, FastJpegGivesWayWhenThePixelsAreKeptOrTheFileIsNoJpeg) {
  ds::DecodeOptions fast_display;
  fast_display.fast_jpeg = true;
  fast_display.keep_display = true;
  const ds::SampleBatch kept = decode("photo_97x61.jpg", fast_display);
  ASSERT_TRUE(kept.samples.at(0).ok()) << kept.samples[0].error;
  EXPECT_TRUE(torch::equal(kept.inputs.at(0)[0], read_f32("eval_photo_97x61_bilinear_24_0.875.f32", 3, 24, 24)));
  ASSERT_EQ(kept.samples[0].display.size(), 1u);
  EXPECT_EQ(kept.samples[0].display[0].size(), cv::Size(97, 61));

  ds::DecodeOptions fast;
  fast.fast_jpeg = true;
  const ds::SampleBatch png = decode("rgba_40x30.png", fast);
  const ds::SampleBatch exact = decode("rgba_40x30.png", {});
  ASSERT_TRUE(png.samples.at(0).ok()) << png.samples[0].error;
  EXPECT_TRUE(torch::equal(png.inputs.at(0), exact.inputs.at(0)));
}

TEST(DecodeSamples, AnUnreadableFileIsAnErrorSampleNamingIt) {
  ds::DecodeOptions fast;
  fast.fast_jpeg = true;
  const ds::SampleBatch b = decode("missing.jpg", fast);
  ASSERT_EQ(b.samples.size(), 1u);
  EXPECT_FALSE(b.samples[0].ok());
  EXPECT_NE(b.samples[0].error.find("missing.jpg"), std::string::npos) << b.samples[0].error;
  EXPECT_FALSE(b.inputs.at(0).defined());
}

// DecodeOptions::parallel spreads the inputs over the torch threads: the same batch as one after another, row
// for row, with a multi-frame object, a failure and images of several sizes among them.
TEST(DecodeSamples, InParallelTheSameBatchAsInTurn) {
  const std::string dicom = std::string(ATTNVISION_TEST_DATA_DIR) + "/dicom/synthetic/";
  std::vector<av::BatchInput> inputs;
  for (const char* name : {"photo_97x61.jpg", "missing.jpg", "rgba_40x30.png", "exif_6.jpg", "fmt_g16.png"})
    inputs.push_back({vision_data(name), av::InputKind::kImage, name});
  inputs.push_back({dicom + "rgb_planar1_2frames.dcm", av::InputKind::kDicom, "rgb"});
  inputs.push_back({dicom + "enhanced_ct_3frames.dcm", av::InputKind::kDicom, "ct"});
  const int threads = at::get_num_threads();
  at::set_num_threads(2);
  ds::DecodeOptions in_parallel;
  in_parallel.parallel = true;
  in_parallel.keep_display = true;
  const ds::SampleBatch got = ds::decode_samples(inputs, {small_preprocess()}, in_parallel);
  at::set_num_threads(threads);
  ds::DecodeOptions in_turn = in_parallel;
  in_turn.parallel = false;
  const ds::SampleBatch want = ds::decode_samples(inputs, {small_preprocess()}, in_turn);
  ASSERT_EQ(got.samples.size(), inputs.size());
  for (size_t i = 0; i < inputs.size(); ++i) {
    EXPECT_EQ(got.samples[i].input.path, inputs[i].path);
    EXPECT_EQ(got.samples[i].error, want.samples[i].error) << inputs[i].path;
    EXPECT_EQ(got.samples[i].frames, want.samples[i].frames) << inputs[i].path;
    EXPECT_EQ(got.samples[i].display.size(), want.samples[i].display.size()) << inputs[i].path;
  }
  EXPECT_FALSE(got.samples[1].ok()) << "missing.jpg";
  EXPECT_EQ(got.samples[6].frames, 3);
  EXPECT_EQ(got.sample_of, want.sample_of);
  EXPECT_EQ(got.frame_of, want.frame_of);
  EXPECT_EQ(got.sample_of.size(), 9u) << "4 images, 2 + 3 frames; the missing file has no row";
  ASSERT_TRUE(got.inputs.at(0).defined());
  EXPECT_TRUE(torch::equal(got.inputs[0], want.inputs.at(0)));
}

}  // namespace
