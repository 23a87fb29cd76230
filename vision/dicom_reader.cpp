// The DICOM reader: structural pre-scan, DCMTK parse, attribute extraction, frame decode (DCMTK's codecs
// or OpenJPEG) and the conversion of stored values to modality values or RGB.
#include "vision/dicom.h"
#include "vision/dicom_detail.h"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dccodec.h>
#include <dcmtk/dcmdata/dcdatset.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcistrmb.h>
#include <dcmtk/dcmdata/dcmetinf.h>
#include <dcmtk/dcmdata/dcpixel.h>
#include <dcmtk/dcmdata/dcpixseq.h>
#include <dcmtk/dcmdata/dcpxitem.h>
#include <dcmtk/dcmdata/dcrledrg.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <dcmtk/dcmdata/dcxfer.h>
#include <dcmtk/dcmjpeg/djdecode.h>
#include <dcmtk/dcmjpls/djdecode.h>
#include <dcmtk/oflog/oflog.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <memory>
#include <mutex>

namespace attnvision::vision {
namespace dicom_detail {

DicomError error(DicomError::Kind kind, const std::string& name, const std::string& problem) {
  std::string line = name + ": " + problem;
  std::replace(line.begin(), line.end(), '\n', ' ');
  std::replace(line.begin(), line.end(), '\r', ' ');
  return DicomError(kind, line);
}

void init_dcmtk() {
  static std::once_flag once;
  std::call_once(once, [] {
    // Our errors carry the reason in one line; DCMTK's own console chatter would break that.
    OFLog::configure(OFLogger::OFF_LOG_LEVEL);
    // Real files write single elements in implicit VR inside explicit data; DCMTK re-reads them.
    dcmAcceptUnexpectedImplicitEncoding.set(OFTrue);
    DJDecoderRegistration::registerCodecs();
    DJLSDecoderRegistration::registerCodecs();
    DcmRLEDecoderRegistration::registerCodecs();
  });
}

FileBytes read_file_bytes(const std::string& path, int64_t limit) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) throw error(DicomError::Kind::io, path, "cannot open file");
  const std::streamoff size = in.tellg();
  if (size < 0) throw error(DicomError::Kind::io, path, "cannot read file size");
  if (size > limit)
    throw error(DicomError::Kind::too_large, path,
                "file is " + std::to_string(size) + " bytes, over the limit of " + std::to_string(limit));
  FileBytes bytes;
  bytes.size = static_cast<size_t>(size);
  bytes.data.reset(new uint8_t[bytes.size + 1]);  // not zero-filled: every byte is read over
  in.seekg(0);
  if (size > 0 && (!in.read(reinterpret_cast<char*>(bytes.data.get()), size) || in.gcount() != size))
    throw error(DicomError::Kind::io, path, "read failed");
  return bytes;
}

namespace {

// A memory input stream that, unlike DcmInputBufferStream, can hand out factories: DCMTK then defers
// every value over its maxReadLength (4 kB) and first skips over it, which fails cleanly when the bytes
// are not there, instead of allocating the declared length of a value it cannot fill.
class MemoryStream : public DcmInputBufferStream {
 public:
  MemoryStream(const uint8_t* data, size_t size, size_t offset = 0)
      : data_(data), size_(size), base_(offset) {
    setBuffer(data + offset, static_cast<offile_off_t>(size - offset));
    setEos();
  }
  DcmInputStreamFactory* newFactory() const override;
  OFCondition installCompressionFilter(E_StreamCompression type) override {
    compressed_ = true;  // positions no longer map to bytes of the buffer
    return DcmInputBufferStream::installCompressionFilter(type);
  }

 private:
  const uint8_t* data_;
  size_t size_, base_;
  bool compressed_ = false;
};

class MemoryStreamFactory : public DcmInputStreamFactory {
 public:
  MemoryStreamFactory(const uint8_t* data, size_t size, size_t offset)
      : data_(data), size_(size), offset_(offset) {}
  DcmInputStream* create() const override { return new MemoryStream(data_, size_, offset_); }
  DcmInputStreamFactory* clone() const override { return new MemoryStreamFactory(*this); }
  DcmInputStreamFactoryType ident() const override { return DFT_DcmInputTempFileStreamFactory; }

 private:
  const uint8_t* data_;
  size_t size_, offset_;
};

DcmInputStreamFactory* MemoryStream::newFactory() const {
  if (compressed_) return nullptr;
  const size_t at = base_ + static_cast<size_t>(tell());
  return at <= size_ ? new MemoryStreamFactory(data_, size_, at) : nullptr;
}

}  // namespace

ParsedFile::ParsedFile() = default;
ParsedFile::ParsedFile(ParsedFile&&) noexcept = default;
ParsedFile& ParsedFile::operator=(ParsedFile&&) noexcept = default;
ParsedFile::~ParsedFile() = default;

ParsedFile parse_dicom(const uint8_t* data, size_t size, const std::string& name,
                       const DicomReadOptions& options) {
  init_dcmtk();
  if (int64_t(size) > options.max_file_bytes)
    throw error(DicomError::Kind::too_large, name,
                "input is " + std::to_string(size) + " bytes, over the limit");
  ScanLimits limits;
  limits.max_nesting = options.max_nesting;
  limits.max_elements = options.max_elements;
  const ScanResult scan = scan_structure(data, size, name, limits);
  const std::string& ts = scan.transfer_syntax;
  if (!ts.empty() && DcmXfer(ts.c_str()).getXfer() == EXS_Unknown)
    throw error(DicomError::Kind::unsupported, name, "unknown transfer syntax " + ts);
  ParsedFile parsed;
  parsed.transfer_syntax = ts;
  parsed.file = std::make_unique<DcmFileFormat>();
  DcmFileFormat& file = *parsed.file;
  MemoryStream stream(data, size);
  OFCondition status;
  if (DcmXfer(ts.c_str()).getStreamCompression() != ESC_zlib) {
    file.transferInit();
    status = file.read(stream, EXS_Unknown, EGL_noChange, DCM_MaxReadLength);
    file.transferEnd();
  } else {
    // Deflated: DCMTK reads the meta group, we inflate the rest (bounded) and check it, and DCMTK reads
    // the inflated data set from memory (its own inflating reader would allocate declared lengths).
    file.setReadMode(ERM_metaOnly);
    file.transferInit();
    status = file.read(stream, EXS_Unknown, EGL_noChange, DCM_MaxReadLength);
    file.transferEnd();
    file.setReadMode(ERM_autoDetect);
    if (status.good()) {
      const size_t offset = static_cast<size_t>(stream.tell());
      parsed.inflated = inflate_dataset(data + offset, size - offset, options.max_inflated_bytes, name);
      scan_dataset(parsed.inflated.data(), parsed.inflated.size(), name, limits);
      MemoryStream inflated(parsed.inflated.data(), parsed.inflated.size());
      DcmDataset* dataset = file.getDataset();
      dataset->transferInit();
      status = dataset->read(inflated, EXS_LittleEndianExplicit, EGL_noChange, DCM_MaxReadLength);
      dataset->transferEnd();
    }
  }
  if (status.bad())
    throw error(DicomError::Kind::corrupt, name, std::string("DICOM parse error: ") + status.text());
  if (file.getDataset() == nullptr) throw error(DicomError::Kind::corrupt, name, "no data set");
  return parsed;
}

}  // namespace dicom_detail

