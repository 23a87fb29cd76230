#include "vision/files/atomic_write.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <stdexcept>

namespace attnvision::vision {
namespace fs = std::filesystem;

namespace {

constexpr const char* kMarker = ".attnvision-tmp-";

[[noreturn]] void fail(const std::string& path, const std::string& problem) {
  throw std::runtime_error(path + ": " + problem);
}

// "<dir>/.<stem>.attnvision-tmp-<pid>-<n><ext>": unique per process and call, hidden from input scans.
std::string temporary_for(const fs::path& target) {
  static std::atomic<unsigned> counter{0};
  const std::string name = "." + target.stem().string() + kMarker + std::to_string(::getpid()) + "-" +
                           std::to_string(counter++) + target.extension().string();
  return (target.parent_path() / name).string();
}

// fsync of an existing file or folder; false with errno set on failure.
bool sync_path(const std::string& path, int flags) {
  const int fd = ::open(path.c_str(), flags | O_CLOEXEC);
  if (fd < 0) return false;
  const bool ok = ::fsync(fd) == 0 || errno == EINVAL;  // some file systems cannot sync folders
  ::close(fd);
  return ok;
}

}  // namespace

void write_file_atomically(const std::string& path, const std::function<void(const std::string& tmp)>& produce) {
  const fs::path target(path);
  const std::string tmp = temporary_for(target);
  try {
    produce(tmp);
    if (!sync_path(tmp, O_RDONLY)) fail(path, std::string("cannot sync ") + tmp + " (" + std::strerror(errno) + ")");
    std::error_code ec;
    fs::rename(tmp, target, ec);
    if (ec) fail(path, "cannot rename into place: " + ec.message());
  } catch (...) {
    std::error_code ignored;
    fs::remove(tmp, ignored);
    throw;
  }
  const fs::path dir = target.parent_path().empty() ? fs::path(".") : target.parent_path();
  sync_path(dir.string(), O_RDONLY | O_DIRECTORY);  // the rename itself survives a crash (best effort)
}

void write_bytes_atomically(const std::string& path, const std::vector<std::pair<const void*, size_t>>& pieces) {
  write_file_atomically(path, [&](const std::string& tmp) {
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd < 0) fail(path, "cannot create " + tmp + " (" + std::strerror(errno) + ")");
    for (const auto& [data, size] : pieces) {
      auto* c = static_cast<const char*>(data);
      for (size_t n = size; n > 0;) {
        const ssize_t w = ::write(fd, c, std::min<size_t>(n, size_t{1} << 30));
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
          const int err = w < 0 ? errno : EIO;
          ::close(fd);
          fail(path, std::string("cannot write (") + std::strerror(err) + ")");
        }
        c += w;
        n -= static_cast<size_t>(w);
      }
    }
    if (::close(fd) != 0) fail(path, std::string("cannot write (") + std::strerror(errno) + ")");
  });
}

void write_text_atomically(const std::string& path, const std::string& text) {
  write_bytes_atomically(path, {{text.data(), text.size()}});
}

bool is_temporary_name(const std::string& path) {
  const std::string name = fs::path(path).filename().string();
  return !name.empty() && name[0] == '.' && name.find(kMarker) != std::string::npos;
}

size_t remove_temporaries(const std::string& folder) {
  std::error_code ec;
  if (!fs::is_directory(folder, ec)) return 0;
  std::vector<fs::path> found;
  for (auto it = fs::recursive_directory_iterator(folder, fs::directory_options::skip_permission_denied, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec))
    if (it->is_regular_file(ec) && is_temporary_name(it->path().string())) found.push_back(it->path());
  for (const fs::path& p : found) fs::remove(p, ec);
  return found.size();
}

}  // namespace attnvision::vision
