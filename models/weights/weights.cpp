// Weights I/O: the public API, safetensors read/write, load_state_dict and checkpoints. torch.save
// zips are read by torch_zip.cpp.
#include "models/weights/weights.h"

#include "models/weights/weights_internal.h"
#include "vision/files/atomic_write.h"

#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

// Tensor bytes are used in place, and both formats store them little-endian.
#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "models/weights/weights.cpp maps little-endian tensor bytes directly; a big-endian host needs byte swapping"
#endif

namespace attnvision::models {
namespace weights_internal {

std::string printable(std::string_view s, size_t max_len) {
  std::string out;
  for (char c : s.substr(0, max_len)) {
    auto u = static_cast<unsigned char>(c);
    out += (u < 0x20 || u == 0x7f) ? '?' : c;
  }
  if (s.size() > max_len) out += "...";
  return out;
}

std::string first_line(const char* what) {
  std::string_view s(what);
  return printable(s.substr(0, s.find('\n')), 240);
}

void fail(const std::string& path, const std::string& problem) { throw WeightsError(path + ": " + problem); }

std::string format_shape(c10::IntArrayRef shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

Mapping::~Mapping() { ::munmap(data_, size_); }

std::shared_ptr<Mapping> Mapping::open(const std::string& path) {
  // O_NONBLOCK: opening a FIFO must not hang; it is rejected below as not a regular file.
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0)
    fail(path, errno == ENOENT ? "no such file" : "cannot open (" + std::string(std::strerror(errno)) + ")");
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    fail(path, "cannot stat (" + std::string(std::strerror(err)) + ")");
  }
  auto reject = [&](const char* why) {
    ::close(fd);
    fail(path, why);
  };
  if (S_ISDIR(st.st_mode)) reject("is a directory, not a weights file");
  if (!S_ISREG(st.st_mode)) reject("is not a regular file");
  if (st.st_size == 0) reject("empty file");
  auto size = static_cast<size_t>(st.st_size);
  // Private and writable: copy-on-write, so an in-place op on a loaded tensor changes only our
  // copy of that page, never the file, and never faults on a read-only page.
  void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
  int err = errno;
  ::close(fd);
  if (p == MAP_FAILED) fail(path, "cannot map (" + std::string(std::strerror(err)) + ")");
  return std::shared_ptr<Mapping>(new Mapping(path, static_cast<uint8_t*>(p), size));
}

torch::Tensor tensor_over(const std::shared_ptr<Mapping>& map, size_t offset, size_t nbytes,
                          const std::vector<int64_t>& shape, torch::ScalarType dtype) {
  auto options = torch::TensorOptions().dtype(dtype);
  uint8_t* p = const_cast<uint8_t*>(map->data()) + offset;
  if (reinterpret_cast<uintptr_t>(p) % c10::elementSize(dtype) != 0) {
    auto t = torch::empty(shape, options);
    if (nbytes) std::memcpy(t.data_ptr(), p, nbytes);
    return t;
  }
  return torch::from_blob(
      p, shape, [keep = map](void*) {}, options);
}

void check_bool_bytes(const std::string& path, const std::string& what, const uint8_t* p, size_t n) {
  for (size_t i = 0; i < n; ++i)
    if (p[i] > 1)
      fail(path, what + ": BOOL byte " + std::to_string(i) + " is " + std::to_string(p[i]) + ", not 0 or 1");
}

}  // namespace weights_internal

