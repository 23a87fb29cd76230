#include "pipelines/tasks/saliency/slice_findings.h"

#include "datasets/batch.h"

#include <opencv2/imgproc.hpp>
#include <torch/torch.h>

#include <algorithm>
#include <stdexcept>

namespace attnvision::pipelines {

SaliencyReading saliency_reading_for(const models::ModelCfg& cfg, const std::string& method) {
  SaliencyReading r;
  r.method = method.empty() ? cfg.ct.saliency_method : method;
  const auto known = models::saliency_methods();
  if (std::find(known.begin(), known.end(), r.method) == known.end()) {
    std::string list;
    for (const std::string& m : known) list += (list.empty() ? "" : ", ") + m;
    throw std::invalid_argument("unknown saliency method '" + r.method + "' (known: " + list + ")");
  }
  if (models::saliency_method_reads_stage(r.method)) r.options.stage = cfg.ct.saliency_stage;
  r.operating_threshold = cfg.ct.operating_threshold;
  r.region_level = cfg.ct.region_level;
  r.region_level_of_peak = cfg.ct.region_level_of == "peak";
  return r;
}

vision::SliceGeometry slice_geometry(const datasets::Sample& s, int frame) {
  vision::SliceGeometry g;
  if (!s.dicom || !s.ct_spacing_known) return g;
  g.pixel_spacing = s.dicom->pixel_spacing;
  g.orientation = s.dicom->image_orientation;
  const auto& positions = s.dicom->image_positions;
  if (static_cast<size_t>(frame) < positions.size()) g.position = positions[static_cast<size_t>(frame)];
  else if (positions.size() == 1 && frame == 0) g.position = positions.front();
  return g;
}

models::ScoreFn lesion_evidence_score() {
  return [](const models::Forward& f) {
    if (!f.anomaly_map.defined()) return models::class_score({1})(f);
    const torch::Tensor cells = f.anomaly_map.flatten(1);
    return std::get<0>(cells.max(1)) + torch::relu(cells).sum(1);
  };
}

cv::Mat map_on_model_grid(const cv::Mat& map, int size) {
  if (map.rows == size && map.cols == size) return map.clone();
  cv::Mat out;
  cv::resize(map, out, cv::Size(size, size), 0, 0, cv::INTER_LINEAR);
  return out;
}

std::vector<SliceFindings> find_on_slices(models::NetworkImpl& net, const torch::Tensor& x,
                                          const std::vector<vision::CtPlacement>& placements,
                                          const std::vector<vision::SliceGeometry>& geometries,
                                          const SaliencyReading& reading) {
  const int64_t n = x.size(0);
  if (static_cast<int64_t>(placements.size()) != n || static_cast<int64_t>(geometries.size()) != n)
    throw std::invalid_argument("find_on_slices: one placement and one geometry per row expected");
  // Explain the lesion class (1) on every slice, whatever its top-1: maps of clean and lesion slices then
  // share one scale.
  const auto lesion_p = [](const models::SaliencyResult& r) {
    return torch::softmax(r.forward.logits.to(torch::kFloat32), 1).select(1, 1);
  };
  const models::SaliencyResult r = models::explain(net, x, reading.method, lesion_evidence_score(), reading.options);
  torch::Tensor p = lesion_p(r);
  torch::Tensor raw = r.raw;
  if (reading.flip_test) {
    const models::SaliencyResult mirrored =
        models::explain(net, x.flip({3}), reading.method, lesion_evidence_score(), reading.options);
    p = (p + lesion_p(mirrored)) / 2;
    raw = (raw + mirrored.raw.flip({2})) / 2;
  }
  p = p.contiguous();
  const auto score = p.accessor<float, 1>();
  std::vector<SliceFindings> out(static_cast<size_t>(n));
  // The slices' maps are independent: back on their source grids and into regions in parallel, so that the
  // cores the model's threads used are not left idle while one of them does this alone.
  at::parallel_for(0, n, 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      SliceFindings& f = out[static_cast<size_t>(i)];
      const vision::CtPlacement& placement = placements[static_cast<size_t>(i)];
      f.score = score[i];
      f.model_map = map_on_model_grid(datasets::map_to_mat(raw[i]), placement.size);
      f.source_map = vision::map_to_source(f.model_map, placement);
      double lo = 0;
      cv::minMaxLoc(f.source_map, &lo, &f.peak, nullptr, &f.peak_px);
      if (f.score >= reading.operating_threshold && f.peak > 0)
        f.regions =
            vision::find_regions(f.source_map, reading.region_threshold(reading.region_level, f.peak), geometries[static_cast<size_t>(i)]);
    }
  });
  return out;
}

}  // namespace attnvision::pipelines
