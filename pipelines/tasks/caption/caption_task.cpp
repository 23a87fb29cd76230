#include "pipelines/tasks/caption/caption_task.h"

#include "datasets/batch.h"
#include "datasets/caption_set.h"
#include "datasets/preprocess.h"
#include "models/heads/caption_decoder.h"
#include "pipelines/metrics/caption_metric.h"
#include "pipelines/tasks/caption/self_critical.h"
#include "vision/image_write.h"
#include "vision/overlay.h"
#include "vision/transforms.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>

namespace attnvision::pipelines {

CommandRun define_caption(CLI::App& app);  // caption_command.cpp
const TaskRow& caption_task();

namespace {

models::CaptionDecoderImpl& decoder_of(const LoadedModel& m) {
  auto* decoder = dynamic_cast<models::CaptionDecoderImpl*>(&m.net->head());
  if (!decoder) throw ConfigError("caption: the model '" + m.cfg.name + "' has no caption decoder head");
  return *decoder;
}

models::DecodeOptions decode_options(const CaptionOptions& o, const models::ModelCfg& cfg) {
  models::DecodeOptions d;
  d.beam = o.beam;
  d.max_words = o.max_words > 0 ? o.max_words : cfg.caption.max_words;
  d.length_alpha = o.length_alpha;
  return d;
}

datasets::Vocabulary vocabulary_of(const LoadedModel& m) {
  return datasets::Vocabulary::from_json(m.cfg.labels, "model '" + m.cfg.name + "' labels (its vocabulary)");
}

class CaptionRunner : public TaskRunner {
 public:
  explicit CaptionRunner(CaptionOptions o)
      : o_(std::move(o)), m_(load_task_model(o_.model, caption_task())), vocabulary_(vocabulary_of(m_)),
        decoder_(&decoder_of(m_)), decode_(decode_options(o_, m_.cfg)), transform_(datasets::eval_transform_for(m_.cfg)) {}

  const LoadedModel& model() const override { return m_; }
  int64_t batch_size() const override { return o_.batch; }
  bool needs_display() const override { return o_.attention; }

  std::vector<TaskOutput> run(const datasets::SampleBatch& batch, const torch::Tensor& x) override {
    std::vector<TaskOutput> out(batch.samples.size());
    for (int64_t begin = 0; begin < x.size(0); begin += o_.batch) {
      const int64_t n = std::min(o_.batch, x.size(0) - begin);
      const models::Forward f = m_.net->features(x.narrow(0, begin, n));
      const models::Captions c = decoder_->decode(decoder_->encode(f), decode_);
      const torch::Tensor boxes = o_.attention ? decoder_->memory_boxes(f) : torch::Tensor();
      for (int64_t r = 0; r < n; ++r) add_row(batch, begin + r, c, r, f, boxes, out);
    }
    return out;
  }

 private:
  void add_row(const datasets::SampleBatch& batch, int64_t row, const models::Captions& c, int64_t r,
               const models::Forward& f, const torch::Tensor& boxes, std::vector<TaskOutput>& out) const {
    const size_t sample = batch.sample_of[row];
    const int frame = batch.frame_of[row];
    const datasets::Sample& s = batch.samples[sample];
    const torch::Tensor ids = c.ids[r], logprobs = c.logprobs[r].detach();
    const auto id = ids.accessor<int64_t, 1>();
    const auto lp = logprobs.accessor<float, 1>();
    datasets::Tokens words;
    std::vector<double> word_logprobs;  // of each word, then of <end>
    double total = 0;
    int64_t kept = 0;  // the words before <end>
    for (int64_t t = 0; t < ids.size(0) && id[t] != datasets::Vocabulary::kPad; ++t) {
      total += lp[t];
      word_logprobs.push_back(lp[t]);
      if (id[t] == datasets::Vocabulary::kEnd) break;
      words.push_back(vocabulary_.word(id[t]));
      ++kept;
    }
    nlohmann::json entry = {{"caption", datasets::join_tokens(words)}, {"tokens", words}, {"logprob", total},
                            {"word_logprobs", word_logprobs}, {"score", c.score[r].item<double>()}};
    TaskOutput& o = out[sample];
    const std::string frame_suffix = add_frame_entry(o, s, frame, std::move(entry));
    if (o_.attention && !words.empty())
      add_word_panels(o, s.display[static_cast<size_t>(frame)], word_maps(c.attention[r].narrow(0, 0, kept), f, boxes[r]),
                      words, frame_suffix);
  }

