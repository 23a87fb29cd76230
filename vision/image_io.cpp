#include "vision/image_io.h"

#include "vision/exif.h"

#include <opencv2/core.hpp>
#include <opencv2/core/utils/logger.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <mutex>

namespace attnvision::vision {

cv::Size ImageInfo::oriented_size() const {
  return orientation_swaps_axes(orientation) ? cv::Size(stored_size.height, stored_size.width) : stored_size;
}

namespace {

// OpenCV refuses a side longer than this by default (CV_IO_MAX_IMAGE_WIDTH / HEIGHT); we refuse it first
// with our own message rather than let imdecode print its complaint on stderr.
constexpr uint64_t kMaxSide = uint64_t{1} << 20;
// A header that needs more than this many bytes to state the dimensions is not one we want to read.
constexpr uint64_t kMaxPnmHeaderBytes = 64 * 1024;

// Paths end up in one-line messages; a control character in a file name must not break the line.
std::string printable(const std::string& path) {
  std::string out = path;
  for (char& c : out) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  }
  return out;
}

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw ImageError(printable(path) + ": " + what);
}

// One line of an OpenCV exception: its short message, not the multi-line what() with source paths.
std::string one_line(std::string s) {
  for (char& c : s) {
    if (c == '\n' || c == '\r' || c == '\t') c = ' ';
  }
  while (!s.empty() && s.back() == ' ') s.pop_back();
  return s;
}

// ---------------------------------------------------------------------------------------------------
// Files

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

// Opens a regular file for reading and returns its size. O_NONBLOCK so that a FIFO cannot hang the
// open; fstat on the descriptor so that what we check is what we read.
int open_regular(const std::string& path, uint64_t* size) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    if (err == ENOENT || err == ENOTDIR) fail(path, "no such file");
    fail(path, std::string("cannot open: ") + std::strerror(err));
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    fail(path, std::string("cannot stat: ") + std::strerror(err));
  }
  if (S_ISDIR(st.st_mode)) {
    ::close(fd);
    fail(path, "is a directory, not an image file");
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    fail(path, "is not a regular file");
  }
  if (st.st_size == 0) {
    ::close(fd);
    fail(path, "file is empty");
  }
  *size = static_cast<uint64_t>(st.st_size);
  return fd;
}

// Header parsers read through this: a block cache over pread, so that walking JPEG segments or PNG
// chunks costs a few system calls, not one per field.
class FileReader : public ByteReader {
 public:
  FileReader(int fd, uint64_t size) : fd_(fd), size_(size) {}
  uint64_t size() const override { return size_; }

  bool read(uint64_t offset, void* dst, size_t n) const override {
    if (offset > size_ || n > size_ - offset) return false;
    auto* out = static_cast<uint8_t*>(dst);
    while (n > 0) {
      if (offset < block_start_ || offset >= block_start_ + block_.size()) load(offset);
      const size_t at = static_cast<size_t>(offset - block_start_);
      const size_t take = std::min(n, block_.size() - at);
      std::memcpy(out, block_.data() + at, take);
      out += take;
      offset += take;
      n -= take;
    }
    return true;
  }

 private:
  void load(uint64_t offset) const {
    constexpr uint64_t kBlock = 64 * 1024;
    block_start_ = offset / kBlock * kBlock;
    block_.resize(static_cast<size_t>(std::min(kBlock, size_ - block_start_)));
    size_t got = 0;
    while (got < block_.size()) {
      const ssize_t r =
          ::pread(fd_, block_.data() + got, block_.size() - got, static_cast<off_t>(block_start_ + got));
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) throw FormatError(std::string("read error: ") + std::strerror(errno));
      if (r == 0) throw FormatError("file shrank while it was being read");
      got += static_cast<size_t>(r);
    }
  }

  int fd_;
  uint64_t size_;
  mutable uint64_t block_start_ = 0;
  mutable std::vector<uint8_t> block_;
};

std::vector<uint8_t> read_whole_file(const std::string& path, int64_t max_bytes) {
  uint64_t size = 0;
  Fd fd(open_regular(path, &size));
  const uint64_t limit = static_cast<uint64_t>(std::clamp<int64_t>(max_bytes, 0, INT_MAX));
  if (size > limit) {
    fail(path, "file is " + std::to_string(size) + " bytes, more than the limit of " + std::to_string(limit));
  }
  std::vector<uint8_t> data(static_cast<size_t>(size));
  size_t got = 0;
  while (got < data.size()) {
    const ssize_t r = ::read(fd.get(), data.data() + got, data.size() - got);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) fail(path, std::string("read error: ") + std::strerror(errno));
    if (r == 0) break;  // the file shrank since fstat: parse what is there
    got += static_cast<size_t>(r);
  }
  data.resize(got);
  return data;
}

// ---------------------------------------------------------------------------------------------------
// Formats and their headers

enum class Format { kJpeg, kPng, kTiff, kBmp, kWebp, kPnm };

const char* format_name(Format f) {
  switch (f) {
    case Format::kJpeg:
      return "JPEG";
    case Format::kPng:
      return "PNG";
    case Format::kTiff:
      return "TIFF";
    case Format::kBmp:
      return "BMP";
    case Format::kWebp:
      return "WebP";
    case Format::kPnm:
      return "PNM";
  }
  return "?";
}