namespace {
namespace dd = dicom_detail;
using Kind = DicomError::Kind;

constexpr const char* kJ2kLossless = "1.2.840.10008.1.2.4.90";
constexpr const char* kJ2k = "1.2.840.10008.1.2.4.91";
constexpr const char* kJ2kPart2Lossless = "1.2.840.10008.1.2.4.92";
constexpr const char* kJ2kPart2 = "1.2.840.10008.1.2.4.93";

bool is_j2k(const std::string& ts) {
  return ts == kJ2kLossless || ts == kJ2k || ts == kJ2kPart2Lossless || ts == kJ2kPart2;
}

// The parse and what the pixel code needs from it: `xfer` is the encoding DCMTK read the data set in
// (explicit little endian for an inflated one), `ts_uid` the transfer syntax the file names.
struct Parsed {
  dd::ParsedFile parsed;
  DcmFileFormat* file = nullptr;
  DcmDataset* ds = nullptr;
  E_TransferSyntax xfer = EXS_Unknown;
  std::string ts_uid;
};

std::unique_ptr<Parsed> parse(const uint8_t* data, size_t size, const std::string& name,
                              const DicomReadOptions& options) {
  auto p = std::make_unique<Parsed>();
  p->parsed = dd::parse_dicom(data, size, name, options);
  p->file = p->parsed.file.get();
  p->ds = p->file->getDataset();
  p->xfer = p->ds->getOriginalXfer();
  p->ts_uid = p->parsed.transfer_syntax;
  if (p->ts_uid.empty() && p->xfer != EXS_Unknown) p->ts_uid = DcmXfer(p->xfer).getXferID();
  return p;
}

// ---- attribute access ----------------------------------------------------------------------------

std::string get_string(DcmItem* item, const DcmTagKey& tag, unsigned long pos = 0) {
  OFString value;
  if (item == nullptr || item->findAndGetOFString(tag, value, pos).bad()) return {};
  std::string s = value.c_str();
  while (!s.empty() && (s.back() == ' ' || s.back() == '\0')) s.pop_back();
  size_t start = 0;
  while (start < s.size() && s[start] == ' ') ++start;
  return s.substr(start);
}

unsigned long value_count(DcmItem* item, const DcmTagKey& tag) {
  DcmElement* element = nullptr;
  if (item == nullptr || item->findAndGetElement(tag, element).bad() || element == nullptr) return 0;
  return element->getVM();
}

std::optional<double> get_double(DcmItem* item, const DcmTagKey& tag, unsigned long pos = 0) {
  Float64 v = 0;
  if (item == nullptr || item->findAndGetFloat64(tag, v, pos).bad() || !std::isfinite(v)) return std::nullopt;
  return v;
}

std::vector<double> get_doubles(DcmItem* item, const DcmTagKey& tag) {
  std::vector<double> out;
  const unsigned long n = value_count(item, tag);
  for (unsigned long i = 0; i < n; ++i) {
    const auto v = get_double(item, tag, i);
    if (!v) return {};
    out.push_back(*v);
  }
  return out;
}

std::optional<int64_t> get_int(DcmItem* item, const DcmTagKey& tag, unsigned long pos = 0) {
  long v = 0;
  if (item == nullptr || item->findAndGetLongInt(tag, v, pos).bad()) return std::nullopt;
  return static_cast<int64_t>(v);
}

DcmItem* get_item(DcmItem* item, const DcmTagKey& seq, long index = 0) {
  DcmItem* found = nullptr;
  if (item == nullptr || item->findAndGetSequenceItem(seq, found, index).bad()) return nullptr;
  return found;
}

// For an enhanced multi-frame object: the functional group macro `seq` for `frame`, per-frame first.
DcmItem* functional_group(DcmDataset* ds, const DcmTagKey& seq, int frame) {
  if (DcmItem* per_frame = get_item(ds, DCM_PerFrameFunctionalGroupsSequence, frame))
    if (DcmItem* found = get_item(per_frame, seq)) return found;
  if (DcmItem* shared = get_item(ds, DCM_SharedFunctionalGroupsSequence))
    if (DcmItem* found = get_item(shared, seq)) return found;
  return nullptr;
}

// A LUT (descriptor + data) from `item`. The descriptor's first mapped value is signed when the
// descriptor is SS or the pixel data is signed (PS3.3 C.11.1.1).
std::optional<DicomLut> read_lut(DcmItem* item, const DcmTagKey& descriptor_tag, const DcmTagKey& data_tag,
                                 const DcmTagKey& explanation_tag, bool signed_input, const std::string& name,
                                 const std::string& what) {
  DcmElement* descriptor = nullptr;
  if (item == nullptr || item->findAndGetElement(descriptor_tag, descriptor).bad() || descriptor == nullptr)
    return std::nullopt;
  if (descriptor->getVM() != 3)
    throw dd::error(Kind::corrupt, name, what + " descriptor does not have 3 values");
  Uint16 raw[3] = {0, 0, 0};
  for (unsigned long i = 0; i < 3; ++i) {
    if (descriptor->getUint16(raw[i], i).bad()) {
      Sint16 s = 0;
      if (descriptor->getSint16(s, i).bad())
        throw dd::error(Kind::corrupt, name, what + " descriptor unreadable");
      raw[i] = static_cast<Uint16>(s);
    }
  }
  DicomLut lut;
  const size_t entries = raw[0] == 0 ? 65536 : raw[0];
  lut.first_mapped =
      (signed_input || descriptor->getVR() == EVR_SS) ? int64_t(Sint16(raw[1])) : int64_t(raw[1]);
  lut.bits = raw[2];
  if (lut.bits < 8 || lut.bits > 16)
    throw dd::error(Kind::corrupt, name, what + " has " + std::to_string(lut.bits) + " bits per entry");
  DcmElement* data = nullptr;
  if (item->findAndGetElement(data_tag, data).bad() || data == nullptr)
    throw dd::error(Kind::corrupt, name, what + " has a descriptor but no data");
  Uint16* words = nullptr;
  const unsigned long bytes = data->getLength();
  if (bytes == 0 || data->getUint16Array(words).bad() || words == nullptr)
    throw dd::error(Kind::corrupt, name, what + " data unreadable");
  const size_t count = bytes / 2;
  lut.data.resize(entries);
  if (count == entries) {
    std::copy(words, words + entries, lut.data.begin());
  } else if (lut.bits == 8 && count == (entries + 1) / 2) {
    // 8-bit entries packed two per word (low byte first).
    for (size_t i = 0; i < entries; ++i)
      lut.data[i] = (i % 2 == 0) ? (words[i / 2] & 0xFF) : (words[i / 2] >> 8);
  } else {
    throw dd::error(
        Kind::corrupt, name,
        what + " has " + std::to_string(count) + " entries, its descriptor says " + std::to_string(entries));
  }
  const uint32_t max_entry = (1u << lut.bits) - 1u;
  for (uint16_t& v : lut.data) v = static_cast<uint16_t>(std::min<uint32_t>(v, max_entry));
  lut.explanation = get_string(item, explanation_tag);
  return lut;
}

Window::Function voi_function(const std::string& s) {
  if (s == "SIGMOID") return Window::Function::sigmoid;
  if (s == "LINEAR_EXACT") return Window::Function::linear_exact;
  return Window::Function::linear;
}

// Center/width pairs of an item (the data set, or a Frame VOI LUT functional group).
std::vector<Window> read_windows(DcmItem* item) {
  std::vector<Window> windows;
  const std::vector<double> centers = get_doubles(item, DCM_WindowCenter);
  const std::vector<double> widths = get_doubles(item, DCM_WindowWidth);
  const Window::Function function = voi_function(get_string(item, DCM_VOILUTFunction));
  for (size_t i = 0; i < std::min(centers.size(), widths.size()); ++i) {
    if (!(widths[i] > 0)) continue;  // width must be positive (>= 1 for LINEAR); skip broken pairs
    Window w;
    w.center = centers[i];
    w.width = widths[i];
    w.function = function;
    w.name = get_string(item, DCM_WindowCenterWidthExplanation, static_cast<unsigned long>(i));
    if (w.name.empty()) w.name = "file window " + std::to_string(i + 1);
    windows.push_back(std::move(w));
  }
  return windows;
}

std::array<double, 3> cross(const std::array<double, 6>& o) {
  return {o[1] * o[5] - o[2] * o[4], o[2] * o[3] - o[0] * o[5], o[0] * o[4] - o[1] * o[3]};
}

std::optional<std::array<double, 3>> get_vec3(DcmItem* item, const DcmTagKey& tag) {
  const std::vector<double> v = get_doubles(item, tag);
  if (v.size() != 3) return std::nullopt;
  return std::array<double, 3>{v[0], v[1], v[2]};
}

void read_geometry(DcmDataset* ds, DicomInfo& info) {
  DcmItem* measures = functional_group(ds, DCM_PixelMeasuresSequence, 0);
  DcmItem* spacing_source = measures ? measures : static_cast<DcmItem*>(ds);
  std::vector<double> spacing = get_doubles(spacing_source, DCM_PixelSpacing);
  if (spacing.size() != 2) spacing = get_doubles(ds, DCM_ImagerPixelSpacing);
  if (spacing.size() == 2 && spacing[0] > 0 && spacing[1] > 0) info.pixel_spacing = {spacing[0], spacing[1]};
  info.slice_thickness = get_double(spacing_source, DCM_SliceThickness);
  info.spacing_between_slices = get_double(spacing_source, DCM_SpacingBetweenSlices);

  DcmItem* orientation_group = functional_group(ds, DCM_PlaneOrientationSequence, 0);
  const std::vector<double> o = get_doubles(orientation_group ? orientation_group : static_cast<DcmItem*>(ds),
                                            DCM_ImageOrientationPatient);
  if (o.size() == 6) info.image_orientation = std::array<double, 6>{o[0], o[1], o[2], o[3], o[4], o[5]};

  // Positions: per frame (enhanced objects), a frame offset vector (RT Dose, NM), or the one position.
  if (get_item(ds, DCM_PerFrameFunctionalGroupsSequence) ||
      get_item(ds, DCM_SharedFunctionalGroupsSequence)) {
    for (int f = 0; f < info.frames; ++f) {
      const auto p = get_vec3(functional_group(ds, DCM_PlanePositionSequence, f), DCM_ImagePositionPatient);
      if (!p) {
        info.image_positions.clear();
        break;
      }
      info.image_positions.push_back(*p);
    }
    return;
  }
  const auto position = get_vec3(ds, DCM_ImagePositionPatient);
  if (!position) return;
  const std::vector<double> offsets = get_doubles(ds, DCM_GridFrameOffsetVector);
  if (info.frames > 1 && offsets.size() == size_t(info.frames) && info.image_orientation) {
    const std::array<double, 3> n = cross(*info.image_orientation);
    for (double d : offsets)
      info.image_positions.push_back(
          {(*position)[0] + d * n[0], (*position)[1] + d * n[1], (*position)[2] + d * n[2]});
  } else {
    info.image_positions.push_back(*position);
  }
}

void read_modality_transform(DcmDataset* ds, DicomInfo& info, const std::string& name) {
  if (DcmItem* lut_item = get_item(ds, DCM_ModalityLUTSequence)) {
    info.modality_lut = read_lut(lut_item, DCM_LUTDescriptor, DCM_LUTData, DCM_LUTExplanation, info.is_signed,
                                 name, "Modality LUT");
    if (info.modality_lut) info.rescale_type = get_string(lut_item, DCM_ModalityLUTType);
  }
  const bool enhanced = get_item(ds, DCM_SharedFunctionalGroupsSequence) != nullptr ||
                        get_item(ds, DCM_PerFrameFunctionalGroupsSequence) != nullptr;
  auto read_rescale = [&](DcmItem* item, double& slope, double& intercept) {
    const auto s = get_double(item, DCM_RescaleSlope);
    const auto i = get_double(item, DCM_RescaleIntercept);
    if (s && *s == 0.0) throw dd::error(Kind::corrupt, name, "RescaleSlope is 0");
    if (s) slope = *s;
    if (i) intercept = *i;
  };
  read_rescale(ds, info.rescale_slope, info.rescale_intercept);
  info.rescale_type = info.rescale_type.empty() ? get_string(ds, DCM_RescaleType) : info.rescale_type;
  if (!enhanced) return;
  bool uniform = true;
  std::vector<std::array<double, 2>> per_frame;
  for (int f = 0; f < info.frames; ++f) {
    double slope = info.rescale_slope, intercept = info.rescale_intercept;
    DcmItem* group = functional_group(ds, DCM_PixelValueTransformationSequence, f);
    read_rescale(group, slope, intercept);
    if (f == 0 && group && info.rescale_type.empty()) info.rescale_type = get_string(group, DCM_RescaleType);
    per_frame.push_back({slope, intercept});
    uniform = uniform && per_frame.front() == per_frame.back();
  }
  if (!per_frame.empty()) {
    info.rescale_slope = per_frame[0][0];
    info.rescale_intercept = per_frame[0][1];
  }
  if (!uniform) info.frame_rescale = std::move(per_frame);
}

void read_voi(DcmDataset* ds, DicomInfo& info, const std::string& name) {
  info.windows = read_windows(ds);
  if (info.windows.empty())
    if (DcmItem* frame_voi = functional_group(ds, DCM_FrameVOILUTSequence, 0))
      info.windows = read_windows(frame_voi);
  for (long i = 0;; ++i) {
    DcmItem* item = get_item(ds, DCM_VOILUTSequence, i);
    if (item == nullptr) break;
    // VOI LUT input is the modality output; signed when the modality values can be negative.
    const bool signed_input = info.is_signed || info.rescale_intercept < 0 || info.modality_lut.has_value();
    if (auto lut = read_lut(item, DCM_LUTDescriptor, DCM_LUTData, DCM_LUTExplanation, signed_input, name,
                            "VOI LUT " + std::to_string(i + 1)))
      info.voi_luts.push_back(std::move(*lut));
  }
}

int require_us(DcmDataset* ds, const DcmTagKey& tag, const char* attribute, const std::string& name) {
  Uint16 v = 0;
  if (ds->findAndGetUint16(tag, v).bad())
    throw dd::error(Kind::corrupt, name, std::string("missing ") + attribute);
  return v;
}

DicomInfo extract_info(Parsed& p, const std::string& name) {
  DicomInfo info;
  info.path = name;
  DcmDataset* ds = p.ds;
  DcmItem* meta = p.file->getMetaInfo();
  info.sop_class_uid = get_string(ds, DCM_SOPClassUID);
  if (info.sop_class_uid.empty()) info.sop_class_uid = get_string(meta, DCM_MediaStorageSOPClassUID);
  if (!info.sop_class_uid.empty()) info.sop_class_name = dcmFindNameOfUID(info.sop_class_uid.c_str(), "");
  if (info.sop_class_name.empty() && get_item(ds, DCM_DirectoryRecordSequence) != nullptr)
    info.sop_class_name = "Media Storage Directory (DICOMDIR)";
  info.sop_instance_uid = get_string(ds, DCM_SOPInstanceUID);
  info.study_instance_uid = get_string(ds, DCM_StudyInstanceUID);
  info.series_instance_uid = get_string(ds, DCM_SeriesInstanceUID);
  info.frame_of_reference_uid = get_string(ds, DCM_FrameOfReferenceUID);
  info.modality = get_string(ds, DCM_Modality);
  info.series_description = get_string(ds, DCM_SeriesDescription);
  info.series_number = get_int(ds, DCM_SeriesNumber);
  info.instance_number = get_int(ds, DCM_InstanceNumber);
  info.transfer_syntax_uid = p.ts_uid;
  const DcmXfer xfer(p.ts_uid.c_str());
  info.transfer_syntax_name = xfer.getXfer() != EXS_Unknown ? xfer.getXferName() : "";
  info.lossy = (xfer.getXfer() != EXS_Unknown && xfer.isLossy()) ||
               get_string(ds, DCM_LossyImageCompression) == "01" || p.ts_uid == kJ2k || p.ts_uid == kJ2kPart2;

  DcmElement* pixel = nullptr;
  info.has_pixel_data = ds->findAndGetElement(DCM_PixelData, pixel).good() && pixel != nullptr;
  if (!info.has_pixel_data) return info;

  info.rows = require_us(ds, DCM_Rows, "Rows", name);
  info.columns = require_us(ds, DCM_Columns, "Columns", name);
  info.bits_allocated = require_us(ds, DCM_BitsAllocated, "BitsAllocated", name);
  info.bits_stored = require_us(ds, DCM_BitsStored, "BitsStored", name);
  Uint16 high_bit = 0;
  info.high_bit = ds->findAndGetUint16(DCM_HighBit, high_bit).good() ? high_bit : info.bits_stored - 1;
  info.samples_per_pixel = require_us(ds, DCM_SamplesPerPixel, "SamplesPerPixel", name);
  Uint16 representation = 0;
  info.is_signed =
      ds->findAndGetUint16(DCM_PixelRepresentation, representation).good() && representation == 1;
  Uint16 planar = 0;
  info.planar_configuration = ds->findAndGetUint16(DCM_PlanarConfiguration, planar).good() ? planar : 0;
  info.photometric = get_string(ds, DCM_PhotometricInterpretation);
  if (info.photometric.empty()) throw dd::error(Kind::corrupt, name, "missing PhotometricInterpretation");
  const auto frames = get_int(ds, DCM_NumberOfFrames);
  if (!frames && value_count(ds, DCM_NumberOfFrames) > 0)
    throw dd::error(Kind::corrupt, name,
                    "NumberOfFrames '" + get_string(ds, DCM_NumberOfFrames) + "' is not a number");
  if (frames && (*frames < 1 || *frames > 0x7FFFFFFF))
    throw dd::error(Kind::corrupt, name, "NumberOfFrames is " + std::to_string(*frames));
  info.frames = frames ? static_cast<int>(*frames) : 1;

  read_geometry(ds, info);
  read_modality_transform(ds, info, name);
  read_voi(ds, info, name);
  return info;
}

// ---- pixel layout checks -------------------------------------------------------------------------

bool known_photometric(const std::string& p) {
  static const char* const known[] = {"MONOCHROME1",     "MONOCHROME2",    "RGB",     "YBR_FULL",
                                      "YBR_FULL_422",    "PALETTE COLOR",  "YBR_RCT", "YBR_ICT",
                                      "YBR_PARTIAL_420", "YBR_PARTIAL_422"};
  return std::find(std::begin(known), std::end(known), p) != std::end(known);
}

int output_channels(const DicomInfo& info) { return info.color() ? 3 : 1; }

void check_layout(const DicomInfo& info, const DicomReadOptions& options, const std::string& name) {
  auto bad = [&](const std::string& problem) { throw dd::error(Kind::corrupt, name, problem); };
  if (info.rows == 0 || info.columns == 0)
    bad("image is " + std::to_string(info.columns) + "x" + std::to_string(info.rows));
  const int ba = info.bits_allocated, bs = info.bits_stored, hb = info.high_bit;
  if (ba != 1 && ba != 8 && ba != 16 && ba != 32)
    throw dd::error(Kind::unsupported, name,
                    "BitsAllocated " + std::to_string(ba) + " (1, 8, 16 or 32 expected)");
  if (bs < 1 || bs > ba)
    bad("BitsStored " + std::to_string(bs) + " with BitsAllocated " + std::to_string(ba));
  if (hb < bs - 1 || hb >= ba)
    bad("HighBit " + std::to_string(hb) + " with BitsStored " + std::to_string(bs) + " and BitsAllocated " +
        std::to_string(ba));
  if (!known_photometric(info.photometric))
    throw dd::error(Kind::unsupported, name, "photometric interpretation '" + info.photometric + "'");
  const bool mono = info.photometric.rfind("MONOCHROME", 0) == 0 || info.photometric == "PALETTE COLOR";
  if (mono && info.samples_per_pixel != 1)
    bad(info.photometric + " with SamplesPerPixel " + std::to_string(info.samples_per_pixel));
  if (!mono && info.samples_per_pixel != 3)
    bad(info.photometric + " with SamplesPerPixel " + std::to_string(info.samples_per_pixel));
  if (ba == 1 && info.samples_per_pixel != 1) bad("1-bit pixels with SamplesPerPixel 3");
  if (info.planar_configuration > 1) bad("PlanarConfiguration " + std::to_string(info.planar_configuration));
  const int64_t pixels = int64_t(info.rows) * info.columns;
  if (pixels > options.max_frame_pixels)
    throw dd::error(Kind::too_large, name,
                    "frame of " + std::to_string(info.columns) + "x" + std::to_string(info.rows) +
                        " pixels is over the limit of " + std::to_string(options.max_frame_pixels));
  const int64_t element_bytes = info.color() ? (ba <= 8    ? 1
                                                : ba == 16 ? 2
                                                           : CV_ELEM_SIZE1(options.depth))
                                             : CV_ELEM_SIZE1(options.depth);
  const int64_t total = pixels * output_channels(info) * element_bytes * info.frames;
  if (total / info.frames != pixels * output_channels(info) * element_bytes ||
      total > options.max_decoded_bytes)
    throw dd::error(Kind::too_large, name,
                    std::to_string(info.frames) + " frames of " + std::to_string(info.columns) + "x" +
                        std::to_string(info.rows) + " would decode to more than " +
                        std::to_string(options.max_decoded_bytes) + " bytes");
}

// ---- compressed frame headers (checked before any decoder allocates) ------------------------------

// JPEG / JPEG-LS: the first SOF marker's size and component count must match the data set.
void check_jpeg_header(const uint8_t* p, size_t n, const DicomInfo& info, const std::string& name,
                       int frame) {
  if (n < 4 || p[0] != 0xFF || p[1] != 0xD8)
    throw dd::error(Kind::corrupt, name,
                    "frame " + std::to_string(frame + 1) + " is not a JPEG stream (no SOI)");
  size_t pos = 2;
  while (pos + 4 <= n) {
    if (p[pos] != 0xFF) return;  // entropy-coded data or garbage: leave it to the decoder
    const uint8_t marker = p[pos + 1];
    if (marker == 0xFF) {
      ++pos;
      continue;
    }
    const size_t length = size_t(p[pos + 2]) << 8 | p[pos + 3];
    const bool sof =
        (marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 && marker != 0xCC) ||
        marker == 0xF7;
    if (sof) {
      if (pos + 10 > n || length < 8)
        throw dd::error(Kind::corrupt, name,
                        "frame " + std::to_string(frame + 1) + " has a truncated JPEG header");
      const int height = p[pos + 5] << 8 | p[pos + 6], width = p[pos + 7] << 8 | p[pos + 8],
                comps = p[pos + 9];
      if (width != info.columns || (height != info.rows && height != 0) || comps != info.samples_per_pixel)
        throw dd::error(Kind::corrupt, name,
                        "JPEG frame " + std::to_string(frame + 1) + " is " + std::to_string(width) + "x" +
                            std::to_string(height) + "x" + std::to_string(comps) + " but the data set says " +
                            std::to_string(info.columns) + "x" + std::to_string(info.rows) + "x" +
                            std::to_string(info.samples_per_pixel));
      return;
    }
    pos += 2 + length;
  }
}

// RLE (PS3.5 G.5): the segment count must be what the data set needs (one per byte of each sample) and
// the segment offsets must lie, increasing, inside the frame's data: DCMTK's decoder trusts them.
void check_rle_header(const uint8_t* p, size_t n, size_t frame_size, const DicomInfo& info,
                      const std::string& name, int frame) {
  const std::string what = "RLE frame " + std::to_string(frame + 1);
  if (n < 64) throw dd::error(Kind::corrupt, name, what + " has no header");
  auto u32 = [&](int k) {
    const uint8_t* q = p + 4 * k;
    return uint32_t(q[0]) | uint32_t(q[1]) << 8 | uint32_t(q[2]) << 16 | uint32_t(q[3]) << 24;
  };
  const uint32_t segments = u32(0);
  const uint32_t expected = uint32_t(info.samples_per_pixel) * uint32_t((info.bits_allocated + 7) / 8);
  if (segments != expected)
    throw dd::error(Kind::corrupt, name,
                    what + " has " + std::to_string(segments) + " segments, the data set needs " +
                        std::to_string(expected));
  uint32_t previous = 0;
  for (uint32_t k = 1; k <= segments; ++k) {
    const uint32_t offset = u32(int(k));
    if ((k == 1 && offset != 64) || offset < previous || offset >= frame_size)
      throw dd::error(Kind::corrupt, name,
                      what + " segment " + std::to_string(k) + " starts at byte " + std::to_string(offset) +
                          " of " + std::to_string(frame_size));
    previous = offset;
  }
}

// ---- frame extraction ----------------------------------------------------------------------------

struct Fragment {
  const uint8_t* data;
  size_t size;
};

std::vector<Fragment> fragments_of(DcmPixelSequence* seq, const std::string& name) {
  std::vector<Fragment> out;
  const unsigned long n = seq->card();
  for (unsigned long i = 1; i < n; ++i) {  // item 0 is the Basic Offset Table
    DcmPixelItem* item = nullptr;
    if (seq->getItem(item, i).bad() || item == nullptr)
      throw dd::error(Kind::corrupt, name, "unreadable fragment");
    Uint8* bytes = nullptr;
    const Uint32 length = item->getLength();
    if (length > 0 && (item->getUint8Array(bytes).bad() || bytes == nullptr))
      throw dd::error(Kind::corrupt, name, "unreadable fragment");
    out.push_back({bytes, length});
  }
  return out;
}

// Which fragments make up each frame: the Basic Offset Table when present, else one fragment per frame
// when the counts agree, else a new frame wherever a fragment starts a new codestream.
std::vector<std::vector<size_t>> group_fragments(DcmPixelSequence* seq,
                                                 const std::vector<Fragment>& fragments, int frames,
                                                 bool (*starts_frame)(const Fragment&),
                                                 const std::string& name) {
  std::vector<std::vector<size_t>> groups;
  if (fragments.empty()) throw dd::error(Kind::corrupt, name, "encapsulated Pixel Data has no fragments");
  if (size_t(frames) > fragments.size())
    throw dd::error(Kind::corrupt, name,
                    "NumberOfFrames is " + std::to_string(frames) + " but Pixel Data has only " +
                        std::to_string(fragments.size()) + " fragments");
  if (frames == 1) {
    groups.emplace_back();
    for (size_t i = 0; i < fragments.size(); ++i) groups[0].push_back(i);
    return groups;
  }
  DcmPixelItem* table = nullptr;
  Uint8* table_bytes = nullptr;
  if (seq->getItem(table, 0).good() && table != nullptr && table->getLength() == 4u * Uint32(frames) &&
      table->getUint8Array(table_bytes).good() && table_bytes != nullptr) {
    // Offsets count bytes from the first fragment's item tag; each item adds 8 bytes of header.
    auto offset = [&](int k) {
      const uint8_t* b = table_bytes + 4 * k;
      return uint64_t(b[0]) | uint64_t(b[1]) << 8 | uint64_t(b[2]) << 16 | uint64_t(b[3]) << 24;
    };
    uint64_t position = 0;
    int next = 0;
    for (size_t i = 0; i < fragments.size(); ++i) {
      if (next < frames && offset(next) == position) {
        groups.emplace_back();
        ++next;
      }
      if (groups.empty()) break;
      groups.back().push_back(i);
      position += 8 + fragments[i].size;
    }
    if (next == frames && !groups.empty() && groups[0].front() == 0) return groups;
    groups.clear();
  }
  if (fragments.size() == size_t(frames)) {
    for (size_t i = 0; i < fragments.size(); ++i) groups.push_back({i});
    return groups;
  }
  for (size_t i = 0; i < fragments.size(); ++i) {
    if (groups.empty() || starts_frame(fragments[i])) groups.emplace_back();
    groups.back().push_back(i);
  }
  if (groups.size() != size_t(frames))
    throw dd::error(Kind::corrupt, name,
                    "cannot split " + std::to_string(fragments.size()) + " fragments into " +
                        std::to_string(frames) + " frames");
  return groups;
}

bool j2k_starts_frame(const Fragment& f) {
  static const uint8_t jp2[] = {0, 0, 0, 0x0C, 'j', 'P', ' ', ' '};
  return (f.size >= 4 && f.data[0] == 0xFF && f.data[1] == 0x4F && f.data[2] == 0xFF && f.data[3] == 0x51) ||
         (f.size >= 8 && std::memcmp(f.data, jp2, 8) == 0);
}

// Stored pixel cells of every frame, local byte order, laid out as the data set says (for colour:
// colour-by-pixel or by-plane per PlanarConfiguration; for 1-bit data: packed bits). `photometric`
// comes back as the decoded data's colour model (JPEG decoders turn YBR into RGB).
class FrameSource {
 public:
  FrameSource(Parsed& p, DicomInfo& info, const std::string& name) : p_(p), info_(info), name_(name) {
    p.ds->findAndGetElement(DCM_PixelData, element_);
    // DCMTK makes a DcmPixelData only for OB/OW/UN-like VRs; a file may give Pixel Data any VR.
    if (element_ == nullptr || (element_->ident() != EVR_PixelData && element_->ident() != EVR_OB &&
                                element_->ident() != EVR_OW && element_->ident() != EVR_UN))
      throw dd::error(Kind::corrupt, name,
                      "Pixel Data has VR " + std::string(element_ ? element_->getTag().getVRName() : "?"));
    if (element_->ident() == EVR_PixelData) pixel_ = OFstatic_cast(DcmPixelData*, element_);
    const DcmXfer xfer(p.xfer);
    encapsulated_ = p.xfer != EXS_Unknown && xfer.isEncapsulated();
    if (encapsulated_ && pixel_ == nullptr)
      throw dd::error(Kind::corrupt, name, "encapsulated Pixel Data unreadable");
    photometric_ = info.photometric;
    cell_bytes_ = info.bits_allocated / 8;
    frame_bits_ = uint64_t(info.rows) * info.columns * info.samples_per_pixel * info.bits_allocated;
    if (encapsulated_) {
      open_encapsulated();
    } else {
      // Uncompressed YBR_FULL_422 stores two samples per pixel (Y Y Cb Cr per pair of pixels).
      if (photometric_ == "YBR_FULL_422") frame_bits_ = frame_bits_ / 3 * 2;
      open_native();
    }
  }

