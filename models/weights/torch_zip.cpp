// torch.save archives: a zip of stored records ("<stem>/data.pkl", "<stem>/data/<key>") read in
// place from the file's mapping, and an interpreter for the few pickle opcodes and globals a
// state_dict uses. libtorch 1.13's own pickle_load aborts on the OrderedDict that state_dict() pickles.
#include "models/weights/weights_internal.h"

#include <torch/torch.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace attnvision::models::weights_internal {
namespace {

// Limits on what a pickle may ask of us before we allocate for it.
constexpr size_t kMaxPickleObjects = size_t{1} << 20;
constexpr size_t kMaxPickleStack = size_t{1} << 20;
constexpr size_t kMaxPickleMemo = size_t{1} << 20;

// Zip (only what torch.save writes: stored records, optionally zip64), read in place.

struct ZipEntry {
  uint64_t local_offset = 0, comp_size = 0, size = 0;
  uint32_t crc = 0;
  uint16_t method = 0, flags = 0;
};

class ZipReader {
 public:
  explicit ZipReader(std::shared_ptr<Mapping> map);
  bool has(const std::string& name) const { return entries_.count(name) != 0; }
  // Offset of the record's bytes in the file, after checking they are stored and inside it.
  std::pair<uint64_t, uint64_t> record(const std::string& name) const;
  const std::map<std::string, ZipEntry>& entries() const { return entries_; }