  // Each word's attention (T x P) as a map over the input: on the feature map's grid for a memory of cells
  // alone; with detections after the cells, on the input's pixels, the cells' attention upsampled and each
  // detection's added over its box (`boxes`: E x 4). T maps scaled to their own peaks.
  static torch::Tensor word_maps(const torch::Tensor& attention, const models::Forward& f, const torch::Tensor& boxes) {
    const int64_t words = attention.size(0), h = f.feature_map.size(2), w = f.feature_map.size(3), cells = h * w;
    torch::Tensor maps = attention.narrow(1, 0, cells).reshape({words, h, w});
    if (boxes.size(0) > 0) {
      const int64_t height = f.input.size(2), width = f.input.size(3);
      maps = torch::nn::functional::interpolate(
                 maps.unsqueeze(1), torch::nn::functional::InterpolateFuncOptions()
                                        .size(std::vector<int64_t>{height, width}).mode(torch::kBilinear).align_corners(false))
                 .squeeze(1);
      const auto box = boxes.accessor<float, 2>();
      for (int64_t e = 0; e < boxes.size(0); ++e) {
        const int64_t x0 = std::clamp<int64_t>(std::lround(box[e][0]), 0, width);
        const int64_t y0 = std::clamp<int64_t>(std::lround(box[e][1]), 0, height);
        const int64_t x1 = std::clamp<int64_t>(std::lround(box[e][0] + box[e][2]), x0, width);
        const int64_t y1 = std::clamp<int64_t>(std::lround(box[e][1] + box[e][3]), y0, height);
        maps.narrow(1, y0, y1 - y0).narrow(2, x0, x1 - x0) += attention.select(1, cells + e).view({words, 1, 1});
      }
    }
    return maps / maps.amax({1, 2}, true).clamp_min(1e-12);
  }

  // One panel per word: the image with the map of that word's attention (word_maps) over it.
  void add_word_panels(TaskOutput& o, const cv::Mat& display, const torch::Tensor& word_maps,
                       const datasets::Tokens& words, const std::string& frame_suffix) const {
    std::vector<cv::Mat> maps;
    for (int64_t t = 0; t < word_maps.size(0); ++t) maps.push_back(datasets::map_to_mat(word_maps[t]));
    o.files.push_back({frame_suffix + ".words.png", [display, maps, words, t = transform_](const std::string& path) {
                         std::vector<cv::Mat> panels;
                         for (const cv::Mat& m : maps)
                           panels.push_back(vision::overlay_heatmap(display, vision::map_to_image(m, display.size(), t)));
                         vision::write_png(path, vision::titled_grid(panels, words, static_cast<int>(panels.size())));
                       }});
  }

