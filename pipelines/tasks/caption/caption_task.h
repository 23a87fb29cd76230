// Captioning as a task: a sentence per input (per frame of a multi-frame DICOM) from an encoder-decoder
// network (models/heads/caption_decoder.h) by beam search, with each word's log-probability and, optionally,
// where the decoder looked for each word as a PNG. Shared by the task row (batch) and the `caption` subcommand.
#pragma once

#include "datasets/vocabulary.h"
#include "models/heads/caption_decoder.h"
#include "pipelines/tasks/task.h"

#include <cstdint>
#include <string>

namespace attnvision::pipelines {

struct CaptionOptions {
  ModelChoice model;  // without a model, the shipped scenes captioner runs
  int64_t batch = 32;
  int64_t beam = 3;          // beams per image; 1 is greedy
  int64_t max_words = 0;     // 0: the model's own max_words
  double length_alpha = 1.0; // beams ranked by sum log p / length^alpha
  bool attention = false;    // write "<name>.words.png": a strip of panels, one per word, with the attention behind it
};

// Loads the network; an error when it is not a captioner.
std::unique_ptr<TaskRunner> make_caption_runner(const CaptionOptions& options);

// A captioner and how it decodes, for callers that hold preprocessed images already (eval-caption --data).
class Captioner {
 public:
  explicit Captioner(const CaptionOptions& options);  // loads the network; an error when it is not a captioner
  const LoadedModel& model() const { return m_; }
  const datasets::Vocabulary& vocabulary() const { return vocabulary_; }
  // The words of each image of `x` (N x C x H x W, normalised as the model expects), by beam search.
  std::vector<datasets::Tokens> caption(const torch::Tensor& x);

 private:
  LoadedModel m_;
  datasets::Vocabulary vocabulary_;
  models::DecodeOptions decode_;
};

}  // namespace attnvision::pipelines
