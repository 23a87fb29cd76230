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

namespace {

cv::Mat jet_rgb(const cv::Mat& map8) {
  cv::Mat heat;
  cv::applyColorMap(map8, heat, cv::COLORMAP_JET);  // BGR
  cv::cvtColor(heat, heat, cv::COLOR_BGR2RGB);
  return heat;
}

}  // namespace

cv::Mat saliency_layer(const cv::Mat& map, double vmax, double max_alpha) {
  CV_Assert(map.type() == CV_32F && !map.empty());
  cv::Mat layer(map.size(), CV_8UC4, cv::Scalar(0, 0, 0, 0));
  if (!(vmax > 0)) return layer;
  cv::Mat map8;
  map.convertTo(map8, CV_8U, 255.0 / vmax);  // saturates: values above vmax get the top colour
  const cv::Mat heat = jet_rgb(map8);
  for (int y = 0; y < map.rows; ++y) {
    const uint8_t* v = map8.ptr<uint8_t>(y);
    const cv::Vec3b* h = heat.ptr<cv::Vec3b>(y);
    cv::Vec4b* out = layer.ptr<cv::Vec4b>(y);
    for (int x = 0; x < map.cols; ++x)
      out[x] = {h[x][0], h[x][1], h[x][2], static_cast<uint8_t>(std::lround(v[x] * max_alpha))};
  }
  return layer;
}

cv::Mat composite(const cv::Mat& image, const cv::Mat& layer) {
  CV_Assert(layer.type() == CV_8UC4 && layer.size() == image.size());
  cv::Mat rgb = convert_to_8bit(image);
  if (rgb.channels() == 1) cv::cvtColor(rgb, rgb, cv::COLOR_GRAY2RGB);
  else if (rgb.channels() == 4) cv::cvtColor(rgb, rgb, cv::COLOR_RGBA2RGB);
  else rgb = rgb.clone();
  for (int y = 0; y < rgb.rows; ++y) {
    cv::Vec3b* px = rgb.ptr<cv::Vec3b>(y);
    const cv::Vec4b* l = layer.ptr<cv::Vec4b>(y);
    for (int x = 0; x < rgb.cols; ++x) {
      const int a = l[x][3];
      for (int c = 0; c < 3; ++c) px[x][c] = static_cast<uint8_t>((px[x][c] * (255 - a) + l[x][c] * a + 127) / 255);
    }
  }
  return rgb;
}

void draw_region_outlines(cv::Mat& image, const std::vector<Region>& regions, const std::vector<std::string>& labels) {
  CV_Assert((image.type() == CV_8UC3 || image.type() == CV_8UC4) && labels.size() == regions.size());
  const cv::Scalar line = image.channels() == 4 ? cv::Scalar(255, 255, 255, 255) : cv::Scalar(255, 255, 255);
  const cv::Scalar shade = image.channels() == 4 ? cv::Scalar(0, 0, 0, 200) : cv::Scalar(0, 0, 0);
  const int side = std::min(image.cols, image.rows);
  const double font_scale = std::max(0.35, side / 1000.0);
  for (size_t i = 0; i < regions.size(); ++i) {
    const Region& r = regions[i];
    if (!r.contour.empty()) cv::polylines(image, std::vector<std::vector<cv::Point>>{r.contour}, true, line, 1, cv::LINE_8);
    int baseline = 0;
    const cv::Size size = cv::getTextSize(labels[i], cv::FONT_HERSHEY_SIMPLEX, font_scale, 1, &baseline);
    // Right of the box when it fits, else left of it; vertically at the box's top.
    int x = r.bbox_px.x + r.bbox_px.width + 3;
    if (x + size.width > image.cols) x = std::max(0, r.bbox_px.x - size.width - 3);
    const int y = std::clamp(r.bbox_px.y + size.height, size.height + 1, image.rows - baseline - 1);
    cv::rectangle(image, cv::Rect(x - 1, y - size.height - 1, size.width + 2, size.height + baseline + 2), shade, cv::FILLED);
    cv::putText(image, labels[i], cv::Point(x, y), cv::FONT_HERSHEY_SIMPLEX, font_scale, line, 1, cv::LINE_AA);
  }
}