  CaptionOptions o_;
  LoadedModel m_;
  datasets::Vocabulary vocabulary_;
  models::CaptionDecoderImpl* decoder_ = nullptr;  // m_.net's head
  models::DecodeOptions decode_;
  vision::EvalTransform transform_;
};

const std::vector<KeySpec>& section_schema() {
  static const std::vector<KeySpec> schema = section_schema_with_model_keys(
      "the shipped scenes captioner",
      {{"beam", Kind::kInt, false, "beams per image (1: greedy)"},
       {"max_words", Kind::kInt, false, "longest caption (0: the model's max_words)"},
       {"length_alpha", Kind::kNumber, false, "beams ranked by sum log p / length^alpha (0: raw sum, 1: per word)"},
       {"attention", Kind::kBool, false, "also write where the decoder looked for each word (<name>.words.png)"}});
  return schema;
}

void check_options(const CaptionOptions& o, const std::function<void(bool, const std::string&, const std::string&)>& check) {
  check(o.batch >= 1 && o.batch <= 4096, "batch", "must be in 1..4096");
  check(o.beam >= 1 && o.beam <= 64, "beam", "must be in 1..64");
  check(o.max_words >= 0 && o.max_words <= 512, "max_words", "must be in 0..512");
  check(o.length_alpha >= 0 && o.length_alpha <= 4, "length_alpha", "must be in 0..4");
}

std::unique_ptr<TaskRunner> runner_from_section(const ConfigDoc& section) {
  CaptionOptions o;
  const nlohmann::json& j = section.root;
  take_model_keys(section, o.model, o.batch);
  take(j, "beam", o.beam);
  take(j, "max_words", o.max_words);
  take(j, "length_alpha", o.length_alpha);
  take(j, "attention", o.attention);
  check_options(o, [&](bool ok, const std::string& key, const std::string& problem) {
    if (!ok) throw ConfigError(section.where(key) + ": 'caption." + key + "' " + problem);
  });
  return make_caption_runner(o);
}

// A scenes folder's images and reference captions; the vocabulary is the model's when it has one (its
// labels), else built from these captions (a training run's first load).
datasets::LabeledImages load_data(const std::string& spec, const models::ModelCfg& cfg) {
  datasets::CaptionSetOptions o;
  o.channels = cfg.in_chans;
  o.max_words = cfg.caption.max_words;
  std::optional<datasets::Vocabulary> given;
  if (!cfg.labels.empty()) given = datasets::Vocabulary::from_json(cfg.labels, "model '" + cfg.name + "' labels");
  o.vocabulary = given ? &*given : nullptr;
  o.min_word_count = cfg.caption.min_word_count;
  datasets::CaptionSet set = datasets::load_caption_set(spec, o);
  std::vector<std::string> words;
  for (int64_t i = 0; i < set.vocabulary.size(); ++i) words.push_back(set.vocabulary.word(i));
  return {set.images, set.references, words, set.source, {}};
}

std::unique_ptr<Metric> make_metric(const models::ModelCfg& cfg, const std::vector<std::string>& labels) {
  return std::make_unique<CaptionMetric>(cfg, labels);
}

// What saliency explains for a caption when asked nothing else: the log-probability of the whole caption
// (the sum over its words), so the map shows what the sentence as a whole rests on.
models::ScoreFn caption_logprob() {
  return [](const models::Forward& f) { return f.caption_logprobs.sum(1); };
}

}  // namespace

Captioner::Captioner(const CaptionOptions& options)
    : m_(load_task_model(options.model, caption_task())), vocabulary_(vocabulary_of(m_)),
      decode_(decode_options(options, m_.cfg)) {
  decoder_of(m_);  // an error now rather than at the first batch
}

std::vector<datasets::Tokens> Captioner::caption(const torch::Tensor& x) {
  models::CaptionDecoderImpl& decoder = decoder_of(m_);
  const models::Captions c = decoder.decode(decoder.encode(m_.net->features(x)), decode_);
  std::vector<datasets::Tokens> out;
  for (int64_t i = 0; i < c.ids.size(0); ++i) out.push_back(datasets::caption_words(vocabulary_, c.ids[i]));
  return out;
}

std::unique_ptr<TaskRunner> make_caption_runner(const CaptionOptions& options) {
  check_options(options, [](bool ok, const std::string& key, const std::string& problem) {
    if (!ok) throw ConfigError("caption: " + key + " " + problem);
  });
  return std::make_unique<CaptionRunner>(options);
}

const TaskRow& caption_task() {
  static const TaskRow row = {"caption",
                              "captioning",
                              "describe images in a sentence (beam search), with where the decoder looked per word",
                              section_schema,
                              runner_from_section,
                              define_caption,
                              load_data,
                              /*targets_follow_pixels=*/false,
                              make_metric,
                              models::caption_loss,
                              caption_logprob,
                              /*classes_from_data=*/true,
                              make_caption_self_critical};
  return row;
}

}  // namespace attnvision::pipelines