namespace {

using nlohmann::json;
using namespace weights_internal;

constexpr uint64_t kMaxSafetensorsHeader = 100u << 20;  // bytes of JSON header
constexpr size_t kMaxErrorNames = 8;                    // names listed per problem by load_state_dict

// ---------------------------------------------------------------------------------------------
// dtypes

struct DtypeName {
  const char* name;
  torch::ScalarType type;
};
constexpr std::array<DtypeName, 10> kDtypes{{{"F64", torch::kFloat64},
                                             {"F32", torch::kFloat32},
                                             {"F16", torch::kFloat16},
                                             {"BF16", torch::kBFloat16},
                                             {"I64", torch::kInt64},
                                             {"I32", torch::kInt32},
                                             {"I16", torch::kInt16},
                                             {"I8", torch::kInt8},
                                             {"U8", torch::kUInt8},
                                             {"BOOL", torch::kBool}}};

const char* safetensors_dtype(torch::ScalarType t) {
  for (const auto& d : kDtypes)
    if (d.type == t) return d.name;
  return nullptr;
}

bool dtype_from_safetensors(const std::string& name, torch::ScalarType& out) {
  for (const auto& d : kDtypes)
    if (name == d.name) {
      out = d.type;
      return true;
    }
  return false;
}

// ---------------------------------------------------------------------------------------------
// safetensors

struct StEntry {
  std::string name;
  torch::ScalarType dtype;
  std::vector<int64_t> shape;
  uint64_t begin, end;
};

// A JSON value that must be an integer in [0, max].
bool json_uint(const json& v, uint64_t max, uint64_t& out) {
  if (v.is_number_unsigned()) {
    out = v.get<uint64_t>();
  } else if (v.is_number_integer()) {
    if (v.get<int64_t>() < 0) return false;
    out = static_cast<uint64_t>(v.get<int64_t>());
  } else {
    return false;
  }
  return out <= max;
}

StEntry parse_st_entry(const std::string& path, const std::string& name, const json& v, uint64_t data_size) {
  const std::string what = "tensor '" + printable(name) + "'";
  if (!v.is_object()) fail(path, what + ": header entry is not a JSON object");
  StEntry e{name, torch::kFloat32, {}, 0, 0};
  auto dt = v.find("dtype");
  if (dt == v.end() || !dt->is_string()) fail(path, what + ": no dtype string");
  if (!dtype_from_safetensors(dt->get<std::string>(), e.dtype))
    fail(path, what + ": unsupported dtype '" + printable(dt->get<std::string>()) +
                   "' (F64 F32 F16 BF16 I64 I32 I16 I8 U8 BOOL)");
  auto sh = v.find("shape");
  if (sh == v.end() || !sh->is_array() || sh->size() > kMaxDims)
    fail(path, what + ": shape must be an array of at most " + std::to_string(kMaxDims) + " sizes");
  uint64_t numel = 1;
  for (const auto& d : *sh) {
    uint64_t n = 0;
    if (!json_uint(d, uint64_t{1} << 62, n)) fail(path, what + ": shape holds a value that is not a size");
    if (__builtin_mul_overflow(numel, n, &numel)) fail(path, what + ": shape " + sh->dump() + " overflows");
    e.shape.push_back(static_cast<int64_t>(n));
  }
  auto off = v.find("data_offsets");
  if (off == v.end() || !off->is_array() || off->size() != 2 || !json_uint((*off)[0], UINT64_MAX, e.begin) ||
      !json_uint((*off)[1], UINT64_MAX, e.end))
    fail(path, what + ": data_offsets must be [begin, end]");
  if (e.begin > e.end || e.end > data_size)
    fail(path, what + ": data_offsets [" + std::to_string(e.begin) + ", " + std::to_string(e.end) +
                   "] outside the data region of " + std::to_string(data_size) + " bytes");
  uint64_t nbytes = 0;
  if (__builtin_mul_overflow(numel, c10::elementSize(e.dtype), &nbytes) || nbytes != e.end - e.begin)
    fail(path, what + ": shape " + format_shape(e.shape) + " of " + dt->get<std::string>() + " needs " +
                   std::to_string(nbytes) + " bytes but data_offsets span " +
                   std::to_string(e.end - e.begin));
  return e;
}

// The spec requires the tensors to cover the data region exactly: no holes, no overlaps.
void check_tiling(const std::string& path, std::vector<const StEntry*> order, uint64_t data_size) {
  std::sort(order.begin(), order.end(), [](const StEntry* a, const StEntry* b) {
    return std::tie(a->begin, a->end) < std::tie(b->begin, b->end);
  });
  uint64_t pos = 0;
  const StEntry* prev = nullptr;
  for (const StEntry* e : order) {
    if (e->begin < pos)
      fail(path, "tensors '" + printable(prev->name) + "' and '" + printable(e->name) +
                     "' overlap in the data region");
    if (e->begin > pos)
      fail(path, "data region has a hole of " + std::to_string(e->begin - pos) + " bytes at offset " +
                     std::to_string(pos) + " (before tensor '" + printable(e->name) + "')");
    pos = e->end;
    prev = e;
  }
  if (pos != data_size)
    fail(path,
         std::to_string(data_size - pos) + " bytes after the last tensor (truncated header or extra data)");
}

// Our int8 storage (save_checkpoint with kChar): a matrix `name` as int8 rows and `name` + kInt8ScaleSuffix, one
// float32 scale per row (its largest magnitude / 127), so that row i = int8 row i x scale i.
constexpr const char* kInt8ScaleSuffix = ".int8_scale";
// Matrices smaller than this stay float16 under int8 storage: their scales would cost what they save.
constexpr int64_t kMinInt8Elements = 1024;

// Replaces every int8 matrix of our checkpoint by its float32 rows, and drops the scales.
void widen_int8_rows(TensorFile& file) {
  const std::string suffix = kInt8ScaleSuffix;
  std::vector<std::string> scales;
  for (const auto& [name, t] : file.tensors)
    if (name.size() > suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0)
      scales.push_back(name);
  for (const std::string& scale_name : scales) {
    const std::string name = scale_name.substr(0, scale_name.size() - suffix.size());
    const torch::Tensor scale = file.tensors.at(scale_name);
    auto it = file.tensors.find(name);
    if (it == file.tensors.end() || it->second.scalar_type() != torch::kChar || it->second.dim() < 2 ||
        scale.scalar_type() != torch::kFloat32 || scale.dim() != 1 || scale.size(0) != it->second.size(0))
      fail(file.path, "'" + printable(scale_name) + "' does not scale the rows of an int8 tensor '" + printable(name) + "'");
    // One pass by hand: ATen's int8 -> float conversion and broadcast multiply of the captioner's 7.8M weights
    // took 9% of a cold-start `caption`'s samples under perf, about 0.1 s.
    const torch::Tensor q = it->second.contiguous();
    torch::Tensor rows = torch::empty(q.sizes(), torch::kFloat32);
    const int64_t n = q.size(0), width = q.numel() / std::max<int64_t>(n, 1);
    const int8_t* src = q.data_ptr<int8_t>();
    const torch::Tensor s = scale.contiguous();
    const float* step = s.data_ptr<float>();
    float* dst = rows.data_ptr<float>();
    for (int64_t r = 0; r < n; ++r)
      for (int64_t i = 0; i < width; ++i) dst[r * width + i] = static_cast<float>(src[r * width + i]) * step[r];
    it->second = rows;
    file.tensors.erase(scale_name);
  }
}

// The rows of a float matrix as int8 and their scales (see kInt8ScaleSuffix); an all-zero row gets scale 1.
std::pair<torch::Tensor, torch::Tensor> int8_rows(const torch::Tensor& t) {
  const torch::Tensor rows = t.detach().to(torch::kFloat32).reshape({t.size(0), -1});
  torch::Tensor scale = rows.abs().amax(1) / 127.0;
  scale = torch::where(scale > 0, scale, torch::ones_like(scale));
  const torch::Tensor q = (rows / scale.unsqueeze(1)).round().clamp(-127, 127).to(torch::kChar).reshape(t.sizes());
  return {q, scale};
}

bool valid_part_name(const std::string& name) {
  return !name.empty() && std::all_of(name.begin(), name.end(), [](unsigned char c) { return std::isalnum(c) || c == '_'; });
}

bool starts_with(const std::string& s, const std::string& prefix) { return s.compare(0, prefix.size(), prefix) == 0; }

// Moves the entries of `from` named "<prefix><rest>" out of it, as "<rest>".
template <typename Value>
std::map<std::string, Value> take_prefixed(std::map<std::string, Value>& from, const std::string& prefix) {
  std::map<std::string, Value> taken;
  for (auto it = from.lower_bound(prefix); it != from.end() && starts_with(it->first, prefix);) {
    taken.emplace(it->first.substr(prefix.size()), std::move(it->second));
    it = from.erase(it);
  }
  return taken;
}

// Moves the parts that kPartsMetadataKey lists out of `file` into file.parts (see CheckpointPart): tensors
// and metadata named "NAME.<key>" become the part's "<key>".
void split_parts(TensorFile& file) {
  auto list = file.metadata.find(kPartsMetadataKey);
  if (list == file.metadata.end()) return;
  std::stringstream names(list->second);
  for (std::string name; std::getline(names, name, ',');) {
    if (!valid_part_name(name) || find_part(file.parts, name))
      fail(file.path, std::string("metadata '") + kPartsMetadataKey + "' lists an invalid or repeated part '" +
                          printable(name) + "'");
    TensorFile part;
    part.path = file.path + " (part " + name + ")";
    part.part = name;
    part.tensors = take_prefixed(file.tensors, name + ".");
    part.metadata = take_prefixed(file.metadata, name + ".");
    if (part.tensors.empty()) fail(file.path, "part '" + name + "' has no tensors");
    part.metadata["format"] = "attnvision";
    file.parts.push_back(std::move(part));
  }
  file.metadata.erase(kPartsMetadataKey);
}

TensorFile parse_safetensors(const std::shared_ptr<Mapping>& map) {
  const std::string& path = map->path();
  const size_t size = map->size();
  if (size >= 4 && std::memcmp(map->data(), "PK\x03\x04", 4) == 0)
    fail(path, "is a torch.save zip, not safetensors (read it with read_weights)");
  if (size < 8) fail(path, "truncated: " + std::to_string(size) + " bytes, a safetensors file starts with 8");
  const uint64_t n = le64(map->data());
  if (n > kMaxSafetensorsHeader)
    fail(path, "not a safetensors file: header length " + std::to_string(n) + " exceeds the 100 MB limit");
  if (n > size - 8)
    fail(path, "truncated: header length " + std::to_string(n) + " but only " + std::to_string(size - 8) +
                   " bytes follow");
  json header;
  try {
    header = json::parse(map->data() + 8, map->data() + 8 + n);
  } catch (const json::exception& e) {
    fail(path, "safetensors header is not valid JSON (" + first_line(e.what()) + ")");
  }
  if (!header.is_object()) fail(path, "safetensors header is not a JSON object");

  TensorFile out;
  out.path = path;
  const uint64_t data_begin = 8 + n, data_size = size - data_begin;
  std::vector<StEntry> entries;
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() != "__metadata__") {
      entries.push_back(parse_st_entry(path, it.key(), it.value(), data_size));
      continue;
    }
    if (it->is_null()) continue;
    if (!it->is_object()) fail(path, "__metadata__ is not a JSON object");
    for (auto m = it->begin(); m != it->end(); ++m) {
      if (!m->is_string()) fail(path, "__metadata__ value of '" + printable(m.key()) + "' is not a string");
      out.metadata[m.key()] = m->get<std::string>();
    }
  }
  std::vector<const StEntry*> order;
  for (const auto& e : entries) order.push_back(&e);
  check_tiling(path, order, data_size);

  for (const auto& e : entries) {
    const size_t offset = data_begin + e.begin, nbytes = e.end - e.begin;
    if (e.dtype == torch::kBool)
      check_bool_bytes(path, "tensor '" + printable(e.name) + "'", map->data() + offset, nbytes);
    out.tensors.emplace(e.name, tensor_over(map, offset, nbytes, e.shape, e.dtype));
  }
  auto format = out.metadata.find("format");
  if (format != out.metadata.end() && format->second == "attnvision") {
    widen_int8_rows(out);
    split_parts(out);
  }
  return out;
}


