// Structural pre-scan of an untrusted DICOM byte stream (see scan_structure in dicom_detail.h).
//
// DCMTK's parser recurses once per nested sequence and overflows an 8 MB stack at roughly ten thousand
// levels, which a 200 kB file can ask for. It also trusts declared lengths until it tries to read them.
// This walker follows the same encoding rules (explicit / implicit VR, byte order, CP-246 UN sequences,
// unexpected implicit elements in explicit data, encapsulated pixel data) without building anything,
// so a file is refused with a clear reason before DCMTK allocates or recurses.
#include "vision/dicom_detail.h"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dctag.h>
#include <dcmtk/dcmdata/dcvr.h>
#include <zlib.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>
#include <sstream>

namespace attnvision::vision::dicom_detail {
namespace {

constexpr uint32_t kUndefined = 0xFFFFFFFFu;
constexpr const char* kDeflated = "1.2.840.10008.1.2.1.99";
constexpr int64_t kMaxDisorder = 1000;
constexpr uint16_t kItemGroup = 0xFFFE;
constexpr uint16_t kItem = 0xE000, kItemDelim = 0xE00D, kSeqDelim = 0xE0DD;

struct Syntax {
  bool explicit_vr = true;
  bool little = true;
};

// DCMTK's verdict on every two-letter VR, computed once: the scan asks for each element, and building
// a DcmVR from a string is a table search.
struct VrTable {
  VrTable() {
    for (int a = 0; a < 26; ++a) {
      for (int b = 0; b < 26; ++b) {
        const char s[3] = {char('A' + a), char('A' + b), 0};
        const DcmVR vr(s);
        standard[a][b] = vr.isStandard();
        extended[a][b] = vr.usesExtendedLengthEncoding();
      }
    }
  }
  bool standard[26][26];
  bool extended[26][26];
};

const VrTable& vr_table() {
  static const VrTable table;
  return table;
}

// True (and whether the length field is 4 bytes) when the two bytes are a standard VR.
bool standard_vr(const uint8_t* p, bool& extended) {
  if (p[0] < 'A' || p[0] > 'Z' || p[1] < 'A' || p[1] > 'Z') return false;
  const VrTable& t = vr_table();
  extended = t.extended[p[0] - 'A'][p[1] - 'A'];
  return t.standard[p[0] - 'A'][p[1] - 'A'];
}

std::string tag_text(uint16_t g, uint16_t e) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "(%04X,%04X)", g, e);
  return buf;
}

class Walker {
 public:
  Walker(const uint8_t* data, size_t size, const std::string& name, const ScanLimits& limits)
      : d_(data), size_(size), name_(name), limits_(limits) {}

  uint16_t u16(size_t pos, bool little) const {
    return little ? uint16_t(d_[pos] | d_[pos + 1] << 8) : uint16_t(d_[pos] << 8 | d_[pos + 1]);
  }
  uint32_t u32(size_t pos, bool little) const {
    const uint32_t a = u16(pos, little), b = u16(pos + 2, little);
    return little ? (a | b << 16) : (a << 16 | b);
  }

  [[noreturn]] void fail(const std::string& problem,
                         DicomError::Kind kind = DicomError::Kind::corrupt) const {
    throw error(kind, name_, problem);
  }

  // Reads the elements of a data set or item in [pos, end). With `in_item_undefined`, an item
  // delimiter ends the item and the position after it is returned. Speculative walks (values that
  // might be sequences) give up quietly on anything unexpected instead of failing.
  // Meta mode: the top level stops at the first element outside group 0002 (when no group length
  // bounds the meta group) and the Transfer Syntax UID is recorded.
  void meta_mode(std::string* transfer_syntax) { transfer_syntax_ = transfer_syntax; }

