// JPEG 2000 frames (transfer syntaxes 1.2.840.10008.1.2.4.90-93) through OpenJPEG: free DCMTK has no
// JPEG 2000 codec. The codestream's SIZ marker is read by hand first, so that a frame whose size,
// components or tiling disagree with the data set (or would make OpenJPEG allocate wildly) is refused
// before OpenJPEG sees it.
#include "vision/dicom_detail.h"

#include <openjpeg.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <optional>

namespace attnvision::vision::dicom_detail {
namespace {
using Kind = DicomError::Kind;

struct Siz {
  uint32_t width = 0, height = 0, tiles = 0;
  int components = 0;
  int precision = 0;  // of component 0
  bool subsampled = false;
};

uint32_t be32(const uint8_t* p) {
  return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | p[3];
}
uint16_t be16(const uint8_t* p) { return uint16_t(p[0] << 8 | p[1]); }

// Finds SOC+SIZ (FF4F FF51) at the start of a codestream, or inside a JP2 file's codestream box.
std::optional<Siz> read_siz(const uint8_t* data, size_t size) {
  static const uint8_t marker[4] = {0xFF, 0x4F, 0xFF, 0x51};
  const size_t window = std::min<size_t>(size, 1 << 16);
  const uint8_t* found = std::search(data, data + window, marker, marker + 4);
  if (found == data + window) return std::nullopt;
  const uint8_t* p = found + 4;
  const size_t left = size_t(data + size - p);
  if (left < 38) return std::nullopt;
  const size_t length = be16(p);
  Siz siz;
  const uint32_t x1 = be32(p + 4), y1 = be32(p + 8), x0 = be32(p + 12), y0 = be32(p + 16);
  const uint32_t tw = be32(p + 20), th = be32(p + 24), tx0 = be32(p + 28), ty0 = be32(p + 32);
  siz.components = be16(p + 36);
  if (x1 <= x0 || y1 <= y0 || tw == 0 || th == 0 || tx0 > x0 || ty0 > y0) return std::nullopt;
  siz.width = x1 - x0;
  siz.height = y1 - y0;
  const uint64_t tiles_x = (uint64_t(x1) - tx0 + tw - 1) / tw, tiles_y = (uint64_t(y1) - ty0 + th - 1) / th;
  siz.tiles = uint32_t(std::min<uint64_t>(tiles_x * tiles_y, 0xFFFFFFFFu));
  if (length < 38 + 3u * siz.components || left < 38 + 3u * size_t(siz.components)) return std::nullopt;
  for (int c = 0; c < siz.components; ++c) {
    const uint8_t* comp = p + 38 + 3 * c;
    if (c == 0) siz.precision = (comp[0] & 0x7F) + 1;
    siz.subsampled = siz.subsampled || comp[1] != 1 || comp[2] != 1;
  }
  return siz;
}

struct Reader {
  const uint8_t* data;
  size_t size, pos;
};

OPJ_SIZE_T read_fn(void* buffer, OPJ_SIZE_T bytes, void* user) {
  auto* r = static_cast<Reader*>(user);
  if (r->pos >= r->size) return OPJ_SIZE_T(-1);
  const size_t n = std::min<size_t>(bytes, r->size - r->pos);
  std::memcpy(buffer, r->data + r->pos, n);
  r->pos += n;
  return n;
}
OPJ_OFF_T skip_fn(OPJ_OFF_T bytes, void* user) {
  auto* r = static_cast<Reader*>(user);
  if (bytes < 0) {
    const size_t back = std::min<size_t>(size_t(-bytes), r->pos);
    r->pos -= back;
    return -OPJ_OFF_T(back);
  }
  const size_t n = std::min<size_t>(size_t(bytes), r->size - r->pos);
  r->pos += n;
  return OPJ_OFF_T(n);
}
OPJ_BOOL seek_fn(OPJ_OFF_T to, void* user) {
  auto* r = static_cast<Reader*>(user);
  if (to < 0 || size_t(to) > r->size) return OPJ_FALSE;
  r->pos = size_t(to);
  return OPJ_TRUE;
}

void quiet(const char*, void*) {}
void keep_error(const char* msg, void* user) {
  auto* s = static_cast<std::string*>(user);
  if (s->empty()) {
    *s = msg;
    while (!s->empty() && (s->back() == '\n' || s->back() == ' ')) s->pop_back();
  }
}

struct CodecDeleter {
  void operator()(opj_codec_t* c) const { opj_destroy_codec(c); }
};
struct StreamDeleter {
  void operator()(opj_stream_t* s) const { opj_stream_destroy(s); }
};
struct ImageDeleter {
  void operator()(opj_image_t* i) const { opj_image_destroy(i); }
};

// Largest number of tiles we let OpenJPEG set up (it allocates per-tile state up front).
constexpr uint32_t kMaxTiles = 1u << 16;

}  // namespace

void decode_j2k_frame(const uint8_t* data, size_t size, const J2kExpect& expect, uint8_t* out,
                      const std::string& name, int frame) {
  const std::string what = "JPEG 2000 frame " + std::to_string(frame + 1);
  const std::optional<Siz> siz = read_siz(data, size);
  if (!siz) throw error(Kind::corrupt, name, what + " has no valid SIZ header");
  if (siz->width != uint32_t(expect.columns) || siz->height != uint32_t(expect.rows) ||
      siz->components != expect.samples)
    throw error(Kind::corrupt, name,
                what + " is " + std::to_string(siz->width) + "x" + std::to_string(siz->height) + "x" +
                    std::to_string(siz->components) + " but the data set says " +
                    std::to_string(expect.columns) + "x" + std::to_string(expect.rows) + "x" +
                    std::to_string(expect.samples));
  if (siz->subsampled) throw error(Kind::unsupported, name, what + " has subsampled components");
  if (siz->tiles > kMaxTiles)
    throw error(Kind::too_large, name, what + " has " + std::to_string(siz->tiles) + " tiles");
  if (siz->precision > expect.bits_allocated)
    throw error(Kind::corrupt, name,
                what + " has " + std::to_string(siz->precision) + "-bit samples, more than BitsAllocated " +
                    std::to_string(expect.bits_allocated));

  static const uint8_t jp2_signature[8] = {0, 0, 0, 0x0C, 'j', 'P', ' ', ' '};
  const bool jp2 = size >= 8 && std::memcmp(data, jp2_signature, 8) == 0;
  std::unique_ptr<opj_codec_t, CodecDeleter> codec(
      opj_create_decompress(jp2 ? OPJ_CODEC_JP2 : OPJ_CODEC_J2K));
  if (!codec) throw error(Kind::io, name, "cannot create the OpenJPEG decoder");
  std::string message;
  opj_set_info_handler(codec.get(), quiet, nullptr);
  opj_set_warning_handler(codec.get(), quiet, nullptr);
  opj_set_error_handler(codec.get(), keep_error, &message);
  opj_dparameters_t parameters;
  opj_set_default_decoder_parameters(&parameters);
  if (!opj_setup_decoder(codec.get(), &parameters)) throw error(Kind::io, name, "cannot set up OpenJPEG");

  Reader reader{data, size, 0};
  std::unique_ptr<opj_stream_t, StreamDeleter> stream(opj_stream_create(1 << 16, OPJ_TRUE));
  if (!stream) throw error(Kind::io, name, "cannot create an OpenJPEG stream");
  opj_stream_set_user_data(stream.get(), &reader, nullptr);
  opj_stream_set_user_data_length(stream.get(), size);
  opj_stream_set_read_function(stream.get(), read_fn);
  opj_stream_set_skip_function(stream.get(), skip_fn);
  opj_stream_set_seek_function(stream.get(), seek_fn);

  opj_image_t* raw_image = nullptr;
  if (!opj_read_header(stream.get(), codec.get(), &raw_image))
    throw error(Kind::corrupt, name, what + ": " + (message.empty() ? "unreadable header" : message));
  std::unique_ptr<opj_image_t, ImageDeleter> image(raw_image);
  if (!opj_decode(codec.get(), stream.get(), image.get()) || !opj_end_decompress(codec.get(), stream.get()))
    throw error(Kind::corrupt, name, what + ": " + (message.empty() ? "decoding failed" : message));

  const size_t pixels = size_t(expect.rows) * size_t(expect.columns);
  if (image->numcomps != uint32_t(expect.samples))
    throw error(Kind::corrupt, name, what + " decoded to " + std::to_string(image->numcomps) + " components");
  for (int c = 0; c < expect.samples; ++c) {
    const opj_image_comp_t& comp = image->comps[c];
    if (comp.data == nullptr || size_t(comp.w) * comp.h != pixels)
      throw error(Kind::corrupt, name, what + " decoded to the wrong size");
  }
  // Colour-by-pixel cells holding the codestream's sample values; negative values in two's complement.
  const int bytes = expect.bits_allocated / 8;
  for (int c = 0; c < expect.samples; ++c) {
    const OPJ_INT32* src = image->comps[c].data;
    for (size_t i = 0; i < pixels; ++i) {
      const uint32_t v = static_cast<uint32_t>(src[i]);
      uint8_t* cell = out + (i * size_t(expect.samples) + size_t(c)) * size_t(bytes);
      if (bytes == 1) {
        cell[0] = uint8_t(v);
      } else if (bytes == 2) {
        const uint16_t w = uint16_t(v);
        std::memcpy(cell, &w, 2);
      } else {
        std::memcpy(cell, &v, 4);
      }
    }
  }
}

}  // namespace attnvision::vision::dicom_detail
