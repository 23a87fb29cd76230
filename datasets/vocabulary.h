// Caption text: the coco-caption tokenizer and a captioner's vocabulary.
//
// Tokens are what coco-caption's evaluation sees after its PTBTokenizer: lower case, words split from their
// punctuation the Penn Treebank way (clitics such as "'s" and "n't" become words of their own), and the
// punctuation tokens then dropped. Our scene captions are already in that form; people's captions in a COCO
// file are not, so everything that reads or scores text goes through tokenize_caption().
//
// The vocabulary is built from the training captions: every word seen at least min_count times, in order of
// decreasing count (ties alphabetical, so the same captions always give the same ids), after the four
// specials <pad> = 0, <start> = 1, <end> = 2, <unk> = 3. It travels in the checkpoint's metadata as JSON, so
// `--weights FILE` alone can turn ids back into words.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

namespace attnvision::datasets {

using Tokens = std::vector<std::string>;

// Lower-cased (ASCII), split into words and punctuation as the PTB tokenizer does, punctuation dropped.
Tokens tokenize_caption(const std::string& text);
// Tokens joined by single spaces: the form coco-caption's scorers split again.
std::string join_tokens(const Tokens& tokens);

class Vocabulary {
 public:
  static constexpr int64_t kPad = 0, kStart = 1, kEnd = 2, kUnk = 3;

  Vocabulary();  // the specials alone
  // Words of `captions` seen at least min_count times (min_count >= 1).
  static Vocabulary build(const std::vector<Tokens>& captions, int64_t min_count);
  // From to_json()'s form; std::invalid_argument naming `source` when it is not one (specials missing or
  // moved, a word twice, an empty word).
  static Vocabulary from_json(const nlohmann::json& words, const std::string& source);
  nlohmann::json to_json() const;  // the words in id order

  int64_t size() const { return static_cast<int64_t>(words_.size()); }
  const std::string& word(int64_t id) const;  // std::out_of_range for an id outside the vocabulary
  int64_t id(const std::string& word) const;  // kUnk for a word it does not hold

  // <start> ids... <end>, words outside the vocabulary as <unk>.
  std::vector<int64_t> encode(const Tokens& caption) const;
  // The words of ids up to the first <end>, <start> and <pad> skipped (a decoder's output back to text).
  Tokens decode(const std::vector<int64_t>& ids) const;

 private:
  void add(const std::string& word);
  std::vector<std::string> words_;
  std::unordered_map<std::string, int64_t> ids_;
};

}  // namespace attnvision::datasets