bool starts_with(const uint8_t* p, size_t n, const char* magic, size_t m) {
  return n >= m && std::memcmp(p, magic, m) == 0;
}

// The format from the first bytes; throws FormatError naming formats we recognise but do not read.
Format sniff(const ByteReader& r) {
  std::array<uint8_t, 132> head{};
  const size_t n = static_cast<size_t>(std::min<uint64_t>(head.size(), r.size()));
  r.read_exact(0, head.data(), n, "header");
  const uint8_t* p = head.data();
  if (starts_with(p, n, "\xFF\xD8\xFF", 3)) return Format::kJpeg;
  if (starts_with(p, n, "\x89PNG\r\n\x1A\n", 8)) return Format::kPng;
  if (starts_with(p, n, "II*\0", 4) || starts_with(p, n, "MM\0*", 4) || starts_with(p, n, "II+\0", 4) ||
      starts_with(p, n, "MM\0+", 4)) {
    return Format::kTiff;
  }
  if (starts_with(p, n, "BM", 2)) return Format::kBmp;
  if (n >= 12 && starts_with(p, n, "RIFF", 4) && std::memcmp(p + 8, "WEBP", 4) == 0) return Format::kWebp;
  if (n >= 3 && p[0] == 'P' && p[1] >= '1' && p[1] <= '6' && std::isspace(p[2])) return Format::kPnm;

  const char* known = nullptr;
  if (starts_with(p, n, "GIF8", 4))
    known = "GIF";
  else if (n >= 132 && std::memcmp(p + 128, "DICM", 4) == 0)
    known = "DICOM";
  else if (starts_with(p, n, "\0\0\0\x0CjP  ", 8) || starts_with(p, n, "\xFF\x4F\xFF\x51", 4))
    known = "JPEG 2000";
  else if (n >= 12 && std::memcmp(p + 4, "ftyp", 4) == 0)
    known = "HEIF/AVIF";
  else if (starts_with(p, n, "\x76\x2F\x31\x01", 4))
    known = "OpenEXR";
  else if (starts_with(p, n, "#?RADIANCE", 10) || starts_with(p, n, "#?RGBE", 6))
    known = "Radiance HDR";
  else if (starts_with(p, n, "P7", 2) || starts_with(p, n, "Pf", 2) || starts_with(p, n, "PF", 2))
    known = "PAM/PFM";
  if (known) throw FormatError(std::string("unsupported image format (") + known + ")");
  throw FormatError("unknown image format (not JPEG, PNG, TIFF, BMP, WebP or PNM)");
}

struct Header {
  Format format = Format::kJpeg;
  uint64_t width = 0;
  uint64_t height = 0;
  int orientation = 1;
  bool tiff_unassociated_alpha = false;  // ExtraSamples = 2: libtiff's RGBA path premultiplies it
  int jpeg_components = 0;               // JPEG: 1 gray, 3 YCbCr / RGB, 4 CMYK / YCCK
};

// `full`: also check that the whole file is structurally complete (read_image holds all bytes in memory
// then; read_image_info only reads the header and leaves this off).
struct ParseContext {
  const ByteReader& r;
  bool full;
  const uint8_t* data;  // the whole file when full, else nullptr
  int64_t max_pixels;   // < 0: no limit
};

void check_dimensions(const Header& h, int64_t max_pixels) {
  const std::string dims = std::to_string(h.width) + " x " + std::to_string(h.height);
  if (h.width == 0 || h.height == 0)
    throw FormatError(std::string(format_name(h.format)) + " declares size " + dims);
  if (h.width > kMaxSide || h.height > kMaxSide) {
    throw FormatError("image is " + dims + " pixels; a side longer than " + std::to_string(kMaxSide) +
                      " is not supported");
  }
  const uint64_t pixels = h.width * h.height;  // both <= 2^20: no overflow
  if (max_pixels >= 0 && pixels > static_cast<uint64_t>(max_pixels)) {
    throw FormatError("image is " + dims + " = " + std::to_string(pixels) +
                      " pixels, more than the limit of " + std::to_string(max_pixels));
  }
}

// Each parser calls this as soon as it knows the size, before it walks (or CRCs) the rest of the file.
void size_known(const ParseContext& c, const Header& h) { check_dimensions(h, c.max_pixels); }

int exif_orientation_at(const ByteReader& r, uint64_t offset, uint64_t size) {
  // Some writers put the JPEG-style "Exif\0\0" prefix in front of PNG eXIf / WebP EXIF payloads too.
  uint8_t prefix[6];
  if (size >= 6 && r.read(offset, prefix, 6) && std::memcmp(prefix, "Exif\0\0", 6) == 0) {
    offset += 6;
    size -= 6;
  }
  return exif_orientation(SubReader(r, offset, size));
}

// JPEG: walk the marker segments up to the first scan (SOS): the first SOF gives the size, the first
// APP1 "Exif" block the orientation. libjpeg itself stops at a second SOF, so the first is the one decoded.
void check_jpeg_scans(const ParseContext& c, uint64_t pos);