cv::Mat with_colour_bar(const cv::Mat& rgb, double vmax, const std::string& title) {
  CV_Assert(rgb.type() == CV_8UC3);
  const int margin = std::max(4, rgb.rows / 64), bar_w = std::max(10, rgb.cols / 40);
  const double font_scale = std::max(0.35, rgb.rows / 1100.0);
  int baseline = 0;
  const cv::Size text = cv::getTextSize("0.000e+00", cv::FONT_HERSHEY_SIMPLEX, font_scale, 1, &baseline);
  const cv::Size title_size = cv::getTextSize(title, cv::FONT_HERSHEY_SIMPLEX, font_scale, 1, &baseline);
  const int panel_w = std::max(margin * 3 + bar_w + text.width, title_size.width + 2 * margin);  // the title fits too
  cv::Mat out(rgb.rows, rgb.cols + panel_w, CV_8UC3, cv::Scalar(0, 0, 0));
  rgb.copyTo(out(cv::Rect(0, 0, rgb.cols, rgb.rows)));
  const int top = margin * 2 + text.height, bottom = rgb.rows - margin - text.height;
  if (bottom - top < 8) return out;
  cv::Mat ramp(bottom - top, 1, CV_8U);
  for (int y = 0; y < ramp.rows; ++y) ramp.at<uint8_t>(y) = static_cast<uint8_t>(std::lround(255.0 * (ramp.rows - 1 - y) / std::max(1, ramp.rows - 1)));
  cv::Mat bar;
  cv::resize(jet_rgb(ramp), bar, cv::Size(bar_w, ramp.rows), 0, 0, cv::INTER_NEAREST);
  const int x0 = rgb.cols + margin;
  bar.copyTo(out(cv::Rect(x0, top, bar_w, bar.rows)));
  const cv::Scalar white(255, 255, 255);
  cv::putText(out, title, cv::Point(rgb.cols + margin, margin + text.height), cv::FONT_HERSHEY_SIMPLEX, font_scale, white, 1,
              cv::LINE_AA);
  for (int k = 0; k <= 2; ++k) {
    const double value = vmax * (2 - k) / 2.0;
    const int y = top + (bar.rows - 1) * k / 2;
    char label[32];
    std::snprintf(label, sizeof(label), "%.3g", value);
    cv::line(out, {x0 + bar_w, y}, {x0 + bar_w + margin / 2, y}, white, 1);
    cv::putText(out, label, cv::Point(x0 + bar_w + margin, y + text.height / 2), cv::FONT_HERSHEY_SIMPLEX, font_scale,
                white, 1, cv::LINE_AA);
  }
  return out;
}

cv::Mat titled_grid(const std::vector<cv::Mat>& panels, const std::vector<std::string>& titles, int columns) {
  CV_Assert(!panels.empty() && panels.size() == titles.size() && columns >= 1);
  const cv::Size cell = panels.front().size();
  const double font_scale = std::max(0.35, cell.width / 300.0);
  int baseline = 0;
  const int strip = cv::getTextSize("Ag", cv::FONT_HERSHEY_SIMPLEX, font_scale, 1, &baseline).height + baseline + 8;
  const int n = static_cast<int>(panels.size()), cols = std::min(columns, n), rows = (n + cols - 1) / cols;
  cv::Mat out(rows * (cell.height + strip), cols * cell.width, CV_8UC3, cv::Scalar(0, 0, 0));
  for (int i = 0; i < n; ++i) {
    CV_Assert(panels[static_cast<size_t>(i)].type() == CV_8UC3 && panels[static_cast<size_t>(i)].size() == cell);
    const int x = (i % cols) * cell.width, y = (i / cols) * (cell.height + strip);
    panels[static_cast<size_t>(i)].copyTo(out(cv::Rect(x, y, cell.width, cell.height)));
    cv::putText(out, titles[static_cast<size_t>(i)], cv::Point(x + 4, y + cell.height + strip - baseline - 4),
                cv::FONT_HERSHEY_SIMPLEX, font_scale, cv::Scalar(255, 255, 255), 1, cv::LINE_AA);
  }
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
