#include "pipelines/labels.h"

#include "pipelines/config.h"

#include <filesystem>
#include <fstream>
#include <sstream>

namespace attnvision::pipelines {

extern const char kImagenetLabelsText[];  // generated from configs/labels/imagenet1k.txt

namespace {
std::vector<std::string> split_lines(std::istream& in) {
  std::vector<std::string> out;
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    out.push_back(line);
  }
  while (!out.empty() && out.back().empty()) out.pop_back();
  return out;
}
}  // namespace

const std::vector<std::string>& imagenet_labels() {
  static const std::vector<std::string> labels = [] {
    std::istringstream in(kImagenetLabelsText);
    return split_lines(in);
  }();
  return labels;
}

std::vector<std::string> read_labels_file(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) throw ConfigError(path + ": no such labels file");
  if (std::filesystem::file_size(path, ec) > (64u << 20)) throw ConfigError(path + ": too large for a labels file");
  std::ifstream in(path);
  std::vector<std::string> labels = split_lines(in);
  if (labels.empty()) throw ConfigError(path + ": no labels in file");
  return labels;
}

}  // namespace attnvision::pipelines
