// Weights I/O: safetensors and torch.save readers against files written by Python (the timm parity
// fixtures and tests/data/weights/make_torch_files.py), the writer against the fixtures' Python writer,
// hostile files built here, and load_state_dict's all-or-nothing contract.
#include "models/weights/weights.h"

#include <caffe2/serialize/inline_container.h>
#include <gtest/gtest.h>
#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace fs = std::filesystem;
using attnvision::models::TensorFile;
using attnvision::models::WeightsError;
namespace am = attnvision::models;
using json = nlohmann::json;

namespace {

const fs::path kParity = fs::path(ATTNVISION_FIXTURES_DIR) / "parity" / "public";
const fs::path kData = fs::path(ATTNVISION_TEST_DATA_DIR) / "weights";

// Every fixture folder; the test that uses it fails (not skips) when there are none.
std::vector<fs::path> fixture_dirs() {
  std::vector<fs::path> dirs;
  if (fs::is_directory(kParity))
    for (const auto& e : fs::directory_iterator(kParity))
      if (e.is_directory()) dirs.push_back(e.path());
  std::sort(dirs.begin(), dirs.end());
  return dirs;
}

class TempDir {
 public:
  TempDir() {
    static int counter = 0;
    path_ = fs::temp_directory_path() /
            ("attnvision_test_weights_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  std::string file(const std::string& name) const { return (path_ / name).string(); }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

std::string read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(f.good()) << path;
}

std::string tensor_bytes(const torch::Tensor& t) {
  torch::Tensor c = t.contiguous();
  return std::string(static_cast<const char*>(c.data_ptr()), c.nbytes());
}

std::string u64le(uint64_t v) {
  std::string s(8, '\0');
  for (int k = 0; k < 8; ++k) s[k] = static_cast<char>(v >> (8 * k));
  return s;
}

// Same names, dtypes, shapes and bit patterns (bitwise: NaN == NaN, -0 != +0).
void expect_same_tensors(const std::map<std::string, torch::Tensor>& a,
                         const std::map<std::string, torch::Tensor>& b, const std::string& what) {
  std::set<std::string> ka, kb;
  for (const auto& e : a) ka.insert(e.first);
  for (const auto& e : b) kb.insert(e.first);
  ASSERT_EQ(ka, kb) << what;
  for (const auto& [name, ta] : a) {
    const torch::Tensor& tb = b.at(name);
    EXPECT_EQ(ta.scalar_type(), tb.scalar_type()) << what << " " << name;
    EXPECT_EQ(ta.sizes(), tb.sizes()) << what << " " << name;
    if (ta.scalar_type() == tb.scalar_type() && ta.sizes() == tb.sizes()) {
      EXPECT_TRUE(tensor_bytes(ta) == tensor_bytes(tb)) << what << " " << name << " differs";
    }
  }
}

// `read` must throw one WeightsError whose one-line message names `path` and mentions `expect`.
void expect_weights_error(const std::function<void()>& read, const std::string& path,
                          const std::string& expect, const std::string& what) {
  try {
    read();
    ADD_FAILURE() << what << ": no exception";
  } catch (const WeightsError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(path), std::string::npos) << what << ": message does not name the file: " << msg;
    EXPECT_NE(msg.find(expect), std::string::npos) << what << ": expected '" << expect << "' in: " << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << what << ": message is not one line: " << msg;
  } catch (const std::exception& e) {
    ADD_FAILURE() << what << ": not a WeightsError: " << e.what();
  }
}

// ---------------------------------------------------------------------------------------------
// Python-written fixtures

TEST(WeightsFixtures, FolderIsPresent) {
  ASSERT_TRUE(fs::is_directory(kParity)) << "parity fixtures missing: " << kParity
                                         << " (set ATTNVISION_SHARED_DIR to the folder holding fixtures/)";
  const auto dirs = fixture_dirs();
  ASSERT_FALSE(dirs.empty()) << "no fixture folders under " << kParity;
  for (const auto& d : dirs) {
    EXPECT_TRUE(fs::is_regular_file(d / "weights.safetensors")) << d;
    EXPECT_TRUE(fs::is_regular_file(d / "weights.pt")) << d;
    EXPECT_TRUE(fs::is_regular_file(d / "config.json")) << d;
  }
}

TEST(WeightsFixtures, BothFormatsHoldTheSameStateDict) {
  const auto dirs = fixture_dirs();
  ASSERT_FALSE(dirs.empty()) << "no parity fixtures under " << kParity;
  for (const auto& d : dirs) {
    SCOPED_TRACE(d.string());
    const TensorFile st = am::read_safetensors((d / "weights.safetensors").string());
    const TensorFile pt = am::read_torch_state_dict((d / "weights.pt").string());
    expect_same_tensors(st.tensors, pt.tensors, d.filename().string());
    // Dispatch on content gives the same again.
    expect_same_tensors(am::read_weights((d / "weights.pt").string()).tensors, st.tensors,
                        "read_weights .pt");
    expect_same_tensors(am::read_weights((d / "weights.safetensors").string()).tensors, st.tensors,
                        "read_weights .safetensors");
    EXPECT_TRUE(pt.metadata.empty());
    EXPECT_EQ(st.path, (d / "weights.safetensors").string());

    std::ifstream cfg_file(d / "config.json");
    const json cfg = json::parse(cfg_file);
    const auto order = cfg.at("state_dict").at("all_keys_in_order").get<std::vector<std::string>>();
    const std::set<std::string> keys(order.begin(), order.end());
    EXPECT_EQ(keys.size(), order.size()) << "duplicate key in all_keys_in_order";
    std::set<std::string> got;
    for (const auto& e : st.tensors) got.insert(e.first);
    EXPECT_EQ(got, keys);
    EXPECT_EQ(st.tensors.size(), cfg.at("state_dict").at("num_tensors").get<size_t>());
  }
}

// Our writer against the fixtures' Python writer: the same tensor bytes in the same order, the same
// header content and the same padding rule.
TEST(WeightsFixtures, RewriteMatchesThePythonWriter) {
  const auto dirs = fixture_dirs();
  ASSERT_FALSE(dirs.empty()) << "no parity fixtures under " << kParity;
  TempDir tmp;
  for (const auto& d : dirs) {
    SCOPED_TRACE(d.string());
    const std::string src = (d / "weights.safetensors").string(),
                      dst = tmp.file(d.filename().string() + ".safetensors");
    const TensorFile st = am::read_safetensors(src);
    am::write_safetensors(dst, st.tensors, st.metadata);
    const std::string a = read_bytes(src), b = read_bytes(dst);
    ASSERT_GE(a.size(), 8u);
    ASSERT_GE(b.size(), 8u);
    uint64_t na = 0, nb = 0;
    std::memcpy(&na, a.data(), 8);
    std::memcpy(&nb, b.data(), 8);
    EXPECT_EQ((8 + nb) % 8, 0u);
    EXPECT_EQ(json::parse(a.substr(8, na)), json::parse(b.substr(8, nb)));
    EXPECT_TRUE(a.substr(8 + na) == b.substr(8 + nb)) << "data regions differ";
    if (st.metadata.empty()) {
      EXPECT_EQ(a, b);
    }
  }
}

// read_safetensors must not copy: each tensor points into one mapping, at its offset in the file.
TEST(WeightsFixtures, SafetensorsTensorsViewTheFileMapping) {
  const auto dirs = fixture_dirs();
  ASSERT_FALSE(dirs.empty()) << "no parity fixtures under " << kParity;
  const std::string path = (dirs.front() / "weights.safetensors").string();
  const std::string raw = read_bytes(path);
  uint64_t n = 0;
  std::memcpy(&n, raw.data(), 8);
  const json header = json::parse(raw.substr(8, n));
  const TensorFile st = am::read_safetensors(path);
  const std::string& first = st.tensors.begin()->first;
  const auto base = reinterpret_cast<uintptr_t>(st.tensors.begin()->second.data_ptr()) -
                    header.at(first).at("data_offsets")[0].get<uint64_t>();
  EXPECT_EQ(base % 8, 0u) << "data region should start 8-byte aligned in a page-aligned mapping";
  for (const auto& [name, t] : st.tensors) {
    if (t.numel() == 0) continue;
    const uint64_t offset = header.at(name).at("data_offsets")[0].get<uint64_t>();
    const auto ptr = reinterpret_cast<uintptr_t>(t.data_ptr());
    // A tensor not aligned to its element size in the file is the one that gets copied.
    if (offset % t.element_size() == 0) {
      EXPECT_EQ(ptr, base + offset) << name;
    } else {
      EXPECT_EQ(ptr % t.element_size(), 0u) << name;
    }
  }
  // The mapping outlives the TensorFile as long as a tensor does.
  torch::Tensor kept;
  {
    const TensorFile again = am::read_safetensors(path);
    kept = again.tensors.at(first);
  }
  EXPECT_TRUE(tensor_bytes(kept) == tensor_bytes(st.tensors.at(first)));
  // Writing into a loaded tensor changes our copy only (private mapping), never the file.
  kept.fill_(0);
  EXPECT_TRUE(read_bytes(path) == raw);
}

// ---------------------------------------------------------------------------------------------
// torch.save layouts written by tests/data/weights/make_torch_files.py

TEST(TorchFiles, ProtocolsAndCheckpointLayoutsMatchTheSafetensorsCopy) {
  const TensorFile expected = am::read_safetensors((kData / "expected.safetensors").string());
  ASSERT_EQ(expected.tensors.size(), 14u);
  EXPECT_EQ(expected.metadata.at("made_by"), "make_torch_files.py");
  for (const char* name : {"proto2.pt", "proto4.pt", "checkpoint_state_dict.pt", "checkpoint_model.pt"}) {
    SCOPED_TRACE(name);
    const TensorFile pt = am::read_weights((kData / name).string());
    expect_same_tensors(pt.tensors, expected.tensors, name);
    // Views keep the layout torch.save recorded: one shared storage, a transposed and an offset view.
    const auto& t = pt.tensors.at("view.t");
    EXPECT_FALSE(t.is_contiguous());
    EXPECT_EQ(t.data_ptr(), pt.tensors.at("view.base").data_ptr());
    EXPECT_EQ(pt.tensors.at("view.slice").storage_offset(), 8);
  }
}

TEST(TorchFiles, LegacyFormatIsNamed) {
  const std::string path = (kData / "legacy.pt").string();
  expect_weights_error([&] { am::read_weights(path); }, path, "legacy torch.save format", "legacy");
}

// ---------------------------------------------------------------------------------------------
// safetensors round trip and layout

std::map<std::string, torch::Tensor> all_dtypes() {
  torch::manual_seed(3);
  return {
      {"f64", torch::randn({3}, torch::kFloat64)},
      {"f32.noncontig", torch::randn({4, 6}).t()},
      {"f16", torch::randn({2, 2}).to(torch::kFloat16)},
      {"bf16", torch::randn({5}).to(torch::kBFloat16)},
      {"i64.scalar", torch::tensor(int64_t{1} << 40)},
      {"i32", torch::arange(-4, 4, torch::kInt32)},
      {"i16", torch::tensor({-7, 300}, torch::kInt16)},
      {"i8", torch::tensor({-128, 127, 3}, torch::kInt8)},
      {"u8", torch::tensor({0, 255, 17}, torch::kUInt8)},  // 3 bytes: what follows is misaligned
      {"u8.bool", torch::tensor({true, false, true})},
      {"z.empty", torch::zeros({0, 4})},
      {"z.f32.after.odd", torch::randn({3})},
  };
}

TEST(Safetensors, RoundTripAllDtypesAndMetadata) {
  TempDir tmp;
  const std::string path = tmp.file("all.safetensors");
  const auto src = all_dtypes();
  const std::map<std::string, std::string> meta{{"format", "pt"},
                                                {"note", "quotes \" and\nnewline, ünïcode"}};
  am::write_safetensors(path, src, meta);
  const TensorFile got = am::read_safetensors(path);
  expect_same_tensors(got.tensors, src, "round trip");
  EXPECT_EQ(got.metadata, meta);
  // A tensor whose offset is not a multiple of its element size still reads (as a copy).
  const auto& odd = got.tensors.at("z.f32.after.odd");
  EXPECT_TRUE(torch::equal(odd, src.at("z.f32.after.odd")));
  EXPECT_EQ(reinterpret_cast<uintptr_t>(odd.data_ptr()) % 4, 0u);

  // Layout: 8 + N is a multiple of 8, tensors in name order packed back to back, __metadata__ last.
  const std::string raw = read_bytes(path);
  uint64_t n = 0;
  std::memcpy(&n, raw.data(), 8);
  EXPECT_EQ((8 + n) % 8, 0u);
  const auto header = nlohmann::ordered_json::parse(raw.substr(8, n));
  std::vector<std::string> keys;
  uint64_t pos = 0;
  for (auto it = header.begin(); it != header.end(); ++it) {
    keys.push_back(it.key());
    if (it.key() == "__metadata__") continue;
    EXPECT_EQ(it->at("data_offsets")[0].get<uint64_t>(), pos) << it.key();
    pos = it->at("data_offsets")[1].get<uint64_t>();
  }
  EXPECT_EQ(pos, raw.size() - 8 - n);
  std::vector<std::string> want;
  for (const auto& e : src) want.push_back(e.first);
  want.push_back("__metadata__");
  EXPECT_EQ(keys, want);
  const size_t json_len = header.dump().size();
  ASSERT_LE(json_len, n);
  EXPECT_EQ(raw.substr(8 + json_len, n - json_len), std::string(n - json_len, ' '))
      << "padding is not spaces";
}

TEST(Safetensors, WriteLeavesNoTemporaryFilesAndReplacesAtomically) {
  TempDir tmp;
  const std::string path = tmp.file("w.safetensors");
  am::write_safetensors(path, {{"a", torch::ones({2})}});
  am::write_safetensors(path, {{"b", torch::zeros({3})}});
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(tmp.path())) names.push_back(e.path().filename().string());
  EXPECT_EQ(names, std::vector<std::string>{"w.safetensors"});
  EXPECT_EQ(am::read_safetensors(path).tensors.count("b"), 1u);

