#include "pipelines/tasks/classify/classify_task.h"

#include "datasets/batch.h"
#include "datasets/preprocess.h"
#include "pipelines/metrics/classification.h"
#include "vision/image_write.h"
#include "vision/overlay.h"

#include <torch/torch.h>

#include <algorithm>

namespace attnvision::pipelines {

CommandRun define_classify(CLI::App& app);  // classify_command.cpp
const TaskRow& classify_task();

namespace {

class ClassifyRunner : public TaskRunner {
 public:
  explicit ClassifyRunner(ClassifyOptions o) : o_(std::move(o)), m_(load_task_model(o_.model, classify_task())) {
    transform_ = datasets::eval_transform_for(m_.cfg);
    k_ = std::min<int64_t>(o_.topk, m_.cfg.num_classes);
    const auto methods = models::saliency_methods();
    if (!o_.saliency.empty() && std::find(methods.begin(), methods.end(), o_.saliency) == methods.end()) {
      std::string known;
      for (const std::string& name : methods) known += (known.empty() ? "" : ", ") + name;
      throw ConfigError("unknown saliency method '" + o_.saliency + "' (known: " + known + ")");
    }
  }

  const LoadedModel& model() const override { return m_; }
  int64_t batch_size() const override { return o_.batch; }
  bool needs_display() const override { return !o_.saliency.empty(); }
  bool needs_grad() const override { return !o_.saliency.empty(); }

  std::vector<TaskOutput> run(const datasets::SampleBatch& batch, const torch::Tensor& x) override {
    std::vector<TaskOutput> out(batch.samples.size());
    for (int64_t begin = 0; begin < x.size(0); begin += o_.batch) {
      const int64_t n = std::min(o_.batch, x.size(0) - begin);
      run_rows(batch, x.narrow(0, begin, n), begin, out);
    }
    return out;
  }

 private:
  // Rows [first, first + n) of the batch: top-k per row, into the output of the sample each row belongs to.
  void run_rows(const datasets::SampleBatch& batch, const torch::Tensor& x, int64_t first,
                std::vector<TaskOutput>& out) {
    torch::Tensor logits, maps, raw;
    if (o_.saliency.empty()) {
      logits = m_.net->logits(x);
    } else {
      const std::vector<int64_t> target =
          o_.saliency_class < 0 ? std::vector<int64_t>{} : std::vector<int64_t>{o_.saliency_class};
      models::SaliencyResult r = models::explain(*m_.net, x, o_.saliency, models::class_score(target));
      logits = r.forward.logits;
      maps = r.maps;
      raw = r.raw;
    }
    const auto [scores, indices] = torch::softmax(logits, 1).topk(k_, 1);
    const auto s = scores.accessor<float, 2>();
    const auto ix = indices.accessor<int64_t, 2>();
    for (int64_t r = 0; r < x.size(0); ++r) {
      const size_t sample = batch.sample_of[first + r];
      const int frame = batch.frame_of[first + r];
      nlohmann::json top = nlohmann::json::array();
      for (int64_t k = 0; k < k_; ++k) top.push_back({{"index", ix[r][k]}, {"label", m_.labels[ix[r][k]]}, {"score", s[r][k]}});
      TaskOutput& o = out[sample];
      const bool multi = batch.samples[sample].frames > 1;
      if (multi) o.json["frames"].push_back({{"frame", frame}, {"topk", top}});
      else o.json["topk"] = top;
      if (maps.defined())
        add_saliency_files(o, batch.samples[sample].display[frame], maps[r], raw[r], multi ? frame : -1);
    }
  }

  // The overlay on the decoded image (PNG), and the map on the model-input grid as float TIFFs: normalised to
  // [0, 1], and the method's raw values (comparable across images).
  void add_saliency_files(TaskOutput& o, const cv::Mat& display, const torch::Tensor& map, const torch::Tensor& raw,
                          int frame) const {
    const cv::Mat grid = datasets::map_to_mat(map), raw_grid = datasets::map_to_mat(raw);
    const std::string suffix = (frame >= 0 ? ".frame" + std::to_string(frame) : std::string()) + "." + o_.saliency;
    const vision::EvalTransform t = transform_;
    o.files.push_back({suffix + ".png", [display, grid, t](const std::string& path) {
                         vision::write_png(path, vision::overlay_heatmap(display, vision::map_to_image(grid, display.size(), t)));
                       }});
    o.files.push_back({suffix + ".tiff", [grid](const std::string& path) { vision::write_float_tiff(path, {grid}); }});
    o.files.push_back(
        {suffix + ".raw.tiff", [raw_grid](const std::string& path) { vision::write_float_tiff(path, {raw_grid}); }});
  }

  ClassifyOptions o_;
  LoadedModel m_;
  vision::EvalTransform transform_;
  int64_t k_ = 5;
};

const std::vector<KeySpec>& section_schema() {
  static const std::vector<KeySpec> schema = section_schema_with_model_keys(
      "the shipped classifier",
      {{"topk", Kind::kInt, false, "classes per image"},
       {"saliency", Kind::kString, false, "also write a saliency overlay and map per image: gradcam, cbam, rollout, ..."},
       {"saliency_class", Kind::kInt, false, "class the saliency explains (-1: each image's top-1)"}});
  return schema;
}

std::unique_ptr<TaskRunner> runner_from_section(const ConfigDoc& section) {
  ClassifyOptions o;
  const nlohmann::json& j = section.root;
  take_model_keys(section, o.model, o.batch);
  take(j, "topk", o.topk);
  take(j, "saliency", o.saliency);
  take(j, "saliency_class", o.saliency_class);
  auto check = [&](bool ok, const std::string& key, const std::string& problem) {
    if (!ok) throw ConfigError(section.where(key) + ": 'classify." + key + "' " + problem);
  };
  check(o.batch >= 1 && o.batch <= 4096, "batch", "must be in 1..4096");
  check(o.topk >= 1 && o.topk <= 1000, "topk", "must be in 1..1000");
  return make_classify_runner(o);
}

datasets::LabeledImages load_data(const std::string& spec, const models::ModelCfg& cfg) {
  return datasets::load_labeled_images(spec, datasets::folder_options_for(cfg));
}

std::unique_ptr<Metric> make_metric(const models::ModelCfg&, const std::vector<std::string>& labels) {
  return std::make_unique<ClassificationMetric>(labels);
}

torch::Tensor cross_entropy(const models::ModelCfg&, const models::Forward& f, const torch::Tensor& y,
                            double label_smoothing) {
  namespace F = torch::nn::functional;
  return F::cross_entropy(f.logits, y, F::CrossEntropyFuncOptions().label_smoothing(label_smoothing));
}

models::ScoreFn top1_score() { return models::class_score(); }

}  // namespace

std::unique_ptr<TaskRunner> make_classify_runner(const ClassifyOptions& options) {
  return std::make_unique<ClassifyRunner>(options);
}

const TaskRow& classify_task() {
  static const TaskRow row = {"classify",
                              "classification",
                              "classify images and DICOM: the top-k classes per input",
                              section_schema,
                              runner_from_section,
                              define_classify,
                              load_data,
                              /*targets_follow_pixels=*/false,
                              make_metric,
                              cross_entropy,
                              top1_score,
                              /*classes_from_data=*/false};
  return row;
}

}  // namespace attnvision::pipelines
