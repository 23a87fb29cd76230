// Caption sets: a COCO captions folder read into images and padded reference ids exactly, the vocabulary built
// from its captions or taken from a model, and the errors of a broken folder.
#include "datasets/caption_set.h"
#include "test_util.h"

#include <gtest/gtest.h>
#include <opencv2/imgcodecs.hpp>

#include <filesystem>

namespace attnvision::datasets {
namespace {
namespace fs = std::filesystem;

class CaptionSetFolder : public ::testing::Test {
 protected:
  void SetUp() override {
    fs::create_directories(dir_.path() / "images");
    // Listed out of id order: rows come by id. Image 7 has two references, image 3 one (with punctuation and
    // capitals the coco-caption tokenizer drops), so R = 2 and the longest reference has 4 words.
    testing::write_text(dir_ / "captions.json", R"({"images": [
        {"id": 7, "file_name": "b.png", "width": 4, "height": 2}, {"id": 3, "file_name": "a.png", "width": 4, "height": 2}],
      "annotations": [{"id": 1, "image_id": 7, "caption": "a red bag"}, {"id": 2, "image_id": 3, "caption": "Two Bags, left."},
                      {"id": 3, "image_id": 7, "caption": "a bag to left"}]})");
    cv::imwrite(dir_ / "images/a.png", cv::Mat(2, 4, CV_8UC3, cv::Scalar(10, 20, 30)));
    cv::imwrite(dir_ / "images/b.png", cv::Mat(2, 4, CV_8UC3, cv::Scalar(200, 100, 50)));
  }
  testing::ScratchDir dir_;
};

TEST_F(CaptionSetFolder, ReadsImagesByIdAndEncodesEveryReferencePadded) {
  const CaptionSet set = load_caption_set(dir_.path().string());
  EXPECT_EQ(set.image_ids, (std::vector<int64_t>{3, 7}));
  ASSERT_EQ(set.images.sizes(), (std::vector<int64_t>{2, 3, 2, 4}));
  // RGB as PIL reads it: OpenCV wrote BGR (10, 20, 30), so R = 30.
  EXPECT_EQ(set.images[0][0][0][0].item<int>(), 30);
  EXPECT_EQ(set.images[1][2][1][3].item<int>(), 200);
  // Counts: bag 2, a 2, left 2, bags 1, red 1, to 1, two 1; by count, then alphabetically.
  const std::vector<std::string> words = {"<pad>", "<start>", "<end>", "<unk>", "a", "bag", "left", "bags", "red", "to", "two"};
  ASSERT_EQ(set.vocabulary.size(), static_cast<int64_t>(words.size()));
  for (size_t i = 0; i < words.size(); ++i) EXPECT_EQ(set.vocabulary.word(static_cast<int64_t>(i)), words[i]);
  const torch::Tensor expected = torch::tensor({1, 10, 7, 6, 2, 0,  0, 0, 0, 0, 0, 0,      // image 3: two bags left
                                                1, 4, 8, 5, 2, 0,   1, 4, 5, 9, 6, 2},   // image 7, its two in order
                                               torch::kLong).reshape({2, 2, 6});
  EXPECT_TRUE(torch::equal(set.references, expected)) << set.references;
}

// Back to words: the padding row of image 3 is no reference, and a caption row ends at its <end>.
TEST_F(CaptionSetFolder, ReferenceRowsTurnBackIntoTheirTokenisedCaptions) {
  const CaptionSet set = load_caption_set(dir_.path().string());
  EXPECT_EQ(reference_captions(set.vocabulary, set.references[0]), (std::vector<Tokens>{{"two", "bags", "left"}}));
  EXPECT_EQ(reference_captions(set.vocabulary, set.references[1]),
            (std::vector<Tokens>{{"a", "red", "bag"}, {"a", "bag", "to", "left"}}));
  const torch::Tensor decoded = torch::tensor({4, 8, 2, 5, 0}, torch::kLong);  // a red <end> bag <pad>
  EXPECT_EQ(caption_words(set.vocabulary, decoded), (Tokens{"a", "red"}));
}

TEST_F(CaptionSetFolder, AModelsVocabularyEncodesUnknownWordsAsUnkAndLongCaptionsAreCut) {
  const Vocabulary model = Vocabulary::build({{"a", "bag"}}, 1);  // a = 4, bag = 5
  CaptionSetOptions o;
  o.vocabulary = &model;
  o.max_words = 3;
  const CaptionSet set = load_caption_set(dir_.path().string(), o);
  EXPECT_EQ(set.vocabulary.size(), 6);
  const torch::Tensor expected = torch::tensor({1, 3, 3, 3, 2,  0, 0, 0, 0, 0,
                                                1, 4, 3, 5, 2,  1, 4, 5, 3, 2},
                                               torch::kLong).reshape({2, 2, 5});
  EXPECT_TRUE(torch::equal(set.references, expected)) << set.references;
}

TEST_F(CaptionSetFolder, AnImageWithoutAReferenceOrAnUnreadableImageIsOneLineNamingIt) {
  testing::write_text(dir_ / "captions.json", R"({"images": [{"id": 3, "file_name": "a.png", "width": 4, "height": 2},
      {"id": 4, "file_name": "c.png", "width": 4, "height": 2}],
      "annotations": [{"id": 1, "image_id": 3, "caption": "a bag"}]})");
  try {
    load_caption_set(dir_.path().string());
    FAIL() << "no error";
  } catch (const std::runtime_error& e) {
    EXPECT_EQ(std::string(e.what()), (dir_ / "captions.json") + ": image 4 (c.png) has no reference caption");
  }
  testing::write_text(dir_ / "captions.json", R"({"images": [{"id": 3, "file_name": "missing.png", "width": 4, "height": 2}],
      "annotations": [{"id": 1, "image_id": 3, "caption": "a bag"}]})");
  try {
    load_caption_set(dir_.path().string());
    FAIL() << "no error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find((dir_ / "images/missing.png")), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace attnvision::datasets
