#include "datasets/idx.h"

#include <zlib.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <vector>

namespace attnvision::datasets {

namespace {

constexpr uint8_t kUnsignedByte = 0x08;
constexpr int64_t kMaxElements = int64_t{1} << 31;
// Deflate emits at least 2 bits per 258-byte match: no stream inflates to more than 1032 times its size.
constexpr int64_t kMaxDeflateRatio = 1032;

[[noreturn]] void fail(const std::string& path, const std::string& problem) {
  throw std::runtime_error(path + ": " + problem);
}

struct FileCloser {
  void operator()(std::FILE* f) const { std::fclose(f); }
};
using File = std::unique_ptr<std::FILE, FileCloser>;

// The decompressed bytes of the file, read on demand: the file itself, or its gzip members inflated one
// after the other (as gunzip does for concatenated members).
class ByteSource {
 public:
  explicit ByteSource(const std::string& path) : path_(path) {
    std::error_code ec;
    if (std::filesystem::is_directory(path, ec)) fail(path, "is a folder, not an IDX file");
    file_.reset(std::fopen(path.c_str(), "rb"));
    if (!file_) fail(path, std::string("cannot open: ") + std::strerror(errno));
    if (std::fseek(file_.get(), 0, SEEK_END) != 0 || (file_bytes_ = std::ftell(file_.get())) < 0)
      fail(path, "cannot seek (not a regular file?)");
    std::rewind(file_.get());
    fill(2);
    gzip_ = have_gzip_magic();
    if (gzip_) start_member();
  }
  ~ByteSource() {
    if (initialized_) inflateEnd(&zs_);
  }
  ByteSource(const ByteSource&) = delete;
  ByteSource& operator=(const ByteSource&) = delete;

  bool gzip() const { return gzip_; }
  int64_t file_bytes() const { return file_bytes_; }
  // True when the input ended inside a gzip member (before its end marker and CRC).
  bool stream_truncated() const { return gzip_ && in_member_; }

  // Fills dst with up to n bytes; fewer only at the end of the data. Throws on corrupt gzip data.
  size_t read(uint8_t* dst, size_t n) { return gzip_ ? inflate_into(dst, n) : copy_into(dst, n); }

 private:
  // Makes at least k unread bytes available (fewer only at the end of the file); false when none are.
  bool fill(size_t k) {
    const size_t left = in_len_ - in_pos_;
    if (left < k) {
      std::memmove(in_.data(), in_.data() + in_pos_, left);
      in_len_ = left + std::fread(in_.data() + left, 1, in_.size() - left, file_.get());
      in_pos_ = 0;
      if (std::ferror(file_.get())) fail(path_, std::string("read error: ") + std::strerror(errno));
    }
    return in_len_ > in_pos_;
  }
  bool have_gzip_magic() const {
    return in_len_ - in_pos_ >= 2 && in_[in_pos_] == 0x1f && in_[in_pos_ + 1] == 0x8b;
  }

  void start_member() {
    const int rc = initialized_ ? inflateReset(&zs_) : inflateInit2(&zs_, 16 + MAX_WBITS);  // gzip only
    if (rc != Z_OK) fail(path_, "cannot start zlib inflate");
    initialized_ = true;
    in_member_ = true;
  }

  size_t copy_into(uint8_t* dst, size_t n) {
    size_t done = 0;
    while (done < n && fill(1)) {
      const size_t k = std::min(n - done, in_len_ - in_pos_);
      std::memcpy(dst + done, in_.data() + in_pos_, k);
      in_pos_ += k;
      done += k;
    }
    return done;
  }

  size_t inflate_into(uint8_t* dst, size_t n) {
    size_t done = 0;
    while (done < n) {
      if (!fill(1)) break;  // end of file: stream_truncated() tells whether it came too early
      if (!in_member_) {
        // Bytes after a complete member: another member, or junk (which gunzip only warns about).
        fill(2);
        if (!have_gzip_magic()) fail(path_, "trailing bytes after the gzip stream");
        start_member();
      }
      zs_.next_in = in_.data() + in_pos_;
      zs_.avail_in = static_cast<uInt>(in_len_ - in_pos_);
      const size_t want = std::min<size_t>(n - done, uInt(-1) >> 1);
      zs_.next_out = dst + done;
      zs_.avail_out = static_cast<uInt>(want);
      const int rc = inflate(&zs_, Z_NO_FLUSH);
      done += want - zs_.avail_out;
      in_pos_ = in_len_ - zs_.avail_in;
      if (rc == Z_STREAM_END) {
        in_member_ = false;
      } else if (rc != Z_OK && rc != Z_BUF_ERROR) {
        fail(path_, std::string("corrupt gzip data (") +
                        (zs_.msg ? zs_.msg : "zlib error " + std::to_string(rc)) + ")");
      }
    }
    return done;
  }

