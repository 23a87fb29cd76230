// CT Image writer (PS3.3 A.3: Patient, General Study, General Series, Frame of Reference, General Equipment,
// General Image, Image Plane, Image Pixel, CT Image, VOI LUT and SOP Common modules) with DCMTK's dcmdata.
#include "vision/dicom_ct_writer.h"

#include "vision/dicom_writer.h"
#include "vision/files/atomic_write.h"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdatset.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <stdexcept>

namespace attnvision::vision {
namespace {

constexpr const char* kCtImageStorage = "1.2.840.10008.5.1.4.1.1.2";

// A Decimal String value: at most 16 characters (PS3.5 6.2), so 10 significant digits leave room for the
// sign, the point and an exponent; enough for sub-micrometre positions.
std::string decimal_string(double value) {
  char text[32];
  std::snprintf(text, sizeof text, "%.10g", value);
  return text;
}

template <size_t N>
std::string decimal_strings(const std::array<double, N>& values) {
  std::string joined;
  for (size_t i = 0; i < N; ++i) joined += (i ? "\\" : "") + decimal_string(values[i]);
  return joined;
}

void check_attributes(const cv::Mat& hu, const CtImageAttributes& a) {
  const auto bad = [](const std::string& problem) { throw std::invalid_argument("CT image: " + problem); };
  if (hu.type() != CV_32FC1 || hu.empty()) bad("pixels must be a non-empty CV_32FC1 image of HU");
  if (hu.rows > 65535 || hu.cols > 65535) bad("image larger than 65535 pixels on a side");
  if (a.bits_stored < 12 || a.bits_stored > 16) bad("bits stored must be 12..16");
  for (const std::string* uid :
       {&a.study_instance_uid, &a.series_instance_uid, &a.sop_instance_uid, &a.frame_of_reference_uid})
    if (uid->empty() || uid->size() > 64) bad("every UID must be set and at most 64 characters");
  if (a.windows.empty()) bad("at least one window is needed");
  if (!(a.pixel_spacing[0] > 0.0 && a.pixel_spacing[1] > 0.0 && a.slice_thickness > 0.0))
    bad("pixel spacing and slice thickness must be positive");
}

}  // namespace

HuRange ct_hu_range(int bits_stored, bool is_signed, double rescale_intercept) {
  const double levels = std::ldexp(1.0, bits_stored);
  const double smallest = is_signed ? -levels / 2 : 0.0;
  return {rescale_intercept + smallest, rescale_intercept + smallest + levels - 1};
}

cv::Mat ct_stored_values(const cv::Mat& hu, int bits_stored, bool is_signed, double rescale_intercept) {
  if (hu.type() != CV_32FC1) throw std::invalid_argument("CT stored values: pixels must be CV_32FC1");
  const HuRange range = ct_hu_range(bits_stored, is_signed, rescale_intercept);
  cv::Mat stored(hu.size(), is_signed ? CV_16SC1 : CV_16UC1);
  for (int y = 0; y < hu.rows; ++y) {
    const float* in = hu.ptr<float>(y);
    for (int x = 0; x < hu.cols; ++x) {
      // NaN (never produced on purpose) lands on the lowest value rather than on undefined behaviour.
      const double v = std::isnan(in[x])
                           ? range.lowest
                           : std::clamp(std::nearbyint(double(in[x])), range.lowest, range.highest);
      const int value = static_cast<int>(v - rescale_intercept);
      if (is_signed)
        stored.ptr<int16_t>(y)[x] = static_cast<int16_t>(value);
      else
        stored.ptr<uint16_t>(y)[x] = static_cast<uint16_t>(value);
    }
  }
  return stored;
}

void write_ct_image(const std::string& path, const cv::Mat& hu, const CtImageAttributes& a) {
  check_attributes(hu, a);
  DcmFileFormat file;
  DcmDataset* ds = file.getDataset();
  const auto check = [&](const OFCondition& status, const DcmTagKey& tag) {
    if (status.bad())
      throw std::runtime_error(path + ": cannot set " + DcmTag(tag).getTagName() + ": " + status.text());
  };
  const auto put = [&](const DcmTagKey& tag, const std::string& value) {
    check(ds->putAndInsertString(tag, value.c_str()), tag);
  };
  const auto put_us = [&](const DcmTagKey& tag, int value) {
    check(ds->putAndInsertUint16(tag, static_cast<Uint16>(value)), tag);
  };

  // SOP Common
  put(DCM_SOPClassUID, kCtImageStorage);
  put(DCM_SOPInstanceUID, a.sop_instance_uid);
  // Patient
  put(DCM_PatientName, a.patient_name);
  put(DCM_PatientID, a.patient_id);
  put(DCM_PatientBirthDate, a.patient_birth_date);
  put(DCM_PatientSex, a.patient_sex);
  // General Study
  put(DCM_StudyInstanceUID, a.study_instance_uid);
  put(DCM_StudyDate, a.study_date);
  put(DCM_StudyTime, a.study_time);
  put(DCM_ReferringPhysicianName, "");
  put(DCM_StudyID, a.study_id);
  put(DCM_AccessionNumber, a.accession_number);
  if (!a.study_description.empty()) put(DCM_StudyDescription, a.study_description);
  // General Series (Patient Position is required for CT: the phantoms lie head first supine)
  put(DCM_Modality, "CT");
  put(DCM_SeriesInstanceUID, a.series_instance_uid);
  put(DCM_SeriesNumber, std::to_string(a.series_number));
  put(DCM_SeriesDate, a.study_date);
  put(DCM_SeriesTime, a.study_time);
  if (!a.series_description.empty()) put(DCM_SeriesDescription, a.series_description);
  put(DCM_PatientPosition, "HFS");
  put(DCM_Laterality, "");  // Type 2C: dciodvfy asks for it (empty: no paired body part)
  // Frame of Reference
  put(DCM_FrameOfReferenceUID, a.frame_of_reference_uid);
  put(DCM_PositionReferenceIndicator, "");
  // General Equipment
  put(DCM_Manufacturer, a.manufacturer);
  // General Image, CT Image
  put(DCM_ImageType, a.image_type);
  if (!a.derivation_description.empty()) put(DCM_DerivationDescription, a.derivation_description);
  put(DCM_InstanceNumber, std::to_string(a.instance_number));
  put(DCM_ContentDate, a.study_date);
  put(DCM_ContentTime, a.study_time);
  put(DCM_AcquisitionNumber, "1");
  put(DCM_KVP, "120");
  put(DCM_BurnedInAnnotation, "NO");
  put(DCM_LossyImageCompression, "00");
  // Image Plane
  put(DCM_PixelSpacing, decimal_strings(a.pixel_spacing));
  put(DCM_ImageOrientationPatient, decimal_strings(a.image_orientation));
  put(DCM_ImagePositionPatient, decimal_strings(a.image_position));
  put(DCM_SliceThickness, decimal_string(a.slice_thickness));
  // Along the slice normal (row x column direction), the coordinate viewers sort and label slices by.
  const auto& o = a.image_orientation;
  const std::array<double, 3> normal = {o[1] * o[5] - o[2] * o[4], o[2] * o[3] - o[0] * o[5],
                                        o[0] * o[4] - o[1] * o[3]};
  const auto& p = a.image_position;
  put(DCM_SliceLocation, decimal_string(p[0] * normal[0] + p[1] * normal[1] + p[2] * normal[2]));
  // Image Pixel, CT Image: HU = stored * 1 + intercept
  put_us(DCM_SamplesPerPixel, 1);
  put(DCM_PhotometricInterpretation, "MONOCHROME2");
  put_us(DCM_Rows, hu.rows);
  put_us(DCM_Columns, hu.cols);
  put_us(DCM_BitsAllocated, 16);
  put_us(DCM_BitsStored, a.bits_stored);
  put_us(DCM_HighBit, a.bits_stored - 1);
  put_us(DCM_PixelRepresentation, a.is_signed ? 1 : 0);
  put(DCM_RescaleIntercept, decimal_string(a.rescale_intercept));
  put(DCM_RescaleSlope, "1");
  put(DCM_RescaleType, "HU");
  // VOI LUT
  std::string centers, widths, explanations;
  for (size_t i = 0; i < a.windows.size(); ++i) {
    const std::string sep = i ? "\\" : "";
    centers += sep + decimal_string(a.windows[i].center);
    widths += sep + decimal_string(a.windows[i].width);
    explanations += sep + a.windows[i].explanation;
  }
  put(DCM_WindowCenter, centers);
  put(DCM_WindowWidth, widths);
  put(DCM_WindowCenterWidthExplanation, explanations);

  // Signed values are written as their two's complement bit patterns, sign-extended over the unused high
  // bits (PS3.5 8.1.1), which is what an int16 holds already.
  const cv::Mat stored = ct_stored_values(hu, a.bits_stored, a.is_signed, a.rescale_intercept);
  check(ds->putAndInsertUint16Array(DCM_PixelData, reinterpret_cast<const Uint16*>(stored.data),
                                    static_cast<unsigned long>(stored.total())),
        DCM_PixelData);

  write_file_atomically(path, [&](const std::string& tmp) {
    const OFCondition saved = file.saveFile(tmp.c_str(), EXS_LittleEndianExplicit);
    if (saved.bad()) throw std::runtime_error(path + ": cannot write: " + saved.text());
  });
}

std::string dicom_uid_from_bits(uint64_t high, uint64_t low) { return uuid_dicom_uid(high, low, 8); }

}  // namespace attnvision::vision
