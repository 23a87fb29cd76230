// Preprocessing that reproduces timm's eval transform (timm.data.create_transform(is_training=False)):
// resize the shorter side to floor(size / crop_pct) with PIL's resampling filters, centre crop,
// scale to [0, 1], normalise with the model's mean / std, write planar CHW floats.
//
// The result equals, bit for bit, what the Python peer (../shared/peers/py_classify_folder.py,
// preprocess()) computes with Pillow for the same decoded pixels:
//   1. mode      channels 3: PIL convert('RGB') (gray replicated, alpha dropped, not composited);
//                channels 1: PIL convert('L'), L = (19595 R + 38470 G + 7471 B + 2^15) >> 16.
//                16-bit input is first scaled to 8 bits as round(v / 257) (0 -> 0, 65535 -> 255).
//                PIL itself clips 16-bit gray to 0..255 in convert('RGB') and keeps the high byte of
//                16-bit RGB, which ruins e.g. medical 16-bit PNGs; both ignore most of the range, so we
//                rescale instead. Data that uses only part of the 16-bit range (12-bit scans) should be
//                windowed before this transform.
//   2. resize    square target (height == width == S): shorter side to floor(S / crop_pct), the other to
//                int(floor(S / crop_pct) * other / shorter), as torchvision Resize(int) does.
//                Non-square target (H != W): both sides exactly, to (floor(H / crop_pct), floor(W /
//                crop_pct)), aspect ratio not kept: timm <= 0.6 transforms_imagenet_eval for a tuple
//                img_size. (timm >= 0.9 keeps the aspect ratio there, ResizeKeepRatio; we follow the older
//                rule.) Resampling is Pillow's, exactly (resize_like_pil), antialiased when shrinking.
//   3. crop      torchvision CenterCrop: left = round((w - W) / 2) with Python's round-half-even, same for
//                top; a side shorter than the crop (crop_pct > 1) is padded with zeros, (W - w) // 2 before.
//   4. values    x = float(v) * float(1 / 255), then (x - mean) / std, all in float32 as numpy does.
//                (torchvision's ToTensor divides by 255 instead: within 1 ulp of this.)
// Only the pixels inside the crop window are resampled: same values, less work.
#pragma once

#include <opencv2/core/mat.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace attnvision::vision {

struct EvalTransform {
  int64_t channels = 3;  // 3: RGB (gray and RGBA are converted); 1: luminance as PIL's convert('L')
  int64_t height = 224;
  int64_t width = 224;
  double crop_pct = 0.875;
  std::string interpolation = "bilinear";  // bilinear | bicubic | nearest (PIL semantics); also box,
                                           // hamming, lanczos (PIL's other filters)
  std::vector<double> mean{0.485, 0.456, 0.406};
  std::vector<double> std{0.229, 0.224, 0.225};
};

// Writes channels * height * width floats (CHW) to `dst`. `image` is what read_image returns: CV_8U or
// CV_16U with 1 (gray), 2 (gray + alpha), 3 (RGB) or 4 (RGBA) channels. Throws std::invalid_argument for
// an empty or unsupported image or an invalid transform (channels not 1 or 3, mean / std sizes not equal
// to channels, a zero std, non-positive sizes or crop_pct, an unknown interpolation).
void apply_eval_transform(const cv::Mat& image, const EvalTransform& t, float* dst);

// The smallest image the transform's resize (step 2) still shrinks or keeps, as the size to ask a reduced JPEG
// decode for (vision::read_image_reduced, Pillow's Image.draft): (s, s) for a square input, s = the short side
// the resize gives; the fixed resize size otherwise.
cv::Size eval_min_source_size(const EvalTransform& t);

// The size the image is resized to before the centre crop (step 2 above).
cv::Size eval_resize_size(cv::Size image_size, const EvalTransform& t);
// The crop window in the resized image's coordinates (step 3); it may reach outside when crop_pct > 1.
// Together with eval_resize_size this maps model-input pixels (e.g. a saliency map) back to the image.
cv::Rect eval_crop_window(cv::Size image_size, const EvalTransform& t);

// PIL-exact resize (Image.resize with BILINEAR / BICUBIC / NEAREST, antialiased when shrinking) of an
// 8-bit image with 1, 3 or 4 channels: Pillow's Resample.c arithmetic (double-precision filter weights,
// normalised, then 22-bit fixed point; a horizontal pass into an 8-bit image, then a vertical pass) and
// its nearest-neighbour coordinate stepping. A 4-channel image is treated as PIL's RGBA: resized with
// premultiplied alpha (RGBa) and un-premultiplied after, as Image.resize does. Also accepts "box",
// "hamming" and "lanczos". Throws std::invalid_argument for other inputs.
cv::Mat resize_like_pil(const cv::Mat& image, cv::Size size, const std::string& interpolation);

// 16-bit to 8-bit as round(v / 257), the exact inverse of 8-bit -> 16-bit v * 257; 8-bit input is returned
// as is. Channels are kept.
cv::Mat convert_to_8bit(const cv::Mat& image);

}  // namespace attnvision::vision
