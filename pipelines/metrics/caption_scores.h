// Caption scores as coco-caption (pycocoevalcap) computes them, on captions already tokenised the way its
// PTBTokenizer leaves them (datasets::tokenize_caption), so that our figures compare with published ones:
//   - BLEU-1..4 at corpus level (bleu_scorer.py, option "closest"): per n, p_n = (clipped n-gram matches
//     + 1e-15) / (candidate n-grams + 1e-9), each summed over the corpus; BLEU-n = (p_1 ... p_n)^(1/n) times
//     the brevity penalty exp(1 - r/c) when c < r, c the candidates' words, r the sum over images of the
//     reference length closest to the candidate's (ties to the shorter);
//   - ROUGE-L (rouge.py): per image F_beta (beta 1.2) of the largest LCS/|candidate| over the references and,
//     separately, the largest LCS/|reference|; the mean over images;
//   - CIDEr-D (cider_scorer.py): n = 1..4, tf-idf vectors with idf = log(images) - log(max(1, df)), df the
//     number of images whose references hold the n-gram; per reference the clipped product
//     sum min(h, r) * r over the two norms, times exp(-delta^2 / 72), delta the difference of the two
//     captions' bigram counts (their word counts' difference); the mean over n, the mean over references,
//     times 10; the mean over images. A single image scores 0: every n-gram then has idf 0.
// The arithmetic follows the Python's order of operations and numpy's summation, so the figures agree to the
// last bits, not only to the printed digits.
#pragma once

#include "datasets/coco.h"
#include "datasets/vocabulary.h"

#include <nlohmann/json_fwd.hpp>

#include <array>
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

namespace attnvision::pipelines {

// pycocoevalcap's keys, in its order: Bleu_1 Bleu_2 Bleu_3 Bleu_4 ROUGE_L CIDEr.
extern const std::array<const char*, 6> kCaptionScoreNames;

// One image: its reference captions (at least one) and the one caption being scored.
struct CaptionPair {
  int64_t image_id = 0;
  std::vector<datasets::Tokens> references;
  datasets::Tokens candidate;
};

struct CaptionScores {
  std::array<double, 4> bleu{};  // corpus BLEU-1..4
  double rouge_l = 0;            // mean over images
  double cider_d = 0;            // mean over images
  std::vector<double> rouge_l_per_image, cider_d_per_image;  // in the pairs' order
  int64_t images = 0;

  // {Bleu_1, ..., CIDEr} at full double precision, plus "images".
  nlohmann::json to_json() const;
};

// CIDEr-D with its document frequencies taken from a corpus of references (one list per image): what
// score_captions uses over the evaluated images, and what self-critical training scores its drawn captions
// with over the training set's references (so a rare n-gram weighs as it does across the whole set).
class CiderD {
 public:
  explicit CiderD(const std::vector<std::vector<datasets::Tokens>>& corpus);
  // Each candidate's CIDEr-D against the same references (at least one); cider_scorer.py's arithmetic.
  std::vector<double> score(const std::vector<datasets::Tokens>& candidates,
                            const std::vector<datasets::Tokens>& references) const;

 private:
  std::unordered_map<std::string, double> df_;  // images whose references hold the n-gram
  double log_images_;
};

// Scores every pair; the means run over the pairs in the order given (pycocoevalcap: its image id order).
// std::invalid_argument for no pairs, a pair without references, or an image id given twice.
CaptionScores score_captions(const std::vector<CaptionPair>& pairs);

// Each image of a captions file (in the file's order, as coco-caption visits them) with its reference captions
// and its one result, all tokenised. std::invalid_argument naming `gt_source` for an image without a reference
// caption, and `results_source` for an image without a result.
std::vector<CaptionPair> caption_pairs(const datasets::CocoCaptions& gt, const std::string& gt_source,
                                       const std::vector<datasets::CocoCaptionResult>& results,
                                       const std::string& results_source);

// The ceiling a captioner can be measured against: each image answered by the one of its own references that
// scores the highest CIDEr-D against all of them (the first of equals).
std::vector<CaptionPair> oracle_pairs(const datasets::CocoCaptions& gt, const std::string& gt_source);

// The longest common subsequence of two word sequences (rouge.py's my_lcs), exposed for its tests.
size_t longest_common_subsequence(const datasets::Tokens& a, const datasets::Tokens& b);

}  // namespace attnvision::pipelines
