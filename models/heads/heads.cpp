#include "models/heads/head.h"

#include <algorithm>
#include <stdexcept>

namespace attnvision::models {

// One builder and cost model per head file (models/heads/<name>.cpp).
Head build_classifier_head(const ModelCfg& cfg, BackboneImpl& backbone);
double classifier_head_gmacs(const ModelCfg& cfg, int64_t num_features);
Head build_lesion_map_head(const ModelCfg& cfg, BackboneImpl& backbone);
double lesion_map_head_gmacs(const ModelCfg& cfg, int64_t num_features);
Head build_centernet_head(const ModelCfg& cfg, BackboneImpl& backbone);
double centernet_head_gmacs(const ModelCfg& cfg, int64_t num_features);
Head build_show_attend_tell_head(const ModelCfg& cfg, BackboneImpl& backbone);
Head build_mean_lstm_head(const ModelCfg& cfg, BackboneImpl& backbone);
double lstm_decoder_gmacs(const ModelCfg& cfg, int64_t num_features);
Head build_transformer_decoder_head(const ModelCfg& cfg, BackboneImpl& backbone);
double transformer_decoder_gmacs(const ModelCfg& cfg, int64_t num_features);

const std::vector<HeadRow>& head_table() {
  static const std::vector<HeadRow> table = {
      {"classifier", "classification", "global pooling + linear classifier (timm's fc / head)", build_classifier_head,
       classifier_head_gmacs},
      {"lesion_map", "anomaly", "a lesion logit per feature-map cell; the slice's p(lesion) from its largest (CT slices)",
       build_lesion_map_head, lesion_map_head_gmacs},
      {"centernet", "detection", "CenterNet: class-centre heatmaps, box size and offset on a stride-4 grid",
       build_centernet_head, centernet_head_gmacs},
      {"show_attend_tell", "captioning",
       "Show, Attend and Tell: an LSTM with soft (additive) attention over the feature map and a gating scalar",
       build_show_attend_tell_head, lstm_decoder_gmacs},
      {"transformer", "captioning", "a small Transformer decoder: masked self-attention, cross-attention to the feature map",
       build_transformer_decoder_head, transformer_decoder_gmacs},
      {"mean_lstm", "captioning", "the no-attention baseline: the same LSTM fed the mean-pooled feature map",
       build_mean_lstm_head, lstm_decoder_gmacs},
  };
  return table;
}

std::vector<std::string> head_tasks() {
  std::vector<std::string> tasks;
  for (const HeadRow& row : head_table())
    if (std::find(tasks.begin(), tasks.end(), row.task) == tasks.end()) tasks.emplace_back(row.task);
  return tasks;
}

const HeadRow& head_for(const std::string& task, const std::string& head) {
  std::string heads;  // the task's, for the error
  for (const HeadRow& row : head_table()) {
    if (task != row.task) continue;
    if (head.empty() || head == row.name) return row;
    heads += (heads.empty() ? "" : ", ") + std::string(row.name);
  }
  if (!heads.empty())
    throw std::invalid_argument("no head '" + head + "' serves task '" + task + "' (its heads: " + heads + ")");
  std::string known;
  for (const std::string& t : head_tasks()) known += (known.empty() ? "" : ", ") + t;
  throw std::invalid_argument("no head serves task '" + task + "' (tasks with a head: " + known + ")");
}

}  // namespace attnvision::models
