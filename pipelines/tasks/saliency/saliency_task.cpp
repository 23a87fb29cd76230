#include "pipelines/tasks/saliency/saliency_task.h"

#include "datasets/ct_slices.h"
#include "datasets/preprocess.h"
#include "pipelines/metrics/anomaly.h"
#include "pipelines/tasks/saliency/slice_findings.h"
#include "vision/dicom_writer.h"
#include "vision/image_write.h"
#include "vision/overlay.h"

#include <torch/torch.h>

#include <cstdio>
#include <map>
#include <mutex>

namespace attnvision::pipelines {

CommandRun define_saliency(CLI::App& app);  // saliency_command.cpp
const TaskRow& saliency_task();

namespace {

// FNV-1a, 64 bits: a stable hash (std::hash is not), for UIDs derived from other UIDs.
uint64_t fnv1a(const std::string& text, uint64_t seed) {
  uint64_t h = 0xcbf29ce484222325ULL ^ seed;
  for (unsigned char c : text) h = (h ^ c) * 0x100000001b3ULL;
  return h;
}

// The Secondary Capture series of one source series and method: the same UID for every slice of it, in this
// run and the next, so re-running replaces rather than scatters.
std::string overlay_series_uid(const std::string& source_series, const std::string& method) {
  const std::string key = source_series + "|attnvision saliency|" + method;
  return vision::uuid_dicom_uid(fnv1a(key, 1), fnv1a(key, 2), 8);
}

nlohmann::json region_json(const vision::Region& r) {
  auto optional = [](const auto& v) { return v ? nlohmann::json(*v) : nlohmann::json(nullptr); };
  return {{"bbox_px", {r.bbox_px.x, r.bbox_px.y, r.bbox_px.width, r.bbox_px.height}},
          {"centroid_px", {r.centroid_px.x, r.centroid_px.y}},
          {"centroid_mm", optional(r.centroid_mm)},
          {"area_px", r.area_px},
          {"area_mm2", optional(r.area_mm2)},
          {"diameter_px", r.diameter_px},
          {"diameter_mm", optional(r.diameter_mm)},
          {"peak", r.peak},
          {"mean", r.mean}};
}

std::string region_label(size_t index, const vision::Region& r) {
  char text[64];
  if (r.diameter_mm) std::snprintf(text, sizeof(text), "%zu: %.1f mm", index + 1, *r.diameter_mm);
  else std::snprintf(text, sizeof(text), "%zu: %.0f px", index + 1, r.diameter_px);
  return text;
}

// The heat layer of one slice: the raw map coloured against its own peak, with the regions outlined.
cv::Mat heat_layer(const SliceFindings& f) {
  cv::Mat layer = vision::saliency_layer(f.source_map, f.peak);
  std::vector<std::string> labels;
  for (size_t i = 0; i < f.regions.size(); ++i) labels.push_back(region_label(i, f.regions[i]));
  vision::draw_region_outlines(layer, f.regions, labels);
  return layer;
}

class SaliencyRunner : public TaskRunner {
 public:
  explicit SaliencyRunner(SaliencyTaskOptions o) : o_(std::move(o)), m_(load_task_model(o_.model, saliency_task())) {
    if (o_.methods.empty()) o_.methods.push_back(m_.cfg.ct.saliency_method);
    for (const std::string& method : o_.methods) {
      try {
        readings_.push_back(saliency_reading_for(m_.cfg, method));
      } catch (const std::invalid_argument& e) {
        throw ConfigError(e.what());
      }
      readings_.back().flip_test = o_.flip_test;
    }
    for (const std::string& w : o_.report_windows) report_windows_.push_back(vision::window_preset(w));
  }

  const LoadedModel& model() const override { return m_; }
  int64_t batch_size() const override { return o_.batch; }
  // The windowed slice is only drawn on (overlays, the report); --no-outputs skips windowing it.
  bool needs_display() const override { return o_.write_files || o_.report != nullptr; }
  bool needs_grad() const override { return true; }
  bool needs_modality() const override { return o_.report != nullptr; }