  size_t elements(size_t pos, size_t end, Syntax syn, int depth, bool in_item_undefined, bool speculative) {
    uint32_t last_tag = 0;
    bool first = true;
    while (pos < end) {
      if (transfer_syntax_ != nullptr && depth == 0 && end - pos >= 2 && u16(pos, syn.little) != 0x0002)
        return pos;
      if (end - pos < 8) {
        if (speculative) return end;
        // DCMTK stops at a short tail of a data set; inside an item it is a truncation.
        if (depth == 0) return end;
        fail("truncated inside a sequence item at byte " + std::to_string(pos));
      }
      const uint16_t g = u16(pos, syn.little), e = u16(pos + 2, syn.little);
      if (g == kItemGroup) {
        if (e == kItemDelim && in_item_undefined) return pos + 8;
        if (speculative) throw Giveup{};
        fail("unexpected delimiter " + tag_text(g, e) + " at byte " + std::to_string(pos));
      }
      count_element();
      // Tags ascend inside a data set or item. DCMTK accepts a repeat or a step back (it warns, and drops
      // repeats), but each costs it a formatted warning and a search of the element list: a stream of
      // them (a bomb of zeros inflates to millions of "(0000,0000)") is junk, not a DICOM object.
      const uint32_t tag = uint32_t(g) << 16 | e;
      if (!first && tag <= last_tag && !speculative && ++disorder_ > kMaxDisorder)
        fail("more than " + std::to_string(kMaxDisorder) + " data elements out of order or repeated");
      first = false;
      last_tag = tag;
      Syntax el_syn = syn;
      std::string vr;
      size_t header = 8;
      uint32_t length = 0;
      if (syn.explicit_vr) {
        bool extended = false;
        if (standard_vr(d_ + pos + 4, extended)) {
          vr.assign(reinterpret_cast<const char*>(d_ + pos + 4), 2);
          if (extended) {
            if (end - pos < 12) {
              if (speculative || depth == 0) return end;
              fail("truncated element " + tag_text(g, e));
            }
            header = 12;
            length = u32(pos + 8, syn.little);
          } else {
            length = u16(pos + 6, syn.little);
          }
        } else {
          // DCMTK (dcmAcceptUnexpectedImplicitEncoding, which we enable) re-reads such an element as
          // implicit VR little endian.
          el_syn = Syntax{false, true};
          length = u32(pos + 4, true);
        }
      } else {
        length = u32(pos + 4, syn.little);
      }
      const size_t value = pos + header;
      if (length == kUndefined) {
        pos = undefined_length_value(g, e, vr, value, end, el_syn, depth, speculative);
        continue;
      }
      if (length > end - value) {
        // A sequence that runs past the end is read by DCMTK up to the end (it allocates nothing by the
        // declared length); any other value that does is an error for DCMTK too.
        if (vr != "SQ" || speculative) {
          if (speculative) throw Giveup{};
          fail("element " + tag_text(g, e) + " declares " + std::to_string(length) + " bytes but only " +
               std::to_string(end - value) + " remain");
        }
        length = uint32_t(end - value);
      }
      if (transfer_syntax_ != nullptr && depth == 0 && g == 0x0002 && e == 0x0010) {
        std::string uid(reinterpret_cast<const char*>(d_ + value), length);
        while (!uid.empty() && (uid.back() == '\0' || uid.back() == ' ')) uid.pop_back();
        *transfer_syntax_ = uid;
      }
      defined_length_value(g, e, vr, value, value + length, el_syn, depth, speculative);
      pos = value + length;
    }
    return pos;  // (an undefined-length item cut off by the end of its container: DCMTK decides)
  }

  size_t undefined_length_value(uint16_t g, uint16_t e, const std::string& vr, size_t value, size_t end,
                                Syntax syn, int depth, bool speculative) {
    if (g == 0x7FE0 && e == 0x0010) return pixel_fragments(value, end, syn, speculative);
    if (vr == "OB" || vr == "OW") {
      if (speculative) throw Giveup{};
      fail("element " + tag_text(g, e) + " has VR " + vr + " with undefined length");
    }
    // CP-246: an explicit UN of undefined length holds an implicit little endian sequence.
    const Syntax inner = (vr == "UN") ? Syntax{false, true} : syn;
    return sequence(value, end, /*undefined=*/true, inner, depth + 1, speculative);
  }

  void defined_length_value(uint16_t g, uint16_t e, const std::string& vr, size_t value, size_t value_end,
                            Syntax syn, int depth, bool speculative) {
    bool is_sequence = vr == "SQ";
    bool maybe_sequence = false;
    if (vr.empty() && value_end - value >= 8 && u16(value, syn.little) == kItemGroup &&
        u16(value + 2, syn.little) == kItem) {
      // Implicit VR: DCMTK makes this a sequence when its dictionary says SQ (private dictionaries
      // included); a value starting with an item tag is walked as one either way, conservatively.
      const DcmTag tag(g, e);
      is_sequence = tag.getEVR() == EVR_SQ;
      maybe_sequence = !is_sequence;
    }
    if (!is_sequence && !maybe_sequence) return;
    try {
      sequence(value, value_end, /*undefined=*/false, syn, depth + 1, speculative || maybe_sequence);
    } catch (const Giveup&) {
      if (speculative) throw;  // the enclosing speculative walk decides
    }
  }

