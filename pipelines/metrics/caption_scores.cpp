#include "pipelines/metrics/caption_scores.h"

#include "pipelines/metrics/numpy_sum.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <unordered_set>

namespace attnvision::pipelines {

const std::array<const char*, 6> kCaptionScoreNames = {"Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "ROUGE_L", "CIDEr"};

namespace {

using datasets::Tokens;
constexpr int kMaxN = 4;  // n-grams of 1..4 words, for BLEU and CIDEr-D alike

// An n-gram's counts in the order its n-grams first occur (precook()'s dict: 1-grams, then 2-grams, ...):
// CIDEr-D sums over them in that order, and so do we, for the same last bits.
struct NgramCounts {
  std::vector<std::pair<std::string, int64_t>> items;  // (words joined by ' ', count)
  std::unordered_map<std::string, size_t> index;
  std::array<std::vector<size_t>, kMaxN> by_order;     // the items of n-grams of n + 1 words
  int64_t words = 0;

  int64_t count(const std::string& ngram) const {
    const auto it = index.find(ngram);
    return it == index.end() ? 0 : items[it->second].second;
  }
};

NgramCounts count_ngrams(const Tokens& words) {
  NgramCounts c;
  c.words = static_cast<int64_t>(words.size());
  for (int n = 1; n <= kMaxN; ++n) {
    for (size_t i = 0; i + n <= words.size(); ++i) {
      std::string g = words[i];
      for (int k = 1; k < n; ++k) g += ' ' + words[i + k];
      const auto [it, fresh] = c.index.emplace(g, c.items.size());
      if (fresh) {
        c.items.emplace_back(std::move(g), 0);
        c.by_order[n - 1].push_back(it->second);
      }
      ++c.items[it->second].second;
    }
  }
  return c;
}

// --- BLEU (bleu_scorer.py) ----------------------------------------------------------------------------------

struct BleuTotals {
  int64_t candidate_words = 0, reference_words = 0;
  std::array<int64_t, kMaxN> guessed{}, matched{};
};

void add_bleu(const NgramCounts& candidate, const std::vector<NgramCounts>& references, BleuTotals& t) {
  std::unordered_map<std::string, int64_t> max_ref;  // cook_refs: each n-gram's largest count in a reference
  for (const NgramCounts& r : references)
    for (const auto& [g, n] : r.items) max_ref[g] = std::max(max_ref[g], n);
  // The reference length closest to the candidate's, the shorter on a tie (_single_reflen "closest").
  int64_t closest = references.front().words;
  for (const NgramCounts& r : references) {
    const int64_t d = std::llabs(r.words - candidate.words), best = std::llabs(closest - candidate.words);
    if (d < best || (d == best && r.words < closest)) closest = r.words;
  }
  t.candidate_words += candidate.words;
  t.reference_words += closest;
  for (int n = 0; n < kMaxN; ++n) {
    t.guessed[n] += std::max<int64_t>(candidate.words - n, 0);
    for (size_t i : candidate.by_order[n]) {
      const auto& [g, count] = candidate.items[i];
      const auto it = max_ref.find(g);
      t.matched[n] += std::min(it == max_ref.end() ? 0 : it->second, count);
    }
  }
}

std::array<double, kMaxN> corpus_bleu(const BleuTotals& t) {
  constexpr double kTiny = 1e-15, kSmall = 1e-9;
  std::array<double, kMaxN> bleu{};
  double product = 1.0;
  for (int n = 0; n < kMaxN; ++n) {
    product *= (static_cast<double>(t.matched[n]) + kTiny) / (static_cast<double>(t.guessed[n]) + kSmall);
    bleu[n] = std::pow(product, 1.0 / (n + 1));
  }
  const double ratio = (static_cast<double>(t.candidate_words) + kTiny) / (static_cast<double>(t.reference_words) + kSmall);
  if (ratio < 1)
    for (double& b : bleu) b *= std::exp(1 - 1 / ratio);
  return bleu;
}

// --- ROUGE-L (rouge.py) -------------------------------------------------------------------------------------

double rouge_l(const Tokens& candidate, const std::vector<Tokens>& references) {
  constexpr double kBeta = 1.2;
  // rouge.py splits the joined caption on " ": an empty caption is one empty token, which matches nothing.
  const double candidate_len = static_cast<double>(std::max<size_t>(candidate.size(), 1));
  double precision = 0, recall = 0;
  for (const Tokens& r : references) {
    const double lcs = static_cast<double>(longest_common_subsequence(r, candidate));
    precision = std::max(precision, lcs / candidate_len);
    recall = std::max(recall, lcs / static_cast<double>(std::max<size_t>(r.size(), 1)));
  }
  if (precision == 0 || recall == 0) return 0;
  const double b2 = std::pow(kBeta, 2);
  return ((1 + b2) * precision * recall) / (recall + b2 * precision);
}

// --- CIDEr-D (cider_scorer.py) ------------------------------------------------------------------------------

struct TfIdf {
  std::array<std::vector<std::pair<const std::string*, double>>, kMaxN> vec;  // in first-occurrence order
  std::array<std::unordered_map<std::string, double>, kMaxN> lookup;
  std::array<double, kMaxN> norm{};
  double bigrams = 0;  // counts2vec's "length": the caption's bigram count
};

TfIdf tf_idf(const NgramCounts& c, const std::unordered_map<std::string, double>& df, double log_images) {
  TfIdf v;
  for (int n = 0; n < kMaxN; ++n) {
    for (size_t i : c.by_order[n]) {
      const auto& [g, tf] = c.items[i];
      const auto it = df.find(g);
      const double idf = std::log(std::max(1.0, it == df.end() ? 0.0 : it->second));
      const double value = static_cast<double>(tf) * (log_images - idf);
      v.vec[n].emplace_back(&g, value);
      v.lookup[n][g] = value;
      v.norm[n] += value * value;
      if (n == 1) v.bigrams += static_cast<double>(tf);
    }
  }
  // counts2vec visits every n-gram in one pass, so its norms accumulate in the items' order; per order that
  // is the order above.
  for (double& x : v.norm) x = std::sqrt(x);
  return v;
}

std::array<double, kMaxN> cider_similarity(const TfIdf& hyp, const TfIdf& ref) {
  constexpr double kSigma = 6.0;
  const double delta = hyp.bigrams - ref.bigrams;
  std::array<double, kMaxN> val{};
  for (int n = 0; n < kMaxN; ++n) {
    for (const auto& [g, h] : hyp.vec[n]) {
      const auto it = ref.lookup[n].find(*g);
      const double r = it == ref.lookup[n].end() ? 0.0 : it->second;
      val[n] += std::min(h, r) * r;
    }
    if (hyp.norm[n] != 0 && ref.norm[n] != 0) val[n] /= hyp.norm[n] * ref.norm[n];
    val[n] *= std::pow(M_E, -(delta * delta) / (2 * std::pow(kSigma, 2)));
  }
  return val;
}

void check_words(const Tokens& words, int64_t image_id) {
  for (const std::string& w : words)
    if (w.empty() || std::any_of(w.begin(), w.end(), [](char c) { return std::isspace(static_cast<unsigned char>(c)); }))
      throw std::invalid_argument("caption scores: image " + std::to_string(image_id) +
                                  ": a caption word is empty or holds white space (tokenise the captions first)");
}

}  // namespace

size_t longest_common_subsequence(const Tokens& a, const Tokens& b) {
  std::vector<size_t> row(b.size() + 1, 0), prev(b.size() + 1, 0);
  for (size_t i = 1; i <= a.size(); ++i) {
    std::swap(row, prev);
    for (size_t j = 1; j <= b.size(); ++j)
      row[j] = a[i - 1] == b[j - 1] ? prev[j - 1] + 1 : std::max(prev[j], row[j - 1]);
  }
  return a.empty() ? 0 : row[b.size()];
}

CiderD::CiderD(const std::vector<std::vector<Tokens>>& corpus)
    : log_images_(std::log(static_cast<double>(corpus.size()))) {
  for (const std::vector<Tokens>& references : corpus) {
    std::unordered_set<std::string> in_image;
    for (const Tokens& r : references)
      for (auto& item : count_ngrams(r).items) in_image.insert(std::move(item.first));
    for (const std::string& g : in_image) df_[g] += 1;
  }
}

std::vector<double> CiderD::score(const std::vector<Tokens>& candidates, const std::vector<Tokens>& references) const {
  if (references.empty()) throw std::invalid_argument("CIDEr-D: no reference caption to score against");
  // tf_idf keeps pointers to the counts' n-grams: the counts outlive their vectors.
  std::vector<NgramCounts> ref_counts;
  for (const Tokens& r : references) ref_counts.push_back(count_ngrams(r));
  std::vector<TfIdf> refs;
  for (const NgramCounts& r : ref_counts) refs.push_back(tf_idf(r, df_, log_images_));
  std::vector<double> scores;
  for (const Tokens& c : candidates) {
    const NgramCounts counts = count_ngrams(c);
    const TfIdf hyp = tf_idf(counts, df_, log_images_);
    std::array<double, kMaxN> sum{};
    for (const TfIdf& r : refs) {
      const std::array<double, kMaxN> sim = cider_similarity(hyp, r);
      for (int n = 0; n < kMaxN; ++n) sum[n] += sim[n];
    }
    double score = numpy_mean({sum.begin(), sum.end()});
    score /= static_cast<double>(refs.size());
    score *= 10.0;
    scores.push_back(score);
  }
  return scores;
}

CaptionScores score_captions(const std::vector<CaptionPair>& pairs) {
  if (pairs.empty()) throw std::invalid_argument("caption scores: no captions to score");
  std::unordered_set<int64_t> seen;
  for (const CaptionPair& p : pairs) {
    if (!seen.insert(p.image_id).second)
      throw std::invalid_argument("caption scores: image " + std::to_string(p.image_id) + " is given twice");
    if (p.references.empty())
      throw std::invalid_argument("caption scores: image " + std::to_string(p.image_id) + " has no reference caption");
    check_words(p.candidate, p.image_id);
    for (const Tokens& r : p.references) check_words(r, p.image_id);
  }

  std::vector<std::vector<Tokens>> corpus;
  for (const CaptionPair& p : pairs) corpus.push_back(p.references);
  const CiderD cider(corpus);  // document frequencies over the evaluated images' references, as coco-caption

  CaptionScores s;
  s.images = static_cast<int64_t>(pairs.size());
  BleuTotals totals;
  for (const CaptionPair& p : pairs) {
    std::vector<NgramCounts> references;
    for (const Tokens& r : p.references) references.push_back(count_ngrams(r));
    add_bleu(count_ngrams(p.candidate), references, totals);
    s.rouge_l_per_image.push_back(rouge_l(p.candidate, p.references));
    s.cider_d_per_image.push_back(cider.score({p.candidate}, p.references).front());
  }
  s.bleu = corpus_bleu(totals);
  s.rouge_l = numpy_mean(s.rouge_l_per_image);
  s.cider_d = numpy_mean(s.cider_d_per_image);
  return s;
}

namespace {

// The images with their tokenised references, candidates still empty.
std::vector<CaptionPair> reference_pairs(const datasets::CocoCaptions& gt, const std::string& gt_source) {
  std::unordered_map<int64_t, std::vector<Tokens>> references;
  for (const datasets::CocoCaption& c : gt.annotations)
    references[c.image_id].push_back(datasets::tokenize_caption(c.caption));
  std::vector<CaptionPair> pairs;
  for (const datasets::CocoImage& image : gt.images) {
    auto it = references.find(image.id);
    if (it == references.end())
      throw std::invalid_argument(gt_source + ": image " + std::to_string(image.id) + " (" + image.file_name +
                                  ") has no reference caption");
    pairs.push_back({image.id, std::move(it->second), {}});
  }
  return pairs;
}

}  // namespace

std::vector<CaptionPair> caption_pairs(const datasets::CocoCaptions& gt, const std::string& gt_source,
                                       const std::vector<datasets::CocoCaptionResult>& results,
                                       const std::string& results_source) {
  std::vector<CaptionPair> pairs = reference_pairs(gt, gt_source);
  std::unordered_map<int64_t, const std::string*> answers;
  for (const datasets::CocoCaptionResult& r : results) answers.emplace(r.image_id, &r.caption);
  for (size_t i = 0; i < pairs.size(); ++i) {
    const auto it = answers.find(pairs[i].image_id);
    if (it == answers.end())
      throw std::invalid_argument(results_source + ": no caption for image " + std::to_string(pairs[i].image_id) + " (" +
                                  gt.images[i].file_name + "); every image of " + gt_source + " needs one");
    pairs[i].candidate = datasets::tokenize_caption(*it->second);
  }
  return pairs;
}

std::vector<CaptionPair> oracle_pairs(const datasets::CocoCaptions& gt, const std::string& gt_source) {
  std::vector<CaptionPair> pairs = reference_pairs(gt, gt_source);
  size_t most = 0;
  for (const CaptionPair& p : pairs) most = std::max(most, p.references.size());
  // An image's CIDEr-D does not depend on the other images' candidates (idf comes from the references), so
  // the k-th reference of every image can be scored in one pass.
  std::vector<double> best(pairs.size(), -1);
  std::vector<Tokens> chosen(pairs.size());
  for (size_t k = 0; k < most; ++k) {
    std::vector<CaptionPair> trial = pairs;
    for (CaptionPair& p : trial) p.candidate = p.references[std::min(k, p.references.size() - 1)];
    const std::vector<double> cider = score_captions(trial).cider_d_per_image;
    for (size_t i = 0; i < pairs.size(); ++i)
      if (cider[i] > best[i]) best[i] = cider[i], chosen[i] = trial[i].candidate;
  }
  for (size_t i = 0; i < pairs.size(); ++i) pairs[i].candidate = std::move(chosen[i]);
  return pairs;
}

nlohmann::json CaptionScores::to_json() const {
  nlohmann::json j;
  for (int n = 0; n < kMaxN; ++n) j[kCaptionScoreNames[n]] = bleu[n];
  j[kCaptionScoreNames[4]] = rouge_l;
  j[kCaptionScoreNames[5]] = cider_d;
  j["images"] = images;
  return j;
}

}  // namespace attnvision::pipelines