  std::vector<TaskOutput> run(const datasets::SampleBatch& batch, const torch::Tensor& x) override {
    std::vector<TaskOutput> out(batch.samples.size());
    for (int64_t begin = 0; begin < x.size(0); begin += o_.batch) {
      const int64_t n = std::min(o_.batch, x.size(0) - begin);
      std::vector<vision::CtPlacement> placements;
      std::vector<vision::SliceGeometry> geometries;
      for (int64_t r = begin; r < begin + n; ++r) {
        const datasets::Sample& s = batch.samples[batch.sample_of[r]];
        placements.push_back(s.ct_placements.at(static_cast<size_t>(batch.frame_of[r])));
        geometries.push_back(slice_geometry(s, batch.frame_of[r]));
      }
      std::vector<std::vector<SliceFindings>> by_method;
      for (const SaliencyReading& reading : readings_)
        by_method.push_back(find_on_slices(*m_.net, x.narrow(0, begin, n), placements, geometries, reading));
      for (int64_t r = 0; r < n; ++r) add_row(batch, begin + r, by_method, r, out);
    }
    return out;
  }

 private:
  void add_row(const datasets::SampleBatch& batch, int64_t row, const std::vector<std::vector<SliceFindings>>& by_method,
               int64_t r, std::vector<TaskOutput>& out) const {
    const size_t sample = batch.sample_of[row];
    const int frame = batch.frame_of[row];
    const datasets::Sample& s = batch.samples[sample];
    TaskOutput& o = out[sample];
    const std::string prefix = s.frames > 1 ? ".frame" + std::to_string(frame) : std::string();
    ReportSlice report_slice;
    for (size_t m = 0; m < readings_.size(); ++m) {
      const SliceFindings& f = by_method[m][static_cast<size_t>(r)];
      const std::string& method = readings_[m].method;
      nlohmann::json entry = {{"frame", frame},
                              {"sop_instance_uid", s.dicom ? s.dicom->sop_instance_uid : ""},
                              {"series_instance_uid", s.dicom ? s.dicom->series_instance_uid : ""},
                              {"score", f.score},
                              {"anomalous", f.score >= readings_[m].operating_threshold},
                              {"method", method},
                              {"units", s.ct_spacing_known ? "mm" : "px"},
                              {"peak_px", {f.peak_px.x, f.peak_px.y}},
                              {"peak", f.peak},
                              {"regions", nlohmann::json::array()}};
      for (const vision::Region& region : f.regions) entry["regions"].push_back(region_json(region));
      const std::string pointer = "/slices/" + std::to_string(o.json["slices"].size());
      o.json["slices"].push_back(std::move(entry));
      if (!o_.write_files && !o_.report) continue;  // the line alone: no picture to colour
      const cv::Mat heat = heat_layer(f);
      if (o_.write_files) add_files(o, s, frame, f, heat, method, prefix + "." + method, pointer);
      if (o_.report) report_slice.methods.push_back({method, heat, report_regions(f)});
    }
    if (o_.report) add_to_report(s, frame, by_method.front()[static_cast<size_t>(r)].score, std::move(report_slice));
  }

  void add_files(TaskOutput& o, const datasets::Sample& s, int frame, const SliceFindings& f, const cv::Mat& heat,
                 const std::string& method, const std::string& stem, const std::string& pointer) const {
    const cv::Mat raw = f.source_map;
    o.files.push_back({stem + ".map.tiff", [raw](const std::string& path) { vision::write_float_tiff(path, {raw}); },
                       pointer + "/map"});
    char title[48];
    std::snprintf(title, sizeof(title), "%s p=%.3f", method.c_str(), f.score);
    const cv::Mat overlay = vision::with_colour_bar(vision::composite(s.display.at(static_cast<size_t>(frame)), heat),
                                                    f.peak, title);
    o.files.push_back({stem + ".overlay.png", [overlay](const std::string& path) { vision::write_png(path, overlay); },
                       pointer + "/overlay"});
    if (!s.dicom) return;  // a Secondary Capture belongs in the source's study: only for DICOM inputs
    vision::SecondaryCaptureOptions sc;
    sc.series_description = "attnvision " + method + " saliency";
    sc.derivation_description = "Anomaly saliency (" + method + ") burned in by attnvision; p(lesion) " +
                                std::to_string(f.score).substr(0, 5);
    sc.series_instance_uid = overlay_series_uid(s.dicom->series_instance_uid, method);
    sc.instance_number = s.dicom->instance_number.value_or(1);
    sc.source_frame = frame;
    const std::string source = s.input.path;
    o.files.push_back({stem + ".dcm",
                       [source, overlay, sc](const std::string& path) {
                         cv::Mat rgb = overlay;
                         vision::write_secondary_capture(source, rgb, path, sc);
                       },
                       pointer + "/dicom"});
  }

