#include "pipelines/tasks/detect/crop_classifier.h"

#include "pipelines/config.h"

#include <torch/torch.h>

namespace attnvision::pipelines {

namespace {

std::string joined(const std::vector<std::string>& names) {
  std::string s;
  for (const std::string& n : names) s += (s.empty() ? "" : ", ") + n;
  return s;
}

void check_min_score(double min_score) {
  if (!(min_score > 0 && min_score <= 1)) throw ConfigError("the crop classifier's min_score must be in (0, 1]");
}

}  // namespace

void check_second_stage(const LoadedModel& classifier, const std::string& source, const LoadedModel& detector) {
  const models::ModelCfg& c = classifier.cfg;
  if (c.task != "classification")
    throw ConfigError(source + ": a crop classifier must be a classification model, not task '" + c.task + "'");
  if (classifier.labels != detector.labels)
    throw ConfigError(source + ": its classes (" + joined(classifier.labels) + ") are not the detector's (" +
                      joined(detector.labels) + ")");
  if (c.in_chans != detector.cfg.in_chans || c.input_size.size() != 3 || c.input_size[1] != c.input_size[2])
    throw ConfigError(source + ": a crop classifier needs square input of the detector's " +
                      std::to_string(detector.cfg.in_chans) + " channels");
}

CropClassifier::CropClassifier(LoadedModel classifier, const CropClassifierOptions& options,
                               const models::ModelCfg& detector)
    : options_(options),
      classifier_(std::move(classifier)),
      stage_(classifier_.net, classifier_.cfg, detector) {
  check_min_score(options.min_score);
}

std::optional<CropClassifier> make_second_stage(const CropClassifierOptions& options, const LoadedModel& detector) {
  check_min_score(options.min_score);  // before a file is read
  if (options.weights == "none") return std::nullopt;
  LoadedModel classifier;
  std::string source = options.weights;
  if (options.weights.empty()) {
    const models::TensorFile* part = models::find_part(detector.parts, kSecondStagePart);
    if (!part) return std::nullopt;
    classifier = load_part(*part, ModelChoice{});
    source = part->path;
  } else {
    ModelChoice choice;
    choice.weights = options.weights;
    classifier = load_model(choice);
  }
  check_second_stage(classifier, source, detector);
  return CropClassifier(std::move(classifier), options, detector.cfg);
}

torch::Tensor CropClassifier::rescore(const torch::Tensor& peaks, const torch::Tensor& x) const {
  torch::Tensor out = peaks.to(torch::kFloat32).clone();  // N x k x 6
  const torch::Tensor score = out.select(2, 4).clone();   // N x k
  // Below min_score: score x min(1, score / (2 min_score)), under min_score / 2, so under every rescored score
  // of a likely class; the cropped peaks' entries are replaced below.
  torch::Tensor fresh = score * torch::clamp_max(score / (2 * options_.min_score), 1.0);

  const models::SecondStage::Reading r = stage_.read(x, out, options_.min_score, options_.batch);
  if (r.rows.numel() > 0) {
    const torch::Tensor own = r.own_class(out);
    fresh.view({-1}).index_put_({r.rows}, models::second_stage_fuse(score.view({-1}).index_select(0, r.rows), own));
  }
  out.select(2, 4).copy_(fresh);
  const torch::Tensor order = fresh.argsort(1, /*descending=*/true);
  return out.gather(1, order.unsqueeze(2).expand_as(out));
}

}  // namespace attnvision::pipelines
