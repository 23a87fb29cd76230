#include "datasets/lesion_truth.h"

#include "vision/image_io.h"

#include <nlohmann/json.hpp>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

namespace attnvision::datasets {
namespace {

using nlohmann::json;

// Where a value sits in the file, for the one-line error.
struct At {
  std::string file, entry;
  [[noreturn]] void fail(const std::string& problem) const {
    throw LesionTruthError(file + ": " + entry + ": " + problem);
  }
  At operator/(const std::string& child) const { return {file, entry + child}; }
};

const json& need(const json& object, const char* key, const At& at) {
  if (!object.is_object()) at.fail("expected an object");
  const auto it = object.find(key);
  if (it == object.end()) at.fail(std::string("missing '") + key + "'");
  return *it;
}

template <typename T>
T need_as(const json& object, const char* key, const At& at) {
  const json& v = need(object, key, at);
  try {
    return v.get<T>();
  } catch (const json::exception&) {
    (at / (std::string(".") + key)).fail(std::string("wrong type (") + v.type_name() + ")");
  }
}

// A path as written (relative to the set's folder) made usable from the current directory.
std::string resolve(const std::filesystem::path& dir, const std::string& relative) {
  const std::filesystem::path p(relative);
  return (p.is_absolute() ? p : dir / p).lexically_normal().string();
}

}  // namespace

std::vector<TruthSeries> read_lesion_truth(const std::string& dir) {
  const std::filesystem::path folder(dir);
  const std::string path = (folder / "lesions.json").string();
  std::ifstream in(path, std::ios::binary);
  if (!in) throw LesionTruthError(path + ": cannot open: " + std::strerror(errno));
  json doc;
  try {
    doc = json::parse(in);
  } catch (const json::parse_error& e) {
    const std::string what = e.what();
    const size_t start = what.find("] ");
    throw LesionTruthError(path + ": malformed JSON: " + (start == std::string::npos ? what : what.substr(start + 2)));
  }
  const At root{path, "lesions.json"};
  const json& series = need(doc, "series", root);
  if (!series.is_array()) (root / ".series").fail("expected an array");
  std::vector<TruthSeries> out;
  for (size_t s = 0; s < series.size(); ++s) {
    const At at = root / (".series[" + std::to_string(s) + "]");
    TruthSeries ts;
    ts.series_instance_uid = need_as<std::string>(series[s], "series_instance_uid", at);
    ts.folder = need_as<std::string>(series[s], "folder", at);
    const json& slices = need(series[s], "slices", at);
    if (!slices.is_array()) (at / ".slices").fail("expected an array");
    for (size_t i = 0; i < slices.size(); ++i) {
      const At sat = at / (".slices[" + std::to_string(i) + "]");
      TruthSlice slice;
      slice.file = resolve(folder, need_as<std::string>(slices[i], "file", sat));
      slice.sop_instance_uid = need_as<std::string>(slices[i], "sop_instance_uid", sat);
      const json& mask = need(slices[i], "mask", sat);
      if (!mask.is_null()) slice.mask = resolve(folder, need_as<std::string>(slices[i], "mask", sat));
      const json& lesions = need(slices[i], "lesions", sat);
      if (!lesions.is_array()) (sat / ".lesions").fail("expected an array");
      for (size_t j = 0; j < lesions.size(); ++j) {
        const At lat = sat / (".lesions[" + std::to_string(j) + "]");
        TruthLesion l;
        const auto c = need_as<std::vector<int>>(lesions[j], "center_px", lat);
        if (c.size() != 2) (lat / ".center_px").fail("expected [x, y]");
        l.center_px = {c[0], c[1]};
        l.diameter_mm = need_as<double>(lesions[j], "diameter_mm", lat);
        l.contrast_hu = need_as<double>(lesions[j], "contrast_hu", lat);
        l.organ = need_as<std::string>(lesions[j], "organ", lat);
        l.mask = resolve(folder, need_as<std::string>(lesions[j], "mask", lat));
        slice.lesions.push_back(std::move(l));
      }
      if (slice.lesions.empty() != slice.mask.empty())
        sat.fail(slice.lesions.empty() ? "a clean slice with a mask" : "lesions but no 'mask'");
      ts.slices.push_back(std::move(slice));
    }
    out.push_back(std::move(ts));
  }
  return out;
}

cv::Mat read_lesion_mask(const std::string& path, cv::Size slice_size) {
  const cv::Mat m = vision::read_image(path);
  if (m.type() != CV_8UC1)
    throw std::runtime_error(path + ": a lesion mask must be an 8-bit single-channel image");
  if (m.size() != slice_size)
    throw std::runtime_error(path + ": mask is " + std::to_string(m.cols) + "x" + std::to_string(m.rows) +
                             ", its slice " + std::to_string(slice_size.width) + "x" + std::to_string(slice_size.height));
  return m;
}

}  // namespace attnvision::datasets