  const std::string nowhere = tmp.file("no/such/dir/x.safetensors");
  expect_weights_error(
      [&] {
        am::write_safetensors(nowhere, {{"a", torch::ones({1})}});
      },
      nowhere, "cannot create", "missing folder");
  expect_weights_error(
      [&] {
        am::write_safetensors(path, {{"c", torch::ones({1}, torch::kComplexFloat)}});
      },
      path, "ComplexFloat", "complex dtype");
  EXPECT_EQ(am::read_safetensors(path).tensors.count("b"), 1u) << "a failed write must keep the old file";
}

// A safetensors file from a header string (padded like a real one) and data bytes.
std::string safetensors_bytes(std::string header, const std::string& data) {
  header.append((8 - (8 + header.size()) % 8) % 8, ' ');
  return u64le(header.size()) + header + data;
}

TEST(Safetensors, HostileFilesThrowNamingTheFile) {
  TempDir tmp;
  const std::string good_path = tmp.file("good.safetensors");
  am::write_safetensors(good_path,
                        {{"a", torch::arange(6, torch::kFloat32)}, {"b", torch::ones({2}, torch::kInt64)}},
                        {{"k", "v"}});
  const std::string good = read_bytes(good_path);
  uint64_t n = 0;
  std::memcpy(&n, good.data(), 8);
  const std::string data8(8, '\0');

  struct Case {
    std::string name, bytes, expect;
  };
  std::vector<Case> cases = {
      {"trunc_4", good.substr(0, 4), "truncated"},
      {"trunc_7", good.substr(0, 7), "truncated"},
      {"trunc_8", good.substr(0, 8), "truncated"},
      {"trunc_header", good.substr(0, 8 + n / 2), "truncated"},
      {"trunc_after_header", good.substr(0, 8 + n), "outside the data region"},
      {"trunc_last_byte", good.substr(0, good.size() - 1), "outside the data region"},
      {"extra_byte", good + "x", "bytes after the last tensor"},
      {"header_len_2^63", u64le(uint64_t{1} << 63) + good.substr(8), "exceeds the 100 MB limit"},
      {"header_len_200MB", u64le(200u << 20) + good.substr(8), "exceeds the 100 MB limit"},
      {"header_len_file", u64le(good.size()) + good.substr(8), "truncated"},
      {"not_json", safetensors_bytes("{\"a\": {", data8), "not valid JSON"},
      {"not_object", safetensors_bytes("[1, 2]", data8), "not a JSON object"},
      {"entry_not_object", safetensors_bytes(R"({"a": 3})", data8), "'a'"},
      {"bad_dtype",
       safetensors_bytes(R"({"a": {"dtype": "Q8", "shape": [2], "data_offsets": [0, 8]}})", data8),
       "unsupported dtype 'Q8'"},
      {"dtype_u32",
       safetensors_bytes(R"({"a": {"dtype": "U32", "shape": [2], "data_offsets": [0, 8]}})", data8),
       "unsupported dtype 'U32'"},
      {"no_dtype", safetensors_bytes(R"({"a": {"shape": [2], "data_offsets": [0, 8]}})", data8), "no dtype"},
      {"negative_shape",
       safetensors_bytes(R"({"a": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}})", data8),
       "shape"},
      {"float_shape",
       safetensors_bytes(R"({"a": {"dtype": "F32", "shape": [2.5], "data_offsets": [0, 8]}})", data8),
       "shape"},
      {"huge_shape",
       safetensors_bytes(
           R"({"a": {"dtype": "F32", "shape": [4611686018427387904, 4], "data_offsets": [0, 8]}})", data8),
       "overflows"},
      {"size_mismatch",
       safetensors_bytes(R"({"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}})", data8),
       "needs 12 bytes"},
      {"offsets_out_of_range",
       safetensors_bytes(R"({"a": {"dtype": "U8", "shape": [1000000], "data_offsets": [0, 1000000]}})",
                         data8),
       "outside the data region"},
      {"offsets_reversed",
       safetensors_bytes(R"({"a": {"dtype": "U8", "shape": [0], "data_offsets": [8, 0]}})", data8),
       "outside the data region"},
      {"offsets_negative",
       safetensors_bytes(R"({"a": {"dtype": "U8", "shape": [0], "data_offsets": [-8, 0]}})", data8),
       "data_offsets"},
      {"overlap",
       safetensors_bytes(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                            "b": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}})",
                         data8),
       "overlap"},
      {"same_bytes_twice",
       safetensors_bytes(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                            "b": {"dtype": "I64", "shape": [1], "data_offsets": [0, 8]}})",
                         data8),
       "overlap"},
      {"hole", safetensors_bytes(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}})", data8),
       "hole"},
      {"metadata_not_str",
       safetensors_bytes(
           R"({"__metadata__": {"epoch": 3}, "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}})",
           data8),
       "not a string"},
      {"bool_byte_2",
       safetensors_bytes(R"({"a": {"dtype": "BOOL", "shape": [8], "data_offsets": [0, 8]}})",
                         std::string("\1\0\2\0\0\0\0\0", 8)),
       "not 0 or 1"},
      {"newline_in_name",
       safetensors_bytes("{\"evil\\nname\": {\"dtype\": \"Q8\", \"shape\": [2], \"data_offsets\": [0, 8]}}",
                         data8),
       "evil?name"},
  };
  std::mt19937 rng(1234);
  std::string garbage(4096, '\0');
  for (auto& c : garbage) c = static_cast<char>(rng());
  cases.push_back({"garbage", garbage, "not a safetensors file"});

  for (const auto& c : cases) {
    const std::string path = tmp.file(c.name + ".safetensors");
    write_bytes(path, c.bytes);
    expect_weights_error([&] { am::read_safetensors(path); }, path, c.expect, c.name);
    expect_weights_error([&] { am::read_weights(path); }, path, c.expect, c.name + " via read_weights");
  }
  // The good file itself reads: the failures above come from the damage.
  EXPECT_EQ(am::read_safetensors(good_path).tensors.size(), 2u);
}