Header parse_jpeg(const ParseContext& c) {
  const ByteReader& r = c.r;
  Header h;
  h.format = Format::kJpeg;
  bool have_sof = false;
  bool have_exif = false;
  uint64_t pos = 2;
  for (;;) {
    if (r.u8(pos, "JPEG header") != 0xFF) {
      throw FormatError("JPEG header is corrupt (no marker at byte " + std::to_string(pos) + ")");
    }
    while (r.u8(pos, "JPEG header") == 0xFF) ++pos;  // fill bytes
    const uint8_t marker = r.u8(pos, "JPEG header");
    ++pos;
    if (marker == 0x01 || (marker >= 0xD0 && marker <= 0xD8)) continue;  // no length field
    if (marker == 0xD9) throw FormatError("JPEG data ends before its image data");
    const uint16_t len = r.u16be(pos, "JPEG header");
    if (len < 2) throw FormatError("JPEG header is corrupt (segment length " + std::to_string(len) + ")");
    const uint64_t seg = pos + 2;
    const uint64_t seg_len = len - 2u;
    const bool is_sof =
        marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 && marker != 0xCC;
    if (is_sof && !have_sof) {
      if (seg_len < 6) throw FormatError("JPEG frame header is too short");
      h.height = r.u16be(seg + 1, "JPEG frame header");
      h.width = r.u16be(seg + 3, "JPEG frame header");
      h.jpeg_components = r.u8(seg + 5, "JPEG frame header");
      have_sof = true;
      if (h.height == 0) throw FormatError("JPEG declares height 0 (DNL marker), which is not supported");
      size_known(c, h);
    } else if (marker == 0xE1 && !have_exif && seg_len >= 6) {
      uint8_t id[6];
      r.read_exact(seg, id, 6, "JPEG APP1 segment");
      if (std::memcmp(id, "Exif\0\0", 6) == 0) {
        have_exif = true;
        h.orientation = exif_orientation(SubReader(r, seg + 6, std::min(seg_len - 6, r.size() - seg - 6)));
      }
    } else if (marker == 0xDA) {
      if (!have_sof) throw FormatError("JPEG has no frame header (SOF) before its first scan");
      if (c.full) check_jpeg_scans(c, seg + seg_len);
      return h;
    }
    pos = seg + seg_len;
  }
}

// After the first SOS: entropy-coded data, more segments (progressive JPEGs) and finally EOI. Only a
// file that reaches EOI is complete: libjpeg pads a truncated scan with grey and reports success.
void check_jpeg_scans(const ParseContext& c, uint64_t pos) {
  const uint64_t size = c.r.size();
  const uint8_t* d = c.data;
  while (pos < size) {
    const void* ff = std::memchr(d + pos, 0xFF, static_cast<size_t>(size - pos));
    if (!ff) break;
    pos = static_cast<uint64_t>(static_cast<const uint8_t*>(ff) - d) + 1;
    if (pos >= size) break;
    const uint8_t b = d[pos];
    if (b == 0x00 || b == 0xFF || (b >= 0xD0 && b <= 0xD7)) continue;  // stuffed byte, fill, restart
    if (b == 0xD9) return;
    // A segment between scans (DHT, SOS, DQT, DRI, APPn, COM, ...): skip its payload.
    if (pos + 3 > size) break;
    const uint64_t len = uint64_t{d[pos + 1]} << 8 | d[pos + 2];
    if (len < 2) throw FormatError("JPEG data is corrupt (segment length " + std::to_string(len) + ")");
    pos += 1 + len;
  }
  throw FormatError("JPEG data is truncated (no end-of-image marker)");
}

// PNG CRC-32 (ISO 3309, reflected polynomial 0xEDB88320), table driven, eight bytes per step.
class Crc32 {
 public:
  Crc32() {
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      t_[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; ++i) {
      for (int s = 1; s < 8; ++s) t_[s][i] = (t_[s - 1][i] >> 8) ^ t_[0][t_[s - 1][i] & 0xFF];
    }
  }
  uint32_t operator()(const uint8_t* p, size_t n) const {
    uint32_t c = 0xFFFFFFFFu;
    for (; n >= 8; n -= 8, p += 8) {
      const uint32_t lo =
          c ^ (uint32_t{p[0]} | uint32_t{p[1]} << 8 | uint32_t{p[2]} << 16 | uint32_t{p[3]} << 24);
      c = t_[7][lo & 0xFF] ^ t_[6][(lo >> 8) & 0xFF] ^ t_[5][(lo >> 16) & 0xFF] ^ t_[4][lo >> 24] ^
          t_[3][p[4]] ^ t_[2][p[5]] ^ t_[1][p[6]] ^ t_[0][p[7]];
    }
    for (; n > 0; --n, ++p) c = t_[0][(c ^ *p) & 0xFF] ^ (c >> 8);
    return c ^ 0xFFFFFFFFu;
  }

 private:
  uint32_t t_[8][256];
};

bool png_depth_allowed(unsigned color, unsigned depth) {
  switch (color) {
    case 0:
      return depth == 1 || depth == 2 || depth == 4 || depth == 8 || depth == 16;
    case 3:
      return depth == 1 || depth == 2 || depth == 4 || depth == 8;
    case 2:
    case 4:
    case 6:
      return depth == 8 || depth == 16;
    default:
      return false;
  }
}