// Runs a reader, turning library exceptions (allocation, torch) into one-line WeightsErrors.
template <typename F>
TensorFile guarded(const std::string& path, F&& read) {
  try {
    return read();
  } catch (const WeightsError&) {
    throw;
  } catch (const std::bad_alloc&) {
    fail(path, "out of memory while reading");
  } catch (const c10::Error& e) {
    fail(path, first_line(e.what_without_backtrace()));
  } catch (const std::exception& e) {
    fail(path, first_line(e.what()));
  }
}

bool is_num_batches_tracked(const std::string& name) {
  static const std::string leaf = "num_batches_tracked";
  return name == leaf || (name.size() > leaf.size() &&
                          name.compare(name.size() - leaf.size() - 1, std::string::npos, "." + leaf) == 0);
}

// "3 missing keys (a, b, c)" with at most kMaxErrorNames names, then "and N more".
std::string name_list(const std::vector<std::string>& names, const char* singular, const char* plural) {
  std::string s = std::to_string(names.size()) + " " + (names.size() == 1 ? singular : plural) + " (";
  for (size_t i = 0; i < names.size() && i < kMaxErrorNames; ++i) s += (i ? ", " : "") + names[i];
  if (names.size() > kMaxErrorNames) s += ", and " + std::to_string(names.size() - kMaxErrorNames) + " more";
  return s + ")";
}