TEST(Weights, MissingEmptyAndDirectoryPathsAreNamed) {
  TempDir tmp;
  const std::string missing = tmp.file("missing.safetensors"), empty = tmp.file("empty.pt");
  write_bytes(empty, "");
  for (auto read : {am::read_weights, am::read_safetensors, am::read_torch_state_dict}) {
    expect_weights_error([&] { read(missing); }, missing, "no such file", "missing");
    expect_weights_error([&] { read(empty); }, empty, "empty file", "empty");
    expect_weights_error([&] { read(tmp.path().string()); }, tmp.path().string(), "is a directory",
                         "directory");
  }
}

// ---------------------------------------------------------------------------------------------
// torch.save zips built here: pickles assembled by hand, zipped by libtorch's own writer (miniz).

class Pickle {
 public:
  Pickle& op(char c) {
    b_ += c;
    return *this;
  }
  Pickle& bytes(const std::string& s) {
    b_ += s;
    return *this;
  }
  Pickle& str(const std::string& s) {  // BINUNICODE
    b_ += 'X';
    for (int k = 0; k < 4; ++k) b_ += static_cast<char>(s.size() >> (8 * k));
    b_ += s;
    return *this;
  }
  Pickle& integer(int32_t v) {  // BININT
    b_ += 'J';
    for (int k = 0; k < 4; ++k) b_ += static_cast<char>(static_cast<uint32_t>(v) >> (8 * k));
    return *this;
  }
  Pickle& global(const std::string& module, const std::string& name) {
    b_ += 'c' + module + '\n' + name + '\n';
    return *this;
  }
  Pickle& ints(const std::vector<int32_t>& v) {
    op('(');
    for (int32_t x : v) integer(x);
    return op('t');
  }
  const std::string& str() const { return b_; }

