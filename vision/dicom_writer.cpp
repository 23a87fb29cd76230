// Secondary Capture writer (PS3.3 A.8.1: SC Image IOD) with DCMTK's dcmdata.
#include "vision/dicom_writer.h"
#include "vision/dicom_detail.h"
#include "vision/files/atomic_write.h"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdatset.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <dcmtk/dcmdata/dcxfer.h>

#include <unistd.h>

#include <cstdio>
#include <ctime>
#include <filesystem>
#include <random>
#include <stdexcept>

namespace attnvision::vision {
namespace {
namespace dd = dicom_detail;

constexpr const char* kSecondaryCapture = "1.2.840.10008.5.1.4.1.1.7";

// Patient, Patient Study and General Study attributes copied from the source when present; Type 2 ones
// are written empty when the source lacks them.
const DcmTagKey kCopied[] = {
    DCM_SpecificCharacterSet,
    DCM_PatientName,
    DCM_PatientID,
    DCM_IssuerOfPatientID,
    DCM_IssuerOfPatientIDQualifiersSequence,
    DCM_PatientBirthDate,
    DCM_PatientBirthTime,
    DCM_PatientSex,
    DCM_OtherPatientIDsSequence,
    DCM_OtherPatientNames,
    DCM_EthnicGroup,
    DCM_PatientComments,
    DCM_PatientIdentityRemoved,
    DCM_DeidentificationMethod,
    DCM_DeidentificationMethodCodeSequence,
    DCM_PatientAge,
    DCM_PatientSize,
    DCM_PatientWeight,
    DCM_StudyInstanceUID,
    DCM_StudyDate,
    DCM_StudyTime,
    DCM_ReferringPhysicianName,
    DCM_ReferringPhysicianIdentificationSequence,
    DCM_StudyID,
    DCM_AccessionNumber,
    DCM_IssuerOfAccessionNumberSequence,
    DCM_StudyDescription,
    DCM_PhysiciansOfRecord,
    DCM_NameOfPhysiciansReadingStudy,
    DCM_ProcedureCodeSequence,
};
const DcmTagKey kType2[] = {DCM_PatientName,    DCM_PatientID, DCM_PatientBirthDate,       DCM_PatientSex,
                            DCM_StudyDate,      DCM_StudyTime, DCM_ReferringPhysicianName, DCM_StudyID,
                            DCM_AccessionNumber};

[[noreturn]] void fail(const std::string& out_path, const std::string& problem) {
  throw std::runtime_error(out_path + ": " + problem);
}

void check(const OFCondition& status, const std::string& out_path, const char* what) {
  if (status.bad()) fail(out_path, std::string("cannot set ") + what + ": " + status.text());
}

std::string now(const char* format) {
  const std::time_t t = std::time(nullptr);
  std::tm local{};
  localtime_r(&t, &local);
  char buf[32];
  std::strftime(buf, sizeof buf, format, &local);
  return buf;
}

std::string get(DcmItem* item, const DcmTagKey& tag) {
  OFString value;
  return item->findAndGetOFStringArray(tag, value).good() ? value.c_str() : "";
}

// Source Image Sequence / Referenced Image Sequence item pointing at the source instance (and frame).
void add_reference(DcmItem* dataset, const DcmTagKey& sequence, const std::string& sop_class,
                   const std::string& sop_instance, int frame, bool multi_frame, bool purpose,
                   const std::string& out_path) {
  DcmItem* item = nullptr;
  check(dataset->findOrCreateSequenceItem(sequence, item, -2), out_path, "a reference");
  check(item->putAndInsertString(DCM_ReferencedSOPClassUID, sop_class.c_str()), out_path,
        "ReferencedSOPClassUID");
  check(item->putAndInsertString(DCM_ReferencedSOPInstanceUID, sop_instance.c_str()), out_path,
        "ReferencedSOPInstanceUID");
  if (multi_frame)
    check(item->putAndInsertString(DCM_ReferencedFrameNumber, std::to_string(frame + 1).c_str()), out_path,
          "ReferencedFrameNumber");
  if (purpose) {
    // DCM 121322 "Source image for image processing operation" (CID 7202).
    DcmItem* code = nullptr;
    check(item->findOrCreateSequenceItem(DCM_PurposeOfReferenceCodeSequence, code, -2), out_path, "purpose");
    check(code->putAndInsertString(DCM_CodeValue, "121322"), out_path, "CodeValue");
    check(code->putAndInsertString(DCM_CodingSchemeDesignator, "DCM"), out_path, "CodingSchemeDesignator");
    check(code->putAndInsertString(DCM_CodeMeaning, "Source image for image processing operation"), out_path,
          "CodeMeaning");
  }
}

}  // namespace

std::string new_dicom_uid() {
  // A version 4 UUID as one decimal number (PS3.5 B.2).
  static thread_local std::mt19937_64 rng{(uint64_t(std::random_device{}()) << 32) ^ std::random_device{}() ^
                                          uint64_t(std::time(nullptr))};
  const uint64_t high = rng();
  return uuid_dicom_uid(high, rng(), 4);
}

std::string uuid_dicom_uid(uint64_t high, uint64_t low, int version) {
  unsigned __int128 v = (static_cast<unsigned __int128>(high) << 64) | low;
  v &= ~(static_cast<unsigned __int128>(0xF000) << 64);  // version nibble (bits 76..79)...
  v |= static_cast<unsigned __int128>(static_cast<unsigned>(version & 0xF) << 12) << 64;  // ...= version
  v &= ~(static_cast<unsigned __int128>(0xC0) << 56);  // variant bits (62..63)...
  v |= static_cast<unsigned __int128>(0x80) << 56;     // ...= 10: RFC 9562
  std::string digits;
  do {
    digits.insert(digits.begin(), char('0' + int(v % 10)));
    v /= 10;
  } while (v != 0);
  return "2.25." + digits;
}

std::string write_secondary_capture(const std::string& source_path, const cv::Mat& rgb,
                                    const std::string& out_path, const SecondaryCaptureOptions& options) {
  if (rgb.type() != CV_8UC3 || rgb.empty()) fail(out_path, "Secondary Capture needs a CV_8UC3 RGB image");
  if (rgb.rows > 65535 || rgb.cols > 65535) fail(out_path, "image larger than 65535 pixels on a side");
  const dd::FileBytes bytes = dd::read_file_bytes(source_path, options.read_options.max_file_bytes);
  const dd::ParsedFile source =
      dd::parse_dicom(bytes.data.get(), bytes.size, source_path, options.read_options);
  DcmDataset* src = source.file->getDataset();
  const std::string source_class = get(src, DCM_SOPClassUID), source_instance = get(src, DCM_SOPInstanceUID);
  if (source_class.empty() || source_instance.empty())
    throw dd::error(DicomError::Kind::corrupt, source_path, "no SOP Class / SOP Instance UID to refer to");
  if (get(src, DCM_StudyInstanceUID).empty())
    throw dd::error(DicomError::Kind::corrupt, source_path, "no StudyInstanceUID");

  DcmFileFormat file;
  DcmDataset* ds = file.getDataset();
  for (const DcmTagKey& tag : kCopied) src->findAndInsertCopyOfElement(tag, ds);
  for (const DcmTagKey& tag : kType2)
    if (!ds->tagExists(tag)) check(ds->insertEmptyElement(tag), out_path, "a Type 2 attribute");

  const std::string sop_instance = new_dicom_uid();
  const std::string series =
      options.series_instance_uid.empty() ? new_dicom_uid() : options.series_instance_uid;
  const std::string date = now("%Y%m%d"), time = now("%H%M%S");
  long source_series = 0;
  const bool has_series_number = src->findAndGetLongInt(DCM_SeriesNumber, source_series).good();
  const int64_t series_number =
      options.series_number.value_or(has_series_number ? source_series + 1000 : 1000);
  long frames = 1;
  src->findAndGetLongInt(DCM_NumberOfFrames, frames);
  const std::string modality = get(src, DCM_Modality);
  const std::string lossy = get(src, DCM_LossyImageCompression);
  const bool source_lossy = lossy == "01" || DcmXfer(source.transfer_syntax.c_str()).isLossy();

  auto put = [&](const DcmTagKey& tag, const std::string& value) {
    check(ds->putAndInsertString(DcmTag(tag), value.c_str()), out_path, DcmTag(tag).getTagName());
  };
  auto put_us = [&](const DcmTagKey& tag, Uint16 value) {
    check(ds->putAndInsertUint16(tag, value), out_path, DcmTag(tag).getTagName());
  };
  // SOP Common
  put(DCM_SOPClassUID, kSecondaryCapture);
  put(DCM_SOPInstanceUID, sop_instance);
  put(DCM_InstanceCreationDate, date);
  put(DCM_InstanceCreationTime, time);
  // General Series
  put(DCM_Modality, modality.empty() ? "OT" : modality);
  put(DCM_SeriesInstanceUID, series);
  put(DCM_SeriesNumber, std::to_string(series_number));
  put(DCM_SeriesDescription, options.series_description);
  put(DCM_SeriesDate, date);
  put(DCM_SeriesTime, time);
  check(ds->insertEmptyElement(DCM_Laterality), out_path, "Laterality");
  // General Equipment, SC Equipment
  put(DCM_Manufacturer, "attnvision");
  put(DCM_ConversionType, "WSD");
  put(DCM_SecondaryCaptureDeviceManufacturer, "attnvision");
  put(DCM_SecondaryCaptureDeviceManufacturerModelName, "attnvision");
  put(DCM_SecondaryCaptureDeviceSoftwareVersions, options.software_version);
  // General Image, SC Image
  put(DCM_InstanceNumber, std::to_string(options.instance_number));
  const std::string orientation = get(src, DCM_PatientOrientation);
  put(DCM_PatientOrientation, orientation);
  put(DCM_ContentDate, date);
  put(DCM_ContentTime, time);
  put(DCM_ImageType, "DERIVED\\SECONDARY");
  put(DCM_DerivationDescription, options.derivation_description.substr(0, 1024));
  put(DCM_DateOfSecondaryCapture, date);
  put(DCM_TimeOfSecondaryCapture, time);
  const std::string burned_in = get(src, DCM_BurnedInAnnotation);
  put(DCM_BurnedInAnnotation, burned_in == "YES" ? "YES" : "NO");
  put(DCM_LossyImageCompression, source_lossy ? "01" : "00");
  if (source_lossy) {
    src->findAndInsertCopyOfElement(DCM_LossyImageCompressionRatio, ds);
    src->findAndInsertCopyOfElement(DCM_LossyImageCompressionMethod, ds);
  }
  add_reference(ds, DCM_SourceImageSequence, source_class, source_instance, options.source_frame, frames > 1,
                true, out_path);
  add_reference(ds, DCM_ReferencedImageSequence, source_class, source_instance, options.source_frame,
                frames > 1, false, out_path);
  // Image Pixel
  put_us(DCM_SamplesPerPixel, 3);
  put(DCM_PhotometricInterpretation, "RGB");
  put_us(DCM_PlanarConfiguration, 0);
  put_us(DCM_Rows, Uint16(rgb.rows));
  put_us(DCM_Columns, Uint16(rgb.cols));
  put_us(DCM_BitsAllocated, 8);
  put_us(DCM_BitsStored, 8);
  put_us(DCM_HighBit, 7);
  put_us(DCM_PixelRepresentation, 0);
  const cv::Mat pixels = rgb.isContinuous() ? rgb : rgb.clone();
  check(ds->putAndInsertUint8Array(DCM_PixelData, pixels.ptr<Uint8>(), Uint32(pixels.total() * 3)), out_path,
        "PixelData");

  write_file_atomically(out_path, [&](const std::string& tmp) {
    const OFCondition saved = file.saveFile(tmp.c_str(), EXS_LittleEndianExplicit);
    if (saved.bad()) fail(out_path, std::string("cannot write: ") + saved.text());
  });
  return sop_instance;
}

}  // namespace attnvision::vision
