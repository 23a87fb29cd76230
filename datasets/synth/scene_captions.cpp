#include "datasets/synth/scene_captions.h"

#include "datasets/sampler.h"

#include <algorithm>
#include <cstdlib>
#include <stdexcept>

namespace attnvision::datasets::synth {

namespace {

// ---------------------------------------------------------------------------------------------------
// The grammar's words. Every word is lower-case a-z, so captions need no normalisation before BLEU or
// CIDEr: "T-shirt/top" is a "top" or a "tshirt" (one word, so that "shirt" stays the Shirt class's).

// Index = Fashion-MNIST label.
const std::vector<std::vector<NounForms>> kNouns = {
    {{"top", "tops"}, {"tshirt", "tshirts"}},
    {{"pair of trousers", "pairs of trousers"}, {"pair of pants", "pairs of pants"}},
    {{"pullover", "pullovers"}, {"sweater", "sweaters"}, {"jumper", "jumpers"}},
    {{"dress", "dresses"}},
    {{"coat", "coats"}, {"jacket", "jackets"}},
    {{"sandal", "sandals"}},
    {{"shirt", "shirts"}, {"blouse", "blouses"}},
    {{"sneaker", "sneakers"}, {"trainer", "trainers"}},
    {{"bag", "bags"}, {"handbag", "handbags"}},
    {{"ankle boot", "ankle boots"}, {"boot", "boots"}},
};

const std::vector<const char*> kNumbers = {"zero", "one",   "two",   "three", "four", "five",
                                           "six",  "seven", "eight", "nine",  "ten"};

const std::vector<const char*> kImageOpeners = {"an image of", "a picture of", "a photo of",
                                                "a picture showing", "an image showing"};
const std::vector<const char*> kWhere = {"", "in the picture", "in the image"};

struct BackgroundWords {
  const char* kind;  // Scene::background
  std::vector<const char*> words;
};
const std::vector<BackgroundWords> kBackgroundWords = {
    {"flat", {"plain", "flat"}}, {"gradient", {"shaded", "fading"}},   {"noise", {"noisy", "grainy"}},
    {"stripes", {"striped"}},    {"checks", {"checked", "checkered"}},
};

// How item a stands to item b.
enum Side { kLeftOf, kRightOf, kAbove, kBelow };
const std::vector<std::vector<const char*>> kRelationWords = {
    /* kLeftOf  */ {"to the left of", "left of", "next to", "beside"},
    /* kRightOf */ {"to the right of", "right of", "next to", "beside"},
    /* kAbove   */ {"above", "over"},
    /* kBelow   */ {"below", "under", "beneath"},
};

// A caption that repeats an earlier one of the same image is drawn again, at most this often.
constexpr int kRedraws = 16;

// ---------------------------------------------------------------------------------------------------
// Building phrases

template <typename T>
const T& pick(const std::vector<T>& options, std::mt19937_64& rng) {
  return options[uniform_below(rng, options.size())];
}

// The non-empty parts, single spaces between.
std::string join(const std::vector<std::string>& parts) {
  std::string out;
  for (const std::string& p : parts) {
    if (p.empty()) continue;
    if (!out.empty()) out += ' ';
    out += p;
  }
  return out;
}

std::string with_article(const std::string& phrase) {
  const bool vowel = std::string("aeiou").find(phrase.front()) != std::string::npos;
  return (vowel ? "an " : "a ") + phrase;
}

std::string number_word(size_t n) { return n < kNumbers.size() ? kNumbers[n] : "many"; }

// The items of one category, in painting order.
struct Group {
  int category;
  std::vector<const SceneItem*> items;
};

std::vector<Group> groups_of(const Scene& scene) {
  std::vector<Group> groups;
  for (const SceneItem& item : scene.items) {
    auto g = std::find_if(groups.begin(), groups.end(),
                          [&](const Group& x) { return x.category == item.category; });
    if (g == groups.end())
      groups.push_back({item.category, {&item}});
    else
      g->items.push_back(&item);
  }
  return groups;
}

// "a red sneaker", "two bags", "three blue tops" (a colour for several items only when they share it).
std::string group_phrase(const Group& g, std::mt19937_64& rng) {
  const NounForms& noun = pick(category_nouns(g.category), rng);
  const std::string& colour = g.items.front()->colour;
  if (g.items.size() == 1) return with_article(colour + " " + noun.one);
  const bool one_colour = std::all_of(g.items.begin(), g.items.end(),
                                      [&](const SceneItem* item) { return item->colour == colour; });
  return join({number_word(g.items.size()), one_colour ? colour : "", noun.many});
}

struct ListPhrase {
  std::string text;   // "a red sneaker a blue top and two bags"
  bool plural_first;  // decides "there is" / "there are"
};

// Every item of the scene, grouped by category, the groups in a random order (the comma-less list COCO
// captions become once tokenised).
ListPhrase list_phrase(const Scene& scene, std::mt19937_64& rng) {
  const std::vector<Group> groups = groups_of(scene);
  std::vector<int64_t> order(groups.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int64_t>(i);
  fisher_yates(order, rng);
  std::vector<std::string> parts;
  for (size_t i = 0; i < order.size(); ++i) {
    if (i + 1 == order.size() && i > 0) parts.push_back("and");
    parts.push_back(group_phrase(groups[static_cast<size_t>(order[i])], rng));
  }
  return {join(parts), groups[static_cast<size_t>(order.front())].items.size() > 1};
}

std::string colour_noun(const SceneItem& item, std::mt19937_64& rng) {
  return item.colour + " " + pick(category_nouns(item.category), rng).one;
}

// Where a stands to b: by the centres of their boxes (doubled, to stay in integers), along the axis with
// the larger distance; x grows rightwards and y downwards.
Side side_of(const SceneItem& a, const SceneItem& b) {
  const int dx = (2 * b.bbox.x + b.bbox.width) - (2 * a.bbox.x + a.bbox.width);
  const int dy = (2 * b.bbox.y + b.bbox.height) - (2 * a.bbox.y + a.bbox.height);
  if (std::abs(dx) >= std::abs(dy)) return dx >= 0 ? kLeftOf : kRightOf;
  return dy > 0 ? kAbove : kBelow;
}

std::string background_word(const Scene& scene, std::mt19937_64& rng) {
  for (const BackgroundWords& b : kBackgroundWords)
    if (scene.background == b.kind) return pick(b.words, rng);
  throw std::invalid_argument("caption_scene: no words for the background '" + scene.background + "'");
}

std::string sentence(CaptionPattern pattern, const Scene& scene, std::mt19937_64& rng) {
  switch (pattern) {
    case CaptionPattern::kList:
      return list_phrase(scene, rng).text;
    case CaptionPattern::kThereIs: {
      const ListPhrase list = list_phrase(scene, rng);
      return join({"there", list.plural_first ? "are" : "is", list.text, pick(kWhere, rng)});
    }
    case CaptionPattern::kImageOf:
      return join({pick(kImageOpeners, rng), list_phrase(scene, rng).text});
    case CaptionPattern::kOnBackground:
      return join({list_phrase(scene, rng).text, "on a", background_word(scene, rng), "background"});
    case CaptionPattern::kRelation:
    case CaptionPattern::kTheRelation: {
      // Two different items; the caller offers these patterns only for scenes with two or more.
      const size_t n = scene.items.size();
      const size_t ia = uniform_below(rng, n);
      const size_t ib = (ia + 1 + uniform_below(rng, n - 1)) % n;
      const SceneItem& a = scene.items[ia];
      const SceneItem& b = scene.items[ib];
      const std::string relation = pick(kRelationWords[side_of(a, b)], rng);
      if (pattern == CaptionPattern::kRelation)
        return join({with_article(colour_noun(a, rng)), relation, with_article(colour_noun(b, rng))});
      return join({"the", colour_noun(a, rng), "is", relation, "the", colour_noun(b, rng)});
    }
  }
  throw std::logic_error("caption_scene: unknown pattern");
}

}  // namespace

const std::vector<NounForms>& category_nouns(int category) {
  if (category < 0 || category >= static_cast<int>(kNouns.size()))
    throw std::invalid_argument("caption_scene: category " + std::to_string(category) + " is not 0..9");
  return kNouns[static_cast<size_t>(category)];
}

std::vector<Caption> caption_scene(const Scene& scene, std::mt19937_64& rng, int count) {
  if (scene.items.empty()) throw std::invalid_argument("caption_scene: the scene has no items");
  std::vector<int64_t> patterns = {int64_t(CaptionPattern::kList), int64_t(CaptionPattern::kThereIs),
                                   int64_t(CaptionPattern::kImageOf), int64_t(CaptionPattern::kOnBackground)};
  if (scene.items.size() >= 2) {
    patterns.push_back(int64_t(CaptionPattern::kRelation));
    patterns.push_back(int64_t(CaptionPattern::kTheRelation));
  }
  // Each pattern once in a random order, then random ones: as many different patterns as captions allow.
  fisher_yates(patterns, rng);
  std::vector<Caption> captions;
  for (int k = 0; k < count; ++k) {
    const bool fixed = static_cast<size_t>(k) < patterns.size();
    Caption caption;
    for (int redraw = 0; redraw <= kRedraws; ++redraw) {
      // A repeat draws its words again, and a pattern of its own where the pattern was drawn anyway.
      const size_t i = fixed ? static_cast<size_t>(k) : uniform_below(rng, patterns.size());
      caption.pattern = static_cast<CaptionPattern>(patterns[i]);
      caption.text = sentence(caption.pattern, scene, rng);
      const bool repeated = std::any_of(captions.begin(), captions.end(),
                                        [&](const Caption& c) { return c.text == caption.text; });
      if (!repeated) break;
    }
    captions.push_back(caption);
  }
  return captions;
}

}  // namespace attnvision::datasets::synth