  size_t sequence(size_t pos, size_t end, bool undefined, Syntax syn, int depth, bool speculative) {
    if (depth > limits_.max_nesting)
      fail("sequences nested deeper than " + std::to_string(limits_.max_nesting) + " levels",
           DicomError::Kind::too_large);
    while (pos < end) {
      if (end - pos < 8) {
        if (speculative) throw Giveup{};
        return end;  // DCMTK reports the premature end of stream
      }
      const uint16_t g = u16(pos, syn.little), e = u16(pos + 2, syn.little);
      const uint32_t length = u32(pos + 4, syn.little);
      if (g == kItemGroup && e == kSeqDelim) return pos + 8;
      if (g != kItemGroup || e != kItem) {
        if (speculative) throw Giveup{};
        fail("expected a sequence item, found " + tag_text(g, e) + " at byte " + std::to_string(pos));
      }
      count_element();
      const size_t value = pos + 8;
      if (length == kUndefined) {
        pos = elements(value, end, syn, depth, /*in_item_undefined=*/true, speculative);
      } else {
        // An item running past its container is read up to the container's end by DCMTK (see above).
        const size_t item_end = value + std::min<size_t>(length, end - value);
        elements(value, item_end, syn, depth, false, speculative);
        pos = item_end;
      }
    }
    if (undefined && !speculative && end == size_) return end;  // unterminated at end of file
    return pos;
  }

  // Encapsulated pixel data: items of defined length up to a sequence delimiter; no nesting.
  size_t pixel_fragments(size_t pos, size_t end, Syntax syn, bool speculative) {
    while (pos < end) {
      if (end - pos < 8) {
        if (speculative) throw Giveup{};
        fail("encapsulated Pixel Data is truncated");
      }
      const uint16_t g = u16(pos, syn.little), e = u16(pos + 2, syn.little);
      const uint32_t length = u32(pos + 4, syn.little);
      if (g == kItemGroup && e == kSeqDelim) return pos + 8;
      if (g != kItemGroup || e != kItem) {
        if (speculative) throw Giveup{};
        fail("encapsulated Pixel Data holds " + tag_text(g, e) + " where a fragment was expected");
      }
      count_element();
      if (length == kUndefined || length > end - pos - 8) {
        if (speculative) throw Giveup{};
        fail("Pixel Data fragment at byte " + std::to_string(pos) + " declares " +
             (length == kUndefined ? std::string("an undefined length") : std::to_string(length) + " bytes") +
             " but only " + std::to_string(end - pos - 8) + " remain");
      }
      pos += 8 + size_t(length);
    }
    if (speculative) throw Giveup{};
    fail("encapsulated Pixel Data has no sequence delimiter");
  }

  struct Giveup {};

 private:
  void count_element() {
    if (++elements_ > limits_.max_elements)
      fail("more than " + std::to_string(limits_.max_elements) + " data elements",
           DicomError::Kind::too_large);
  }

  const uint8_t* d_;
  size_t size_;
  const std::string& name_;
  const ScanLimits& limits_;
  int64_t elements_ = 0;
  int64_t disorder_ = 0;
  std::string* transfer_syntax_ = nullptr;
};

bool is_vr_bytes(const uint8_t* p) {
  bool extended = false;
  return standard_vr(p, extended);
}

// The data set's encoding when no meta group names it: DCMTK guesses from the first element too.
Syntax guess_syntax(const uint8_t* p, size_t n) {
  Syntax syn;
  if (n < 8) return syn;
  const uint16_t le = uint16_t(p[0] | p[1] << 8), be = uint16_t(p[0] << 8 | p[1]);
  syn.little = le <= be;
  syn.explicit_vr = is_vr_bytes(p + 4);
  return syn;
}

bool plausible_first_group(uint16_t g) { return g == 0x0000 || g == 0x0002 || g == 0x0004 || g == 0x0008; }

// A growable byte buffer without zero-filling (realloc may also move large blocks without copying):
// inflating a bomb must cost as little as possible before the limit refuses it.
class ByteBuffer {
 public:
  ByteBuffer() = default;
  ByteBuffer(const ByteBuffer&) = delete;
  ByteBuffer& operator=(const ByteBuffer&) = delete;
  ~ByteBuffer() { std::free(data_); }
  uint8_t* grow(size_t capacity) {
    if (capacity > capacity_) {
      void* p = std::realloc(data_, capacity);
      if (p == nullptr) throw std::bad_alloc();
      data_ = static_cast<uint8_t*>(p);
      capacity_ = capacity;
    }
    return data_;
  }
  uint8_t* data() const { return data_; }
  size_t size = 0;
  size_t capacity() const { return capacity_; }

 private:
  uint8_t* data_ = nullptr;
  size_t capacity_ = 0;
};