enum class DtypeKind { Floating, Integral, Bool, Other };
DtypeKind dtype_kind(torch::ScalarType t) {
  if (t == torch::kBool) return DtypeKind::Bool;
  if (c10::isFloatingType(t)) return DtypeKind::Floating;
  if (c10::isIntegralType(t, /*includeBool=*/false)) return DtypeKind::Integral;
  return DtypeKind::Other;
}

std::map<std::string, torch::Tensor> module_state(torch::nn::Module& module) {
  std::map<std::string, torch::Tensor> state;
  for (const auto& p : module.named_parameters(/*recurse=*/true))
    if (p.value().defined()) state.emplace(p.key(), p.value());
  for (const auto& b : module.named_buffers(/*recurse=*/true))
    if (b.value().defined()) state.emplace(b.key(), b.value());
  return state;
}

}  // namespace

TensorFile read_safetensors(const std::string& path) {
  return guarded(path, [&] { return parse_safetensors(Mapping::open(path)); });
}

TensorFile read_torch_state_dict(const std::string& path) {
  return guarded(path, [&] {
    auto map = Mapping::open(path);
    if (map->size() < 4 || std::memcmp(map->data(), "PK\x03\x04", 4) != 0)
      fail(path, "not a torch.save zip archive (no zip signature)");
    return parse_torch_zip(map);
  });
}

