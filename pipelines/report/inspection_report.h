// The inspection report `saliency --out DIR` writes as DIR/report.html: one self-contained HTML file (images
// embedded as data URIs, script and style inline, nothing fetched) a clinician opens in a browser. Series
// list; per series, slice navigation by a slider and the arrow keys; an overlay opacity slider over the
// windowed slice; a method switch when several methods were run; window presets (the slice rendered through
// each); the region table (sizes in mm, scores) whose rows jump to their slice.
//
// Built incrementally so a long run keeps only compressed images in memory: add() encodes a slice's pictures
// at once (JPEG for the windowed slice, PNG with alpha for the heat layer) and keeps the text.
#pragma once

#include <opencv2/core/mat.hpp>

#include <optional>
#include <string>
#include <vector>

namespace attnvision::pipelines {

struct ReportRegion {
  int x = 0, y = 0, width = 0, height = 0;      // bbox in the slice's pixels (0-based)
  std::optional<double> area_mm2, diameter_mm;  // absent without PixelSpacing (then sizes are in pixels)
  double area_px = 0, diameter_px = 0;
  double peak = 0, mean = 0;
};

// One method's view of a slice.
struct ReportMethodView {
  std::string method;                 // "gradcam"
  cv::Mat heat;                       // CV_8UC4 RGBA at the slice's size: colour-mapped map, contours, labels
  std::vector<ReportRegion> regions;  // drawn into `heat` already; listed in the region table
};

struct ReportSlice {
  std::string series_uid;    // groups slices into series (empty: one series per input folder)
  std::string series_label;  // shown in the series list, e.g. "series_1_0003 (CT, 24 slices)"
  std::string path;          // the input file
  int frame = 0;
  std::string sop_instance_uid;
  double position_z = 0;   // orders slices within a series (ImagePositionPatient z; else instance order)
  double score = 0;        // the model's p(lesion)
  bool anomalous = false;  // score >= the model's operating threshold
  // The slice through each window preset, CV_8UC1 at its own size: {"abdomen", img}, {"lung", img}, ...
  // (8-bit RGB is accepted too: a plain image's display frame stands in when there is nothing to window).
  std::vector<std::pair<std::string, cv::Mat>> windows;
  std::vector<ReportMethodView> methods;  // the same methods, in the same order, for every slice
};

struct ReportInfo {
  std::string title = "attnvision anomaly saliency";
  std::string model;  // the model's name and weights file
  double operating_threshold = 0.5;
  std::string generated_by;  // the command line
};

class InspectionReport {
 public:
  explicit InspectionReport(ReportInfo info);
  ~InspectionReport();
  InspectionReport(const InspectionReport&) = delete;
  InspectionReport& operator=(const InspectionReport&) = delete;
  // Encodes the slice's images now; safe to call from several threads. std::invalid_argument for a slice
  // without windows, images of different sizes, or a method list that differs from the first slice's.
  void add(const ReportSlice& slice);
  size_t size() const;
  // Replaces the page's header information (known only once the model is loaded, after the report is made).
  void set_info(ReportInfo info);
  // The whole page; every text from the data is HTML-escaped.
  std::string html() const;
  // html() written atomically (temporary name, fsync, rename); std::runtime_error naming `path` on failure.
  void write(const std::string& path) const;

 private:
  struct Impl;
  Impl* impl_;
};

}  // namespace attnvision::pipelines
