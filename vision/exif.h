// TIFF-structured metadata shared by TIFF files and EXIF blocks (JPEG APP1, PNG eXIf, WebP EXIF): a
// bounds-checked reader of the first IFD, the EXIF orientation tag and the pixel transform it asks for.
// Everything here reads untrusted bytes: no read goes past the data, and counts are checked against the
// bytes present before anything is allocated.
#pragma once

#include <opencv2/core/mat.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace attnvision::vision {

// A problem with the structure of a file's bytes; read_image turns it into an ImageError naming the file.
class FormatError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Random access to a file's bytes, in memory or on disk, so header parsers serve both read_image (which
// holds the whole file) and read_image_size (which reads only the few header bytes it needs).
class ByteReader {
 public:
  virtual ~ByteReader() = default;
  virtual uint64_t size() const = 0;
  // Copies n bytes at offset into dst; false when [offset, offset + n) is not inside the data.
  virtual bool read(uint64_t offset, void* dst, size_t n) const = 0;

  // Helpers that throw FormatError(what + " is truncated") instead of returning false.
  void read_exact(uint64_t offset, void* dst, size_t n, const char* what) const;
  uint8_t u8(uint64_t offset, const char* what) const;
  uint16_t u16be(uint64_t offset, const char* what) const;
  uint32_t u32be(uint64_t offset, const char* what) const;
  uint16_t u16le(uint64_t offset, const char* what) const;
  uint32_t u32le(uint64_t offset, const char* what) const;
};

// A window [begin, begin + size) of another reader (e.g. the EXIF block inside a JPEG), addressed from 0.
class SubReader : public ByteReader {
 public:
  SubReader(const ByteReader& base, uint64_t begin, uint64_t size);
  uint64_t size() const override { return size_; }
  bool read(uint64_t offset, void* dst, size_t n) const override;

 private:
  const ByteReader& base_;
  uint64_t begin_;
  uint64_t size_;
};

class MemoryReader : public ByteReader {
 public:
  MemoryReader(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  uint64_t size() const override { return size_; }
  bool read(uint64_t offset, void* dst, size_t n) const override;

 private:
  const uint8_t* data_;
  size_t size_;
};

// TIFF tags this project reads.
enum TiffTag : uint16_t {
  kTiffImageWidth = 256,
  kTiffImageLength = 257,
  kTiffBitsPerSample = 258,
  kTiffCompression = 259,
  kTiffPhotometric = 262,
  kTiffStripOffsets = 273,
  kTiffOrientation = 274,
  kTiffSamplesPerPixel = 277,
  kTiffRowsPerStrip = 278,
  kTiffStripByteCounts = 279,
  kTiffPlanarConfig = 284,
  kTiffTileOffsets = 324,
  kTiffTileByteCounts = 325,
  kTiffExtraSamples = 338,
  kTiffSampleFormat = 339,
};

// The first IFD (image file directory) of a TIFF structure: classic TIFF ("II*\0" / "MM\0*") or BigTIFF.
class TiffIfd {
 public:
  // Parses the header and the first IFD; throws FormatError when the structure is broken.
  explicit TiffIfd(const ByteReader& bytes);

  bool has(uint16_t tag) const;
  // The unsigned integer values (BYTE, SHORT, LONG, LONG8) of a tag. Throws FormatError when the tag
  // holds more than max_count values, when its values lie outside the data, or when it has another type.
  std::vector<uint64_t> values(uint16_t tag, uint64_t max_count) const;
  // The single value of a tag, or `fallback` when the tag is absent.
  uint64_t value(uint16_t tag, uint64_t fallback) const;

 private:
  struct Entry {
    uint16_t tag;
    uint16_t type;
    uint64_t count;
    uint64_t inline_offset;  // where the value field sits; values live there when they fit
    uint64_t value_offset;   // where they live otherwise
  };
  const Entry* find(uint16_t tag) const;
  uint64_t read_uint(uint64_t offset, unsigned bytes) const;

  const ByteReader& bytes_;
  bool little_endian_ = true;
  bool big_tiff_ = false;
  std::vector<Entry> entries_;
};

// The EXIF orientation (1..8) of a TIFF-structured EXIF block; 1 when absent, unreadable or out of range
// (a broken EXIF block is common in the wild and must not cost the picture).
int exif_orientation(const ByteReader& tiff_block);

// Turns the stored pixels into the displayed ones for an EXIF orientation (EXIF 2.32, tag 0x0112):
// 2 mirror left-right, 3 rotate 180, 4 mirror top-bottom, 5 transpose, 6 rotate 90 clockwise,
// 7 transverse, 8 rotate 90 counter-clockwise. Orientation 1 or an invalid value returns `image` itself.
cv::Mat apply_exif_orientation(const cv::Mat& image, int orientation);

// The orientation whose transform undoes `orientation` (6 and 8 swap; the others undo themselves).
int inverse_exif_orientation(int orientation);

// True for orientations 5..8, which swap width and height.
inline bool orientation_swaps_axes(int orientation) { return orientation >= 5 && orientation <= 8; }

}  // namespace attnvision::vision