 private:
  [[noreturn]] void bad(const std::string& problem) const { fail(map_->path(), "corrupt zip: " + problem); }
  void read_central_directory(uint64_t cd_offset, uint64_t cd_size, uint64_t count);
  std::shared_ptr<Mapping> map_;
  std::map<std::string, ZipEntry> entries_;
};

ZipReader::ZipReader(std::shared_ptr<Mapping> map) : map_(std::move(map)) {
  const uint8_t* d = map_->data();
  const size_t size = map_->size();
  // The end-of-central-directory record is the last 22 bytes plus a comment of up to 64 KiB.
  if (size < 22) bad("too short for an end of central directory (truncated?)");
  size_t eocd = size - 22;
  const size_t lowest = size > 22 + 0xffff ? size - 22 - 0xffff : 0;
  while (le32(d + eocd) != 0x06054b50) {
    if (eocd == lowest) bad("no end of central directory (truncated?)");
    --eocd;
  }
  uint64_t count = le16(d + eocd + 10), cd_size = le32(d + eocd + 12), cd_offset = le32(d + eocd + 16);
  if (le16(d + eocd + 4) != 0 && le16(d + eocd + 4) != 0xffff) bad("multi-disk archives are not supported");
  if (count == 0xffff || cd_size == 0xffffffff || cd_offset == 0xffffffff) {
    if (eocd < 20 || le32(d + eocd - 20) != 0x07064b50) bad("zip64 locator missing");
    const uint64_t z = le64(d + eocd - 20 + 8);
    if (z > eocd || eocd - z < 56 || le32(d + z) != 0x06064b50) bad("zip64 end of central directory missing");
    count = le64(d + z + 32);
    cd_size = le64(d + z + 40);
    cd_offset = le64(d + z + 48);
  }
  if (cd_offset > eocd || cd_size > eocd - cd_offset) bad("central directory outside the file (truncated?)");
  if (count > cd_size / 46) bad("central directory too small for " + std::to_string(count) + " entries");
  read_central_directory(cd_offset, cd_size, count);
}

void ZipReader::read_central_directory(uint64_t cd_offset, uint64_t cd_size, uint64_t count) {
  const uint8_t* d = map_->data();
  uint64_t p = cd_offset;
  const uint64_t end = cd_offset + cd_size;
  for (uint64_t i = 0; i < count; ++i) {
    if (end - p < 46 || le32(d + p) != 0x02014b50)
      bad("central directory entry " + std::to_string(i) + " is damaged");
    ZipEntry e;
    e.flags = le16(d + p + 8);
    e.method = le16(d + p + 10);
    e.crc = le32(d + p + 16);
    e.comp_size = le32(d + p + 20);
    e.size = le32(d + p + 24);
    e.local_offset = le32(d + p + 42);
    const uint64_t name_len = le16(d + p + 28), extra_len = le16(d + p + 30), comment_len = le16(d + p + 32);
    if (end - p - 46 < name_len + extra_len + comment_len)
      bad("central directory entry " + std::to_string(i) + " overruns it");
    std::string name(reinterpret_cast<const char*>(d + p + 46), name_len);
    // zip64 extended information: 8-byte values for the fields that hold 0xffffffff, in this order.
    const uint8_t* x = d + p + 46 + name_len;
    for (uint64_t q = 0; q + 4 <= extra_len;) {
      const uint16_t id = le16(x + q), len = le16(x + q + 2);
      if (q + 4 + len > extra_len) bad("extra field of '" + printable(name) + "' overruns its entry");
      if (id == 0x0001) {
        uint64_t r = q + 4;
        for (uint64_t* field : {&e.size, &e.comp_size, &e.local_offset}) {
          if (*field != 0xffffffff) continue;
          if (r + 8 > q + 4 + len) bad("zip64 field of '" + printable(name) + "' too short");
          *field = le64(x + r);
          r += 8;
        }
      }
      q += 4 + len;
    }
    if (!entries_.emplace(name, e).second) bad("record '" + printable(name) + "' appears twice");
    p += 46 + name_len + extra_len + comment_len;
  }
}

std::pair<uint64_t, uint64_t> ZipReader::record(const std::string& name) const {
  auto it = entries_.find(name);
  if (it == entries_.end()) fail(map_->path(), "record '" + printable(name) + "' is missing from the zip");
  const ZipEntry& e = it->second;
  if (e.flags & 1) bad("record '" + printable(name) + "' is encrypted");
  if (e.method != 0)
    bad("record '" + printable(name) + "' is compressed (torch.save stores records uncompressed)");
  if (e.comp_size != e.size) bad("stored record '" + printable(name) + "' has different sizes");
  const uint8_t* d = map_->data();
  const uint64_t size = map_->size(), h = e.local_offset;
  if (h > size || size - h < 30 || le32(d + h) != 0x04034b50)
    bad("local header of '" + printable(name) + "' is damaged");
  const uint64_t name_len = le16(d + h + 26), extra_len = le16(d + h + 28);
  const uint64_t data = h + 30 + name_len + extra_len;
  if (data > size || e.size > size - data)
    bad("record '" + printable(name) + "' (" + std::to_string(e.size) +
        " bytes) runs past the end of the file (truncated?)");
  if (name_len != name.size() || std::memcmp(d + h + 30, name.data(), name.size()) != 0)
    bad("local header name differs from the central directory for '" + printable(name) + "'");
  return {data, e.size};
}

uint32_t crc32(const uint8_t* p, size_t n) {
  static const std::array<uint32_t, 256> table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  uint32_t c = 0xffffffffu;
  for (size_t i = 0; i < n; ++i) c = table[(c ^ p[i]) & 0xff] ^ (c >> 8);
  return c ^ 0xffffffffu;
}

// ---------------------------------------------------------------------------------------------
// Pickle: the subset torch.save uses for a state_dict. Objects live in an arena and refer to one
// another by raw pointer, so a deeply nested or cyclic hostile pickle cannot overflow the stack
// when it is destroyed.

struct PyObj {
  enum class Kind : uint8_t { None, Bool, Int, Float, Str, Tuple, List, Dict, Global, Storage, Tensor };
  Kind kind = Kind::None;
  int64_t i = 0;                                // Bool, Int
  double f = 0;                                 // Float
  std::string s;                                // Str; Global as "module.name"
  std::vector<PyObj*> items;                    // Tuple, List
  std::vector<std::pair<PyObj*, PyObj*>> dict;  // Dict (insertion order)
  torch::Tensor tensor;                         // Storage (1-D, whole storage), Tensor
};

const char* kind_name(PyObj::Kind k) {
  static const char* names[] = {"None", "bool", "int",    "float",   "str",   "tuple",
                                "list", "dict", "global", "storage", "tensor"};
  return names[static_cast<int>(k)];
}

struct StorageClass {
  const char* global;
  torch::ScalarType type;
};
constexpr std::array<StorageClass, 10> kStorageClasses{{{"torch.FloatStorage", torch::kFloat32},
                                                        {"torch.DoubleStorage", torch::kFloat64},
                                                        {"torch.HalfStorage", torch::kFloat16},
                                                        {"torch.BFloat16Storage", torch::kBFloat16},
                                                        {"torch.LongStorage", torch::kInt64},
                                                        {"torch.IntStorage", torch::kInt32},
                                                        {"torch.ShortStorage", torch::kInt16},
                                                        {"torch.CharStorage", torch::kInt8},
                                                        {"torch.ByteStorage", torch::kUInt8},
                                                        {"torch.BoolStorage", torch::kBool}}};
constexpr const char* kOrderedDict = "collections.OrderedDict";
constexpr const char* kRebuildTensor = "torch._utils._rebuild_tensor_v2";

const StorageClass* storage_class(const std::string& global) {
  for (const auto& c : kStorageClasses)
    if (global == c.global) return &c;
  return nullptr;
}

// Loads the storage a persistent id names: (key, dtype, numel) -> 1-D tensor over the record.
using StorageLoader = std::function<torch::Tensor(const std::string& key, torch::ScalarType, int64_t numel)>;

class Unpickler {
 public:
  Unpickler(std::string path, std::string record, const uint8_t* data, size_t size, StorageLoader load)
      : path_(std::move(path)), record_(std::move(record)), d_(data), size_(size), load_(std::move(load)) {}
  const PyObj* run();