  static std::vector<ReportRegion> report_regions(const SliceFindings& f) {
    std::vector<ReportRegion> regions;
    for (const vision::Region& r : f.regions) {
      ReportRegion rr;
      rr.x = r.bbox_px.x, rr.y = r.bbox_px.y, rr.width = r.bbox_px.width, rr.height = r.bbox_px.height;
      rr.area_mm2 = r.area_mm2, rr.diameter_mm = r.diameter_mm;
      rr.area_px = static_cast<double>(r.area_px), rr.diameter_px = r.diameter_px;
      rr.peak = r.peak, rr.mean = r.mean;
      regions.push_back(rr);
    }
    return regions;
  }

  void add_to_report(const datasets::Sample& s, int frame, double score, ReportSlice slice) const {
    slice.path = s.input.path;
    slice.frame = frame;
    slice.score = score;
    slice.anomalous = score >= readings_.front().operating_threshold;
    if (s.dicom) {
      slice.series_uid = s.dicom->series_instance_uid;
      slice.sop_instance_uid = s.dicom->sop_instance_uid;
      const vision::SliceGeometry g = slice_geometry(s, frame);
      slice.position_z = g.position ? (*g.position)[2] : static_cast<double>(s.dicom->instance_number.value_or(0));
      slice.series_label = (s.dicom->series_description.empty() ? slice.series_uid : s.dicom->series_description) +
                           " (" + s.dicom->modality + ")";
    }
    if (static_cast<size_t>(frame) < s.modality.size())
      for (const vision::Window& w : report_windows_)
        slice.windows.emplace_back(w.name, vision::window_to_8bit(s.modality[static_cast<size_t>(frame)], w, false));
    else
      slice.windows.emplace_back("display", s.display.at(static_cast<size_t>(frame)));
    o_.report->add(slice);
  }

