#include "vision/inputs.h"

#include <algorithm>
#include <filesystem>
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

}  // namespace attnvision::vision