  const std::string& photometric() const { return photometric_; }
  int planar() const { return planar_; }

  // Frame `f` as bytes: native frames point into the element, decoded ones into `scratch`.
  const uint8_t* frame(int f, std::vector<uint8_t>& scratch) {
    if (!encapsulated_) return native_ + (info_.bits_allocated == 1 ? 0 : size_t(f) * (frame_bits_ / 8));
    const size_t frame_bytes = size_t(frame_bits_ / 8);
    scratch.resize(frame_bytes + (frame_bytes & 1));  // DCMTK wants an even buffer
    if (is_j2k(p_.ts_uid)) {
      decode_j2k(f, scratch.data());
      return scratch.data();
    }
    const size_t first = groups_.empty() ? start_fragment_ : groups_[f].front();
    if (first < fragments_.size()) {
      const Fragment& fr = fragments_[first];
      if (is_rle_) {
        // One fragment per frame (PS3.5 A.4.2); a single frame may be split, so count them all then.
        size_t frame_size = fr.size;
        if (info_.frames == 1) {
          frame_size = 0;
          for (const Fragment& piece : fragments_) frame_size += piece.size;
        }
        check_rle_header(fr.data, fr.size, frame_size, info_, name_, f);
      } else {
        check_jpeg_header(fr.data, fr.size, info_, name_, f);
      }
    }
    Uint32 start = static_cast<Uint32>(start_fragment_ + 1);  // DCMTK counts the offset table as item 0
    OFString color_model;
    const OFCondition status = pixel_->getUncompressedFrame(p_.ds, Uint32(f), start, scratch.data(),
                                                            Uint32(scratch.size()), color_model, nullptr);
    if (status.bad())
      throw dd::error(Kind::corrupt, name_,
                      "cannot decode frame " + std::to_string(f + 1) + " (" + info_.transfer_syntax_name +
                          "): " + status.text());
    start_fragment_ = start > 0 ? start - 1 : 0;
    if (!color_model.empty()) photometric_ = color_model.c_str();
    return scratch.data();
  }