 private:
  std::string b_;
};

struct TensorSpec {
  std::string storage_type = "FloatStorage";
  int32_t numel = 4, offset = 0;
  std::vector<int32_t> size{2, 2}, stride{1, 2};
};

// {"w": _rebuild_tensor_v2(storage '0', offset, size, stride, False, {})} as protocol 2 writes it.
Pickle state_dict_pickle(const TensorSpec& s) {
  Pickle p;
  p.bytes("\x80\x02").global("collections", "OrderedDict").op(')').op('R').op('(').str("w");
  p.global("torch._utils", "_rebuild_tensor_v2").op('(');
  p.op('(')
      .str("storage")
      .global("torch", s.storage_type)
      .str("0")
      .str("cpu")
      .integer(s.numel)
      .op('t')
      .op('Q');
  p.integer(s.offset).ints(s.size).ints(s.stride).op('\x89').op('}').op('t').op('R');
  p.op('u').op('.');
  return p;
}

// A torch.save-style zip ("<stem>/data.pkl", "<stem>/data/0") via libtorch's PyTorchStreamWriter.
void write_torch_zip(const std::string& path, const std::string& pickle, const std::string& storage0) {
  caffe2::serialize::PyTorchStreamWriter writer(path);
  writer.writeRecord("data.pkl", pickle.data(), pickle.size());
  if (!storage0.empty()) writer.writeRecord("data/0", storage0.data(), storage0.size());
  writer.writeEndOfFile();
}

