#include "vision/overlay.h"

#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace attnvision::vision {

cv::Mat map_to_image(const cv::Mat& map, cv::Size image_size, const EvalTransform& t) {
  CV_Assert(map.type() == CV_32F && !map.empty());
  const cv::Size resized = eval_resize_size(image_size, t);
  const cv::Rect crop = eval_crop_window(image_size, t);  // in resized coordinates; may exceed it (crop_pct > 1)
  cv::Mat on_input;
  cv::resize(map, on_input, cv::Size(static_cast<int>(t.width), static_cast<int>(t.height)), 0, 0, cv::INTER_LINEAR);
  cv::Mat on_resized = cv::Mat::zeros(resized, CV_32F);
  const cv::Rect inside = crop & cv::Rect(cv::Point(0, 0), resized);
  on_input(cv::Rect(inside.tl() - crop.tl(), inside.size())).copyTo(on_resized(inside));
  cv::Mat out;
  cv::resize(on_resized, out, image_size, 0, 0, cv::INTER_LINEAR);
  return out;
}

cv::Mat overlay_heatmap(const cv::Mat& image, const cv::Mat& map, double alpha) {
  CV_Assert(map.type() == CV_32F && map.size() == image.size());
  cv::Mat rgb = convert_to_8bit(image);
  if (rgb.channels() == 1) cv::cvtColor(rgb, rgb, cv::COLOR_GRAY2RGB);
  else if (rgb.channels() == 4) cv::cvtColor(rgb, rgb, cv::COLOR_RGBA2RGB);
  cv::Mat map8, heat;
  map.convertTo(map8, CV_8U, 255.0);
  cv::applyColorMap(map8, heat, cv::COLORMAP_JET);  // BGR
  cv::cvtColor(heat, heat, cv::COLOR_BGR2RGB);
  cv::Mat out;
  cv::addWeighted(rgb, 1.0 - alpha, heat, alpha, 0.0, out);
  return out;
}

cv::Scalar class_colour(int index) {
  // The golden-ratio hue walk: any run of consecutive classes gets well-separated hues.
  const double hue = std::fmod(0.61803398875 * std::max(index, 0), 1.0) * 180.0;
  cv::Mat hsv(1, 1, CV_8UC3, cv::Scalar(hue, 220, 255)), rgb;
  cv::cvtColor(hsv, rgb, cv::COLOR_HSV2RGB);
  const cv::Vec3b c = rgb.at<cv::Vec3b>(0, 0);
  return cv::Scalar(c[0], c[1], c[2]);
}

cv::Mat overlay_boxes(const cv::Mat& image, const std::vector<DrawnBox>& boxes) {
  cv::Mat out = convert_to_8bit(image);
  if (out.channels() == 1) cv::cvtColor(out, out, cv::COLOR_GRAY2RGB);
  else if (out.channels() == 4) cv::cvtColor(out, out, cv::COLOR_RGBA2RGB);
  else out = out.clone();
  const int side = std::min(out.cols, out.rows);
  const int thickness = std::max(1, side / 300);
  const double font_scale = std::max(0.3, side / 800.0);
  auto corners = [](const DrawnBox& d) {
    // COCO's edges are between pixels: the last pixel inside is x + w - 1.
    return std::make_pair(
        cv::Point(static_cast<int>(std::lround(d.box.x)), static_cast<int>(std::lround(d.box.y))),
        cv::Point(static_cast<int>(std::lround(d.box.x + d.box.width)) - 1,
                  static_cast<int>(std::lround(d.box.y + d.box.height)) - 1));
  };
  // Boxes first, labels over them: no box line crosses a label.
  for (const DrawnBox& d : boxes) {
    const auto [tl, br] = corners(d);
    cv::rectangle(out, tl, br, class_colour(d.class_index), thickness, cv::LINE_8);
  }
  // A label goes above its box, or moves down past the labels already placed: a detector often reports two
  // classes for one object, on the same box, and both labels must stay readable.
  std::vector<cv::Rect> placed;
  for (const DrawnBox& d : boxes) {
    const cv::Point tl = corners(d).first;
    char score[16];
    std::snprintf(score, sizeof(score), " %.2f", d.score);
    const std::string text = d.label + score;
    int baseline = 0;
    const cv::Size size = cv::getTextSize(text, cv::FONT_HERSHEY_SIMPLEX, font_scale, 1, &baseline);
    const int tag_h = size.height + baseline + 2;
    cv::Rect tag(std::clamp(tl.x, 0, std::max(0, out.cols - size.width - 2)),
                 tl.y - tag_h >= 0 ? tl.y - tag_h : std::max(tl.y, 0), size.width + 2, tag_h);
    for (size_t tries = 0; tries < placed.size(); ++tries) {
      const bool overlaps =
          std::any_of(placed.begin(), placed.end(), [&](const cv::Rect& r) { return (r & tag).area() > 0; });
      if (!overlaps || tag.y + 2 * tag_h > out.rows) break;
      tag.y += tag_h;
    }
    placed.push_back(tag);
    cv::rectangle(out, tag & cv::Rect(0, 0, out.cols, out.rows), class_colour(d.class_index), cv::FILLED);
    cv::putText(out, text, cv::Point(tag.x + 1, tag.y + size.height + 1), cv::FONT_HERSHEY_SIMPLEX, font_scale,
                cv::Scalar(0, 0, 0), 1, cv::LINE_AA);
  }
  return out;
}

}  // namespace attnvision::vision