TensorFile read_weights(const std::string& path) {
  return guarded(path, [&] {
    auto map = Mapping::open(path);
    const uint8_t* d = map->data();
    if (map->size() >= 4 && std::memcmp(d, "PK\x03\x04", 4) == 0) return parse_torch_zip(map);
    // The pre-1.6 torch.save format starts with a pickled magic number: PROTO 2, LONG1 of 10 bytes.
    if (map->size() >= 4 && std::memcmp(d, "\x80\x02\x8a\x0a", 4) == 0)
      fail(path,
           "legacy torch.save format (torch < 1.6); re-save it with a current torch.save or as safetensors");
    return parse_safetensors(map);
  });
}

void write_safetensors(const std::string& path, const std::map<std::string, torch::Tensor>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  // ordered_json keeps the tensors in name order and __metadata__ last, as the Python writers do.
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  std::vector<torch::Tensor> blobs;
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    if (name == "__metadata__") fail(path, "a tensor cannot be named __metadata__");
    if (!t.defined()) fail(path, "tensor '" + printable(name) + "' is undefined");
    const char* dtype = safetensors_dtype(t.scalar_type());
    if (!dtype)
      fail(path, "tensor '" + printable(name) + "' has dtype " + c10::toString(t.scalar_type()) +
                     ", which safetensors cannot hold");
    torch::Tensor c = t.detach().to(torch::kCPU).contiguous();
    const uint64_t nbytes = c.nbytes();
    header[name] = {
        {"dtype", dtype}, {"shape", c.sizes().vec()}, {"data_offsets", {offset, offset + nbytes}}};
    offset += nbytes;
    blobs.push_back(std::move(c));
  }
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::string text;
  try {
    text = header.dump();
  } catch (const nlohmann::json::exception& e) {
    fail(path, "cannot write the header (" + first_line(e.what()) + ")");
  }
  text.append((8 - (8 + text.size()) % 8) % 8, ' ');

  uint8_t len[8];
  for (int k = 0; k < 8; ++k) len[k] = static_cast<uint8_t>(static_cast<uint64_t>(text.size()) >> (8 * k));
  std::vector<std::pair<const void*, size_t>> pieces{{len, 8}, {text.data(), text.size()}};
  for (const auto& b : blobs) pieces.emplace_back(b.data_ptr(), b.nbytes());
  try {
    vision::write_bytes_atomically(path, pieces);
  } catch (const std::runtime_error& e) {
    throw WeightsError(e.what());  // already "path: problem"
  }
}

