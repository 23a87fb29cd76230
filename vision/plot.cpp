#include "vision/plot.h"

#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <stdexcept>

namespace attnvision::vision {
namespace {

const cv::Scalar kInk(40, 40, 40);
const cv::Scalar kGrid(225, 225, 225);
// Distinct colours (RGB order, as the images are RGB) for up to six series, then they repeat.
const cv::Scalar kPalette[] = {{31, 119, 180}, {255, 127, 14}, {44, 160, 44}, {214, 39, 40}, {148, 103, 189},
                               {140, 86, 75}};

std::string format_tick(double v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), std::fabs(v) >= 100 || v == std::floor(v) ? "%.0f" : "%.3g", v);
  return buf;
}

void text(cv::Mat& img, const std::string& s, cv::Point at, double scale = 0.4, const cv::Scalar& colour = kInk) {
  cv::putText(img, s, at, cv::FONT_HERSHEY_SIMPLEX, scale, colour, 1, cv::LINE_AA);
}

void draw_panel(cv::Mat& img, const Panel& panel, cv::Rect area) {
  double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
  for (const Series& s : panel.series) {
    if (s.x.size() != s.y.size()) throw std::invalid_argument("plot series '" + s.name + "': x and y differ in length");
    for (size_t i = 0; i < s.x.size(); ++i) {
      if (std::isnan(s.y[i])) continue;
      x0 = std::min(x0, s.x[i]), x1 = std::max(x1, s.x[i]);
      y0 = std::min(y0, s.y[i]), y1 = std::max(y1, s.y[i]);
    }
  }
  if (!(x0 <= x1)) x0 = 0, x1 = 1, y0 = 0, y1 = 1;  // nothing to draw: empty axes
  if (x1 == x0) x1 = x0 + 1;
  const double pad = y1 > y0 ? 0.05 * (y1 - y0) : 0.5;
  y0 -= pad, y1 += pad;

  const cv::Rect plot(area.x + 52, area.y + 28, area.width - 70, area.height - 62);
  auto px = [&](double x) { return plot.x + static_cast<int>(std::lround((x - x0) / (x1 - x0) * plot.width)); };
  auto py = [&](double y) { return plot.y + plot.height - static_cast<int>(std::lround((y - y0) / (y1 - y0) * plot.height)); };
  for (int k = 0; k <= 4; ++k) {
    const double y = y0 + (y1 - y0) * k / 4.0;
    cv::line(img, {plot.x, py(y)}, {plot.x + plot.width, py(y)}, kGrid, 1);
    text(img, format_tick(y), {area.x + 4, py(y) + 4}, 0.35);
    const double x = x0 + (x1 - x0) * k / 4.0;
    text(img, format_tick(x), {px(x) - 8, plot.y + plot.height + 16}, 0.35);
  }
  cv::rectangle(img, plot, kInk, 1);
  text(img, panel.title, {plot.x, area.y + 18}, 0.5);

  for (size_t k = 0; k < panel.series.size(); ++k) {
    const Series& s = panel.series[k];
    const cv::Scalar colour = kPalette[k % std::size(kPalette)];
    std::vector<cv::Point> pts;
    for (size_t i = 0; i < s.x.size(); ++i)
      if (!std::isnan(s.y[i])) pts.emplace_back(px(s.x[i]), py(s.y[i]));
    if (pts.size() > 1) cv::polylines(img, pts, false, colour, 2, cv::LINE_AA);
    for (const cv::Point& p : pts) cv::circle(img, p, 2, colour, cv::FILLED, cv::LINE_AA);
  }
  // The legend goes on a white box over the curves, so that curves ending in its corner do not hide it.
  const cv::Rect box(plot.x + plot.width - 96, plot.y + 4, 92, 16 * static_cast<int>(panel.series.size()) + 6);
  cv::rectangle(img, box, cv::Scalar(255, 255, 255), cv::FILLED);
  cv::rectangle(img, box, kGrid, 1);
  for (size_t k = 0; k < panel.series.size(); ++k) {
    const int y = box.y + 12 + 16 * static_cast<int>(k);
    cv::line(img, {box.x + 6, y - 4}, {box.x + 24, y - 4}, kPalette[k % std::size(kPalette)], 2);
    text(img, panel.series[k].name, {box.x + 30, y}, 0.4);
  }
}

}  // namespace

cv::Mat plot_panels(const std::vector<Panel>& panels, int panel_width, int height) {
  if (panels.empty()) throw std::invalid_argument("plot_panels: no panels");
  cv::Mat img(height, panel_width * static_cast<int>(panels.size()), CV_8UC3, cv::Scalar(255, 255, 255));
  for (size_t i = 0; i < panels.size(); ++i)
    draw_panel(img, panels[i], cv::Rect(static_cast<int>(i) * panel_width, 0, panel_width, height));
  return img;
}

cv::Mat plot_confusion(const std::vector<std::vector<int64_t>>& counts, const std::vector<std::string>& labels) {
  const int n = static_cast<int>(counts.size());
  if (n == 0 || labels.size() != counts.size()) throw std::invalid_argument("plot_confusion: labels and matrix differ in size");
  const int cell = 44, left = 130, top = 40, bottom = 120;
  cv::Mat img(top + n * cell + bottom, left + n * cell + 20, CV_8UC3, cv::Scalar(255, 255, 255));
  text(img, "true (rows) vs predicted (columns)", {left, 24}, 0.5);
  for (int r = 0; r < n; ++r) {
    if (static_cast<int>(counts[r].size()) != n) throw std::invalid_argument("plot_confusion: matrix is not square");
    int64_t row_total = 0;
    for (int64_t v : counts[r]) row_total += v;
    for (int c = 0; c < n; ++c) {
      const double frac = row_total ? static_cast<double>(counts[r][c]) / row_total : 0.0;
      // White to deep blue with the row fraction; a square-root scale makes small confusions visible.
      const double t = std::sqrt(frac);
      const cv::Scalar fill(255 - 224 * t, 255 - 168 * t, 255 - 75 * t);
      const cv::Rect box(left + c * cell, top + r * cell, cell, cell);
      cv::rectangle(img, box, fill, cv::FILLED);
      cv::rectangle(img, box, kGrid, 1);
      const std::string s = std::to_string(counts[r][c]);
      text(img, s, {box.x + cell / 2 - 4 * static_cast<int>(s.size()), box.y + cell / 2 + 4}, 0.38,
           t > 0.6 ? cv::Scalar(255, 255, 255) : kInk);
    }
    text(img, labels[r].substr(0, 16), {6, top + r * cell + cell / 2 + 4}, 0.4);
  }
  // Column labels, read bottom to top: drawn on a strip that is then turned 90 degrees.
  cv::Mat strip(cell * n, bottom - 10, CV_8UC3, cv::Scalar(255, 255, 255));
  for (int c = 0; c < n; ++c) text(strip, labels[c].substr(0, 16), {4, c * cell + cell / 2 + 4}, 0.4);
  cv::Mat turned;
  cv::rotate(strip, turned, cv::ROTATE_90_COUNTERCLOCKWISE);
  turned.copyTo(img(cv::Rect(left, top + n * cell + 6, turned.cols, turned.rows)));
  return img;
}

}  // namespace attnvision::vision
