#include "datasets/vocabulary.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace attnvision::datasets {
namespace {

TEST(TokenizeCaption, LowerCasesSplitsPunctuationAndCliticsAndDropsThePunctuation) {
  EXPECT_EQ(tokenize_caption("A man's T-shirt, on the Bed."), (Tokens{"a", "man", "'s", "t-shirt", "on", "the", "bed"}));
  EXPECT_EQ(tokenize_caption("Don't stop"), (Tokens{"do", "n't", "stop"}));
  EXPECT_EQ(tokenize_caption("wait... what?! (\"really\")"), (Tokens{"wait", "what", "really"}));
  EXPECT_EQ(tokenize_caption("3.5 kg at 10:30 - done"), (Tokens{"3.5", "kg", "at", "10:30", "done"}));
  EXPECT_EQ(tokenize_caption("  \t\n "), Tokens{});
}

TEST(TokenizeCaption, LeavesAlreadyTokenisedSceneCaptionsAsTheyAre) {
  const std::string caption = "there is a red sneaker and two bags in the picture";
  EXPECT_EQ(join_tokens(tokenize_caption(caption)), caption);
}

TEST(Vocabulary, KeepsWordsSeenMinCountTimesByDecreasingCountAfterTheSpecials) {
  const Vocabulary v = Vocabulary::build({{"b", "a", "c", "b"}, {"a", "c", "d"}, {"c"}}, 2);
  // c: 3, then a and b with 2 each (alphabetical), d (1) left out.
  EXPECT_EQ(v.to_json(), nlohmann::json({"<pad>", "<start>", "<end>", "<unk>", "c", "a", "b"}));
  EXPECT_EQ(v.size(), 7);
  EXPECT_EQ(v.encode({"a", "d", "c"}), (std::vector<int64_t>{Vocabulary::kStart, 5, Vocabulary::kUnk, 4, Vocabulary::kEnd}));
  EXPECT_EQ(v.decode({Vocabulary::kStart, 6, 4, Vocabulary::kEnd, 5}), (Tokens{"b", "c"}));
  EXPECT_EQ(v.decode({6, Vocabulary::kPad, 5}), (Tokens{"b", "a"}));
  EXPECT_THROW(v.word(7), std::out_of_range);
  EXPECT_THROW(Vocabulary::build({}, 0), std::invalid_argument);
}

TEST(Vocabulary, RoundTripsThroughJsonAndRefusesAMalformedList) {
  const Vocabulary v = Vocabulary::build({{"red", "bag"}, {"red"}}, 1);
  const Vocabulary back = Vocabulary::from_json(v.to_json(), "ckpt");
  EXPECT_EQ(back.to_json(), v.to_json());
  EXPECT_EQ(back.id("red"), v.id("red"));
  EXPECT_THROW(Vocabulary::from_json(nlohmann::json({"<pad>", "<start>"}), "ckpt"), std::invalid_argument);
  EXPECT_THROW(Vocabulary::from_json(nlohmann::json({"<start>", "<pad>", "<end>", "<unk>"}), "ckpt"), std::invalid_argument);
  EXPECT_THROW(Vocabulary::from_json(nlohmann::json({"<pad>", "<start>", "<end>", "<unk>", "a", "a"}), "ckpt"),
               std::invalid_argument);
  try {
    Vocabulary::from_json(nlohmann::json({"<pad>", "<start>", "<end>", "<unk>", 3}), "model.safetensors");
    FAIL() << "a number is not a word";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("model.safetensors"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace attnvision::datasets