std::vector<std::string> load_state_dict(torch::nn::Module& module, const std::map<std::string, torch::Tensor>& tensors,
                                         const std::string& source, ExtraKeys extra, MissingKeys missing_keys) {
  const auto state = module_state(module);
  std::vector<std::string> missing, unexpected, shapes, dtypes;
  for (const auto& [name, dst] : state) {
    auto it = tensors.find(name);
    if (it == tensors.end()) {
      if (!is_num_batches_tracked(name)) missing.push_back(name);
      continue;
    }
    const torch::Tensor& src = it->second;
    if (!src.defined()) {
      dtypes.push_back(name + ": file tensor is undefined");
      continue;
    }
    if (src.sizes() != dst.sizes())
      shapes.push_back(name + ": model " + format_shape(dst.sizes()) + " vs file " +
                       format_shape(src.sizes()));
    const DtypeKind kd = dtype_kind(dst.scalar_type()), ks = dtype_kind(src.scalar_type());
    if (kd != ks || kd == DtypeKind::Other)
      dtypes.push_back(name + ": model " + c10::toString(dst.scalar_type()) + " vs file " +
                       c10::toString(src.scalar_type()));
  }
  for (const auto& entry : tensors)
    if (extra == ExtraKeys::kError && !state.count(entry.first) && !is_num_batches_tracked(entry.first))
      unexpected.push_back(printable(entry.first));

  std::vector<std::string> problems;
  if (!missing.empty() && missing_keys == MissingKeys::kError)
    problems.push_back(name_list(missing, "missing key", "missing keys"));
  if (!unexpected.empty()) problems.push_back(name_list(unexpected, "unexpected key", "unexpected keys"));
  if (!shapes.empty()) problems.push_back(name_list(shapes, "shape mismatch", "shape mismatches"));
  if (!dtypes.empty()) problems.push_back(name_list(dtypes, "dtype mismatch", "dtype mismatches"));
  if (!problems.empty()) {
    std::string msg = source + ": ";
    for (size_t i = 0; i < problems.size(); ++i) msg += (i ? ", " : "") + problems[i];
    throw WeightsError(msg);
  }
  torch::NoGradGuard no_grad;
  for (const auto& [name, dst] : state)
    if (auto it = tensors.find(name); it != tensors.end()) dst.copy_(it->second);
  return missing;
}