  // Bit offset of frame f inside the packed native data (1-bit images only).
  uint64_t bit_offset(int f) const { return encapsulated_ ? 0 : uint64_t(f) * frame_bits_; }

 private:
  void open_native() {
    planar_ = info_.planar_configuration;
    const uint64_t needed_bits = frame_bits_ * uint64_t(info_.frames);
    const uint64_t have = element_->getLength();
    if (have * 8 < needed_bits)
      throw dd::error(Kind::corrupt, name_,
                      "Pixel Data has " + std::to_string(have) + " bytes, " +
                          std::to_string((needed_bits + 7) / 8) + " needed for " +
                          std::to_string(info_.frames) + " frame(s) of " + std::to_string(info_.columns) +
                          "x" + std::to_string(info_.rows) + "x" + std::to_string(info_.samples_per_pixel) +
                          " at " + std::to_string(info_.bits_allocated) + " bits");
    Uint8* bytes = nullptr;
    if (element_->getUint8Array(bytes).bad() || bytes == nullptr)
      throw dd::error(Kind::corrupt, name_, "Pixel Data unreadable");
    native_ = bytes;
    // DCMTK has put each value of the element's VR into local byte order. Big endian data whose pixel
    // cells are wider than the VR's unit (32-bit cells in OW, 16-bit cells in OB) still need their units
    // put in order; undo DCMTK's swap and swap whole cells instead.
    const DcmXfer xfer(p_.xfer);
    const size_t unit = element_->getVR() == EVR_OW ? 2 : element_->getVR() == EVR_OB ? 1 : 0;
    if (xfer.getByteOrder() == EBO_BigEndian && unit != 0 && cell_bytes_ > unit) {
      swapped_.assign(bytes, bytes + size_t(needed_bits / 8));
      for (size_t i = 0; i + 1 < swapped_.size() && unit == 2; i += 2)
        std::swap(swapped_[i], swapped_[i + 1]);
      for (size_t i = 0; i + cell_bytes_ <= swapped_.size(); i += cell_bytes_)
        std::reverse(swapped_.begin() + i, swapped_.begin() + i + cell_bytes_);
      native_ = swapped_.data();
    }
  }