std::string float_bytes(const std::vector<float>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float));
}

TEST(TorchZip, HandBuiltPickleReads) {
  TempDir tmp;
  const std::string path = tmp.file("hand.pt");
  write_torch_zip(path, state_dict_pickle({}).str(), float_bytes({1, 2, 3, 4}));
  const TensorFile f = am::read_torch_state_dict(path);
  ASSERT_EQ(f.tensors.size(), 1u);
  // size (2, 2), stride (1, 2) over [1, 2, 3, 4] is [[1, 3], [2, 4]].
  EXPECT_TRUE(torch::equal(f.tensors.at("w"), torch::tensor({{1.f, 3.f}, {2.f, 4.f}})));
}

TEST(TorchZip, HostileFilesThrowNamingTheFile) {
  TempDir tmp;
  const std::string storage = float_bytes({1, 2, 3, 4});
  struct Case {
    std::string name, pickle, storage, expect;
  };
  auto with = [](auto change) {
    TensorSpec s;
    change(s);
    return state_dict_pickle(s).str();
  };
  const std::string good = state_dict_pickle({}).str();
  std::string nested = "\x80\x02N";
  nested.append(500000, '\x85');  // TUPLE1 half a million times: deep nesting must not overflow anything
  nested += '.';
  std::vector<Case> cases = {
      {"wrong_opcode", std::string("\x80\x02}") + "i" + good.substr(3), storage,
       "unsupported pickle opcode 0x69 ('i')"},
      {"opcode_0xff", std::string("\x80\x02\xff."), storage, "unsupported pickle opcode 0xff"},
      {"unknown_global",
       Pickle().bytes("\x80\x02").global("os", "system").str("ls").op('\x85').op('R').op('.').str(), storage,
       "unsupported pickle global 'os.system'"},
      {"unknown_storage", with([](TensorSpec& s) { s.storage_type = "ComplexFloatStorage"; }), storage,
       "torch.ComplexFloatStorage"},
      {"storage_too_short", with([](TensorSpec& s) { s.numel = 100; }), storage, "declares 100 elements"},
      {"storage_too_long", with([](TensorSpec& s) { s.numel = 3; }), storage, "holds 16 bytes"},
      {"view_past_storage", with([](TensorSpec& s) {
         s.size = {3, 2};
       }),
       storage, "reaches past its storage"},
      {"offset_past_storage", with([](TensorSpec& s) { s.offset = 1; }), storage, "reaches past its storage"},
      {"negative_stride", with([](TensorSpec& s) {
         s.stride = {-1, 2};
       }),
       storage, "not a size"},
      {"rank_mismatch", with([](TensorSpec& s) { s.stride = {1}; }), storage, "differ in length"},
      {"missing_record", good, "", "record 'hostile_missing_record/data/0' is missing"},
      {"no_stop", good.substr(0, good.size() - 1), storage, "pickle truncated"},
      {"underflow", "\x80\x02R.", storage, "stack underflow"},
      {"memo_unset", "\x80\x02h\x07.", storage, "memo index 7 was never set"},
      {"top_is_list", "\x80\x02]q\x01.", storage, "top level of data.pkl is a list"},
      {"dict_of_ints", Pickle().bytes("\x80\x02}(").str("a").integer(1).op('u').op('.').str(), storage,
       "not a state_dict"},
      {"deep_nesting", nested, storage, "top level of data.pkl is a tuple"},
      {"proto_99", "\x80\x63}.", storage, "pickle protocol 99"},
  };
  for (const auto& c : cases) {
    const std::string path = tmp.file("hostile_" + c.name + ".pt");
    write_torch_zip(path, c.pickle, c.storage);
    expect_weights_error([&] { am::read_torch_state_dict(path); }, path, c.expect, c.name);
    expect_weights_error([&] { am::read_weights(path); }, path, c.expect, c.name + " via read_weights");
  }
}

TEST(TorchZip, DamagedZipsThrowNamingTheFile) {
  const auto dirs = fixture_dirs();
  ASSERT_FALSE(dirs.empty()) << "no parity fixtures under " << kParity;
  TempDir tmp;
  const std::string good = read_bytes((dirs.front() / "weights.pt").string());
  ASSERT_GT(good.size(), 1000u);
  struct Case {
    std::string name, bytes, expect;
  };
  std::vector<Case> cases;
  for (size_t cut : {size_t{4}, size_t{30}, good.size() / 2, good.size() - 30, good.size() - 1})
    cases.push_back({"cut_" + std::to_string(cut), good.substr(0, cut), "corrupt zip"});
  // Flip one byte inside data.pkl (the first record): its CRC no longer matches.
  std::string flipped = good;
  flipped[good.find("weights/data.pkl") + 16 + 40] ^= 0x01;
  cases.push_back({"pkl_crc", flipped, "CRC"});
  // Mark data.pkl as deflated in the central directory.
  std::string deflated = good;
  const size_t cdh = deflated.find(std::string("PK\x01\x02", 4));
  ASSERT_NE(cdh, std::string::npos);
  deflated[cdh + 10] = 8;
  cases.push_back({"compressed", deflated, "compressed"});
  for (const auto& c : cases) {
    const std::string path = tmp.file(c.name + ".pt");
    write_bytes(path, c.bytes);
    expect_weights_error([&] { am::read_weights(path); }, path, c.expect, c.name);
  }
}