namespace {

// A network's parameters and buffers as a checkpoint stores them in `storage` (see save_checkpoint).
std::map<std::string, torch::Tensor> stored_state(torch::nn::Module& module, torch::ScalarType storage) {
  std::map<std::string, torch::Tensor> state;
  for (const auto& [name, t] : module_state(module)) {
    if (!t.is_floating_point()) {
      state.emplace(name, t.detach());
    } else if (storage != torch::kChar) {
      state.emplace(name, t.detach().to(storage));
    } else if (t.dim() >= 2 && t.numel() >= kMinInt8Elements) {
      auto [q, scale] = int8_rows(t);
      state.emplace(name, q);
      state.emplace(name + kInt8ScaleSuffix, scale);
    } else {
      state.emplace(name, t.detach().to(torch::kFloat16));  // biases, norms: few values, kept finer
    }
  }
  return state;
}

void check_savable(const std::string& path, const ModelCfg& cfg, const std::string& what) {
  try {
    cfg.validate();
  } catch (const std::invalid_argument& e) {
    fail(path, "will not save an invalid model config" + what + ": " + e.what());
  }
}

}  // namespace

void save_checkpoint(const std::string& path, torch::nn::Module& module, const ModelCfg& cfg,
                     torch::ScalarType storage, const std::vector<CheckpointPart>& parts) {
  if (storage != torch::kFloat32 && storage != torch::kFloat16 && storage != torch::kBFloat16 && storage != torch::kChar)
    fail(path, std::string("checkpoints store float32, float16, bfloat16 or int8 rows, not ") + c10::toString(storage));
  check_savable(path, cfg, "");
  std::map<std::string, torch::Tensor> state = stored_state(module, storage);
  std::map<std::string, std::string> metadata = {{"format", "attnvision"}, {kModelCfgMetadataKey, to_json(cfg).dump()}};
  std::set<std::string> seen;
  std::string names;
  for (const CheckpointPart& part : parts) {
    if (!valid_part_name(part.name) || !seen.insert(part.name).second)
      fail(path, "invalid or repeated part name '" + printable(part.name) + "'");
    check_savable(path, part.cfg, " for part '" + part.name + "'");
    // A part's prefix must not capture the network's own tensors when the file is read back.
    const std::string prefix = part.name + ".";
    const auto taken = state.lower_bound(prefix);
    if (taken != state.end() && starts_with(taken->first, prefix))
      fail(path, "the network's tensor '" + printable(taken->first) + "' would be read back as part '" + part.name + "'");
    for (auto& [name, t] : stored_state(*part.module, storage)) state.emplace(prefix + name, std::move(t));
    metadata[prefix + kModelCfgMetadataKey] = to_json(part.cfg).dump();
    names += (names.empty() ? "" : ",") + part.name;
  }
  if (!names.empty()) metadata[kPartsMetadataKey] = names;
  write_safetensors(path, state, metadata);
}

const TensorFile* find_part(const std::vector<TensorFile>& parts, const std::string& name) {
  for (const TensorFile& part : parts)
    if (part.part == name) return &part;
  return nullptr;
}

bool read_checkpoint_cfg(const TensorFile& file, ModelCfg& cfg) {
  auto it = file.metadata.find(kModelCfgMetadataKey);
  if (it == file.metadata.end()) return false;
  json j;
  try {
    j = json::parse(it->second);
  } catch (const json::exception& e) {
    fail(file.path, std::string("metadata '") + kModelCfgMetadataKey + "' is not valid JSON (" +
                        first_line(e.what()) + ")");
  }
  try {
    ModelCfg parsed = cfg_from_json(j, cfg);
    parsed.validate();
    cfg = std::move(parsed);
  } catch (const std::exception& e) {  // invalid_argument, or a json error for a wrongly typed section
    fail(file.path, std::string("metadata '") + kModelCfgMetadataKey + "': " + first_line(e.what()));
  }
  return true;
}

}  // namespace attnvision::models
