#include "vision/overlay.h"

#include <opencv2/imgproc.hpp>

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

}  // namespace attnvision::vision