// ---------------------------------------------------------------------------------------------
// load_state_dict

struct TinyNetImpl : torch::nn::Module {
  TinyNetImpl() {
    fc1 = register_module("fc1", torch::nn::Linear(4, 3));
    bn = register_module("bn", torch::nn::BatchNorm1d(3));
    head = register_module("head", torch::nn::Linear(3, 2));
  }
  torch::nn::Linear fc1{nullptr}, head{nullptr};
  torch::nn::BatchNorm1d bn{nullptr};
};
TORCH_MODULE(TinyNet);

std::map<std::string, torch::Tensor> state_of(torch::nn::Module& m) {
  std::map<std::string, torch::Tensor> s;
  for (const auto& p : m.named_parameters()) s[p.key()] = p.value().detach().clone();
  for (const auto& b : m.named_buffers()) s[b.key()] = b.value().detach().clone();
  return s;
}

// A file-like state: the module's names with distinct values, as a loaded file would hold them.
std::map<std::string, torch::Tensor> random_state(torch::nn::Module& m) {
  auto s = state_of(m);
  for (auto& [name, t] : s)
    t = t.is_floating_point() ? torch::randn(t.sizes()) : torch::full(t.sizes(), 42, t.options());
  return s;
}

TEST(LoadStateDict, CopiesEverythingIncludingNumBatchesTracked) {
  TinyNet net;
  const auto file = random_state(*net);
  am::load_state_dict(*net, file, "file.safetensors");
  expect_same_tensors(state_of(*net), file, "loaded");
}

TEST(LoadStateDict, NumBatchesTrackedMayBeAbsentOrExtra) {
  TinyNet net;
  auto file = random_state(*net);
  file.erase("bn.num_batches_tracked");
  file["other.num_batches_tracked"] = torch::tensor(int64_t{5});
  am::load_state_dict(*net, file, "timm.pt");
  EXPECT_EQ(net->bn->num_batches_tracked.item<int64_t>(), 0);
  EXPECT_TRUE(torch::equal(net->fc1->weight, file.at("fc1.weight")));
}

TEST(LoadStateDict, ConvertsFloatingDtypesToTheModules) {
  TinyNet net;
  auto file = random_state(*net);
  auto want = file;
  file["fc1.weight"] = file["fc1.weight"].to(torch::kFloat64);
  file["head.weight"] = file["head.weight"].to(torch::kBFloat16);
  want["head.weight"] = file["head.weight"].to(torch::kFloat32);
  file["bn.running_var"] = file["bn.running_var"].to(torch::kFloat16);
  want["bn.running_var"] = file["bn.running_var"].to(torch::kFloat32);
  am::load_state_dict(*net, file, "half.safetensors");
  expect_same_tensors(state_of(*net), want, "converted");
}

// A model that adds parts to the one the file was trained as: with MissingKeys::kKeep those keep their values
// and are named; every other check stays (an unexpected key still fails).
TEST(LoadStateDict, MissingKeysMayBeKeptAndAreReturned) {
  TinyNet net;
  const auto before = state_of(*net);
  auto file = random_state(*net);
  file.erase("fc1.bias");
  file.erase("head.weight");
  const std::vector<std::string> kept =
      am::load_state_dict(*net, file, "part.safetensors", am::ExtraKeys::kError, am::MissingKeys::kKeep);
  EXPECT_EQ(kept, (std::vector<std::string>{"fc1.bias", "head.weight"}));
  EXPECT_TRUE(torch::equal(net->fc1->bias, before.at("fc1.bias")));
  EXPECT_TRUE(torch::equal(net->fc1->weight, file.at("fc1.weight")));
  EXPECT_THROW(am::load_state_dict(*net, file, "part.safetensors"), WeightsError) << "strict by default";
  file["extra.weight"] = torch::zeros({1});
  EXPECT_THROW(am::load_state_dict(*net, file, "part.safetensors", am::ExtraKeys::kError, am::MissingKeys::kKeep),
               WeightsError);
}

TEST(LoadStateDict, ReportsEveryProblemAtOnceAndCopiesNothing) {
  TinyNet net;
  const auto before = state_of(*net);
  auto file = random_state(*net);
  file.erase("fc1.bias");
  file["extra.weight"] = torch::zeros({1});
  file["head.weight"] = torch::zeros({5, 3});
  file["bn.running_mean"] = torch::zeros({3}, torch::kInt64);
  try {
    am::load_state_dict(*net, file, "ckpt.safetensors");
    FAIL() << "no exception";
  } catch (const WeightsError& e) {
    EXPECT_EQ(std::string(e.what()),
              "ckpt.safetensors: 1 missing key (fc1.bias), 1 unexpected key (extra.weight), "
              "1 shape mismatch (head.weight: model [2, 3] vs file [5, 3]), "
              "1 dtype mismatch (bn.running_mean: model Float vs file Long)");
  }
  expect_same_tensors(state_of(*net), before, "after a failed load");
}

TEST(LoadStateDict, LongListsAreCut) {
  torch::nn::Sequential seq;
  for (int i = 0; i < 12; ++i) seq->push_back(torch::nn::Linear(2, 2));
  try {
    am::load_state_dict(*seq, {}, "empty.pt");
    FAIL() << "no exception";
  } catch (const WeightsError& e) {
    EXPECT_EQ(std::string(e.what()),
              "empty.pt: 24 missing keys (0.bias, 0.weight, 1.bias, 1.weight, 10.bias, 10.weight, 11.bias, "
              "11.weight, and 16 more)");
  }
}