  // The encapsulated syntaxes something here decodes: DCMTK's JPEG (baseline, extended, spectral
  // selection, progressive, lossless), JPEG-LS and RLE codecs, and OpenJPEG for JPEG 2000.
  static bool decodable(const std::string& ts) {
    static const char* const known[] = {
        "1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.53",
        "1.2.840.10008.1.2.4.55", "1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.70",
        "1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81", "1.2.840.10008.1.2.5"};
    return is_j2k(ts) || std::find(std::begin(known), std::end(known), ts) != std::end(known);
  }

  void open_encapsulated() {
    if (!decodable(p_.ts_uid))
      throw dd::error(
          Kind::unsupported, name_,
          "transfer syntax " + info_.transfer_syntax_name + " (" + p_.ts_uid + ") is not decoded here");
    DcmPixelSequence* seq = nullptr;
    if (pixel_->getEncapsulatedRepresentation(p_.xfer, nullptr, seq).bad() || seq == nullptr)
      throw dd::error(Kind::corrupt, name_, "encapsulated Pixel Data unreadable");
    if (info_.bits_allocated == 1) throw dd::error(Kind::unsupported, name_, "compressed 1-bit pixel data");
    fragments_ = fragments_of(seq, name_);
    if (fragments_.empty()) throw dd::error(Kind::corrupt, name_, "encapsulated Pixel Data has no fragments");
    if (size_t(info_.frames) > fragments_.size())
      throw dd::error(Kind::corrupt, name_,
                      "NumberOfFrames is " + std::to_string(info_.frames) + " but Pixel Data has only " +
                          std::to_string(fragments_.size()) + " fragments");
    is_rle_ = p_.ts_uid == "1.2.840.10008.1.2.5";
    if (is_j2k(p_.ts_uid)) {
      groups_ = group_fragments(seq, fragments_, info_.frames, j2k_starts_frame, name_);
      // OpenJPEG applies the inverse colour transform: YBR_RCT / YBR_ICT come out as RGB.
      if (photometric_ == "YBR_RCT" || photometric_ == "YBR_ICT") photometric_ = "RGB";
      planar_ = 0;
    } else {
      // DCMTK's JPEG, JPEG-LS and RLE decoders return the data set's planar configuration.
      planar_ = info_.planar_configuration;
    }
  }

