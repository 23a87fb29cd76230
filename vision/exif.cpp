#include "vision/exif.h"

#include <opencv2/core.hpp>

#include <cstring>

namespace attnvision::vision {

void ByteReader::read_exact(uint64_t offset, void* dst, size_t n, const char* what) const {
  if (!read(offset, dst, n)) throw FormatError(std::string(what) + " is truncated");
}

uint8_t ByteReader::u8(uint64_t offset, const char* what) const {
  uint8_t b = 0;
  read_exact(offset, &b, 1, what);
  return b;
}

uint16_t ByteReader::u16be(uint64_t offset, const char* what) const {
  uint8_t b[2];
  read_exact(offset, b, 2, what);
  return static_cast<uint16_t>(b[0] << 8 | b[1]);
}

uint32_t ByteReader::u32be(uint64_t offset, const char* what) const {
  uint8_t b[4];
  read_exact(offset, b, 4, what);
  return uint32_t{b[0]} << 24 | uint32_t{b[1]} << 16 | uint32_t{b[2]} << 8 | b[3];
}

uint16_t ByteReader::u16le(uint64_t offset, const char* what) const {
  uint8_t b[2];
  read_exact(offset, b, 2, what);
  return static_cast<uint16_t>(b[1] << 8 | b[0]);
}

uint32_t ByteReader::u32le(uint64_t offset, const char* what) const {
  uint8_t b[4];
  read_exact(offset, b, 4, what);
  return uint32_t{b[3]} << 24 | uint32_t{b[2]} << 16 | uint32_t{b[1]} << 8 | b[0];
}

SubReader::SubReader(const ByteReader& base, uint64_t begin, uint64_t size)
    : base_(base), begin_(begin), size_(size) {}

bool SubReader::read(uint64_t offset, void* dst, size_t n) const {
  if (offset > size_ || n > size_ - offset) return false;
  return base_.read(begin_ + offset, dst, n);
}

bool MemoryReader::read(uint64_t offset, void* dst, size_t n) const {
  if (offset > size_ || n > size_ - offset) return false;
  if (n) std::memcpy(dst, data_ + offset, n);
  return true;
}

namespace {
// Bytes per value of the integer TIFF field types; 0 for the types we do not read as integers.
unsigned tiff_type_size(uint16_t type) {
  switch (type) {
    case 1:
      return 1;  // BYTE
    case 3:
      return 2;  // SHORT
    case 4:
      return 4;  // LONG
    case 13:
      return 4;  // IFD
    case 16:
      return 8;  // LONG8 (BigTIFF)
    case 18:
      return 8;  // IFD8 (BigTIFF)
    default:
      return 0;
  }
}
}  // namespace

uint64_t TiffIfd::read_uint(uint64_t offset, unsigned n) const {
  uint8_t b[8];
  bytes_.read_exact(offset, b, n, "TIFF structure");
  uint64_t v = 0;
  for (unsigned i = 0; i < n; ++i) v |= uint64_t{b[little_endian_ ? i : n - 1 - i]} << (8 * i);
  return v;
}

TiffIfd::TiffIfd(const ByteReader& bytes) : bytes_(bytes) {
  uint8_t order[2];
  bytes_.read_exact(0, order, 2, "TIFF header");
  if (order[0] == 'I' && order[1] == 'I') {
    little_endian_ = true;
  } else if (order[0] == 'M' && order[1] == 'M') {
    little_endian_ = false;
  } else {
    throw FormatError("TIFF header has no byte-order mark");
  }
  const uint64_t version = read_uint(2, 2);
  uint64_t ifd = 0;
  if (version == 42) {
    ifd = read_uint(4, 4);
  } else if (version == 43) {
    if (read_uint(4, 2) != 8) throw FormatError("BigTIFF header has an unsupported offset size");
    big_tiff_ = true;
    ifd = read_uint(8, 8);
  } else {
    throw FormatError("TIFF header has an unknown version " + std::to_string(version));
  }
  const unsigned count_bytes = big_tiff_ ? 8 : 2;
  const unsigned entry_bytes = big_tiff_ ? 20 : 12;
  const unsigned field_bytes = big_tiff_ ? 8 : 4;
  const uint64_t n = read_uint(ifd, count_bytes);
  // Check the whole directory against the data before reserving room for it.
  const uint64_t first = ifd + count_bytes;
  // The entries and the next-IFD offset after them must be present (libtiff reads both).
  if (first > bytes_.size() || n > (bytes_.size() - first) / entry_bytes ||
      first + n * entry_bytes + field_bytes > bytes_.size()) {
    throw FormatError("TIFF directory is truncated");
  }
  entries_.reserve(static_cast<size_t>(n));
  for (uint64_t i = 0; i < n; ++i) {
    const uint64_t at = first + i * entry_bytes;
    Entry e{};
    e.tag = static_cast<uint16_t>(read_uint(at, 2));
    e.type = static_cast<uint16_t>(read_uint(at + 2, 2));
    e.count = read_uint(at + 4, big_tiff_ ? 8 : 4);
    e.inline_offset = at + 4 + (big_tiff_ ? 8 : 4);
    e.value_offset = read_uint(e.inline_offset, field_bytes);
    entries_.push_back(e);
  }
}

const TiffIfd::Entry* TiffIfd::find(uint16_t tag) const {
  for (const Entry& e : entries_) {
    if (e.tag == tag) return &e;
  }
  return nullptr;
}

bool TiffIfd::has(uint16_t tag) const { return find(tag) != nullptr; }

std::vector<uint64_t> TiffIfd::values(uint16_t tag, uint64_t max_count) const {
  const Entry* e = find(tag);
  if (!e) return {};
  const std::string name = "TIFF tag " + std::to_string(tag);
  const unsigned size = tiff_type_size(e->type);
  if (size == 0) throw FormatError(name + " has the unexpected type " + std::to_string(e->type));
  if (e->count > max_count) {
    throw FormatError(name + " holds " + std::to_string(e->count) + " values, more than the " +
                      std::to_string(max_count) + " expected");
  }
  if (e->count > bytes_.size() / size) throw FormatError(name + " points outside the file");
  const uint64_t total = e->count * size;
  const uint64_t at = total <= (big_tiff_ ? 8u : 4u) ? e->inline_offset : e->value_offset;
  if (at > bytes_.size() || total > bytes_.size() - at) throw FormatError(name + " points outside the file");
  std::vector<uint64_t> out(static_cast<size_t>(e->count));
  for (uint64_t i = 0; i < e->count; ++i) out[static_cast<size_t>(i)] = read_uint(at + i * size, size);
  return out;
}

uint64_t TiffIfd::value(uint16_t tag, uint64_t fallback) const {
  const std::vector<uint64_t> v = values(tag, 1);
  return v.empty() ? fallback : v[0];
}

int exif_orientation(const ByteReader& tiff_block) {
  try {
    const uint64_t o = TiffIfd(tiff_block).value(kTiffOrientation, 1);
    return o >= 1 && o <= 8 ? static_cast<int>(o) : 1;
  } catch (const FormatError&) {
    return 1;
  }
}

cv::Mat apply_exif_orientation(const cv::Mat& image, int orientation) {
  cv::Mat out;
  switch (orientation) {
    case 2:
      cv::flip(image, out, 1);
      break;
    case 3:
      cv::rotate(image, out, cv::ROTATE_180);
      break;
    case 4:
      cv::flip(image, out, 0);
      break;
    case 5:
      cv::transpose(image, out);
      break;
    case 6:
      cv::rotate(image, out, cv::ROTATE_90_CLOCKWISE);
      break;
    case 7: {
      cv::Mat turned;
      cv::rotate(image, turned, cv::ROTATE_180);
      cv::transpose(turned, out);
      break;
    }
    case 8:
      cv::rotate(image, out, cv::ROTATE_90_COUNTERCLOCKWISE);
      break;
    default:
      return image;
  }
  return out;
}

int inverse_exif_orientation(int orientation) {
  if (orientation == 6) return 8;
  if (orientation == 8) return 6;
  return orientation;
}

}  // namespace attnvision::vision