// ---------------------------------------------------------------------------------------------
// checkpoints

am::ModelCfg tiny_cfg() {
  am::ModelCfg cfg;
  cfg.name = "tiny_test";
  cfg.arch = "resnet";
  cfg.num_classes = 2;
  cfg.labels = {"cat", "not \"cat\""};
  cfg.input_size = {3, 32, 48};
  cfg.resnet.attn = "se";
  return cfg;
}

TEST(Checkpoint, RoundTripsStateAndConfig) {
  TempDir tmp;
  const std::string path = tmp.file("ckpt.safetensors");
  TinyNet net;
  am::load_state_dict(*net, random_state(*net), "random");
  const am::ModelCfg cfg = tiny_cfg();
  am::save_checkpoint(path, *net, cfg);

  const TensorFile f = am::read_weights(path);
  EXPECT_EQ(f.metadata.at("format"), "attnvision");
  EXPECT_EQ(f.tensors.count("bn.num_batches_tracked"), 1u);
  am::ModelCfg got;
  ASSERT_TRUE(am::read_checkpoint_cfg(f, got));
  EXPECT_EQ(am::to_json(got), am::to_json(cfg));
  EXPECT_EQ(got.labels, cfg.labels);

  TinyNet fresh;
  am::load_state_dict(*fresh, f.tensors, path);
  expect_same_tensors(state_of(*fresh), state_of(*net), "reloaded");
}

TEST(Checkpoint, ConfigAbsentOrBroken) {
  TempDir tmp;
  const std::string plain = tmp.file("plain.safetensors"), broken = tmp.file("broken.safetensors"),
                    unknown = tmp.file("unknown.safetensors");
  am::write_safetensors(plain, {{"a", torch::ones({1})}}, {{"format", "pt"}});
  am::write_safetensors(broken, {{"a", torch::ones({1})}}, {{am::kModelCfgMetadataKey, "{\"arch\": "}});
  am::write_safetensors(unknown, {{"a", torch::ones({1})}},
                        {{am::kModelCfgMetadataKey, R"({"arch": "resnet", "colour": 1})"}});
  am::ModelCfg cfg = tiny_cfg();
  EXPECT_FALSE(am::read_checkpoint_cfg(am::read_weights(plain), cfg));
  EXPECT_EQ(cfg.name, "tiny_test");
  expect_weights_error([&] { am::read_checkpoint_cfg(am::read_weights(broken), cfg); }, broken,
                       "not valid JSON", "broken");
  expect_weights_error([&] { am::read_checkpoint_cfg(am::read_weights(unknown), cfg); }, unknown, "colour",
                       "unknown key");
  EXPECT_EQ(cfg.name, "tiny_test");

  TinyNet net;
  am::ModelCfg bad = tiny_cfg();
  bad.arch = "transformer";
  const std::string refused = tmp.file("refused.safetensors");
  expect_weights_error([&] { am::save_checkpoint(refused, *net, bad); }, refused, "invalid model config",
                       "bad cfg");
  EXPECT_FALSE(fs::exists(refused));
}

// A part (a detector's second stage) travels in the same file under its own names: readers of the file's own
// network see that network alone, and the part comes back whole with its own config, in every storage.
TEST(Checkpoint, APartTravelsBesideTheNetworkAndReadsBackApart) {
  TempDir tmp;
  TinyNet net, second;
  am::load_state_dict(*net, random_state(*net), "random");
  am::load_state_dict(*second, random_state(*second), "random");
  am::ModelCfg part_cfg = tiny_cfg();
  part_cfg.name = "the_second_stage";
  for (const torch::ScalarType storage : {torch::kFloat32, torch::kChar}) {
    const std::string path = tmp.file(std::string("parts_") + c10::toString(storage) + ".safetensors");
    am::save_checkpoint(path, *net, tiny_cfg(), storage, {{"second_stage", second.ptr().get(), part_cfg}});
    const TensorFile f = am::read_weights(path);
    EXPECT_EQ(f.metadata.count(am::kPartsMetadataKey), 0u);
    EXPECT_EQ(f.tensors.size(), state_of(*net).size());
    ASSERT_EQ(f.parts.size(), 1u);
    const TensorFile* part = am::find_part(f.parts, "second_stage");
    ASSERT_NE(part, nullptr);
    EXPECT_EQ(am::find_part(f.parts, "other"), nullptr);
    EXPECT_NE(part->path.find(path), std::string::npos);
    am::ModelCfg got, got_part;
    ASSERT_TRUE(am::read_checkpoint_cfg(f, got));
    ASSERT_TRUE(am::read_checkpoint_cfg(*part, got_part));
    EXPECT_EQ(got.name, "tiny_test");
    EXPECT_EQ(got_part.name, "the_second_stage");

    TinyNet fresh, fresh_part;
    am::load_state_dict(*fresh, f.tensors, path);  // no unexpected keys: the part's tensors are not the network's
    am::load_state_dict(*fresh_part, part->tensors, part->path);
    if (storage == torch::kFloat32) {
      expect_same_tensors(state_of(*fresh), state_of(*net), "network");
      expect_same_tensors(state_of(*fresh_part), state_of(*second), "part");
    } else {
      // int8 rows: the part's weights as close to its own as the network's are to the network's.
      const auto a = state_of(*fresh_part), b = state_of(*second);
      for (const auto& [name, t] : a) {
        if (!t.is_floating_point()) continue;
        EXPECT_TRUE(torch::allclose(t, b.at(name), 0.02, 0.02 * b.at(name).abs().max().item<double>())) << name;
      }
    }
  }
}