// PNG: IHDR first, then walk every chunk to IEND (eXIf may sit anywhere). In full mode each chunk's CRC
// is checked: libpng would otherwise print its complaint on stderr and fail, or decode a damaged file.
Header parse_png(const ParseContext& c) {
  static const Crc32 crc;
  const ByteReader& r = c.r;
  Header h;
  h.format = Format::kPng;
  uint8_t ihdr_type[4];
  r.read_exact(12, ihdr_type, 4, "PNG header");
  if (r.u32be(8, "PNG header") != 13 || std::memcmp(ihdr_type, "IHDR", 4) != 0) {
    throw FormatError("PNG does not start with an IHDR chunk");
  }
  h.width = r.u32be(16, "PNG header");
  h.height = r.u32be(20, "PNG header");
  const unsigned depth = r.u8(24, "PNG header");
  const unsigned color = r.u8(25, "PNG header");
  if (!png_depth_allowed(color, depth)) {
    throw FormatError("PNG has an invalid colour type / bit depth (" + std::to_string(color) + " / " +
                      std::to_string(depth) + ")");
  }
  size_known(c, h);
  bool have_exif = false;
  bool have_idat = false;
  uint64_t pos = 8;
  for (;;) {
    uint8_t head[8];
    r.read_exact(pos, head, 8, "PNG data");
    const uint64_t len = uint64_t{head[0]} << 24 | uint64_t{head[1]} << 16 | uint64_t{head[2]} << 8 | head[3];
    if (len > 0x7FFFFFFFu) throw FormatError("PNG chunk length is invalid");
    if (pos + 12 + len > r.size()) throw FormatError("PNG data is truncated");
    const char* type = reinterpret_cast<const char*>(head + 4);
    if (c.full) {
      const uint32_t stored = r.u32be(pos + 8 + len, "PNG data");
      if (crc(c.data + pos + 4, static_cast<size_t>(len + 4)) != stored) {
        throw FormatError("PNG data is corrupt (CRC mismatch in a " + std::string(type, 4) + " chunk)");
      }
    }
    if (std::memcmp(type, "eXIf", 4) == 0 && !have_exif) {
      have_exif = true;
      h.orientation = exif_orientation_at(r, pos + 8, len);
    } else if (std::memcmp(type, "IDAT", 4) == 0) {
      have_idat = true;
    } else if (std::memcmp(type, "IEND", 4) == 0) {
      if (!have_idat) throw FormatError("PNG has no image data (IDAT)");
      return h;
    }
    pos += 12 + len;
  }
}

Header parse_bmp(const ParseContext& c) {
  const ByteReader& r = c.r;
  Header h;
  h.format = Format::kBmp;
  const uint32_t pixel_offset = r.u32le(10, "BMP header");
  const uint32_t info_size = r.u32le(14, "BMP header");
  int64_t width = 0;
  int64_t height = 0;
  unsigned bpp = 0;
  uint32_t compression = 0;
  if (info_size == 12) {  // OS/2 BITMAPCOREHEADER
    width = r.u16le(18, "BMP header");
    height = r.u16le(20, "BMP header");
    bpp = r.u16le(24, "BMP header");
  } else if (info_size >= 16 && info_size <= 124) {
    width = static_cast<int32_t>(r.u32le(18, "BMP header"));
    height = static_cast<int32_t>(r.u32le(22, "BMP header"));
    bpp = r.u16le(28, "BMP header");
    if (info_size >= 20) compression = r.u32le(30, "BMP header");
  } else {
    throw FormatError("BMP info header has an unknown size " + std::to_string(info_size));
  }
  if (width <= 0 || height == 0) {
    throw FormatError("BMP declares an invalid size " + std::to_string(width) + " x " +
                      std::to_string(height));
  }
  h.width = static_cast<uint64_t>(width);
  h.height = static_cast<uint64_t>(height < 0 ? -height : height);  // negative: stored top-down
  size_known(c, h);
  if (bpp != 1 && bpp != 4 && bpp != 8 && bpp != 16 && bpp != 24 && bpp != 32) {
    throw FormatError("BMP has an unsupported bit count " + std::to_string(bpp));
  }
  // OpenCV reads uncompressed, RLE8, RLE4 and bit-field BMPs; anything else would make it throw (and print).
  const bool consistent = compression == 0 || (compression == 1 && bpp == 8) ||
                          (compression == 2 && bpp == 4) || (compression == 3 && (bpp == 16 || bpp == 32));
  if (!consistent) {
    throw FormatError("BMP compression " + std::to_string(compression) + " with " + std::to_string(bpp) +
                      " bits per pixel is not supported");
  }
  const bool uncompressed = compression == 0 || compression == 3;
  if (c.full && uncompressed && h.width <= kMaxSide && h.height <= kMaxSide) {
    const uint64_t stride = (h.width * bpp + 31) / 32 * 4;
    if (uint64_t{pixel_offset} + stride * h.height > r.size())
      throw FormatError("BMP pixel data is truncated");
  }
  return h;
}

uint32_t u24le(const ByteReader& r, uint64_t at, const char* what) {
  uint8_t b[3];
  r.read_exact(at, b, 3, what);
  return uint32_t{b[0]} | uint32_t{b[1]} << 8 | uint32_t{b[2]} << 16;
}

