#include "datasets/vocabulary.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <map>
#include <stdexcept>

namespace attnvision::datasets {
namespace {

// Characters the PTB tokenizer always splits off as tokens of their own (all dropped afterwards).
bool always_splits(char c) { return std::string_view(",;!?\"()[]{}<>`").find(c) != std::string_view::npos; }

bool is_alnum(char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; }

// A token made of punctuation alone ("-", "--", "...", "'", "''", ":"): coco-caption drops these.
bool is_punctuation(const std::string& token) {
  return std::none_of(token.begin(), token.end(), is_alnum);
}

// The clitics PTB splits from the end of a word: "dog's" -> dog 's, "don't" -> do n't.
constexpr const char* kClitics[] = {"n't", "'s", "'re", "'ve", "'m", "'ll", "'d"};

void push_word(std::string word, Tokens& out) {
  // '.' and ':' end a word unless they sit between letters or digits ("3.5", "10:30"); a quote at either end
  // is a quotation mark, not part of the word.
  auto strip_edge_marks = [](std::string& w) {
    while (!w.empty() && (w.back() == '.' || w.back() == ':' || w.back() == '\'')) w.pop_back();
    size_t lead = 0;
    while (lead < w.size() && (w[lead] == '.' || w[lead] == ':' || w[lead] == '\'')) ++lead;
    w.erase(0, lead);
  };
  strip_edge_marks(word);
  if (word.empty()) return;
  for (const char* clitic : kClitics) {
    const std::string c = clitic;
    if (word.size() > c.size() && word.compare(word.size() - c.size(), c.size(), c) == 0) {
      out.push_back(word.substr(0, word.size() - c.size()));
      out.push_back(c);
      return;
    }
  }
  out.push_back(std::move(word));
}

}  // namespace

Tokens tokenize_caption(const std::string& text) {
  Tokens raw;
  std::string word;
  for (char ch : text) {
    const char c = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    if (std::isspace(static_cast<unsigned char>(c)) || always_splits(c)) {
      push_word(std::move(word), raw);
      word.clear();
    } else {
      word += c;
    }
  }
  push_word(std::move(word), raw);
  Tokens out;
  for (std::string& t : raw)
    if (!t.empty() && !is_punctuation(t)) out.push_back(std::move(t));
  return out;
}

std::string join_tokens(const Tokens& tokens) {
  std::string s;
  for (const std::string& t : tokens) {
    if (!s.empty()) s += ' ';
    s += t;
  }
  return s;
}

Vocabulary::Vocabulary() {
  for (const char* special : {"<pad>", "<start>", "<end>", "<unk>"}) add(special);
}

void Vocabulary::add(const std::string& word) {
  ids_.emplace(word, size());
  words_.push_back(word);
}

Vocabulary Vocabulary::build(const std::vector<Tokens>& captions, int64_t min_count) {
  if (min_count < 1) throw std::invalid_argument("vocabulary: min_count must be at least 1");
  std::map<std::string, int64_t> counts;  // ordered: ties between equal counts fall alphabetically
  for (const Tokens& caption : captions)
    for (const std::string& w : caption) ++counts[w];
  std::vector<std::pair<std::string, int64_t>> kept;
  for (const auto& [w, n] : counts)
    if (n >= min_count) kept.emplace_back(w, n);
  std::stable_sort(kept.begin(), kept.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
  Vocabulary v;
  for (const auto& [w, n] : kept)
    if (v.ids_.count(w) == 0) v.add(w);  // a caption spelling a special ("<unk>") does not make it twice
  return v;
}

Vocabulary Vocabulary::from_json(const nlohmann::json& words, const std::string& source) {
  const Vocabulary specials;
  if (!words.is_array() || words.size() < specials.words_.size())
    throw std::invalid_argument(source + ": vocabulary: an array of words starting with <pad> <start> <end> <unk> expected");
  Vocabulary v;
  for (size_t i = 0; i < words.size(); ++i) {
    if (!words[i].is_string() || words[i].get<std::string>().empty())
      throw std::invalid_argument(source + ": vocabulary: entry " + std::to_string(i) + " is not a word");
    const std::string w = words[i].get<std::string>();
    if (i < specials.words_.size()) {
      if (w != specials.words_[i])
        throw std::invalid_argument(source + ": vocabulary: entry " + std::to_string(i) + " must be " +
                                    specials.words_[i] + ", not '" + w + "'");
      continue;
    }
    if (v.ids_.count(w) != 0) throw std::invalid_argument(source + ": vocabulary: '" + w + "' appears twice");
    v.add(w);
  }
  return v;
}

nlohmann::json Vocabulary::to_json() const { return words_; }

const std::string& Vocabulary::word(int64_t id) const {
  if (id < 0 || id >= size())
    throw std::out_of_range("vocabulary: id " + std::to_string(id) + " outside 0.." + std::to_string(size() - 1));
  return words_[static_cast<size_t>(id)];
}

int64_t Vocabulary::id(const std::string& word) const {
  const auto it = ids_.find(word);
  return it == ids_.end() ? kUnk : it->second;
}

std::vector<int64_t> Vocabulary::encode(const Tokens& caption) const {
  std::vector<int64_t> ids{kStart};
  for (const std::string& w : caption) ids.push_back(id(w));
  ids.push_back(kEnd);
  return ids;
}

Tokens Vocabulary::decode(const std::vector<int64_t>& ids) const {
  Tokens words;
  for (int64_t i : ids) {
    if (i == kEnd) break;
    if (i == kStart || i == kPad) continue;
    words.push_back(word(i));
  }
  return words;
}

}  // namespace attnvision::datasets