 private:
  [[noreturn]] void bad(const std::string& problem) const {
    fail(path_, record_ + " byte " + std::to_string(op_pos_) + ": " + problem);
  }
  const uint8_t* take(size_t n) {
    if (size_ - pos_ < n) bad("pickle truncated");
    const uint8_t* p = d_ + pos_;
    pos_ += n;
    return p;
  }
  PyObj* make(PyObj::Kind k) {
    if (arena_.size() >= kMaxPickleObjects)
      bad("more than " + std::to_string(kMaxPickleObjects) + " pickle objects");
    arena_.push_back(std::make_unique<PyObj>());
    arena_.back()->kind = k;
    return arena_.back().get();
  }
  PyObj* make_int(int64_t v) {
    PyObj* o = make(PyObj::Kind::Int);
    o->i = v;
    return o;
  }
  PyObj* make_str(const uint8_t* p, size_t n) {
    PyObj* o = make(PyObj::Kind::Str);
    o->s.assign(reinterpret_cast<const char*>(p), n);
    return o;
  }
  void push(PyObj* o) {
    if (stack_.size() >= kMaxPickleStack) bad("pickle stack deeper than " + std::to_string(kMaxPickleStack));
    stack_.push_back(o);
  }
  PyObj* pop() {
    if (stack_.size() <= (marks_.empty() ? 0 : marks_.back())) bad("pickle stack underflow");
    PyObj* o = stack_.back();
    stack_.pop_back();
    return o;
  }
  PyObj* top(PyObj::Kind k, const char* op) {
    if (stack_.size() <= (marks_.empty() ? 0 : marks_.back())) bad(std::string(op) + " on an empty stack");
    if (stack_.back()->kind != k) bad(std::string(op) + " on a " + kind_name(stack_.back()->kind));
    return stack_.back();
  }
  std::vector<PyObj*> pop_mark() {
    if (marks_.empty()) bad("no MARK on the stack");
    std::vector<PyObj*> items(stack_.begin() + static_cast<std::ptrdiff_t>(marks_.back()), stack_.end());
    stack_.resize(marks_.back());
    marks_.pop_back();
    return items;
  }
  void memo_put(uint32_t index) {
    if (stack_.empty()) bad("memo put on an empty stack");
    if (memo_.size() >= kMaxPickleMemo && !memo_.count(index))
      bad("pickle memo larger than " + std::to_string(kMaxPickleMemo));
    memo_[index] = stack_.back();
  }
  void memo_get(uint32_t index) {
    auto it = memo_.find(index);
    if (it == memo_.end()) bad("memo index " + std::to_string(index) + " was never set");
    push(it->second);
  }
  PyObj* make_tuple(std::vector<PyObj*> items) {
    PyObj* t = make(PyObj::Kind::Tuple);
    t->items = std::move(items);
    return t;
  }
  void global(const std::string& module, const std::string& name);
  PyObj* reduce(PyObj* callable, PyObj* args);
  PyObj* persistent_load(PyObj* pid);
  PyObj* rebuild_tensor(const std::vector<PyObj*>& args);
  std::vector<int64_t> int_tuple(const PyObj* o, const char* what);