// Inflates a raw deflate stream (the Deflated Explicit VR Little Endian data set) up to a limit.
void inflate_bounded(const uint8_t* p, size_t n, int64_t limit, const std::string& name, ByteBuffer& out) {
  z_stream zs{};
  if (inflateInit2(&zs, -MAX_WBITS) != Z_OK) throw error(DicomError::Kind::io, name, "cannot start zlib");
  zs.next_in = const_cast<Bytef*>(p);
  zs.avail_in = uInt(std::min<size_t>(n, 0x7FFFFFFF));
  int rc = Z_OK;
  while (rc == Z_OK) {
    if (int64_t(out.size) >= limit) {
      inflateEnd(&zs);
      throw error(DicomError::Kind::too_large, name,
                  "deflated data set inflates beyond " + std::to_string(limit) + " bytes");
    }
    if (out.size == out.capacity())
      out.grow(std::min<size_t>(size_t(limit), std::max<size_t>(out.size * 2, 1 << 20)));
    zs.next_out = out.data() + out.size;
    zs.avail_out = uInt(std::min<size_t>(out.capacity() - out.size, 0x7FFFFFFF));
    const uInt before = zs.avail_out;
    rc = inflate(&zs, Z_NO_FLUSH);
    out.size += before - zs.avail_out;
    if (rc == Z_BUF_ERROR && zs.avail_in == 0) break;  // input ended without a final block
    if (rc == Z_BUF_ERROR) rc = Z_OK;                  // output full: grow and go on
  }
  inflateEnd(&zs);
  if (rc != Z_STREAM_END && rc != Z_OK && rc != Z_BUF_ERROR)
    throw error(DicomError::Kind::corrupt, name,
                "deflated data set is corrupt (zlib error " + std::to_string(rc) + ")");
}

}  // namespace

ScanResult scan_structure(const uint8_t* data, size_t size, const std::string& name,
                          const ScanLimits& limits) {
  ScanResult result;
  if (size == 0) throw error(DicomError::Kind::not_dicom, name, "empty file, not DICOM");
  size_t pos = 0;
  if (size >= 132 && std::memcmp(data + 128, "DICM", 4) == 0) {
    result.has_meta = true;
    pos = 132;
  }
  Walker walker(data, size, name, limits);
  if (result.has_meta) {
    // File Meta Information. With a group length first, DCMTK reads every element inside it as meta
    // (whatever its group); without one, elements of group 0002. Walked like any data, depth included.
    size_t meta_end = 0;
    if (size - pos >= 12 && walker.u16(pos, true) == 0x0002 && walker.u16(pos + 2, true) == 0x0000 &&
        data[pos + 4] == 'U' && data[pos + 5] == 'L' && walker.u16(pos + 6, true) == 4) {
      meta_end = pos + 12 + size_t(walker.u32(pos + 8, true));
      if (meta_end > size)
        throw error(
            DicomError::Kind::corrupt, name,
            "File Meta Information is truncated (the file ends at byte " + std::to_string(size) + ")");
    }
    walker.meta_mode(&result.transfer_syntax);
    pos = walker.elements(pos, meta_end != 0 ? meta_end : size, Syntax{true, true}, 0, false, false);
    walker.meta_mode(nullptr);
    if (pos < size && size - pos < 8)
      throw error(DicomError::Kind::corrupt, name,
                  "File Meta Information is truncated (the file ends at byte " + std::to_string(size) + ")");
  } else {
    if (size < 8)
      throw error(DicomError::Kind::not_dicom, name, "not a DICOM file (" + std::to_string(size) + " bytes)");
    const Syntax syn = guess_syntax(data, size);
    const uint16_t g = syn.little ? uint16_t(data[0] | data[1] << 8) : uint16_t(data[0] << 8 | data[1]);
    if (!plausible_first_group(g))
      throw error(DicomError::Kind::not_dicom, name,
                  "not a DICOM file (no DICM preamble and no data set start)");
  }
  result.dataset_offset = pos;
  const std::string& ts = result.transfer_syntax;
  if (ts == kDeflated) return result;  // the caller inflates and calls scan_dataset
  Syntax syn;
  if (ts == "1.2.840.10008.1.2") {
    syn = Syntax{false, true};
  } else if (ts == "1.2.840.10008.1.2.2") {
    syn = Syntax{true, false};
  } else if (ts.empty()) {
    syn = guess_syntax(data + pos, size - pos);
  }
  walker.elements(pos, size, syn, 0, false, false);
  return result;
}

void scan_dataset(const uint8_t* data, size_t size, const std::string& name, const ScanLimits& limits) {
  Walker walker(data, size, name, limits);
  walker.elements(0, size, Syntax{true, true}, 0, false, false);
}

std::vector<uint8_t> inflate_dataset(const uint8_t* data, size_t size, int64_t limit,
                                     const std::string& name) {
  ByteBuffer inflated;
  inflate_bounded(data, size, limit, name, inflated);
  return std::vector<uint8_t>(inflated.data(), inflated.data() + inflated.size);
}

}  // namespace attnvision::vision::dicom_detail