  void decode_j2k(int f, uint8_t* out) {
    const std::vector<size_t>& group = groups_[f];
    const uint8_t* data = fragments_[group[0]].data;
    size_t size = fragments_[group[0]].size;
    std::vector<uint8_t> joined;
    if (group.size() > 1) {
      for (size_t i : group)
        joined.insert(joined.end(), fragments_[i].data, fragments_[i].data + fragments_[i].size);
      data = joined.data();
      size = joined.size();
    }
    dd::J2kExpect expect;
    expect.rows = info_.rows;
    expect.columns = info_.columns;
    expect.samples = info_.samples_per_pixel;
    expect.bits_allocated = info_.bits_allocated;
    expect.bits_stored = info_.bits_stored;
    expect.is_signed = info_.is_signed;
    dd::decode_j2k_frame(data, size, expect, out, name_, f);
  }

  Parsed& p_;
  DicomInfo& info_;
  const std::string& name_;
  DcmElement* element_ = nullptr;
  DcmPixelData* pixel_ = nullptr;  // element_ when DCMTK made it a DcmPixelData
  bool encapsulated_ = false, is_rle_ = false;
  std::string photometric_;
  int planar_ = 0;
  size_t cell_bytes_ = 0;
  uint64_t frame_bits_ = 0;
  const uint8_t* native_ = nullptr;
  std::vector<uint8_t> swapped_;
  std::vector<Fragment> fragments_;
  std::vector<std::vector<size_t>> groups_;
  size_t start_fragment_ = 0;
};

// ---- stored values -> output ----------------------------------------------------------------------

// Reads sample i of a frame as the stored value: the cell's bits [high_bit - bits_stored + 1, high_bit],
// sign-extended for signed data (bits outside, e.g. old overlay bits, are dropped).
struct SampleReader {
  const uint8_t* data;
  int bits_allocated, bits_stored, shift;
  bool is_signed;
  uint64_t bit_base;  // 1-bit data: bit offset of the frame