  std::string path_, record_;
  const uint8_t* d_;
  size_t size_, pos_ = 0, op_pos_ = 0;
  StorageLoader load_;
  std::vector<std::unique_ptr<PyObj>> arena_;
  std::vector<PyObj*> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint32_t, PyObj*> memo_;
};

const PyObj* Unpickler::run() {
  while (true) {
    op_pos_ = pos_;
    const uint8_t op = *take(1);
    switch (op) {
      case 0x80: {  // PROTO
        const uint8_t proto = *take(1);
        if (proto < 2 || proto > 5) bad("pickle protocol " + std::to_string(proto) + " is not supported");
        break;
      }
      case 0x95:  // FRAME: a length hint only; the whole record is in memory
        if (le64(take(8)) > size_ - pos_) bad("frame runs past the end of the pickle");
        break;
      case '.':  // STOP
        return pop();
      case 'c': {  // GLOBAL "module\nname\n"
        std::string parts[2];
        for (auto& part : parts) {
          const uint8_t* nl =
              static_cast<const uint8_t*>(std::memchr(d_ + pos_, '\n', std::min<size_t>(size_ - pos_, 256)));
          if (!nl) bad("GLOBAL name is unterminated");
          part.assign(reinterpret_cast<const char*>(d_ + pos_), static_cast<size_t>(nl - (d_ + pos_)));
          pos_ = static_cast<size_t>(nl - d_) + 1;
        }
        global(parts[0], parts[1]);
        break;
      }
      case 0x93: {  // STACK_GLOBAL
        PyObj* name = pop();
        PyObj* module = pop();
        if (name->kind != PyObj::Kind::Str || module->kind != PyObj::Kind::Str)
          bad("STACK_GLOBAL needs two strings");
        global(module->s, name->s);
        break;
      }
      case 'q':  // BINPUT
        memo_put(*take(1));
        break;
      case 'r':  // LONG_BINPUT
        memo_put(le32(take(4)));
        break;
      case 0x94:  // MEMOIZE
        memo_put(static_cast<uint32_t>(std::min<size_t>(memo_.size(), UINT32_MAX)));
        break;
      case 'h':  // BINGET
        memo_get(*take(1));
        break;
      case 'j':  // LONG_BINGET
        memo_get(le32(take(4)));
        break;
      case '(':  // MARK
        if (marks_.size() >= kMaxPickleStack) bad("too many MARKs");
        marks_.push_back(stack_.size());
        break;
      case '}':  // EMPTY_DICT
        push(make(PyObj::Kind::Dict));
        break;
      case ']':  // EMPTY_LIST
        push(make(PyObj::Kind::List));
        break;
      case ')':  // EMPTY_TUPLE
        push(make(PyObj::Kind::Tuple));
        break;
      case 't':  // TUPLE
        push(make_tuple(pop_mark()));
        break;
      case 0x85:
      case 0x86:
      case 0x87: {  // TUPLE1, TUPLE2, TUPLE3
        std::vector<PyObj*> items(op - 0x84);
        for (auto it = items.rbegin(); it != items.rend(); ++it) *it = pop();
        push(make_tuple(std::move(items)));
        break;
      }
      case 'X': {  // BINUNICODE
        const uint32_t n = le32(take(4));
        push(make_str(take(n), n));
        break;
      }
      case 0x8c: {  // SHORT_BINUNICODE
        const uint8_t n = *take(1);
        push(make_str(take(n), n));
        break;
      }
      case 'J':  // BININT
        push(make_int(static_cast<int32_t>(le32(take(4)))));
        break;
      case 'K':  // BININT1
        push(make_int(*take(1)));
        break;
      case 'M':  // BININT2
        push(make_int(le16(take(2))));
        break;
      case 0x8a: {  // LONG1: little-endian two's complement, as protocol 2 writes ints beyond 32 bits
        const uint8_t n = *take(1);
        if (n > 8) bad("integer of " + std::to_string(n) + " bytes is too large");
        const uint8_t* p = take(n);
        uint64_t v = 0;
        for (int k = n - 1; k >= 0; --k) v = (v << 8) | p[k];
        if (n > 0 && n < 8 && (p[n - 1] & 0x80)) v |= ~uint64_t{0} << (8 * n);  // sign-extend
        push(make_int(static_cast<int64_t>(v)));
        break;
      }
      case 'G': {  // BINFLOAT: big-endian double
        const uint8_t* p = take(8);
        uint64_t bits = 0;
        for (int k = 0; k < 8; ++k) bits = (bits << 8) | p[k];
        PyObj* o = make(PyObj::Kind::Float);
        std::memcpy(&o->f, &bits, 8);
        push(o);
        break;
      }
      case 0x88:
      case 0x89: {  // NEWTRUE, NEWFALSE
        PyObj* o = make(PyObj::Kind::Bool);
        o->i = op == 0x88;
        push(o);
        break;
      }
      case 'N':  // NONE
        push(make(PyObj::Kind::None));
        break;
      case 'R': {  // REDUCE
        PyObj* args = pop();
        PyObj* callable = pop();
        push(reduce(callable, args));
        break;
      }
      case 'Q':  // BINPERSID
        push(persistent_load(pop()));
        break;
      case 's': {  // SETITEM
        PyObj* value = pop();
        PyObj* key = pop();
        top(PyObj::Kind::Dict, "SETITEM")->dict.emplace_back(key, value);
        break;
      }
      case 'u': {  // SETITEMS
        std::vector<PyObj*> kv = pop_mark();
        if (kv.size() % 2) bad("SETITEMS with an odd number of items");
        PyObj* d = top(PyObj::Kind::Dict, "SETITEMS");
        for (size_t k = 0; k < kv.size(); k += 2) d->dict.emplace_back(kv[k], kv[k + 1]);
        break;
      }
      case 'a': {  // APPEND
        PyObj* value = pop();
        top(PyObj::Kind::List, "APPEND")->items.push_back(value);
        break;
      }
      case 'e': {  // APPENDS
        std::vector<PyObj*> values = pop_mark();
        PyObj* l = top(PyObj::Kind::List, "APPENDS");
        l->items.insert(l->items.end(), values.begin(), values.end());
        break;
      }
      case 'b':  // BUILD: the only object that gets state is OrderedDict (its _metadata); drop it
        pop();
        top(PyObj::Kind::Dict, "BUILD");
        break;
      default: {
        const bool show = op >= 0x21 && op < 0x7f;
        char hex[8];
        std::snprintf(hex, sizeof hex, "0x%02x", op);
        bad(std::string("unsupported pickle opcode ") + hex +
            (show ? std::string(" ('") + char(op) + "')" : ""));
      }
    }
  }
}

void Unpickler::global(const std::string& module, const std::string& name) {
  const std::string full = module + "." + name;
  if (full != kOrderedDict && full != kRebuildTensor && !storage_class(full))
    bad("unsupported pickle global '" + printable(full) + "' (a state_dict holds only tensors)");
  PyObj* g = make(PyObj::Kind::Global);
  g->s = full;
  push(g);
}

PyObj* Unpickler::reduce(PyObj* callable, PyObj* args) {
  if (callable->kind != PyObj::Kind::Global) bad(std::string("REDUCE on a ") + kind_name(callable->kind));
  if (args->kind != PyObj::Kind::Tuple) bad("REDUCE arguments are not a tuple");
  if (callable->s == kOrderedDict) {
    if (!args->items.empty()) bad("OrderedDict called with arguments");
    return make(PyObj::Kind::Dict);
  }
  if (callable->s == kRebuildTensor) return rebuild_tensor(args->items);
  bad("cannot call '" + callable->s + "'");
}

// pid = ('storage', StorageClass, key, location, numel); the bytes are record data/<key>.
PyObj* Unpickler::persistent_load(PyObj* pid) {
  const auto& t = pid->items;
  if (pid->kind != PyObj::Kind::Tuple || t.size() != 5 || t[0]->kind != PyObj::Kind::Str ||
      t[0]->s != "storage" || t[1]->kind != PyObj::Kind::Global || t[2]->kind != PyObj::Kind::Str ||
      t[3]->kind != PyObj::Kind::Str || t[4]->kind != PyObj::Kind::Int)
    bad("persistent id is not ('storage', type, key, location, numel)");
  const StorageClass* cls = storage_class(t[1]->s);
  if (!cls) bad("persistent id names '" + printable(t[1]->s) + "', not a storage type");
  if (t[4]->i < 0) bad("storage '" + printable(t[2]->s) + "' has a negative size");
  PyObj* o = make(PyObj::Kind::Storage);
  o->tensor = load_(t[2]->s, cls->type, t[4]->i);
  return o;
}

std::vector<int64_t> Unpickler::int_tuple(const PyObj* o, const char* what) {
  if (o->kind != PyObj::Kind::Tuple || o->items.size() > kMaxDims)
    bad(std::string("tensor ") + what + " is not a tuple of at most " + std::to_string(kMaxDims) + " ints");
  std::vector<int64_t> v;
  for (const PyObj* x : o->items) {
    if (x->kind != PyObj::Kind::Int || x->i < 0)
      bad(std::string("tensor ") + what + " holds a value that is not a size");
    v.push_back(x->i);
  }
  return v;
}

// _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
PyObj* Unpickler::rebuild_tensor(const std::vector<PyObj*>& args) {
  if (args.size() != 6 && args.size() != 7) bad("_rebuild_tensor_v2 takes 6 or 7 arguments");
  if (args[0]->kind != PyObj::Kind::Storage) bad("_rebuild_tensor_v2 without a storage");
  if (args[1]->kind != PyObj::Kind::Int || args[1]->i < 0) bad("tensor storage offset is not a size");
  const torch::Tensor& storage = args[0]->tensor;
  const int64_t offset = args[1]->i, storage_numel = storage.numel();
  const std::vector<int64_t> size = int_tuple(args[2], "size"), stride = int_tuple(args[3], "stride");
  if (size.size() != stride.size()) bad("tensor size and stride differ in length");
  // Every element the view can reach must lie inside the storage.
  int64_t numel = 1, last = offset;
  bool overflow = false;
  for (size_t k = 0; k < size.size(); ++k) {
    overflow |= __builtin_mul_overflow(numel, size[k], &numel);
    int64_t reach = 0;
    if (size[k] > 0)
      overflow |= __builtin_mul_overflow(size[k] - 1, stride[k], &reach) ||
                  __builtin_add_overflow(last, reach, &last);
  }
  if (overflow || offset > storage_numel || (numel > 0 && last >= storage_numel))
    bad("tensor of size " + format_shape(size) + ", stride " + format_shape(stride) + ", offset " +
        std::to_string(offset) + " reaches past its storage of " + std::to_string(storage_numel) +
        " elements");
  PyObj* o = make(PyObj::Kind::Tensor);
  o->tensor = storage.as_strided(size, stride, offset);
  return o;
}

// The dict's entries as a state_dict, or false when it is not one (a key that is not a str, a
// value that is not a tensor).
bool as_state_dict(const PyObj* o, std::map<std::string, torch::Tensor>& out) {
  if (o->kind != PyObj::Kind::Dict) return false;
  for (const auto& [k, v] : o->dict)
    if (k->kind != PyObj::Kind::Str || v->kind != PyObj::Kind::Tensor) return false;
  for (const auto& [k, v] : o->dict) out[k->s] = v->tensor;
  return true;
}

const PyObj* dict_get(const PyObj* o, const std::string& key) {
  for (const auto& [k, v] : o->dict)
    if (k->kind == PyObj::Kind::Str && k->s == key) return v;
  return nullptr;
}

}  // namespace

