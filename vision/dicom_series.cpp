// Series grouping and slice ordering (no DCMTK here: it works on DicomInfo).
#include "vision/dicom_series.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <map>
#include <set>
#include <tuple>

namespace attnvision::vision {
namespace {

std::array<double, 3> normal_of(const std::array<double, 6>& o) {
  return {o[1] * o[5] - o[2] * o[4], o[2] * o[3] - o[0] * o[5], o[0] * o[4] - o[1] * o[3]};
}

bool same_orientation(const std::array<double, 6>& a, const std::array<double, 6>& b) {
  for (size_t i = 0; i < 6; ++i)
    if (std::abs(a[i] - b[i]) > 1e-4) return false;
  return true;
}

void order(DicomSeries& series) {
  auto& items = series.instances;
  std::sort(items.begin(), items.end(),
            [](const DicomInfo& a, const DicomInfo& b) { return a.path < b.path; });
  series.ordering = "path";

  std::set<std::pair<int, int>> sizes;
  for (const DicomInfo& info : items) sizes.insert({info.rows, info.columns});
  if (sizes.size() > 1) series.warnings.push_back("mixed image sizes in one series");

  const bool all_positioned = std::all_of(items.begin(), items.end(), [&](const DicomInfo& i) {
    return !i.image_positions.empty() && i.image_orientation.has_value();
  });
  bool one_orientation = all_positioned;
  for (const DicomInfo& info : items)
    if (all_positioned && !same_orientation(*info.image_orientation, *items.front().image_orientation))
      one_orientation = false;
  if (all_positioned && !one_orientation) series.warnings.push_back("mixed orientations in one series");

  if (one_orientation) {
    const std::array<double, 3> n = normal_of(*items.front().image_orientation);
    auto along = [&](const DicomInfo& i) {
      const auto& p = i.image_positions.front();
      return p[0] * n[0] + p[1] * n[1] + p[2] * n[2];
    };
    std::stable_sort(items.begin(), items.end(),
                     [&](const DicomInfo& a, const DicomInfo& b) { return along(a) < along(b); });
    for (size_t k = 1; k < items.size(); ++k)
      if (std::abs(along(items[k]) - along(items[k - 1])) < 1e-3) {
        series.warnings.push_back("instances share a slice position");
        break;
      }
    series.ordering = "position";
    return;
  }
  if (std::all_of(items.begin(), items.end(),
                  [](const DicomInfo& i) { return i.instance_number.has_value(); })) {
    std::stable_sort(items.begin(), items.end(), [](const DicomInfo& a, const DicomInfo& b) {
      return *a.instance_number < *b.instance_number;
    });
    series.ordering = "instance_number";
  }
}

}  // namespace

SeriesScan group_series(const std::vector<std::string>& files, const DicomReadOptions& options) {
  SeriesScan scan;
  std::map<std::string, DicomSeries> by_uid;
  for (const std::string& path : files) {
    try {
      DicomInfo info = read_dicom_info(path, options);
      if (!info.has_pixel_data) {
        const std::string what = info.sop_class_name.empty() ? info.sop_class_uid : info.sop_class_name;
        scan.skipped.push_back(
            {path, "not an image (" + (what.empty() ? "no SOP class" : what) + ", no Pixel Data)"});
        continue;
      }
      // Instances without a SeriesInstanceUID each stand alone (keyed by their path).
      const std::string key = info.series_instance_uid.empty() ? "file:" + path : info.series_instance_uid;
      DicomSeries& series = by_uid[key];
      if (series.instances.empty()) {
        series.series_instance_uid = info.series_instance_uid;
        series.study_instance_uid = info.study_instance_uid;
        series.modality = info.modality;
        series.description = info.series_description;
        series.series_number = info.series_number;
      } else if (series.study_instance_uid != info.study_instance_uid) {
        series.warnings.push_back("one SeriesInstanceUID in several studies");
      }
      series.instances.push_back(std::move(info));
    } catch (const DicomError& e) {
      const std::string message = e.what();
      const std::string reason =
          message.rfind(path + ": ", 0) == 0 ? message.substr(path.size() + 2) : message;
      scan.skipped.push_back({path, reason, true});
    }
  }
  for (auto& [uid, series] : by_uid) {
    std::sort(series.warnings.begin(), series.warnings.end());
    series.warnings.erase(std::unique(series.warnings.begin(), series.warnings.end()), series.warnings.end());
    order(series);
    scan.series.push_back(std::move(series));
  }
  std::sort(scan.series.begin(), scan.series.end(), [](const DicomSeries& a, const DicomSeries& b) {
    return std::make_tuple(a.study_instance_uid, a.series_number.value_or(INT64_MAX), a.series_instance_uid) <
           std::make_tuple(b.study_instance_uid, b.series_number.value_or(INT64_MAX), b.series_instance_uid);
  });
  return scan;
}

}  // namespace attnvision::vision
