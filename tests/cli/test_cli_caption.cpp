// `attnvision eval-caption` end to end: the files read, the scores printed, the oracle and the errors.
#include "test_util.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>

namespace attnvision {
namespace {

using testing::run_attnvision;

class CliEvalCaption : public ::testing::Test {
 protected:
  void SetUp() override {
    testing::write_text(gt_, R"({"images": [{"id": 1, "file_name": "one.png", "width": 8, "height": 8},
                                            {"id": 2, "file_name": "two.png", "width": 8, "height": 8}],
      "annotations": [{"id": 1, "image_id": 1, "caption": "A b."}, {"id": 2, "image_id": 1, "caption": "x y"},
                      {"id": 3, "image_id": 2, "caption": "c d"}]})");
  }
  testing::ScratchDir dir_;
  const std::string gt_ = dir_ / "captions.json", results_ = dir_ / "results.json";
};

TEST_F(CliEvalCaption, PrintsCocoCaptionKeysWithTheScoresOfItsDefinitions) {
  testing::write_text(results_, R"([{"image_id": 2, "caption": "c d"}, {"image_id": 1, "caption": "a b"}])");
  const auto r = run_attnvision("eval-caption --gt '" + gt_ + "' --results '" + results_ + "' --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const nlohmann::json j = nlohmann::json::parse(r.out);
  // Image 1 matches one of its two references (CIDEr-D 10 x mean(1, 1, 0, 0) / 2 references), image 2 its
  // only one (10 x 0.5); all words and both bigrams match, so BLEU-1 and BLEU-2 are 1 but for the guards.
  EXPECT_NEAR(j.at("CIDEr").get<double>(), (2.5 + 5.0) / 2, 1e-12);
  EXPECT_NEAR(j.at("Bleu_1").get<double>(), 1.0, 1e-9);
  EXPECT_NEAR(j.at("Bleu_2").get<double>(), 1.0, 1e-9);
  EXPECT_NEAR(j.at("ROUGE_L").get<double>(), 1.0, 1e-12);
  EXPECT_EQ(j.at("images"), 2);

  const auto text = run_attnvision("eval-caption --gt '" + gt_ + "' --results '" + results_ + "'");
  ASSERT_EQ(text.exit_code, 0) << text.err;
  EXPECT_NE(text.out.find("CIDEr: 3.750"), std::string::npos) << text.out;
}

TEST_F(CliEvalCaption, OracleAnswersEachImageWithItsBestOwnReference) {
  // Image 1's two references score alike against both; the first ("a b") is taken.
  testing::write_text(results_, R"([{"image_id": 1, "caption": "a b"}, {"image_id": 2, "caption": "c d"}])");
  const auto oracle = run_attnvision("eval-caption --gt '" + gt_ + "' --oracle --json");
  const auto same = run_attnvision("eval-caption --gt '" + gt_ + "' --results '" + results_ + "' --json");
  ASSERT_EQ(oracle.exit_code, 0) << oracle.err;
  EXPECT_EQ(oracle.out, same.out);
}

TEST_F(CliEvalCaption, AMissingOrDoubledCaptionIsOneLineNamingTheFile) {
  testing::write_text(results_, R"([{"image_id": 1, "caption": "a b"}])");
  auto r = run_attnvision("eval-caption --gt '" + gt_ + "' --results '" + results_ + "'");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find(results_ + ": no caption for image 2 (two.png)"), std::string::npos) << r.err;
  EXPECT_EQ(r.out, "");

  testing::write_text(results_, R"([{"image_id": 1, "caption": "a"}, {"image_id": 1, "caption": "b"}])");
  r = run_attnvision("eval-caption --gt '" + gt_ + "' --results '" + results_ + "'");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("has a caption already"), std::string::npos) << r.err;

  r = run_attnvision("eval-caption --gt '" + gt_ + "' --results '" + results_ + "' --oracle");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("not both"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace attnvision
