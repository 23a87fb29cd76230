#include "datasets/caption_set.h"

#include "datasets/coco.h"
#include "datasets/coco_images.h"

#include <torch/torch.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <stdexcept>

namespace attnvision::datasets {

CaptionSet load_caption_set(const std::string& dir, const CaptionSetOptions& o) {
  if (o.max_words < 1) throw std::invalid_argument(dir + ": max_words must be >= 1");
  const std::string file = (std::filesystem::path(dir) / "captions.json").string();
  CocoCaptions gt = read_coco_captions(file);
  if (gt.images.empty()) throw std::runtime_error(file + ": no images");
  std::sort(gt.images.begin(), gt.images.end(), [](const auto& a, const auto& b) { return a.id < b.id; });

  std::map<int64_t, std::vector<Tokens>> refs;  // by image id, in the file's order
  std::vector<Tokens> all;
  for (const CocoCaption& c : gt.annotations) {
    Tokens words = tokenize_caption(c.caption);
    if (static_cast<int64_t>(words.size()) > o.max_words) words.resize(static_cast<size_t>(o.max_words));
    all.push_back(words);
    refs[c.image_id].push_back(std::move(words));
  }
  CaptionSet set;
  set.source = dir;
  set.vocabulary = o.vocabulary ? *o.vocabulary : Vocabulary::build(all, o.min_word_count);

  size_t most_refs = 1, longest = 0;
  for (const CocoImage& im : gt.images) {
    const auto it = refs.find(im.id);
    if (it == refs.end())
      throw std::runtime_error(file + ": image " + std::to_string(im.id) + " (" + im.file_name +
                               ") has no reference caption");
    most_refs = std::max(most_refs, it->second.size());
    for (const Tokens& t : it->second) longest = std::max(longest, t.size());
  }
  const auto n = static_cast<int64_t>(gt.images.size()), r = static_cast<int64_t>(most_refs),
             l = static_cast<int64_t>(longest) + 2;
  set.references = torch::full({n, r, l}, Vocabulary::kPad, torch::kLong);
  auto ids = set.references.accessor<int64_t, 3>();
  for (int64_t i = 0; i < n; ++i) {
    const std::vector<Tokens>& mine = refs.at(gt.images[static_cast<size_t>(i)].id);
    for (size_t j = 0; j < mine.size(); ++j) {
      const std::vector<int64_t> encoded = set.vocabulary.encode(mine[j]);
      for (size_t k = 0; k < encoded.size(); ++k) ids[i][static_cast<int64_t>(j)][static_cast<int64_t>(k)] = encoded[k];
    }
  }
  set.images = load_coco_images(dir, gt.images, o.channels, o.max_bytes);
  for (const CocoImage& im : gt.images) set.image_ids.push_back(im.id);
  return set;
}

Tokens caption_words(const Vocabulary& vocabulary, const torch::Tensor& ids) {
  const torch::Tensor row = ids.to(torch::kLong).contiguous();
  return vocabulary.decode({row.data_ptr<int64_t>(), row.data_ptr<int64_t>() + row.numel()});
}

std::vector<Tokens> reference_captions(const Vocabulary& vocabulary, const torch::Tensor& rows) {
  std::vector<Tokens> out;
  for (int64_t r = 0; r < rows.size(0); ++r) {
    Tokens words = caption_words(vocabulary, rows[r]);
    if (!words.empty()) out.push_back(std::move(words));
  }
  return out;
}

}  // namespace attnvision::datasets
