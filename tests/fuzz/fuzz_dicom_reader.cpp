// libFuzzer target for the DICOM reader: any bytes must end in frames or a DicomError, never a crash, a
// sanitizer report, a hang or unbounded memory. Build and run with tests/fuzz/run_fuzz.sh.
#include "vision/dicom.h"

#include <cstddef>
#include <cstdint>
#include <stdexcept>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace attnvision::vision;
  // Limits small enough that libFuzzer's RSS limit and timeout flag real problems, not big images.
  DicomReadOptions options;
  options.max_file_bytes = int64_t{1} << 20;
  options.max_frame_pixels = int64_t{1} << 22;
  options.max_decoded_bytes = int64_t{256} << 20;
  options.max_inflated_bytes = int64_t{8} << 20;
  options.max_elements = 100'000;  // DCMTK costs ~10 us per element under ASan
  try {
    const DicomFrames image = read_dicom_buffer(data, size, "fuzz", options);
    const Window window = resolve_window("auto", image);
    const std::vector<cv::Mat> shown = window_to_8bit(image, window);
    if (shown.size() != image.frames.size()) __builtin_trap();
  } catch (const DicomError&) {
  } catch (const std::invalid_argument&) {  // e.g. no finite values to compute a window from
  }
  return 0;
}