// WebP: RIFF container; the first chunk is VP8 (lossy), VP8L (lossless) or VP8X (extended: canvas
// size, flags, then EXIF among other chunks). libwebp checks that the bitstream matches the canvas.
Header parse_webp(const ParseContext& c) {
  const ByteReader& r = c.r;
  Header h;
  h.format = Format::kWebp;
  const uint64_t riff_end = 8 + uint64_t{r.u32le(4, "WebP header")};
  if (c.full && riff_end > r.size()) throw FormatError("WebP data is truncated");
  const uint64_t end = std::min(riff_end, r.size());
  uint8_t fourcc[4];
  r.read_exact(12, fourcc, 4, "WebP header");
  const uint64_t first_len = r.u32le(16, "WebP header");
  if (20 + first_len > end) throw FormatError("WebP data is truncated");
  if (std::memcmp(fourcc, "VP8 ", 4) == 0) {
    uint8_t b[10];
    r.read_exact(20, b, 10, "WebP VP8 header");
    if ((b[0] & 1) != 0 || b[3] != 0x9D || b[4] != 0x01 || b[5] != 0x2A) {
      throw FormatError("WebP VP8 header is corrupt");
    }
    h.width = (uint64_t{b[6]} | uint64_t{b[7]} << 8) & 0x3FFF;
    h.height = (uint64_t{b[8]} | uint64_t{b[9]} << 8) & 0x3FFF;
  } else if (std::memcmp(fourcc, "VP8L", 4) == 0) {
    if (r.u8(20, "WebP VP8L header") != 0x2F) throw FormatError("WebP VP8L header is corrupt");
    const uint32_t bits = r.u32le(21, "WebP VP8L header");
    h.width = (bits & 0x3FFF) + 1;
    h.height = ((bits >> 14) & 0x3FFF) + 1;
  } else if (std::memcmp(fourcc, "VP8X", 4) == 0) {
    const uint8_t flags = r.u8(20, "WebP VP8X header");
    if (flags & 0x02) throw FormatError("animated WebP is not supported");
    h.width = uint64_t{u24le(r, 24, "WebP VP8X header")} + 1;
    h.height = uint64_t{u24le(r, 27, "WebP VP8X header")} + 1;
    size_known(c, h);
    for (uint64_t pos = 20 + first_len + (first_len & 1); pos + 8 <= end;) {
      r.read_exact(pos, fourcc, 4, "WebP chunk");
      const uint64_t len = r.u32le(pos + 4, "WebP chunk");
      if (pos + 8 + len > end) throw FormatError("WebP data is truncated");
      if (std::memcmp(fourcc, "EXIF", 4) == 0) {
        h.orientation = exif_orientation_at(r, pos + 8, len);
        break;
      }
      pos += 8 + len + (len & 1);
    }
  } else {
    throw FormatError("WebP has an unknown first chunk");
  }
  size_known(c, h);
  return h;
}

// Uncompressed strips must hold all the rows they stand for; libtiff fails on a short one (and OpenCV
// prints that). Header damage such as a wrong width shows up here.
void check_tiff_strips(const TiffIfd& ifd, const Header& h, const std::vector<uint64_t>& counts) {
  const std::vector<uint64_t> bits = ifd.values(kTiffBitsPerSample, 64);
  const uint64_t bits0 = bits.empty() ? 1 : bits[0];
  const uint64_t samples = ifd.value(kTiffSamplesPerPixel, 1);
  if (samples == 0 || samples > 16)
    throw FormatError("TIFF has " + std::to_string(samples) + " samples per pixel");
  const bool planar = ifd.value(kTiffPlanarConfig, 1) == 2;
  const uint64_t rows_per_strip = std::min(ifd.value(kTiffRowsPerStrip, h.height), h.height);
  if (rows_per_strip == 0) throw FormatError("TIFF has 0 rows per strip");
  const uint64_t row_bytes = (h.width * (planar ? 1 : samples) * bits0 + 7) / 8;
  const uint64_t strips_per_plane = (h.height + rows_per_strip - 1) / rows_per_strip;
  if (counts.size() < strips_per_plane * (planar ? samples : 1)) throw FormatError("TIFF has too few strips");
  for (size_t i = 0; i < counts.size(); ++i) {
    const uint64_t first_row = (i % strips_per_plane) * rows_per_strip;
    if (first_row >= h.height) continue;
    if (counts[i] < std::min(rows_per_strip, h.height - first_row) * row_bytes) {
      throw FormatError("TIFF image data is truncated (a strip is shorter than its rows)");
    }
  }
}