  int64_t operator()(size_t i) const {
    uint64_t raw;
    switch (bits_allocated) {
      case 1: {
        const uint64_t bit = bit_base + i;
        return (data[bit >> 3] >> (bit & 7)) & 1;
      }
      case 8:
        raw = data[i];
        break;
      case 16: {
        uint16_t v;
        std::memcpy(&v, data + 2 * i, 2);
        raw = v;
        break;
      }
      default: {
        uint32_t v;
        std::memcpy(&v, data + 4 * i, 4);
        raw = v;
      }
    }
    const uint64_t mask = (bits_stored >= 64) ? ~uint64_t{0} : ((uint64_t{1} << bits_stored) - 1);
    uint64_t value = (raw >> shift) & mask;
    if (is_signed && (value >> (bits_stored - 1)) & 1) return int64_t(value) - (int64_t{1} << bits_stored);
    return int64_t(value);
  }
};

// The same for whole 8/16/32-bit cells, with the cell width known at compile time (the hot loop of
// reading a CT series).
template <typename Raw>
struct CellReader {
  const uint8_t* data;
  int shift, bits;
  bool is_signed;

  int64_t operator()(size_t i) const {
    Raw raw;
    std::memcpy(&raw, data + i * sizeof(Raw), sizeof(Raw));
    const uint64_t value = (uint64_t(raw) >> shift) & ((uint64_t{1} << bits) - 1);
    if (!is_signed) return int64_t(value);
    const int up = 64 - bits;
    return int64_t(value << up) >> up;  // sign-extend from `bits`
  }
};

template <typename T, typename Reader>
void fill_mono(cv::Mat& out, const Reader& read, const DicomInfo& info, int frame, bool modality) {
  T* dst = out.ptr<T>();
  const size_t n = out.total();
  if (modality && info.modality_lut) {
    const DicomLut& lut = *info.modality_lut;
    const int64_t last = int64_t(lut.data.size()) - 1;
    for (size_t i = 0; i < n; ++i)
      dst[i] = T(lut.data[size_t(std::clamp<int64_t>(read(i) - lut.first_mapped, 0, last))]);
    return;
  }
  double slope = 1.0, intercept = 0.0;
  if (modality) {
    slope = info.frame_rescale.empty() ? info.rescale_slope : info.frame_rescale[frame][0];
    intercept = info.frame_rescale.empty() ? info.rescale_intercept : info.frame_rescale[frame][1];
  }
  if (slope == 1.0 && intercept == 0.0) {
    for (size_t i = 0; i < n; ++i) dst[i] = T(read(i));
  } else {
    for (size_t i = 0; i < n; ++i) dst[i] = T(double(read(i)) * slope + intercept);
  }
}

template <typename T>
void fill_mono_cells(cv::Mat& out, const SampleReader& read, const DicomInfo& info, int frame,
                     bool modality) {
  switch (read.bits_allocated) {
    case 8:
      fill_mono<T>(out, CellReader<uint8_t>{read.data, read.shift, read.bits_stored, read.is_signed}, info,
                   frame, modality);
      break;
    case 16:
      fill_mono<T>(out, CellReader<uint16_t>{read.data, read.shift, read.bits_stored, read.is_signed}, info,
                   frame, modality);
      break;
    case 32:
      fill_mono<T>(out, CellReader<uint32_t>{read.data, read.shift, read.bits_stored, read.is_signed}, info,
                   frame, modality);
      break;
    default:
      fill_mono<T>(out, read, info, frame, modality);  // 1-bit
  }
}

// YCbCr (full range) to RGB as DCMTK's dcmimage computes it, so that our colour output is identical to
// dcm2pnm's: 8-bit data through per-term truncated tables, wider data in double precision, truncated.
struct YbrToRgb {
  explicit YbrToRgb(int bits) : max_value(std::ldexp(1.0, bits) - 1.0) {
    if (bits == 8) {
      for (int l = 0; l < 256; ++l) {
        rcr[l] = int16_t(1.4020 * l - 0.7010 * 255);
        gcb[l] = int16_t(0.3441 * l);
        gcr[l] = int16_t(0.7141 * l - 0.5291 * 255);
        bcb[l] = int16_t(1.7720 * l - 0.8859 * 255);
      }
    }
  }
  void table(int y, int cb, int cr, int out[3]) const {
    out[0] = std::clamp(y + rcr[cr], 0, 255);
    out[1] = std::clamp(y - gcb[cb] - gcr[cr], 0, 255);
    out[2] = std::clamp(y + bcb[cb], 0, 255);
  }
  void exact(double y, double cb, double cr, double out[3]) const {
    const double m = max_value;
    const double v[3] = {y + 1.4020 * cr - 0.7010 * m, y - 0.3441 * cb - 0.7141 * cr + 0.5291 * m,
                         y + 1.7720 * cb - 0.8859 * m};
    for (int c = 0; c < 3; ++c) out[c] = v[c] < 0 ? 0 : v[c] > m ? m : std::trunc(v[c]);
  }
  double max_value;
  int16_t rcr[256]{}, gcb[256]{}, gcr[256]{}, bcb[256]{};
};

template <typename T>
void fill_color(cv::Mat& out, const SampleReader& read, const DicomInfo& info, const std::string& photometric,
                int planar) {
  const size_t n = size_t(info.rows) * info.columns;
  T* dst = out.ptr<T>();
  const bool ybr = photometric == "YBR_FULL";
  const YbrToRgb convert(info.bits_stored);
  auto sample = [&](size_t pixel, int channel) -> int64_t {
    return planar ? read(size_t(channel) * n + pixel) : read(pixel * 3 + size_t(channel));
  };
  for (size_t i = 0; i < n; ++i) {
    const int64_t a = sample(i, 0), b = sample(i, 1), c = sample(i, 2);
    if (!ybr) {
      dst[3 * i] = T(a), dst[3 * i + 1] = T(b), dst[3 * i + 2] = T(c);
    } else if (info.bits_stored == 8) {
      int rgb[3];
      convert.table(int(a), int(b), int(c), rgb);
      dst[3 * i] = T(rgb[0]), dst[3 * i + 1] = T(rgb[1]), dst[3 * i + 2] = T(rgb[2]);
    } else {
      double rgb[3];
      convert.exact(double(a), double(b), double(c), rgb);
      dst[3 * i] = T(rgb[0]), dst[3 * i + 1] = T(rgb[1]), dst[3 * i + 2] = T(rgb[2]);
    }
  }
}

// YBR_FULL_422 (uncompressed): Y1 Y2 Cb Cr for each pair of pixels along a row.
template <typename T>
void fill_ybr422(cv::Mat& out, const SampleReader& read, const DicomInfo& info) {
  const YbrToRgb convert(info.bits_stored);
  T* dst = out.ptr<T>();
  const size_t n = size_t(info.rows) * info.columns;
  for (size_t pair = 0; pair < n / 2; ++pair) {
    const int64_t y1 = read(4 * pair), y2 = read(4 * pair + 1), cb = read(4 * pair + 2),
                  cr = read(4 * pair + 3);
    for (int k = 0; k < 2; ++k) {
      double rgb[3];
      convert.exact(double(k == 0 ? y1 : y2), double(cb), double(cr), rgb);
      T* px = dst + 3 * (2 * pair + size_t(k));
      px[0] = T(rgb[0]), px[1] = T(rgb[1]), px[2] = T(rgb[2]);
    }
  }
}

struct Palette {
  DicomLut lut[3];
};

Palette read_palette(DcmDataset* ds, const DicomInfo& info, const std::string& name) {
  if (value_count(ds, DCM_SegmentedRedPaletteColorLookupTableData) > 0)
    throw dd::error(Kind::unsupported, name, "segmented palette colour lookup tables");
  const DcmTagKey descriptors[3] = {DCM_RedPaletteColorLookupTableDescriptor,
                                    DCM_GreenPaletteColorLookupTableDescriptor,
                                    DCM_BluePaletteColorLookupTableDescriptor};
  const DcmTagKey data[3] = {DCM_RedPaletteColorLookupTableData, DCM_GreenPaletteColorLookupTableData,
                             DCM_BluePaletteColorLookupTableData};
  const char* names[3] = {"red palette", "green palette", "blue palette"};
  Palette palette;
  for (int c = 0; c < 3; ++c) {
    auto lut = read_lut(ds, descriptors[c], data[c], DCM_UndefinedTagKey, info.is_signed, name, names[c]);
    if (!lut) throw dd::error(Kind::corrupt, name, std::string("PALETTE COLOR without a ") + names[c]);
    palette.lut[c] = std::move(*lut);
  }
  if (palette.lut[0].bits != palette.lut[1].bits || palette.lut[0].bits != palette.lut[2].bits)
    throw dd::error(Kind::corrupt, name, "palette tables differ in bits per entry");
  return palette;
}

template <typename T>
void fill_palette(cv::Mat& out, const SampleReader& read, const Palette& palette) {
  T* dst = out.ptr<T>();
  const size_t n = out.total();
  for (size_t i = 0; i < n; ++i) {
    const int64_t index = read(i);
    for (int c = 0; c < 3; ++c) {
      const DicomLut& lut = palette.lut[c];
      const int64_t k = std::clamp<int64_t>(index - lut.first_mapped, 0, int64_t(lut.data.size()) - 1);
      dst[3 * i + size_t(c)] = T(lut.data[size_t(k)]);
    }
  }
}

template <typename F>
void dispatch_depth(int depth, F&& f) {
  if (depth == CV_8U) {
    f(uint8_t{});
  } else if (depth == CV_16U) {
    f(uint16_t{});
  } else if (depth == CV_64F) {
    f(double{});
  } else {
    f(float{});
  }
}

DicomFrames decode(Parsed& p, DicomInfo info, const DicomReadOptions& options, const std::string& name) {
  if (!info.has_pixel_data) {
    const std::string what = info.sop_class_name.empty() ? info.sop_class_uid : info.sop_class_name;
    throw dd::error(
        Kind::not_image, name,
        "not an image (" + (what.empty() ? std::string("no SOP class") : what) + ", no Pixel Data)");
  }
  if (options.depth != CV_32F && options.depth != CV_64F)
    throw std::invalid_argument("DicomReadOptions::depth must be CV_32F or CV_64F");
  check_layout(info, options, name);
  FrameSource source(p, info, name);
  const std::string& photometric = source.photometric();
  std::optional<Palette> palette;
  if (photometric == "PALETTE COLOR") palette = read_palette(p.ds, info, name);
  if (photometric == "YBR_PARTIAL_422" || photometric == "YBR_PARTIAL_420" ||
      ((photometric == "YBR_RCT" || photometric == "YBR_ICT")))
    throw dd::error(Kind::unsupported, name,
                    "photometric interpretation " + photometric + " in " + info.transfer_syntax_name);
  if (photometric == "YBR_FULL_422" && info.columns % 2 != 0)
    throw dd::error(Kind::corrupt, name, "YBR_FULL_422 with an odd number of columns");

  int color_depth = info.bits_allocated <= 8 ? CV_8U : info.bits_allocated == 16 ? CV_16U : options.depth;
  if (palette) color_depth = palette->lut[0].bits <= 8 ? CV_8U : CV_16U;

  DicomFrames result;
  result.frames.reserve(size_t(info.frames));
  std::vector<uint8_t> scratch;
  for (int f = 0; f < info.frames; ++f) {
    const uint8_t* cells = source.frame(f, scratch);
    const SampleReader read{cells,
                            info.bits_allocated,
                            info.bits_stored,
                            info.high_bit - info.bits_stored + 1,
                            info.is_signed && !info.color(),
                            source.bit_offset(f)};
    cv::Mat out;
    if (!info.color()) {
      out.create(info.rows, info.columns, CV_MAKETYPE(options.depth, 1));
      dispatch_depth(options.depth, [&](auto t) {
        fill_mono_cells<decltype(t)>(out, read, info, f, options.apply_modality_lut);
      });
    } else {
      out.create(info.rows, info.columns, CV_MAKETYPE(color_depth, 3));
      dispatch_depth(color_depth, [&](auto t) {
        using T = decltype(t);
        if (palette) {
          fill_palette<T>(out, read, *palette);
        } else if (photometric == "YBR_FULL_422") {
          fill_ybr422<T>(out, read, info);
        } else {
          fill_color<T>(out, read, info, photometric, source.planar());
        }
      });
    }
    result.frames.push_back(std::move(out));
  }
  result.info = std::move(info);
  return result;
}

DicomFrames read_from_bytes(const uint8_t* data, size_t size, const std::string& name,
                            const DicomReadOptions& options) {
  std::unique_ptr<Parsed> parsed = parse(data, size, name, options);
  DicomInfo info = extract_info(*parsed, name);
  return decode(*parsed, std::move(info), options, name);
}

}  // namespace

