#include "pipelines/batch/manifest.h"

#include "vision/files/atomic_write.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace attnvision::pipelines {
namespace {

[[noreturn]] void fail(const std::string& path, const std::string& problem) {
  throw std::runtime_error(path + ": " + problem);
}

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return {};
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

Manifest::Manifest(std::string path) : path_(std::move(path)) {
  std::string text = read_all(path_);
  const size_t complete = text.rfind('\n') == std::string::npos ? 0 : text.rfind('\n') + 1;
  if (complete < text.size()) {
    // The torn row of a killed run: its input has no row yet and runs again.
    text.resize(complete);
    if (::truncate(path_.c_str(), static_cast<off_t>(complete)) != 0)
      fail(path_, std::string("cannot repair the torn last line (") + std::strerror(errno) + ")");
  }
  read_rows(text);
  fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0666);
  if (fd_ < 0) fail(path_, std::string("cannot open for appending (") + std::strerror(errno) + ")");
}

Manifest::~Manifest() {
  if (fd_ >= 0) ::close(fd_);
}

void Manifest::read_rows(const std::string& text) {
  paths_.clear();
  errors_ = 0;
  kept_ = text;
  std::istringstream lines(text);
  std::string line;
  for (int number = 1; std::getline(lines, line); ++number) {
    const nlohmann::json row = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!row.is_object() || !row.contains("path") || !row["path"].is_string())
      fail(path_ + ":" + std::to_string(number), "not a manifest row (a JSON object with a \"path\")");
    paths_.insert(row["path"].get<std::string>());
    if (row.value("status", "") != "ok") ++errors_;
  }
}

void Manifest::drop_errors() {
  std::string kept;
  std::istringstream lines(kept_);
  for (std::string line; std::getline(lines, line);)
    if (nlohmann::json::parse(line).value("status", "") == "ok") kept += line + "\n";
  vision::write_text_atomically(path_, kept);
  ::close(fd_);
  fd_ = ::open(path_.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
  if (fd_ < 0) fail(path_, std::string("cannot open for appending (") + std::strerror(errno) + ")");
  read_rows(kept);
}

void Manifest::append(const nlohmann::ordered_json& row) {
  const std::string line = row.dump() + "\n";
  for (size_t done = 0; done < line.size();) {
    const ssize_t w = ::write(fd_, line.data() + done, line.size() - done);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) fail(path_, std::string("cannot append (") + std::strerror(errno) + ")");
    done += static_cast<size_t>(w);
  }
  paths_.insert(row["path"].get<std::string>());
  if (row.value("status", "") != "ok") ++errors_;
}

}  // namespace attnvision::pipelines