// TIFF: IFD0 (the page imdecode reads). Full mode checks that every strip / tile lies inside the file.
Header parse_tiff(const ParseContext& c) {
  const TiffIfd ifd(c.r);
  Header h;
  h.format = Format::kTiff;
  h.width = ifd.value(kTiffImageWidth, 0);
  h.height = ifd.value(kTiffImageLength, 0);
  if (h.width == 0 || h.height == 0) throw FormatError("TIFF declares no image width or length");
  size_known(c, h);
  const uint64_t o = ifd.value(kTiffOrientation, 1);
  h.orientation = o >= 1 && o <= 8 ? static_cast<int>(o) : 1;
  for (uint64_t extra : ifd.values(kTiffExtraSamples, 16)) h.tiff_unassociated_alpha |= extra == 2;
  // What OpenCV's TIFF reader needs, checked here so that it never throws (and prints) for it.
  if (!ifd.has(kTiffPhotometric)) throw FormatError("TIFF has no PhotometricInterpretation tag");
  const uint64_t photometric = ifd.value(kTiffPhotometric, 0);
  for (uint64_t bits : ifd.values(kTiffBitsPerSample, 64)) {
    if (bits == 32 || bits == 64) {
      throw FormatError("unsupported sample type (" + std::to_string(bits) +
                        "-bit samples; only 8- and 16-bit images are read)");
    }
    const bool ok = bits == 1 || bits == 8 || bits == 10 || bits == 12 || bits == 14 || bits == 16 ||
                    (bits == 4 && photometric == 3);
    if (!ok) throw FormatError("TIFF has an unsupported bit depth " + std::to_string(bits));
  }
  if (ifd.value(kTiffSampleFormat, 1) == 3)
    throw FormatError("unsupported sample type (floating-point TIFF)");
  // Only bilevel images may leave BitsPerSample out (it defaults to 1).
  if (!ifd.has(kTiffBitsPerSample) && photometric > 1) throw FormatError("TIFF has no BitsPerSample tag");
  // Compression schemes Debian's libtiff decodes: none, CCITT (2, 3, 4), LZW, JPEG, Deflate, PackBits,
  // LZMA, Zstd, WebP.
  const uint64_t compression = ifd.value(kTiffCompression, 1);
  static const uint64_t kCodecs[] = {1, 2, 3, 4, 5, 7, 8, 32773, 32946, 34925, 50000, 50001};
  if (std::find(std::begin(kCodecs), std::end(kCodecs), compression) == std::end(kCodecs)) {
    throw FormatError("TIFF compression " + std::to_string(compression) + " is not supported");
  }
  if (c.full) {
    const bool tiled = ifd.has(kTiffTileOffsets);
    // values() checks the counts against the bytes present before it allocates.
    const std::vector<uint64_t> offsets =
        ifd.values(tiled ? kTiffTileOffsets : kTiffStripOffsets, UINT32_MAX);
    const std::vector<uint64_t> counts =
        ifd.values(tiled ? kTiffTileByteCounts : kTiffStripByteCounts, UINT32_MAX);
    if (offsets.empty()) throw FormatError("TIFF has no image data offsets");
    if (counts.size() == offsets.size()) {
      for (size_t i = 0; i < offsets.size(); ++i) {
        if (offsets[i] > c.r.size() || counts[i] > c.r.size() - offsets[i]) {
          throw FormatError("TIFF image data is truncated");
        }
      }
      if (!tiled && ifd.value(kTiffCompression, 1) == 1) check_tiff_strips(ifd, h, counts);
    }
  }
  return h;
}

// Plain (ASCII) PNM: `samples` decimal numbers after the header (for P1 single '0' / '1' characters,
// which need no separator), with whitespace and '#' comments between them.
void check_plain_pnm(const uint8_t* d, uint64_t size, uint64_t pos, uint64_t samples, bool bits) {
  uint64_t found = 0;
  while (found < samples) {
    if (pos >= size) throw FormatError("PNM pixel data is truncated");
    const uint8_t ch = d[pos];
    if (ch == '#') {
      while (pos < size && d[pos] != '\n') ++pos;
    } else if (std::isspace(ch)) {
      ++pos;
    } else if (bits ? (ch == '0' || ch == '1') : std::isdigit(ch) != 0) {
      ++found;
      ++pos;
      while (!bits && pos < size && std::isdigit(d[pos])) ++pos;
    } else {
      throw FormatError("PNM pixel data is corrupt");
    }
  }
}

// PNM: "P1".."P6", then width, height and (except for bitmaps) maxval as decimal tokens separated by
// whitespace and '#' comments; binary variants have exactly one whitespace byte before the pixels.
Header parse_pnm(const ParseContext& c) {
  const ByteReader& r = c.r;
  Header h;
  h.format = Format::kPnm;
  const int kind = r.u8(1, "PNM header") - '0';
  const bool bitmap = kind == 1 || kind == 4;
  uint64_t pos = 2;
  auto token = [&]() -> uint64_t {
    for (;;) {
      if (pos >= kMaxPnmHeaderBytes) throw FormatError("PNM header is too long");
      const uint8_t ch = r.u8(pos, "PNM header");
      if (ch == '#') {
        while (r.u8(pos, "PNM header") != '\n') {
          if (++pos >= kMaxPnmHeaderBytes) throw FormatError("PNM header is too long");
        }
      } else if (std::isspace(ch)) {
        ++pos;
      } else {
        break;
      }
    }
    uint64_t v = 0;
    int digits = 0;
    for (uint8_t ch; pos < r.size() && std::isdigit(ch = r.u8(pos, "PNM header")); ++pos, ++digits) {
      v = v * 10 + (ch - '0');
      if (v > UINT32_MAX) throw FormatError("PNM header holds an absurd number");
    }
    if (digits == 0) throw FormatError("PNM header is corrupt");
    return v;
  };
  h.width = token();
  h.height = token();
  const uint64_t maxval = bitmap ? 1 : token();
  if (maxval == 0 || maxval > 65535)
    throw FormatError("PNM maxval " + std::to_string(maxval) + " is invalid");
  if (h.width == 0 || h.height == 0) throw FormatError("PNM declares a zero width or height");
  size_known(c, h);
  if (!c.full) return h;
  const uint64_t samples = h.width * h.height * (kind == 3 || kind == 6 ? 3 : 1);
  if (kind >= 4) {
    const uint64_t bytes = kind == 4 ? (h.width + 7) / 8 * h.height : samples * (maxval > 255 ? 2 : 1);
    if (pos + 1 + bytes > r.size()) throw FormatError("PNM pixel data is truncated");
  } else {
    check_plain_pnm(c.data, r.size(), pos, samples, kind == 1);
  }
  return h;
}

