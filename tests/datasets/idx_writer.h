// Test helpers: IDX files written byte by byte (raw, or gzip through zlib's own writer), so the reader is
// checked against an independent encoder.
#pragma once

#include <zlib.h>

#include <cstdint>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace attnvision::datasets::testing {

using Bytes = std::string;

// Magic (0, 0, type, rank), big-endian dims, then the payload as given (it may disagree with the dims).
inline Bytes idx_bytes(const std::vector<uint32_t>& dims, const Bytes& payload, uint8_t type = 0x08) {
  Bytes b{'\0', '\0', static_cast<char>(type), static_cast<char>(dims.size())};
  for (uint32_t d : dims) {
    for (int shift = 24; shift >= 0; shift -= 8) b.push_back(static_cast<char>((d >> shift) & 0xff));
  }
  return b + payload;
}

// n bytes of a fixed pattern that uses every byte value.
inline Bytes pattern_bytes(size_t n) {
  Bytes b(n, '\0');
  for (size_t i = 0; i < n; ++i) b[i] = static_cast<char>((i * 37 + i / 251) & 0xff);
  return b;
}

inline void write_file(const std::string& path, const Bytes& bytes) {
  std::ofstream(path, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

inline Bytes read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// One gzip member holding `bytes` (gzwrite: what gzip(1) writes, with name-less header).
inline void write_gzip(const std::string& path, const Bytes& bytes) {
  gzFile f = gzopen(path.c_str(), "wb9");
  if (!f) throw std::runtime_error("gzopen failed: " + path);
  const int n = gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size()));
  gzclose(f);
  if (n != static_cast<int>(bytes.size())) throw std::runtime_error("gzwrite failed: " + path);
}

// The gzip encoding of `bytes`, via a scratch file.
inline Bytes gzip_bytes(const std::string& scratch_path, const Bytes& bytes) {
  write_gzip(scratch_path, bytes);
  return read_file(scratch_path);
}

}  // namespace attnvision::datasets::testing
