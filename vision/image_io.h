// Image decoding for untrusted files: JPEG, PNG, TIFF, BMP, WebP and PNM (PBM/PGM/PPM), 8/16-bit,
// gray/RGB/RGBA, EXIF orientation applied.
//
// The file is read once into memory (refused above max_file_bytes). Its format comes from its first bytes,
// never from its name. Our own header parser reads the dimensions (JPEG SOF, PNG IHDR, BMP info header,
// WebP VP8/VP8L/VP8X, TIFF IFD0, PNM header) and refuses width * height > max_pixels before any pixel
// buffer exists, so a decompression bomb never allocates. The same pass checks the container structure
// (JPEG end-of-image marker after the scans, PNG chunk CRCs and IEND, TIFF strips / tiles inside the
// file, BMP / PNM / WebP payload sizes): a truncated or damaged file is refused with a clear message
// instead of decoding half a picture, and libpng / libtiff / OpenCV get no chance to print on stderr.
// Then OpenCV decodes from the buffer (imdecode, IMREAD_UNCHANGED). What still reaches stderr: libjpeg's
// "Corrupt JPEG data" warnings for damaged entropy-coded data inside an otherwise complete JPEG (OpenCV
// gives no hook for them; such a file decodes, with the damaged blocks garbled, as in PIL).
//
// Every error is an ImageError whose what() is one line: "<path>: <what is wrong>".
#pragma once

#include <opencv2/core/mat.hpp>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace attnvision::vision {

// Any problem with an input image; what() is one line naming the file and the problem.
class ImageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct ImageReadOptions {
  int64_t max_pixels = 200'000'000;           // refuse larger images before decoding (decompression bombs)
  int64_t max_file_bytes = int64_t{1} << 30;  // refuse larger files before reading them (at most 2 GiB - 1)
  // Turn the stored pixels the way EXIF tag 0x0112 asks (JPEG APP1, PNG eXIf, WebP EXIF, TIFF IFD0).
  // Note that PIL's Image.open, and hence timm's and the Python peer's pipelines, do NOT do this.
  bool apply_exif_orientation = true;
};

// The decoded image:
//   depth     CV_8U or CV_16U as stored (other sample types, e.g. float TIFF, are an ImageError);
//   channels  1 gray, 3 RGB, 4 RGBA, never BGR. Gray + alpha (PNG "LA") becomes RGBA with R = G = B:
//             alpha is kept, and every 4-channel result means the same thing.
//             Palette images become RGB (RGBA when the palette has transparency).
// 16-bit data keeps its stored values (a 12-bit scan stays 0..4095); nothing is rescaled.
// JPEG pixels equal Pillow's decode (same libjpeg-turbo); CMYK JPEGs come back as RGB within 1 level of
// Pillow's convert('RGB'). Known OpenCV behaviours this function corrects: BGR order; 8-bit RGBA TIFF with
// unassociated alpha comes back premultiplied from libtiff and is un-premultiplied (exact where alpha is
// 255, within 255 / (2 * alpha) levels elsewhere, colour lost where alpha is 0); TIFF orientation is
// applied by OpenCV itself and undone when apply_exif_orientation is false.
cv::Mat read_image(const std::string& path, const ImageReadOptions& options = {});

// read_image with libjpeg's DCT-domain downscaling, for a caller that shrinks the image anyway: a JPEG is
// decoded at 1/2, 1/4 or 1/8 of its size (each side rounded up), the smallest scale whose sides, rounded down,
// still hold `at_least` (after EXIF orientation). That is Pillow's Image.draft(mode, at_least) and gives its
// pixels exactly; it is not a full decode followed by a resize, so a model input made from it differs from the
// exact path's by a few levels. Other formats, CMYK JPEGs, JPEGs too small to reduce and an empty `at_least`
// come back exactly as read_image gives them. `full_size`, when given, gets the size read_image would return.
cv::Mat read_image_reduced(const std::string& path, cv::Size at_least, cv::Size* full_size,
                           const ImageReadOptions& options = {});

// What the header says, without decoding pixels.
struct ImageInfo {
  std::string format;    // "JPEG", "PNG", "TIFF", "BMP", "WebP", "PNM"
  cv::Size stored_size;  // as stored in the file
  int orientation = 1;   // EXIF orientation 1..8 (1 when absent)
  // The size read_image returns with apply_exif_orientation (width and height swap for 5..8).
  cv::Size oriented_size() const;
};

// Reads only the header bytes it needs (not the whole file). Throws ImageError.
ImageInfo read_image_info(const std::string& path);

// Width and height of the image read_image returns with default options, from the header alone
// (no pixel decode): EXIF orientations 5..8 swap them. Throws ImageError.
cv::Size read_image_size(const std::string& path);

// File extensions read_image understands (lower case, with the dot):
// .jpg .jpeg .png .tif .tiff .bmp .webp .ppm .pgm .pnm
const std::vector<std::string>& image_extensions();
// Case-insensitive test of the path's extension against image_extensions().
bool has_image_extension(const std::string& path);

}  // namespace attnvision::vision
