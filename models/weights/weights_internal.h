// Internals shared by weights.cpp (safetensors, public API) and torch_zip.cpp (torch.save
// zips); not part of the models API.
#pragma once

#include "models/weights/weights.h"

#include <c10/util/ArrayRef.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace attnvision::models::weights_internal {

constexpr size_t kMaxDims = 64;  // tensor rank accepted from a file

[[noreturn]] void fail(const std::string& path, const std::string& problem);
// A string from the file, made safe for a one-line error message: control bytes become '?', and
// long names are cut.
std::string printable(std::string_view s, size_t max_len = 96);
// The first line of an exception message from a library (c10 errors append a backtrace).
std::string first_line(const char* what);
std::string format_shape(c10::IntArrayRef shape);

inline uint16_t le16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }
inline uint32_t le32(const uint8_t* p) { return le16(p) | (static_cast<uint32_t>(le16(p + 2)) << 16); }
inline uint64_t le64(const uint8_t* p) { return le32(p) | (static_cast<uint64_t>(le32(p + 4)) << 32); }

// The file, mapped once. Tensors that view it hold a shared_ptr, so it lives as long as they do.
class Mapping {
 public:
  // Opens and maps a regular, non-empty file; anything else is a WeightsError naming it.
  static std::shared_ptr<Mapping> open(const std::string& path);
  ~Mapping();
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  Mapping(std::string path, uint8_t* data, size_t size) : path_(std::move(path)), data_(data), size_(size) {}
  std::string path_;
  uint8_t* data_;
  size_t size_;
};

// A tensor over `nbytes` of the mapping at `offset`, sharing its memory. Only when the bytes are
// not aligned to the element size (legal in safetensors) is the tensor copied.
torch::Tensor tensor_over(const std::shared_ptr<Mapping>& map, size_t offset, size_t nbytes,
                          const std::vector<int64_t>& shape, torch::ScalarType dtype);
// torch.bool tensors whose bytes are not 0 or 1 break kernels; they are checked like any input.
void check_bool_bytes(const std::string& path, const std::string& what, const uint8_t* p, size_t n);

// A torch.save zip (the mapping starts with the zip magic) -> its state_dict.
TensorFile parse_torch_zip(const std::shared_ptr<Mapping>& map);

}  // namespace attnvision::models::weights_internal