bool looks_like_dicom(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  uint8_t head[132] = {};
  in.read(reinterpret_cast<char*>(head), sizeof head);
  const std::streamsize n = in.gcount();
  if (n >= 132 && std::memcmp(head + 128, "DICM", 4) == 0) return true;
  if (n < 8) return false;
  // A bare data set (no preamble) starts with a low group (0002 or 0008) in either byte order.
  const uint16_t le = uint16_t(head[0] | head[1] << 8), be = uint16_t(head[0] << 8 | head[1]);
  return le == 0x0002 || le == 0x0008 || be == 0x0002 || be == 0x0008;
}

DicomInfo read_dicom_info(const std::string& path, const DicomReadOptions& options) {
  const dd::FileBytes bytes = dd::read_file_bytes(path, options.max_file_bytes);
  std::unique_ptr<Parsed> parsed = parse(bytes.data.get(), bytes.size, path, options);
  return extract_info(*parsed, path);
}

DicomFrames read_dicom(const std::string& path, const DicomReadOptions& options) {
  const dd::FileBytes bytes = dd::read_file_bytes(path, options.max_file_bytes);
  return read_from_bytes(bytes.data.get(), bytes.size, path, options);
}

DicomFrames read_dicom_buffer(const uint8_t* data, size_t size, const std::string& name,
                              const DicomReadOptions& options) {
  return read_from_bytes(data, size, name, options);
}

}  // namespace attnvision::vision
