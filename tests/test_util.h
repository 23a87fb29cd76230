// Small helpers shared by the test folders: locations, scratch folders, running the real binary.
#pragma once

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <sys/wait.h>
#include <vector>

namespace attnvision::testing {

inline std::filesystem::path fixtures_dir() { return ATTNVISION_FIXTURES_DIR; }
inline std::filesystem::path parity_dir() { return fixtures_dir() / "parity" / "public"; }

// The parity fixtures are part of the test suite: their absence fails the test, it never skips it.
inline std::filesystem::path require_fixture(const std::string& name) {
  const std::filesystem::path dir = parity_dir() / name;
  if (!std::filesystem::is_directory(dir))
    ADD_FAILURE() << "parity fixture missing: " << dir << " (set -DATTNVISION_SHARED_DIR to the shared/ folder)";
  return dir;
}

// A fresh folder under the system temp dir, removed when the object dies.
class ScratchDir {
 public:
  ScratchDir() {
    std::random_device rd;
    path_ = std::filesystem::temp_directory_path() / ("attnvision-test-" + std::to_string(rd()));
    std::filesystem::create_directories(path_);
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::filesystem::path& path() const { return path_; }
  std::string operator/(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

inline void write_text(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

inline std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

struct CommandResult {
  int exit_code = -1;
  std::string out;  // stdout
  std::string err;  // stderr
};

// Runs the attnvision binary with `args` (already shell-quoted where needed).
// A shell command's stdout and stderr together (tool checks: dciodvfy, dcmdump); empty if it could not start.
inline std::string run_shell(const std::string& command) {
  std::string out;
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen((command + " 2>&1").c_str(), "r"), pclose);
  std::array<char, 4096> buffer{};
  while (pipe && fgets(buffer.data(), int(buffer.size()), pipe.get())) out += buffer.data();
  return out;
}

inline CommandResult run_attnvision(const std::string& args) {
  const std::string err_file = std::filesystem::temp_directory_path() / ("attnvision-stderr-" + std::to_string(std::random_device{}()));
  const std::string cmd = std::string("'") + ATTNVISION_BINARY + "' " + args + " 2>'" + err_file + "'";
  CommandResult r;
  FILE* pipe = popen(cmd.c_str(), "r");
  if (!pipe) return r;
  std::array<char, 4096> buf{};
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), pipe)) > 0) r.out.append(buf.data(), n);
  const int status = pclose(pipe);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  std::ifstream e(err_file);
  std::stringstream ss;
  ss << e.rdbuf();
  r.err = ss.str();
  std::filesystem::remove(err_file);
  return r;
}

// Whether Debian's dataset-fashion-mnist is installed: the tests that train on it, or make scenes from it, skip
// without it.
inline bool have_fashion_mnist() {
  const std::filesystem::path dir = "/usr/share/datasets/fashion-mnist";
  return std::filesystem::exists(dir / "train-labels-idx1-ubyte.gz") && std::filesystem::exists(dir / "t10k-labels-idx1-ubyte.gz");
}

// A command's stdout as JSON lines (blank lines skipped); throws when a line is not JSON: stdout must hold
// JSON lines only.
inline std::vector<nlohmann::json> json_lines(const std::string& out) {
  std::vector<nlohmann::json> rows;
  std::istringstream in(out);
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) rows.push_back(nlohmann::json::parse(line));
  return rows;
}

}  // namespace attnvision::testing
