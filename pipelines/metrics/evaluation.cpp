#include "pipelines/metrics/evaluation.h"

#include "datasets/augment.h"
#include "pipelines/train/distributed.h"

#include <torch/torch.h>

namespace attnvision::pipelines {

void check_data_fits(const datasets::LabeledImages& d, const models::ModelCfg& m) {
  const auto s = d.images.sizes();
  if (s[1] != m.input_size[0] || s[2] != m.input_size[1] || s[3] != m.input_size[2])
    throw std::invalid_argument(d.source + ": images are " + std::to_string(s[1]) + "x" + std::to_string(s[2]) + "x" +
                                std::to_string(s[3]) + " but the model takes input_size [" +
                                std::to_string(m.input_size[0]) + ", " + std::to_string(m.input_size[1]) + ", " +
                                std::to_string(m.input_size[2]) + "]");
  if (static_cast<int64_t>(d.classes.size()) != m.num_classes)
    throw std::invalid_argument(d.source + ": " + std::to_string(d.classes.size()) + " classes but the model has " +
                                "num_classes " + std::to_string(m.num_classes));
}

models::Forward float32_forward(models::NetworkImpl& net, const torch::Tensor& x, models::Precision precision,
                                const torch::Tensor& targets) {
  const models::AutocastScope autocast(precision);
  models::ForwardRequest request;
  request.targets = targets;
  return net.forward(x, request).as_float32();
}

void evaluate(models::NetworkImpl& net, const models::ModelCfg& cfg, const datasets::LabeledImages& data,
              int64_t batch_size, Metric& metric, DataParallel* dp, models::Precision precision) {
  const bool was_training = net.is_training();
  net.eval();
  // A metric that cannot merge by summing sees every image on every rank (the same result everywhere).
  const bool shard = dp && metric.merges_by_sum();
  {
    torch::InferenceMode guard;
    const int64_t rank = shard ? dp->rank() : 0, world = shard ? dp->world() : 1;
    torch::Tensor rows = torch::arange(rank, data.size(), world, torch::kInt64);
    for (int64_t begin = 0; begin < rows.size(0); begin += batch_size) {
      const torch::Tensor idx = rows.narrow(0, begin, std::min(batch_size, rows.size(0) - begin));
      const torch::Tensor x = datasets::normalize_batch(data.images.index_select(0, idx), cfg.mean, cfg.std);
      const torch::Tensor targets = data.labels.index_select(0, idx);
      metric.add(float32_forward(net, x, precision, targets), targets);
    }
  }
  if (shard) dp->sum(metric.counts());
  if (was_training) net.train();
}

}  // namespace attnvision::pipelines