TensorFile parse_torch_zip(const std::shared_ptr<Mapping>& map) {
  const std::string& path = map->path();
  ZipReader zip(map);
  // Records are "<stem>/data.pkl", "<stem>/data/<key>", where <stem> is the saved file's stem.
  std::string prefix;
  for (const auto& entry : zip.entries()) {
    const std::string& name = entry.first;
    const size_t slash = name.find('/');
    if (slash == std::string::npos || name.compare(slash, std::string::npos, "/data.pkl") != 0) continue;
    if (!prefix.empty()) fail(path, "zip holds more than one data.pkl record");
    prefix = name.substr(0, slash + 1);
  }
  if (prefix.empty()) fail(path, "zip is not a torch.save archive (no <name>/data.pkl record)");
  if (zip.has(prefix + "constants.pkl"))
    fail(path, "is a TorchScript archive (torch.jit.save); save model.state_dict() with torch.save instead");

  const auto [pkl_offset, pkl_size] = zip.record(prefix + "data.pkl");
  const uint8_t* pkl = map->data() + pkl_offset;
  if (crc32(pkl, pkl_size) != zip.entries().at(prefix + "data.pkl").crc)
    fail(path, "data.pkl fails its CRC check");

  std::map<std::string, std::pair<torch::ScalarType, torch::Tensor>> storages;
  auto load = [&](const std::string& key, torch::ScalarType dtype, int64_t numel) {
    const std::string record = prefix + "data/" + key;
    if (auto it = storages.find(key); it != storages.end()) {
      if (it->second.first != dtype || it->second.second.numel() != numel)
        fail(path, "storage '" + printable(key) + "' is used with two types or sizes");
      return it->second.second;
    }
    const auto [offset, nbytes] = zip.record(record);
    uint64_t want = 0;
    if (__builtin_mul_overflow(static_cast<uint64_t>(numel), c10::elementSize(dtype), &want) ||
        want != nbytes)
      fail(path, "storage '" + printable(key) + "' declares " + std::to_string(numel) + " elements of " +
                     c10::toString(dtype) + " but record " + printable(record) + " holds " +
                     std::to_string(nbytes) + " bytes");
    if (dtype == torch::kBool)
      check_bool_bytes(path, "storage '" + printable(key) + "'", map->data() + offset, nbytes);
    torch::Tensor t = tensor_over(map, offset, nbytes, {numel}, dtype);
    storages.emplace(key, std::make_pair(dtype, t));
    return t;
  };

  Unpickler unpickler(path, prefix + "data.pkl", pkl, pkl_size, load);
  const PyObj* top = unpickler.run();
  TensorFile out;
  out.path = path;
  if (top->kind != PyObj::Kind::Dict)
    fail(path, std::string("top level of data.pkl is a ") + kind_name(top->kind) + ", not a state_dict");
  if (as_state_dict(top, out.tensors)) return out;
  for (const char* key : {"state_dict", "model"}) {
    const PyObj* inner = dict_get(top, key);
    if (inner && as_state_dict(inner, out.tensors)) return out;
  }
  fail(path,
       "data.pkl holds a dict that is not a state_dict (str -> tensor), nor one under 'state_dict' or "
       "'model'");
}

}  // namespace attnvision::models::weights_internal
