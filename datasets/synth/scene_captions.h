// Reference captions for Fashion-MNIST scenes: sentences from a small grammar (nouns with synonyms, colour
// words, counts, spatial relations, background words), written the way COCO captions look once tokenised:
// lower-case words of a-z separated by single spaces, no punctuation.
#pragma once

#include "datasets/synth/scenes.h"

#include <random>
#include <string>
#include <vector>

namespace attnvision::datasets::synth {

// The sentence shapes. A scene's captions use at least three different ones.
enum class CaptionPattern {
  kList,          // a red sneaker and two bags
  kThereIs,       // there is a red sneaker and two bags in the picture
  kImageOf,       // a photo of a red sneaker and two bags
  kOnBackground,  // a red sneaker and two bags on a striped background
  kRelation,      // a red sneaker to the left of a blue bag            (two or more items)
  kTheRelation,   // the red sneaker is above the blue bag              (two or more items)
};

struct Caption {
  std::string text;
  CaptionPattern pattern;
};

// What a caption may call a Fashion-MNIST class (label 0..9): each synonym's singular and plural.
struct NounForms {
  const char* one;
  const char* many;
};
const std::vector<NounForms>& category_nouns(int category);

// `count` captions of `scene` (which has at least one item), their words drawn from `rng`. With count >= 3
// at least three patterns are used; the same sentence is not repeated while the grammar has another.
std::vector<Caption> caption_scene(const Scene& scene, std::mt19937_64& rng, int count = 5);

}  // namespace attnvision::datasets::synth