TEST(Checkpoint, APartsNameAndContentAreChecked) {
  TempDir tmp;
  TinyNet net, second;
  const std::string path = tmp.file("bad_parts.safetensors");
  expect_weights_error([&] { am::save_checkpoint(path, *net, tiny_cfg(), torch::kFloat32, {{"a.b", second.ptr().get(), tiny_cfg()}}); },
                       path, "invalid or repeated part name", "dotted name");
  expect_weights_error(
      [&] {
        am::save_checkpoint(path, *net, tiny_cfg(), torch::kFloat32,
                            {{"p", second.ptr().get(), tiny_cfg()}, {"p", second.ptr().get(), tiny_cfg()}});
      },
      path, "invalid or repeated part name", "repeated name");
  // A part named like one of the network's modules would take that module's tensors when read back.
  expect_weights_error([&] { am::save_checkpoint(path, *net, tiny_cfg(), torch::kFloat32, {{"bn", second.ptr().get(), tiny_cfg()}}); },
                       path, "would be read back as part 'bn'", "prefix clash");
  EXPECT_FALSE(fs::exists(path));
  // A file listing a part it does not hold.
  const std::string hollow = tmp.file("hollow.safetensors");
  am::write_safetensors(hollow, {{"a", torch::ones({1})}}, {{"format", "attnvision"}, {am::kPartsMetadataKey, "second_stage"}});
  expect_weights_error([&] { am::read_weights(hollow); }, hollow, "part 'second_stage' has no tensors", "hollow part");
}

// int8 storage: each matrix's rows as int8 with a float32 scale, read back as float32 rows within half a step.
struct QuantNetImpl : torch::nn::Module {
  QuantNetImpl() {
    conv = register_module("conv", torch::nn::Conv2d(torch::nn::Conv2dOptions(8, 16, 3)));
    bn = register_module("bn", torch::nn::BatchNorm2d(16));
    fc = register_module("fc", torch::nn::Linear(64, 40));
    small = register_module("small", torch::nn::Linear(4, 3));
  }
  torch::nn::Conv2d conv{nullptr};
  torch::nn::BatchNorm2d bn{nullptr};
  torch::nn::Linear fc{nullptr}, small{nullptr};
};
TORCH_MODULE(QuantNet);

// The dtype of every tensor in a safetensors file's header, as written.
std::map<std::string, std::string> stored_dtypes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  uint64_t n = 0;
  in.read(reinterpret_cast<char*>(&n), 8);
  std::string header(n, ' ');
  in.read(header.data(), static_cast<std::streamsize>(n));
  std::map<std::string, std::string> out;
  const nlohmann::json parsed = nlohmann::json::parse(header);
  for (const auto& [name, v] : parsed.items())
    if (name != "__metadata__") out[name] = v.at("dtype").get<std::string>();
  return out;
}

TEST(Checkpoint, Int8RowsReadBackAsFloat32WithinHalfAStep) {
  TempDir tmp;
  const std::string path = tmp.file("int8.safetensors");
  QuantNet net;
  torch::manual_seed(3);
  {
    torch::NoGradGuard no_grad;
    for (auto& p : net->parameters()) p.normal_();
    net->fc->weight[5].zero_();  // an all-zero row must survive
  }
  am::save_checkpoint(path, *net, tiny_cfg(), torch::kChar);

  const auto dtypes = stored_dtypes(path);
  EXPECT_EQ(dtypes.at("fc.weight"), "I8");
  EXPECT_EQ(dtypes.at("fc.weight.int8_scale"), "F32");
  EXPECT_EQ(dtypes.at("conv.weight"), "I8");
  EXPECT_EQ(dtypes.at("small.weight"), "F16");  // 12 values: not worth a scale per row
  EXPECT_EQ(dtypes.at("fc.bias"), "F16");

  const TensorFile f = am::read_weights(path);
  EXPECT_EQ(f.tensors.count("fc.weight.int8_scale"), 0u);
  QuantNet back;
  am::load_state_dict(*back, f.tensors, path);
  const auto within_half_a_step = [](const torch::Tensor& original, const torch::Tensor& read) {
    const torch::Tensor rows = original.detach().reshape({original.size(0), -1});
    const torch::Tensor step = rows.abs().amax(1, /*keepdim=*/true) / 127.0;
    const torch::Tensor error = (read.detach().reshape(rows.sizes()) - rows).abs();
    EXPECT_TRUE(error.le(step * 0.5 + 1e-7).all().item<bool>()) << "largest error " << error.max().item<float>();
    EXPECT_GT(error.max().item<float>(), 0.0f);  // it was quantised, not stored whole
  };
  within_half_a_step(net->fc->weight, back->fc->weight);
  within_half_a_step(net->conv->weight, back->conv->weight);
  EXPECT_TRUE(back->fc->weight[5].eq(0).all().item<bool>());
  EXPECT_TRUE(back->fc->bias.equal(net->fc->bias.detach().to(torch::kHalf).to(torch::kFloat)));
}

TEST(Checkpoint, AnInt8ScaleWithoutItsInt8RowsIsNamed) {
  TempDir tmp;
  const std::string path = tmp.file("scale.safetensors");
  am::write_safetensors(path, {{"w", torch::ones({2, 3})}, {"w.int8_scale", torch::ones({2})}}, {{"format", "attnvision"}});
  expect_weights_error([&] { am::read_weights(path); }, path, "does not scale the rows", "float rows");
  am::write_safetensors(path, {{"w", torch::ones({2, 3}).to(torch::kChar)}, {"w.int8_scale", torch::ones({3})}},
                        {{"format", "attnvision"}});
  expect_weights_error([&] { am::read_weights(path); }, path, "does not scale the rows", "wrong count");
}

}  // namespace
