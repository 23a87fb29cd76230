// Internals shared by the vision/dicom*.cpp files (not part of the public API; no DCMTK types here
// either, so that only the .cpp files include DCMTK).
#pragma once

#include "vision/dicom.h"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

class DcmFileFormat;  // DCMTK's; complete in the .cpp files that use these functions

namespace attnvision::vision::dicom_detail {

// Builds the one-line "name: problem" error.
DicomError error(DicomError::Kind kind, const std::string& name, const std::string& problem);

// Registers DCMTK's decoders and silences its logger (once per process; thread-safe).
void init_dcmtk();

// The whole file, refused unread when larger than `limit`.
struct FileBytes {
  std::unique_ptr<uint8_t[]> data;
  size_t size = 0;
};
FileBytes read_file_bytes(const std::string& path, int64_t limit);

struct ScanLimits {
  int max_nesting = 32;
  int64_t max_elements = 1'000'000;
};

struct ScanResult {
  bool has_meta = false;        // a File Meta Information group was found
  std::string transfer_syntax;  // from the meta group ("" when absent)
  size_t dataset_offset = 0;    // where the data set starts after the meta group
};

// Walks the byte structure of a DICOM file the way DCMTK's parser will read it, before DCMTK does, so
// that DCMTK never recurses deeper than `max_nesting` (its parser would overflow the stack) and never
// meets a length reaching past its container. A deflated data set is left to the caller: inflate it
// with inflate_dataset and check it with scan_dataset. Throws DicomError (not_dicom, corrupt, too_large).
ScanResult scan_structure(const uint8_t* data, size_t size, const std::string& name,
                          const ScanLimits& limits);
void scan_dataset(const uint8_t* data, size_t size, const std::string& name, const ScanLimits& limits);
std::vector<uint8_t> inflate_dataset(const uint8_t* data, size_t size, int64_t limit,
                                     const std::string& name);

// A DCMTK parse: the file object, the inflated bytes of a deflated data set (DCMTK loads large values
// lazily from them, so they live as long as the file object), and the transfer syntax the file names.
struct ParsedFile {
  std::unique_ptr<DcmFileFormat> file;
  std::vector<uint8_t> inflated;
  std::string transfer_syntax;
  ParsedFile();
  ParsedFile(ParsedFile&&) noexcept;
  ParsedFile& operator=(ParsedFile&&) noexcept;
  ~ParsedFile();
};

// Structural pre-scan (above), then DCMTK's parse of the same bytes from a memory stream that lets
// DCMTK defer values over 4 kB, so a declared length is never allocated before the bytes are known to
// be there. `data` must outlive the result (deferred values are read from it). Throws DicomError.
ParsedFile parse_dicom(const uint8_t* data, size_t size, const std::string& name,
                       const DicomReadOptions& options);

// Decodes one JPEG 2000 frame (J2K codestream or JP2 file) with OpenJPEG into `out`, which holds
// rows * columns * samples values of `bytes_per_sample` bytes (local byte order, colour-by-pixel).
// The codestream's size and components are checked against the expected ones before decoding.
struct J2kExpect {
  int rows = 0, columns = 0, samples = 1, bits_allocated = 16, bits_stored = 16;
  bool is_signed = false;
};
void decode_j2k_frame(const uint8_t* data, size_t size, const J2kExpect& expect, uint8_t* out,
                      const std::string& name, int frame);

}  // namespace attnvision::vision::dicom_detail
