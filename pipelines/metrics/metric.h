// A task's metric, detectron2-style: reset by construction, add() per batch, merge across shards and ranks by
// summing its counts, then read. One Metric per task row (pipelines/tasks/); the trainer validates with it,
// `eval` prints it.
#pragma once

#include "models/backbones/backbone.h"

#include <nlohmann/json_fwd.hpp>

#include <string>

namespace attnvision::pipelines {

class Metric {
 public:
  virtual ~Metric() = default;
  // One batch: the network's outputs (float32) and the targets (a classifier: N class indices).
  virtual void add(const models::Forward& f, const torch::Tensor& targets) = 0;
  // Everything add() accumulated, one float64 tensor: shards and data-parallel ranks merge by summing it.
  virtual torch::Tensor& counts() = 0;
  virtual int64_t count() const = 0;  // samples added
  virtual double score() const = 0;   // the headline figure, higher is better (training keeps its best)
  virtual const char* score_name() const = 0;  // what score() is, for logs: "acc", "mAP"
  // A short running figure for a progress line, cheap enough to ask after every batch ("acc 91.2%"); empty
  // when the score is too costly to recompute that often.
  virtual std::string progress() const { return ""; }
  // Whether summing counts() over shards gives the whole set's result. A ranking metric (mAP) cannot merge
  // that way: it needs every detection in one place, so its evaluation runs over all of the data.
  virtual bool merges_by_sum() const { return true; }
  virtual double loss() const = 0;    // mean loss over the samples
  virtual nlohmann::json summary() const = 0;
  virtual std::string report() const = 0;  // for people
  // The metric's chart as a PNG (a classifier: its confusion matrix).
  virtual void write_chart(const std::string& path) const = 0;
};

}  // namespace attnvision::pipelines