  SaliencyTaskOptions o_;
  LoadedModel m_;
  std::vector<SaliencyReading> readings_;
  std::vector<vision::Window> report_windows_;
};

const std::vector<KeySpec>& section_schema() {
  static const std::vector<KeySpec> schema = section_schema_with_model_keys(
      "the shipped anomaly model",
      {{"methods", Kind::kStringList, false, "saliency methods (default: the model's best under 2 s per slice)"},
       {"flip_test", Kind::kBool, false, "average each slice's score and maps with its mirror image's (twice the compute)"}});
  return schema;
}

std::unique_ptr<TaskRunner> runner_from_section(const ConfigDoc& section) {
  SaliencyTaskOptions o;
  const nlohmann::json& j = section.root;
  take_model_keys(section, o.model, o.batch);
  take(j, "methods", o.methods);
  take(j, "flip_test", o.flip_test);
  if (o.batch < 1 || o.batch > 1024) throw ConfigError(section.where("batch") + ": 'saliency.batch' must be in 1..1024");
  return make_saliency_runner(o);
}

datasets::LabeledImages load_data(const std::string& spec, const models::ModelCfg& cfg) {
  return datasets::load_ct_anomaly_set(spec, datasets::ct_input_spec_for(cfg));
}

std::unique_ptr<Metric> make_metric(const models::ModelCfg&, const std::vector<std::string>&) {
  return std::make_unique<AnomalyMetric>();
}

// RetinaNet's focal loss (Lin et al. 2017, alpha 0.25, gamma 2) of cell logits against (soft) targets, each cell
// weighted, summed over the cells and divided by the lesion cells of the batch (at least one): an easy clean
// cell adds almost nothing, and the loss's scale does not depend on the batch's number of cells.
torch::Tensor focal_cell_loss(const torch::Tensor& logits, const torch::Tensor& targets, const torch::Tensor& lesion_cells,
                              const torch::Tensor& cell_weights) {
  namespace F = torch::nn::functional;
  constexpr double kAlpha = 0.25, kGamma = 2.0;
  const torch::Tensor p = torch::sigmoid(logits);
  const torch::Tensor ce = F::binary_cross_entropy_with_logits(
      logits, targets, F::BinaryCrossEntropyWithLogitsFuncOptions().reduction(torch::kNone));
  const torch::Tensor p_true = p * targets + (1 - p) * (1 - targets);
  const torch::Tensor alpha = kAlpha * targets + (1 - kAlpha) * (1 - targets);
  return (cell_weights * alpha * (1 - p_true).pow(kGamma) * ce).sum() / lesion_cells.sum().clamp_min(1);
}

// lesion_map_loss focal_per_lesion: each lesion's cells share one lesion's weight, so that a 4 mm lesion (a
// cell or two) counts in the loss about as much as a 30 mm one (about 45 cells at 4 mm) rather than a few
// hundredths of it; clean cells weigh 1. A lesion cell's weight is 1 / the lesion cells within kWindow x
// kWindow cells around it, which is 1 / the lesion's own cells when all of them lie within 3 cells of each
// (round lesions up to about 4 cells across: 16 mm at 4 mm cells; a 20 mm one sums to 1.1 lesions, a 30 mm
// one to 1.7); no connected components are needed, and two lesions closer than the window share their weight.
// The lesion cells' weights are then scaled to sum to their number, so the lesions as a whole weigh what they
// do under plain focal and only the share among them changes.
torch::Tensor per_lesion_cell_weights(const torch::Tensor& lesion_cells) {
  namespace F = torch::nn::functional;
  constexpr int64_t kWindow = 7;
  const torch::Tensor around = F::avg_pool2d(lesion_cells, F::AvgPool2dFuncOptions(kWindow).stride(1).padding(kWindow / 2)
                                                               .count_include_pad(true)) *
                               static_cast<double>(kWindow * kWindow);
  torch::Tensor shares = lesion_cells / around.clamp_min(1.0);  // 0 on clean cells
  shares = shares * (lesion_cells.sum() / shares.sum().clamp_min(1e-12));
  return (1.0 - lesion_cells) + shares;
}

// The slice's cross-entropy plus the cells' (models/heads/lesion_map.cpp; cfg.ct.lesion_map_loss): a cell is a
// lesion cell when the lesion mask, moved with the pixels by augmentation, touches it. Without masks (slice
// labels only), the slice term alone.
torch::Tensor slice_and_cell_loss(const models::ModelCfg& cfg, const models::Forward& f, const torch::Tensor& targets,
                                  double label_smoothing) {
  namespace F = torch::nn::functional;
  const torch::Tensor slice = F::cross_entropy(f.logits, datasets::slice_labels(targets),
                                               F::CrossEntropyFuncOptions().label_smoothing(label_smoothing));
  if (targets.dim() != 3 || !f.anomaly_map.defined()) return slice;
  const torch::Tensor cells = F::adaptive_max_pool2d(targets.unsqueeze(1).to(torch::kFloat32),
                                                     F::AdaptiveMaxPool2dFuncOptions({f.anomaly_map.size(2), f.anomaly_map.size(3)}));
  const torch::Tensor smoothed = cells * (1.0 - label_smoothing) + 0.5 * label_smoothing;
  const torch::Tensor logits = f.anomaly_map.to(torch::kFloat32);
  if (cfg.ct.lesion_map_loss == "focal") return slice + focal_cell_loss(logits, smoothed, cells, torch::ones_like(cells));
  if (cfg.ct.lesion_map_loss == "focal_per_lesion")
    return slice + focal_cell_loss(logits, smoothed, cells, per_lesion_cell_weights(cells));
  return slice + F::binary_cross_entropy_with_logits(logits, smoothed);
}

}  // namespace

std::unique_ptr<TaskRunner> make_saliency_runner(const SaliencyTaskOptions& options) {
  return std::make_unique<SaliencyRunner>(options);
}

const TaskRow& saliency_task() {
  static const TaskRow row = {"saliency",
                              "anomaly",
                              "CT anomaly saliency: lesion probability, saliency maps and regions in mm per slice",
                              section_schema,
                              runner_from_section,
                              define_saliency,
                              load_data,
                              /*targets_follow_pixels=*/true,
                              make_metric,
                              slice_and_cell_loss,
                              lesion_evidence_score,
                              /*classes_from_data=*/false};
  return row;
}

}  // namespace attnvision::pipelines