  std::string path_;
  File file_;
  int64_t file_bytes_ = 0;
  std::array<uint8_t, 1 << 16> in_{};
  size_t in_len_ = 0;
  size_t in_pos_ = 0;
  bool gzip_ = false;
  bool initialized_ = false;
  bool in_member_ = false;
  z_stream zs_{};
};

uint32_t big_endian(const uint8_t* p) {
  return uint32_t{p[0]} << 24 | uint32_t{p[1]} << 16 | uint32_t{p[2]} << 8 | uint32_t{p[3]};
}

// The dims from the header, validated; the source is left at the first data byte.
std::vector<int64_t> read_header(ByteSource& src, const std::string& path) {
  uint8_t magic[4];
  const size_t got = src.read(magic, 4);
  if (got < 4) fail(path, "not an IDX file (only " + std::to_string(got) + " bytes)");
  const uint32_t m = big_endian(magic);
  const int rank = magic[3];
  if (magic[0] != 0 || magic[1] != 0 || rank < 1 || rank > 4) {
    char hex[16];
    std::snprintf(hex, sizeof hex, "0x%08x", m);
    fail(path, std::string("not an IDX file (magic ") + hex + ")");
  }
  if (magic[2] != kUnsignedByte) {
    char hex[8];
    std::snprintf(hex, sizeof hex, "0x%02x", magic[2]);
    fail(path, std::string("IDX data type ") + hex + " is not supported (only unsigned byte, 0x08)");
  }
  uint8_t raw[16];
  const size_t dims_bytes = static_cast<size_t>(4 * rank);
  const size_t have = src.read(raw, dims_bytes);
  if (have < dims_bytes) {
    fail(path, "truncated: the IDX header has " + std::to_string(rank) + " dims (" +
                   std::to_string(dims_bytes) + " bytes), file has " + std::to_string(have));
  }
  std::vector<int64_t> dims;
  int64_t count = 1;
  for (int i = 0; i < rank; ++i) {
    const int64_t d = big_endian(raw + 4 * i);
    if (d == 0) fail(path, "IDX dim " + std::to_string(i) + " is 0");
    if (d > kMaxElements / count) fail(path, "IDX header declares more than 2^31 elements");
    count *= d;
    dims.push_back(d);
  }
  return dims;
}

// The most data bytes the file can hold after a header of `header_bytes`, before inflating anything.
int64_t capacity(const ByteSource& src, int64_t header_bytes) {
  return src.gzip() ? src.file_bytes() * kMaxDeflateRatio : src.file_bytes() - header_bytes;
}

}  // namespace

torch::Tensor read_idx(const std::string& path) {
  ByteSource src(path);
  const std::vector<int64_t> dims = read_header(src, path);
  int64_t count = 1;
  for (int64_t d : dims) count *= d;
  const auto truncated = [&](int64_t have) {
    fail(path, "truncated: header declares " + std::to_string(count) + " bytes of data, file has " +
                   std::to_string(have));
  };
  const int64_t header_bytes = 4 + 4 * static_cast<int64_t>(dims.size());
  if (count > capacity(src, header_bytes)) {
    if (!src.gzip()) truncated(src.file_bytes() - header_bytes);
    fail(path, "truncated: header declares " + std::to_string(count) +
                   " bytes of data, more than a gzip file of " + std::to_string(src.file_bytes()) +
                   " bytes can hold");
  }
  torch::Tensor data = torch::empty(dims, torch::kUInt8);
  const size_t got = src.read(data.data_ptr<uint8_t>(), static_cast<size_t>(count));
  if (static_cast<int64_t>(got) < count) truncated(static_cast<int64_t>(got));
  uint8_t extra;
  if (src.read(&extra, 1) > 0) {
    fail(path, "trailing bytes after the " + std::to_string(count) + " bytes of data the header declares");
  }
  if (src.stream_truncated()) fail(path, "truncated gzip stream (it ends before its end marker and CRC)");
  return data;
}

}  // namespace attnvision::datasets
