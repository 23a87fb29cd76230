// Detection sets: a scenes folder read back into images and padded boxes exactly as written, the errors of a
// broken folder, and the flip that moves boxes with the pixels.
#include "datasets/detection_set.h"
#include "datasets/labeled_images.h"
#include "datasets/synth/scenes.h"
#include "test_util.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>

#include <filesystem>
#include <fstream>

namespace attnvision::datasets {
namespace {
namespace fs = std::filesystem;
using nlohmann::json;

// 20 block-shaped 28 x 28 items, labels 0..9 in turn (the scenes' source needs nothing more).
LabeledImages blocks() {
  torch::Tensor images = torch::zeros({20, 1, 28, 28}, torch::kUInt8);
  for (int64_t i = 0; i < 20; ++i) images[i][0].slice(0, 3 + i % 4, 25).slice(1, 2 + i % 3, 26).fill_(120 + 5 * i);
  return {images, torch::arange(20, torch::kLong).remainder(10), {}, "blocks"};
}

fs::path write_scenes(const fs::path& dir, int64_t count) {
  synth::SceneOptions o;
  o.split = "test";
  o.seed = 3;
  o.size = 64;
  synth::write_scene_set(blocks(), o, count, dir.string());
  return dir;
}

json read_json(const fs::path& p) {
  std::ifstream in(p);
  return json::parse(in);
}

TEST(DetectionSet, ReadsAScenesFolderBackExactly) {
  testing::ScratchDir scratch;
  const fs::path dir = write_scenes(scratch / "scenes", 6);
  const DetectionSet set = load_detection_set(dir.string());
  const json gt = read_json(dir / "instances.json");
  ASSERT_EQ(set.size(), 6);
  EXPECT_EQ(set.images.sizes(), (std::vector<int64_t>{6, 3, 64, 64}));
  ASSERT_EQ(set.classes.size(), 10u);
  EXPECT_EQ(set.classes[9], "Ankle boot");
  EXPECT_EQ(set.category_ids.front(), 1);
  for (int64_t row = 0; row < set.size(); ++row) {
    const int64_t id = set.image_ids[static_cast<size_t>(row)];
    json image;
    for (const json& im : gt["images"])
      if (im["id"] == id) image = im;
    ASSERT_FALSE(image.is_null());
    // The pixels are the PNG's (RGB), untouched.
    cv::Mat bgr = cv::imread((dir / "images" / image["file_name"].get<std::string>()).string(), cv::IMREAD_COLOR);
    for (int c = 0; c < 3; ++c)
      for (int y = 0; y < 64; y += 7)
        for (int x = 0; x < 64; x += 5)
          ASSERT_EQ(set.images[row][c][y][x].item<uint8_t>(), bgr.at<cv::Vec3b>(y, x)[2 - c]) << row << " " << c;
    // The boxes are the file's, in its order, class = category id - 1, then padding.
    int64_t j = 0;
    for (const json& a : gt["annotations"]) {
      if (a["image_id"] != id) continue;
      const torch::Tensor want = torch::tensor({a["category_id"].get<float>() - 1, a["bbox"][0].get<float>(),
                                                a["bbox"][1].get<float>(), a["bbox"][2].get<float>(),
                                                a["bbox"][3].get<float>()});
      EXPECT_TRUE(torch::equal(set.boxes[row][j], want)) << set.boxes[row][j];
      ++j;
    }
    for (; j < set.boxes.size(1); ++j) EXPECT_EQ(set.boxes[row][j][0].item<float>(), -1.0f);
  }
  const DetectionSet two = set.subset(torch::tensor({4, 1}, torch::kLong));
  EXPECT_EQ(two.image_ids, (std::vector<int64_t>{set.image_ids[4], set.image_ids[1]}));
  EXPECT_TRUE(torch::equal(two.boxes[0], set.boxes[4]));
}

TEST(DetectionSet, ABrokenFolderIsOneLineNamingTheFile) {
  testing::ScratchDir scratch;
  const fs::path dir = write_scenes(scratch / "scenes", 3);
  const json gt = read_json(dir / "instances.json");
  const fs::path victim = dir / "images" / gt["images"][1]["file_name"].get<std::string>();
  {
    std::ofstream out(victim, std::ios::trunc);
    out << "not a png";
  }
  try {
    load_detection_set(dir.string());
    FAIL() << "loaded a set with a corrupt image";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(victim.filename().string()), std::string::npos) << e.what();
    EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << e.what();
  }
  fs::remove(dir / "instances.json");
  EXPECT_THROW(load_detection_set(dir.string()), std::runtime_error);
  EXPECT_THROW(load_detection_set(scratch / "scenes", 2), std::invalid_argument);
}

TEST(DetectionSet, FlipMovesBoxesWithThePixels) {
  // One 1 x 8 x 10 image with a bright block on columns 2..4 and its box [2, 1, 3, 4]; a second row untouched.
  torch::Tensor images = torch::zeros({2, 1, 8, 10}, torch::kUInt8);
  images[0][0].slice(0, 1, 5).slice(1, 2, 5).fill_(200);
  torch::Tensor boxes = torch::tensor({{{0.0f, 2.0f, 1.0f, 3.0f, 4.0f}, {-1.0f, -1.0f, -1.0f, -1.0f, -1.0f}},
                                       {{1.0f, 0.0f, 0.0f, 5.0f, 5.0f}, {-1.0f, -1.0f, -1.0f, -1.0f, -1.0f}}});
  const torch::Tensor original_images = images.clone(), original_boxes = boxes.clone();
  hflip_with_boxes(images, boxes, torch::tensor({true, false}));
  // Columns 2..4 of 10 mirror to 5..7: x' = 10 - 2 - 3 = 5.
  EXPECT_EQ(images[0][0].slice(0, 1, 5).slice(1, 5, 8).min().item<uint8_t>(), 200);
  EXPECT_EQ(images[0].sum().item<int64_t>(), original_images[0].sum().item<int64_t>());
  EXPECT_TRUE(torch::equal(boxes[0][0], torch::tensor({0.0f, 5.0f, 1.0f, 3.0f, 4.0f})));
  EXPECT_TRUE(torch::equal(boxes[0][1], original_boxes[0][1])) << "padding stays padding";
  EXPECT_TRUE(torch::equal(images[1], original_images[1]));
  EXPECT_TRUE(torch::equal(boxes[1], original_boxes[1]));
  hflip_with_boxes(images, boxes, torch::tensor({true, false}));
  EXPECT_TRUE(torch::equal(images, original_images));
  EXPECT_TRUE(torch::equal(boxes, original_boxes));
}

}  // namespace
}  // namespace attnvision::datasets
