// Input discovery for batch runs: files and folders (recursive) to a sorted, de-duplicated list.
#pragma once

#include <string>
#include <vector>

namespace attnvision::vision {

struct InputScan {
  std::vector<std::string> files;   // sorted, deterministic
  std::vector<std::string> missing;  // arguments that name nothing on disk
};

// Files named directly are kept whatever their extension (the reader decides); folders are walked
// recursively and contribute the files `accept` returns true for. Hidden entries are skipped.
InputScan scan_inputs(const std::vector<std::string>& paths, bool (*accept)(const std::string& path));

}  // namespace attnvision::vision