Header parse_header(const ParseContext& c) {
  switch (sniff(c.r)) {
    case Format::kJpeg:
      return parse_jpeg(c);
    case Format::kPng:
      return parse_png(c);
    case Format::kTiff:
      return parse_tiff(c);
    case Format::kBmp:
      return parse_bmp(c);
    case Format::kWebp:
      return parse_webp(c);
    case Format::kPnm:
      return parse_pnm(c);
  }
  throw FormatError("unknown image format");
}

// ---------------------------------------------------------------------------------------------------
// Decoding

// OpenCV's logger would otherwise print warnings (e.g. from its TIFF reader) for inputs we report
// ourselves. Respect a level the user chose through OPENCV_LOG_LEVEL.
void quiet_opencv_logging() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (std::getenv("OPENCV_LOG_LEVEL") == nullptr &&
        cv::utils::logging::getLogLevel() > cv::utils::logging::LOG_LEVEL_ERROR) {
      cv::utils::logging::setLogLevel(cv::utils::logging::LOG_LEVEL_ERROR);
    }
  });
}

// libtiff's RGBA interface (used by OpenCV for 8-bit TIFF) premultiplies unassociated alpha; undo it.
void unpremultiply_rgba8(cv::Mat& rgba) {
  for (int y = 0; y < rgba.rows; ++y) {
    uint8_t* p = rgba.ptr<uint8_t>(y);
    for (int x = 0; x < rgba.cols; ++x, p += 4) {
      const unsigned a = p[3];
      if (a == 0 || a == 255) continue;
      for (int k = 0; k < 3; ++k) p[k] = static_cast<uint8_t>(std::min(255u, (p[k] * 255u + a / 2) / a));
    }
  }
}

// Swaps the first and third channel of every pixel, in place: no second full-size buffer (fresh pages
// are what a large decode mostly pays for).
template <typename T>
void swap_red_blue(cv::Mat& m) {
  const int n = m.channels();
  for (int y = 0; y < m.rows; ++y) {
    T* p = m.ptr<T>(y);
    for (int x = 0; x < m.cols; ++x, p += n) std::swap(p[0], p[2]);
  }
}

// OpenCV's channel order to ours; gray + alpha and other 2-channel results become RGBA.
cv::Mat to_rgb_order(cv::Mat m) {
  switch (m.channels()) {
    case 1:
      return m;
    case 2: {
      cv::Mat planes[2];
      cv::split(m, planes);
      const cv::Mat rgba[4] = {planes[0], planes[0], planes[0], planes[1]};
      cv::Mat out;
      cv::merge(rgba, 4, out);
      return out;
    }
    case 3:
    case 4:
      if (m.depth() == CV_8U)
        swap_red_blue<uint8_t>(m);
      else
        swap_red_blue<uint16_t>(m);
      return m;
    default:
      throw FormatError("decoder returned " + std::to_string(m.channels()) + " channels");
  }
}

// libjpeg's DCT-domain scale for a JPEG whose result (oriented when the options say so) must stay at least
// `at_least` in both sides, by Pillow's Image.draft rule: the largest d of 8, 4 and 2 with floor(side / d) >=
// at_least on both sides, else 1. Always 1 for other formats, for CMYK / YCCK JPEGs (their conversion stays on
// the exact path) and for an empty `at_least`.
// The size read_image returns for this header: the stored size, its sides swapped when the options apply an
// EXIF orientation that turns the picture by 90 degrees.
cv::Size returned_size(const Header& h, const ImageReadOptions& options) {
  const cv::Size stored(static_cast<int>(h.width), static_cast<int>(h.height));
  return options.apply_exif_orientation && orientation_swaps_axes(h.orientation) ? cv::Size(stored.height, stored.width)
                                                                                 : stored;
}

int jpeg_scale_denominator(const Header& h, cv::Size at_least, const ImageReadOptions& options) {
  if (h.format != Format::kJpeg || at_least.width <= 0 || at_least.height <= 0) return 1;
  if (h.jpeg_components != 1 && h.jpeg_components != 3) return 1;
  const cv::Size shown = returned_size(h, options);
  for (const int d : {8, 4, 2})
    if (shown.width / d >= at_least.width && shown.height / d >= at_least.height) return d;
  return 1;
}

