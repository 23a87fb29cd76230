#include "vision/inputs.h"

#include "vision/dicom.h"
#include "vision/image_io.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <map>
#include <system_error>

namespace attnvision::vision {
namespace fs = std::filesystem;

namespace {
bool is_hidden(const fs::path& p) {
  const std::string name = p.filename().string();
  return !name.empty() && name[0] == '.';
}
}  // namespace

InputScan scan_inputs(const std::vector<std::string>& paths, bool (*accept)(const std::string& path)) {
  InputScan scan;
  for (const std::string& arg : paths) {
    std::error_code ec;
    const fs::file_status status = fs::status(arg, ec);
    if (ec || !fs::exists(status)) {
      scan.missing.push_back(arg);
    } else if (fs::is_directory(status)) {
      // skip_permission_denied: an unreadable sub-folder must not end the walk.
      for (auto it = fs::recursive_directory_iterator(arg, fs::directory_options::skip_permission_denied, ec);
           !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
        if (is_hidden(it->path())) {
          if (it->is_directory(ec)) it.disable_recursion_pending();
          continue;
        }
        if (it->is_regular_file(ec) && accept(it->path().string())) scan.files.push_back(it->path().string());
      }
    } else {
      scan.files.push_back(arg);
    }
  }
  std::sort(scan.files.begin(), scan.files.end());
  scan.files.erase(std::unique(scan.files.begin(), scan.files.end()), scan.files.end());
  return scan;
}

const char* to_string(InputKind kind) { return kind == InputKind::kDicom ? "dicom" : "image"; }

bool has_dicom_extension(const std::string& path) {
  std::string ext = fs::path(path).extension().string();
  for (char& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return ext == ".dcm" || ext == ".dicom";
}

namespace {

bool is_dicom_input(const std::string& path) { return has_dicom_extension(path) || looks_like_dicom(path); }

bool accept_batch_file(const std::string& path) { return has_image_extension(path) || is_dicom_input(path); }

// An argument's own name: the last component of its normalised path ("input" for "." or "/").
std::string argument_name(const std::string& arg) {
  fs::path p = fs::path(arg).lexically_normal();
  if (!p.has_filename()) p = p.parent_path();
  const std::string name = p.filename().string();
  return name.empty() || name == "." || name == ".." ? "input" : name;
}

}  // namespace

BatchInputScan scan_batch_inputs(const std::vector<std::string>& paths) {
  BatchInputScan scan;
  std::map<std::string, int> seen_names;  // argument name -> arguments so far with it
  std::map<std::string, BatchInput> by_path;
  for (const std::string& arg : paths) {
    const InputScan found = scan_inputs({arg}, accept_batch_file);
    if (!found.missing.empty()) {
      scan.missing.push_back(arg);
      continue;
    }
    std::string name = argument_name(arg);
    if (const int n = ++seen_names[name]; n > 1) name += "~" + std::to_string(n);
    std::error_code ec;
    const bool folder = fs::is_directory(arg, ec);
    for (const std::string& file : found.files) {
      BatchInput in;
      in.path = file;
      // An image extension is trusted without reading the file; anything else is sniffed (once).
      in.kind = !has_image_extension(file) && is_dicom_input(file) ? InputKind::kDicom : InputKind::kImage;
      in.output_name = folder ? (fs::path(name) / fs::path(file).lexically_relative(arg)).lexically_normal().string()
                              : name;
      by_path.emplace(file, std::move(in));  // the first argument that finds a file names its outputs
    }
  }
  for (auto& [path, in] : by_path) scan.inputs.push_back(std::move(in));
  return scan;
}

}  // namespace attnvision::vision
