// The inspection report: slices are encoded when added (see the header), and the page is assembled from three
// parts: static HTML (escaped text: header, series list, region table), one JSON blob with every slice's data
// and data-URI images, and a small inline script that turns the blob into the slice viewer.
#include "pipelines/report/inspection_report.h"

#include "vision/files/atomic_write.h"

#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <mutex>
#include <stdexcept>
#include <utility>

namespace attnvision::pipelines {
namespace {

struct StoredMethod {
  std::string method;
  std::string heat_uri;  // PNG data URI
  std::vector<ReportRegion> regions;
};

// A ReportSlice with its pictures already compressed: a long run keeps only these strings.
struct StoredSlice {
  std::string series_key;  // series_uid, or the input folder when there is none
  std::string series_label;
  std::string path;
  int frame = 0;
  std::string sop_instance_uid;
  double position_z = 0;
  double score = 0;
  bool anomalous = false;
  int width = 0, height = 0;
  std::vector<std::pair<std::string, std::string>> windows;  // preset name, JPEG data URI
  std::vector<StoredMethod> methods;
};

struct Series {
  std::string key, label;
  std::vector<const StoredSlice*> slices;  // ordered by position_z
};

std::string escape_html(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string base64(const std::vector<uchar>& bytes) {
  static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    const unsigned v = (unsigned(bytes[i]) << 16) | (unsigned(bytes[i + 1]) << 8) | bytes[i + 2];
    for (int shift : {18, 12, 6, 0}) out += alphabet[(v >> shift) & 63];
  }
  if (i < bytes.size()) {
    const bool two = i + 1 < bytes.size();
    const unsigned v = (unsigned(bytes[i]) << 16) | (two ? unsigned(bytes[i + 1]) << 8 : 0u);
    out += alphabet[(v >> 18) & 63];
    out += alphabet[(v >> 12) & 63];
    out += two ? alphabet[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

// OpenCV's encoders take BGR(A); the report's pictures arrive in the vision layer's RGB(A) order.
std::string data_uri(const cv::Mat& bgr_or_gray, const std::string& ext, const std::vector<int>& params) {
  std::vector<uchar> bytes;
  if (!cv::imencode(ext, bgr_or_gray, bytes, params))
    throw std::runtime_error("inspection report: could not encode a " + ext.substr(1) + " image");
  return "data:image/" + std::string(ext == ".png" ? "png" : "jpeg") + ";base64," + base64(bytes);
}

// The windowed slices are CV_8UC1 by contract; the batch runner's fallback for plain images is its 8-bit RGB
// display frame, so RGB(A) is accepted too.
std::string slice_jpeg(const cv::Mat& img) {
  cv::Mat bgr = img;
  if (img.channels() == 3) cv::cvtColor(img, bgr, cv::COLOR_RGB2BGR);
  if (img.channels() == 4) cv::cvtColor(img, bgr, cv::COLOR_RGBA2BGR);
  return data_uri(bgr, ".jpg", {cv::IMWRITE_JPEG_QUALITY, 90});
}

std::string heat_png(const cv::Mat& rgba) {
  cv::Mat bgra;
  cv::cvtColor(rgba, bgra, cv::COLOR_RGBA2BGRA);
  return data_uri(bgra, ".png", {});
}

std::string describe(const ReportSlice& s) {
  return "inspection report: slice " + s.path + " frame " + std::to_string(s.frame) + ": ";
}

void check_images(const ReportSlice& s, const std::vector<std::string>& first_methods, bool have_first) {
  if (s.windows.empty()) throw std::invalid_argument(describe(s) + "has no window images");
  const cv::Size size = s.windows.front().second.size();
  for (const auto& [name, img] : s.windows) {
    if (img.empty() || img.depth() != CV_8U ||
        (img.channels() != 1 && img.channels() != 3 && img.channels() != 4))
      throw std::invalid_argument(describe(s) + "window '" + name + "' is not an 8-bit gray or RGB image");
    if (img.size() != size)
      throw std::invalid_argument(describe(s) + "window '" + name + "' is " + std::to_string(img.cols) + "x" +
                                  std::to_string(img.rows) + ", the first window is " +
                                  std::to_string(size.width) + "x" + std::to_string(size.height));
  }
  for (const ReportMethodView& m : s.methods) {
    if (m.heat.type() != CV_8UC4)
      throw std::invalid_argument(describe(s) + "the heat layer of method '" + m.method +
                                  "' is not 8-bit RGBA");
    if (m.heat.size() != size)
      throw std::invalid_argument(describe(s) + "the heat layer of method '" + m.method + "' is " +
                                  std::to_string(m.heat.cols) + "x" + std::to_string(m.heat.rows) +
                                  ", the slice is " + std::to_string(size.width) + "x" +
                                  std::to_string(size.height));
  }
  if (!have_first) return;
  std::vector<std::string> names;
  for (const ReportMethodView& m : s.methods) names.push_back(m.method);
  if (names != first_methods) {
    auto join = [](const std::vector<std::string>& v) {
      std::string out;
      for (const std::string& n : v) out += (out.empty() ? "" : ", ") + n;
      return "[" + out + "]";
    };
    throw std::invalid_argument(describe(s) + "methods " + join(names) + " differ from the first slice's " +
                                join(first_methods));
  }
}

std::string format(const char* fmt, double v) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), fmt, v);
  return buf;
}

// Sizes in mm when the slice had PixelSpacing; otherwise in pixels, and the cell says so.
std::string area_cell(const ReportRegion& r) {
  return r.area_mm2 ? format("%.1f mm²", *r.area_mm2)
                    : format("%.0f px", r.area_px) + " <small>(no spacing)</small>";
}

std::string diameter_cell(const ReportRegion& r) {
  return r.diameter_mm ? format("%.1f mm", *r.diameter_mm)
                       : format("%.1f px", r.diameter_px) + " <small>(no spacing)</small>";
}

// Inside <script type="application/json"> the only dangerous character is '<' ("</script>", "<!--"); in JSON
// it can only occur inside strings, where \u003c means the same.
std::string script_safe_json(const nlohmann::json& j) {
  const std::string text = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  std::string out;
  out.reserve(text.size());
  for (char c : text) out += c == '<' ? std::string("\\u003c") : std::string(1, c);
  return out;
}

// Numbers the JSON cannot carry (NaN scores) become null; the script prints them as "n/a".
nlohmann::json number(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); }

const char* const kStyle = R"CSS(
:root { color-scheme: dark; }
[hidden] { display: none !important; }
body { margin: 0; font: 14px/1.4 system-ui, sans-serif; background: #15181c; color: #e4e6e8; }
header { padding: 12px 20px; border-bottom: 1px solid #2c3137; }
header h1 { margin: 0 0 4px; font-size: 20px; }
.meta { margin: 0; color: #a9b0b7; }
.meta code { color: #cfd5da; }
main { display: flex; gap: 20px; padding: 16px 20px; align-items: flex-start; }
nav { min-width: 220px; max-width: 300px; }
h2 { font-size: 15px; margin: 0 0 8px; color: #a9b0b7; text-transform: uppercase; letter-spacing: .04em; }
nav ul { list-style: none; margin: 0; padding: 0; }
.series-item { display: block; width: 100%; text-align: left; margin: 0 0 6px; padding: 8px 10px; border-radius: 6px;
  border: 1px solid #2c3137; background: #1d2126; color: inherit; font: inherit; cursor: pointer; }
.series-item small { display: block; color: #a9b0b7; }
.series-item.active { border-color: #4c9be8; background: #1f2c3a; }
#viewer { flex: 1; min-width: 0; }
#controls { display: flex; flex-wrap: wrap; gap: 8px 18px; align-items: center; margin-bottom: 10px; }
#controls label { display: flex; gap: 6px; align-items: center; }
#slice-slider { width: 260px; }
#window-buttons button { margin-right: 4px; padding: 3px 10px; border-radius: 4px; border: 1px solid #3a4047;
  background: #23282e; color: inherit; font: inherit; cursor: pointer; }
#window-buttons button.active { background: #4c9be8; border-color: #4c9be8; color: #0b0d10; }
.stage { position: relative; width: min(512px, 100%); background: #000; line-height: 0; }
#slice-image { display: block; width: 100%; height: auto; }
#heat-image { position: absolute; left: 0; top: 0; width: 100%; height: 100%; pointer-events: none; }
#region-box { position: absolute; border: 2px dashed #fff; box-shadow: 0 0 0 1px #000; pointer-events: none; }
#slice-info { margin-top: 8px; }
#slice-info span.value { color: #fff; }
#slice-flag.anomalous { color: #ff6b5b; font-weight: 600; }
#slice-flag.normal { color: #7bd389; }
#regions { padding: 0 20px 24px; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 4px 10px; border-bottom: 1px solid #2c3137; white-space: nowrap; }
th { color: #a9b0b7; font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
a.region-link { color: #7cc0ff; }
tr.current td { background: #1f2c3a; }
.empty { color: #a9b0b7; }
)CSS";

// The viewer: everything it shows comes from the JSON blob, set through textContent and src (never
// innerHTML), so no text from the data is ever parsed as HTML.
const char* const kScript = R"JS(
(function () {
  'use strict';
  var data = JSON.parse(document.getElementById('report-data').textContent);
  var $ = function (id) { return document.getElementById(id); };
  var state = { series: 0, slice: 0, method: 0, window: null, region: null };
  if (!data.series.length) return;

  function fmt(v, digits) { return typeof v === 'number' && isFinite(v) ? v.toFixed(digits) : 'n/a'; }
  function current() { return data.series[state.series].slices[state.slice]; }
  function windowOf(slice) {
    for (var i = 0; i < slice.windows.length; ++i) if (slice.windows[i][0] === state.window) return slice.windows[i];
    return slice.windows[0];  // this slice lacks the chosen preset: show its first, keep the choice for the next
  }

  function renderWindowButtons(slice, shown) {
    var box = $('window-buttons');
    var names = slice.windows.map(function (w) { return w[0]; }).join('\n');
    if (box.dataset.names !== names) {
      box.textContent = '';
      slice.windows.forEach(function (w) {
        var b = document.createElement('button');
        b.type = 'button';
        b.className = 'window-btn';
        b.dataset.window = w[0];
        b.textContent = w[0];
        b.addEventListener('click', function () { state.window = w[0]; render(); });
        box.appendChild(b);
      });
      box.dataset.names = names;
    }
    Array.prototype.forEach.call(box.children, function (b) {
      b.classList.toggle('active', b.dataset.window === shown);
    });
  }

  function renderRegionBox(slice) {
    var box = $('region-box'), r = state.region;
    var on = r && r.series === state.series && r.slice === state.slice && r.method === state.method;
    box.hidden = !on;
    if (!on) return;
    box.style.left = (100 * r.x / slice.width) + '%';
    box.style.top = (100 * r.y / slice.height) + '%';
    box.style.width = (100 * r.w / slice.width) + '%';
    box.style.height = (100 * r.h / slice.height) + '%';
  }

  function render() {
    var series = data.series[state.series], slice = current(), win = windowOf(slice);
    var slider = $('slice-slider');
    slider.max = String(series.slices.length - 1);
    slider.value = String(state.slice);
    $('slice-image').src = win[1];
    var heat = $('heat-image');
    heat.hidden = data.methods.length === 0;
    if (data.methods.length) heat.src = slice.heat[state.method];
    heat.style.opacity = String($('opacity-slider').value / 100);
    $('slice-index').textContent = (state.slice + 1) + ' / ' + series.slices.length;
    $('slice-index').dataset.index = String(state.slice);
    $('slice-file').textContent = slice.path;
    $('slice-frame').textContent = String(slice.frame);
    $('slice-z').textContent = fmt(slice.z, 2);
    $('slice-score').textContent = fmt(slice.score, 3);
    var flag = $('slice-flag');
    flag.textContent = slice.anomalous ? 'anomalous (score \u2265 ' + fmt(data.threshold, 3) + ')'
                                       : 'below the operating threshold';
    flag.className = slice.anomalous ? 'anomalous' : 'normal';
    $('method-select').value = String(state.method);
    renderWindowButtons(slice, win[0]);
    renderRegionBox(slice);
    document.querySelectorAll('.series-item').forEach(function (b) {
      b.classList.toggle('active', Number(b.dataset.series) === state.series);
    });
    document.querySelectorAll('#region-table tbody tr').forEach(function (tr) {
      var a = tr.querySelector('.region-link');
      tr.classList.toggle('current', Number(a.dataset.series) === state.series &&
                                     Number(a.dataset.slice) === state.slice &&
                                     Number(a.dataset.method) === state.method);
    });
  }

  function setSlice(k) {
    var n = data.series[state.series].slices.length;
    k = Math.max(0, Math.min(n - 1, k));
    if (k !== state.slice) state.region = null;
    state.slice = k;
    render();
  }

  ['input', 'change'].forEach(function (type) {
    $('slice-slider').addEventListener(type, function (e) { setSlice(Number(e.target.value)); });
    $('opacity-slider').addEventListener(type, render);
  });
  $('method-select').addEventListener('change', function (e) { state.method = Number(e.target.value); render(); });
  document.querySelectorAll('.series-item').forEach(function (b) {
    b.addEventListener('click', function () {
      state.series = Number(b.dataset.series);
      state.slice = 0;
      state.region = null;
      render();
    });
  });
  document.querySelectorAll('.region-link').forEach(function (a) {
    a.addEventListener('click', function (e) {
      e.preventDefault();
      var d = a.dataset;
      state.series = Number(d.series);
      state.slice = Number(d.slice);
      state.method = Number(d.method);
      state.region = { series: state.series, slice: state.slice, method: state.method,
                       x: Number(d.x), y: Number(d.y), w: Number(d.w), h: Number(d.h) };
      render();
      $('viewer').scrollIntoView({ block: 'nearest' });
    });
  });
  // Arrow keys page through the slices, except where a focused control already uses them (a focused range
  // slider moves itself and fires 'input'; a select changes its option).
  document.addEventListener('keydown', function (e) {
    var tag = e.target && e.target.tagName;
    if (tag === 'INPUT' || tag === 'SELECT' || tag === 'TEXTAREA' || e.altKey || e.ctrlKey || e.metaKey) return;
    var step = { ArrowRight: 1, ArrowUp: 1, ArrowLeft: -1, ArrowDown: -1 }[e.key];
    if (!step) return;
    e.preventDefault();
    setSlice(state.slice + step);
  });
  render();
})();
)JS";

}  // namespace

struct InspectionReport::Impl {
  ReportInfo info;
  std::mutex mutex;  // add() may be called from the batch runner's threads; encoding happens outside it
  std::vector<std::string> method_names;
  bool have_methods = false;
  std::vector<StoredSlice> slices;

  // Series sorted by label (then key), so the page does not depend on the order the runner finished inputs.
  std::vector<Series> series() const {
    std::map<std::string, Series> by_key;
    for (const StoredSlice& s : slices) {
      Series& g = by_key[s.series_key];
      if (g.slices.empty()) g.key = s.series_key, g.label = s.series_label;
      g.slices.push_back(&s);
    }
    std::vector<Series> out;
    for (auto& [key, g] : by_key) {
      std::stable_sort(g.slices.begin(), g.slices.end(), [](const StoredSlice* a, const StoredSlice* b) {
        if (a->position_z != b->position_z) return a->position_z < b->position_z;
        if (a->path != b->path) return a->path < b->path;
        return a->frame < b->frame;
      });
      out.push_back(std::move(g));
    }
    std::stable_sort(out.begin(), out.end(), [](const Series& a, const Series& b) {
      return a.label != b.label ? a.label < b.label : a.key < b.key;
    });
    return out;
  }
};

InspectionReport::InspectionReport(ReportInfo info) : impl_(new Impl) { impl_->info = std::move(info); }

InspectionReport::~InspectionReport() { delete impl_; }

void InspectionReport::set_info(ReportInfo info) {
  const std::lock_guard<std::mutex> lock(impl_->mutex);
  impl_->info = std::move(info);
}

void InspectionReport::add(const ReportSlice& slice) {
  {
    std::lock_guard<std::mutex> lock(impl_->mutex);
    check_images(slice, impl_->method_names, impl_->have_methods);
    if (!impl_->have_methods) {
      for (const ReportMethodView& m : slice.methods) impl_->method_names.push_back(m.method);
      impl_->have_methods = true;
    }
  }
  StoredSlice s;
  const std::filesystem::path folder = std::filesystem::path(slice.path).parent_path();
  s.series_key = slice.series_uid.empty() ? "folder:" + folder.string() : "uid:" + slice.series_uid;
  s.series_label = !slice.series_label.empty() ? slice.series_label
                   : !slice.series_uid.empty() ? slice.series_uid
                   : folder.empty()            ? std::string("(current folder)")
                                               : folder.string();
  s.path = slice.path;
  s.frame = slice.frame;
  s.sop_instance_uid = slice.sop_instance_uid;
  s.position_z = slice.position_z;
  s.score = slice.score;
  s.anomalous = slice.anomalous;
  s.width = slice.windows.front().second.cols;
  s.height = slice.windows.front().second.rows;
  for (const auto& [name, img] : slice.windows) s.windows.emplace_back(name, slice_jpeg(img));
  for (const ReportMethodView& m : slice.methods)
    s.methods.push_back({m.method, heat_png(m.heat), m.regions});
  std::lock_guard<std::mutex> lock(impl_->mutex);
  impl_->slices.push_back(std::move(s));
}

size_t InspectionReport::size() const {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  return impl_->slices.size();
}

std::string InspectionReport::html() const {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  const ReportInfo& info = impl_->info;
  const std::vector<Series> series = impl_->series();
  const std::vector<std::string>& methods = impl_->method_names;

  nlohmann::json data = {{"threshold", number(info.operating_threshold)},
                         {"methods", methods},
                         {"series", nlohmann::json::array()}};
  for (const Series& g : series) {
    nlohmann::json slices = nlohmann::json::array();
    for (const StoredSlice* s : g.slices) {
      nlohmann::json heat = nlohmann::json::array();
      for (const StoredMethod& m : s->methods) heat.push_back(m.heat_uri);
      nlohmann::json windows = nlohmann::json::array();
      for (const auto& [name, uri] : s->windows) windows.push_back({name, uri});
      slices.push_back({{"path", s->path},
                        {"frame", s->frame},
                        {"sop", s->sop_instance_uid},
                        {"z", number(s->position_z)},
                        {"score", number(s->score)},
                        {"anomalous", s->anomalous},
                        {"width", s->width},
                        {"height", s->height},
                        {"windows", windows},
                        {"heat", heat}});
    }
    data["series"].push_back({{"label", g.label}, {"slices", slices}});
  }

  std::string h;
  h += "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n";
  h += "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n";
  h += "<title>" + escape_html(info.title) + "</title>\n<style>" + kStyle + "</style>\n</head>\n<body>\n";
  h += "<header><h1>" + escape_html(info.title) + "</h1>\n<p class=\"meta\">Model: <code id=\"model\">" +
       escape_html(info.model.empty() ? "(unnamed)" : info.model) +
       "</code> &middot; operating threshold <b id=\"threshold\">" +
       format("%.3f", info.operating_threshold) + "</b>";
  if (!info.generated_by.empty())
    h += " &middot; generated by <code>" + escape_html(info.generated_by) + "</code>";
  h += "</p></header>\n<main>\n<nav id=\"series-list\"><h2>Series</h2>\n<ul>\n";
  for (size_t i = 0; i < series.size(); ++i) {
    const size_t flagged = size_t(std::count_if(series[i].slices.begin(), series[i].slices.end(),
                                                [](const StoredSlice* s) { return s->anomalous; }));
    h += "<li><button type=\"button\" class=\"series-item\" id=\"series-item-" + std::to_string(i) +
         "\" data-series=\"" + std::to_string(i) + "\">" + escape_html(series[i].label) + "<small>" +
         std::to_string(series[i].slices.size()) + " slices, " + std::to_string(flagged) +
         " anomalous</small></button></li>\n";
  }
  h += "</ul>\n</nav>\n<section id=\"viewer\">\n";
  if (series.empty()) h += "<p class=\"empty\">No slices in this run.</p>\n";
  h += "<div id=\"controls\">\n"
       "<label>Slice <input type=\"range\" id=\"slice-slider\" min=\"0\" max=\"0\" step=\"1\" "
       "value=\"0\"></label>\n"
       "<label>Overlay <input type=\"range\" id=\"opacity-slider\" min=\"0\" max=\"100\" step=\"1\" "
       "value=\"100\"></label>\n";
  h += std::string("<label id=\"method-switch\"") + (methods.size() > 1 ? "" : " hidden") +
       ">Method <select id=\"method-select\">";
  for (size_t m = 0; m < methods.size(); ++m)
    h += "<option value=\"" + std::to_string(m) + "\">" + escape_html(methods[m]) + "</option>";
  h += "</select></label>\n<span>Window <span id=\"window-buttons\"></span></span>\n</div>\n";
  h += "<div class=\"stage\"><img id=\"slice-image\" alt=\"windowed slice\"><img id=\"heat-image\" "
       "alt=\"saliency overlay\"><div id=\"region-box\" hidden></div></div>\n";
  h += "<p id=\"slice-info\">Slice <span class=\"value\" id=\"slice-index\"></span> &middot; <span "
       "class=\"value\" "
       "id=\"slice-file\"></span> &middot; frame <span class=\"value\" id=\"slice-frame\"></span> &middot; z "
       "<span "
       "class=\"value\" id=\"slice-z\"></span> &middot; score <span class=\"value\" "
       "id=\"slice-score\"></span> "
       "<span id=\"slice-flag\"></span></p>\n</section>\n</main>\n";

  h += "<section id=\"regions\"><h2>Regions</h2>\n<table "
       "id=\"region-table\">\n<thead><tr><th>Series</th><th>Slice</th>"
       "<th>Method</th><th>Box (x, y, w&times;h px)</th><th>Area</th><th>Longest diameter</th><th>Peak</th>"
       "<th>Mean</th></tr></thead>\n<tbody>\n";
  size_t rows = 0;
  for (size_t g = 0; g < series.size(); ++g)
    for (size_t k = 0; k < series[g].slices.size(); ++k) {
      const StoredSlice& s = *series[g].slices[k];
      for (size_t m = 0; m < s.methods.size(); ++m)
        for (const ReportRegion& r : s.methods[m].regions) {
          const std::string file = std::filesystem::path(s.path).filename().string();
          h += "<tr><td>" + escape_html(series[g].label) +
               "</td><td><a href=\"#\" class=\"region-link\" data-series=\"" + std::to_string(g) +
               "\" data-slice=\"" + std::to_string(k) + "\" data-method=\"" + std::to_string(m) +
               "\" data-x=\"" + std::to_string(r.x) + "\" data-y=\"" + std::to_string(r.y) + "\" data-w=\"" +
               std::to_string(r.width) + "\" data-h=\"" + std::to_string(r.height) + "\" title=\"" +
               escape_html(s.path) + "\">" + std::to_string(k + 1) + " &middot; " + escape_html(file) +
               (s.frame > 0 ? " frame " + std::to_string(s.frame) : "") + "</a></td><td>" +
               escape_html(s.methods[m].method) + "</td><td>" + std::to_string(r.x) + ", " +
               std::to_string(r.y) + ", " + std::to_string(r.width) + "&times;" + std::to_string(r.height) +
               "</td><td class=\"num\">" + area_cell(r) + "</td><td class=\"num\">" + diameter_cell(r) +
               "</td><td class=\"num\">" + format("%.3f", r.peak) + "</td><td class=\"num\">" +
               format("%.3f", r.mean) + "</td></tr>\n";
          ++rows;
        }
    }
  if (rows == 0) h += "<tr><td colspan=\"8\" class=\"empty\">No regions found.</td></tr>\n";
  h += "</tbody>\n</table>\n</section>\n";
  h += "<script type=\"application/json\" id=\"report-data\">" + script_safe_json(data) + "</script>\n";
  h += std::string("<script>") + kScript + "</script>\n</body>\n</html>\n";
  return h;
}

void InspectionReport::write(const std::string& path) const { vision::write_text_atomically(path, html()); }

}  // namespace attnvision::pipelines