// imdecode's flags for a JPEG decoded at 1 / `denominator` of its size (the orientation is ours to apply).
int reduced_jpeg_flags(const Header& h, int denominator) {
  const bool gray = h.jpeg_components == 1;
  int flags = 0;
  switch (denominator) {
    case 2: flags = gray ? cv::IMREAD_REDUCED_GRAYSCALE_2 : cv::IMREAD_REDUCED_COLOR_2; break;
    case 4: flags = gray ? cv::IMREAD_REDUCED_GRAYSCALE_4 : cv::IMREAD_REDUCED_COLOR_4; break;
    case 8: flags = gray ? cv::IMREAD_REDUCED_GRAYSCALE_8 : cv::IMREAD_REDUCED_COLOR_8; break;
    default: throw std::logic_error("reduced_jpeg_flags: denominator " + std::to_string(denominator));
  }
  return flags | cv::IMREAD_IGNORE_ORIENTATION;
}

// `denominator` > 1 (JPEG only): libjpeg decodes at that fraction of the size, ceil(side / denominator).
cv::Mat decode(const std::vector<uint8_t>& data, const Header& h, const ImageReadOptions& options, int denominator = 1) {
  quiet_opencv_logging();
  // imdecode never writes to its input; the Mat only wraps our buffer.
  const cv::Mat buf(1, static_cast<int>(data.size()), CV_8UC1, const_cast<uint8_t*>(data.data()));
  cv::Mat m;
  try {
    m = cv::imdecode(buf, denominator == 1 ? cv::IMREAD_UNCHANGED : reduced_jpeg_flags(h, denominator));
  } catch (const cv::Exception& e) {
    throw FormatError(std::string("cannot decode ") + format_name(h.format) + " data: " + one_line(e.err));
  }
  if (m.empty()) {
    throw FormatError(std::string("cannot decode ") + format_name(h.format) +
                      " data (corrupt, or a variant the decoder does not support)");
  }
  if (m.depth() != CV_8U && m.depth() != CV_16U) {
    throw FormatError(std::string("unsupported sample type ") + cv::typeToString(m.type()) +
                      " (only 8- and 16-bit unsigned images are read)");
  }
  // OpenCV's TIFF reader applies the orientation itself; the other readers leave it to us.
  const bool decoder_oriented = h.format == Format::kTiff;
  const uint64_t d = static_cast<uint64_t>(denominator);
  cv::Size expected(static_cast<int>((h.width + d - 1) / d), static_cast<int>((h.height + d - 1) / d));
  if (decoder_oriented && orientation_swaps_axes(h.orientation))
    expected = cv::Size(expected.height, expected.width);
  if (m.size() != expected) {
    throw FormatError("decoded size " + std::to_string(m.cols) + " x " + std::to_string(m.rows) +
                      " differs from the header's " + std::to_string(h.width) + " x " +
                      std::to_string(h.height) + (d > 1 ? " at 1/" + std::to_string(d) + " scale" : ""));
  }
  cv::Mat out = to_rgb_order(m);
  if (h.format == Format::kTiff && h.tiff_unassociated_alpha && out.type() == CV_8UC4)
    unpremultiply_rgba8(out);
  if (decoder_oriented && !options.apply_exif_orientation) {
    out = apply_exif_orientation(out, inverse_exif_orientation(h.orientation));
  } else if (!decoder_oriented && options.apply_exif_orientation) {
    out = apply_exif_orientation(out, h.orientation);
  }
  return out;
}

}  // namespace

cv::Mat read_image(const std::string& path, const ImageReadOptions& options) {
  return read_image_reduced(path, cv::Size(), nullptr, options);
}

cv::Mat read_image_reduced(const std::string& path, cv::Size at_least, cv::Size* full_size,
                           const ImageReadOptions& options) {
  const std::vector<uint8_t> data = read_whole_file(path, options.max_file_bytes);
  try {
    const MemoryReader reader(data.data(), data.size());
    const Header h = parse_header(ParseContext{reader, true, data.data(), options.max_pixels});
    if (full_size) *full_size = returned_size(h, options);
    return decode(data, h, options, jpeg_scale_denominator(h, at_least, options));
  } catch (const FormatError& e) {
    fail(path, e.what());
  } catch (const std::bad_alloc&) {
    fail(path, "out of memory while decoding");
  } catch (const cv::Exception& e) {
    fail(path, "OpenCV error: " + one_line(e.err));
  }
}

ImageInfo read_image_info(const std::string& path) {
  uint64_t size = 0;
  Fd fd(open_regular(path, &size));
  try {
    const FileReader reader(fd.get(), size);
    const Header h = parse_header(ParseContext{reader, false, nullptr, -1});
    return ImageInfo{format_name(h.format), cv::Size(static_cast<int>(h.width), static_cast<int>(h.height)),
                     h.orientation};
  } catch (const FormatError& e) {
    fail(path, e.what());
  }
}

cv::Size read_image_size(const std::string& path) { return read_image_info(path).oriented_size(); }

const std::vector<std::string>& image_extensions() {
  static const std::vector<std::string> ext{".jpg", ".jpeg", ".png", ".tif", ".tiff",
                                            ".bmp", ".webp", ".ppm", ".pgm", ".pnm"};
  return ext;
}

bool has_image_extension(const std::string& path) {
  const size_t dot = path.find_last_of('.');
  const size_t slash = path.find_last_of('/');
  if (dot == std::string::npos || (slash != std::string::npos && dot < slash)) return false;
  std::string ext = path.substr(dot);
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char ch) { return std::tolower(ch); });
  const auto& all = image_extensions();
  return std::find(all.begin(), all.end(), ext) != all.end();
}

}  // namespace attnvision::vision
