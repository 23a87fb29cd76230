// The inspection report (report.html): the page's text is escaped, its images are embedded, slices are
// ordered, bad input is refused; and the page really works in a browser (headless Chromium drives it through
// a harness).
#include "pipelines/report/inspection_report.h"

#include "test_util.h"

#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <cstdlib>
#include <cstring>
#include <functional>
#include <regex>
#include <stdexcept>

namespace attnvision::pipelines {
namespace {

namespace fs = std::filesystem;
using attnvision::testing::run_shell;
using attnvision::testing::ScratchDir;

// A synthetic slice: a disc whose place depends on `seed`, so every slice's picture (and data URI) differs.
cv::Mat slice_image(int seed, int size, int brightness) {
  cv::Mat img(size, size, CV_8UC1, cv::Scalar(20));
  cv::circle(img, {size / 4 + (seed * 7) % (size / 2), size / 2}, size / 6, cv::Scalar(brightness),
             cv::FILLED);
  cv::putText(img, std::to_string(seed), {2, size - 4}, cv::FONT_HERSHEY_PLAIN, 1.0, cv::Scalar(255));
  return img;
}

// A translucent red blob with an opaque outline: RGBA, as vision::saliency_layer hands it over.
cv::Mat heat_layer(int seed, int size) {
  cv::Mat heat(size, size, CV_8UC4, cv::Scalar(0, 0, 0, 0));
  const cv::Point centre{size / 3 + (seed * 5) % (size / 3), size / 3};
  cv::circle(heat, centre, size / 5, cv::Scalar(255, 40, 0, 150), cv::FILLED);
  cv::circle(heat, centre, size / 5, cv::Scalar(255, 255, 255, 255), 1);
  return heat;
}

ReportSlice make_slice(const std::string& uid, const std::string& path, double z, int seed,
                       const std::vector<std::string>& methods = {"gradcam", "cbam"}, int size = 64) {
  ReportSlice s;
  s.series_uid = uid;
  s.series_label = "series " + uid;
  s.path = path;
  s.sop_instance_uid = uid + "." + std::to_string(seed);
  s.position_z = z;
  s.score = 0.1 * seed;
  s.anomalous = s.score >= 0.5;
  s.windows = {{"abdomen", slice_image(seed, size, 200)}, {"lung", slice_image(seed, size, 90)}};
  for (size_t m = 0; m < methods.size(); ++m)
    s.methods.push_back({methods[m], heat_layer(seed + int(m), size), {}});
  return s;
}

// The JSON blob the page carries, parsed back.
nlohmann::json report_data(const std::string& html) {
  const std::string open = "<script type=\"application/json\" id=\"report-data\">";
  const size_t begin = html.find(open);
  EXPECT_NE(begin, std::string::npos);
  const size_t end = html.find("</script>", begin);
  return nlohmann::json::parse(html.substr(begin + open.size(), end - begin - open.size()));
}

std::vector<uchar> base64_decode(const std::string& text) {
  std::vector<uchar> out;
  unsigned bits = 0;
  int n = 0;
  for (char c : text) {
    const char* alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const char* p = std::strchr(alphabet, c);
    if (c == '=' || !p || c == '\0') break;
    bits = (bits << 6) | unsigned(p - alphabet);
    if ((n += 6) >= 8) out.push_back(uchar((bits >> (n -= 8)) & 0xff));
  }
  return out;
}

cv::Mat decode_data_uri(const std::string& uri) {
  const std::string payload = uri.substr(uri.find(',') + 1);
  return cv::imdecode(base64_decode(payload), cv::IMREAD_UNCHANGED);
}

size_t count(const std::string& text, const std::string& needle) {
  size_t n = 0;
  for (size_t p = text.find(needle); p != std::string::npos; p = text.find(needle, p + 1)) ++n;
  return n;
}

TEST(InspectionReport, EscapesEveryTextFromTheData) {
  ReportInfo info;
  info.title = "run <b>1</b>";
  info.model = "resnet18 \"weights\".safetensors";
  InspectionReport report(info);
  const std::string evil = "/data/</script><script>alert(\"x\")</script>/a&b.dcm";
  ReportSlice s = make_slice("1.2.3", evil, 0, 1);
  s.series_label = "<img src=x onerror=alert(1)> \"quoted\"";
  s.methods[0].method = "grad<cam>";
  s.methods[0].regions.push_back({});
  report.add(s);
  const std::string html = report.html();

  EXPECT_EQ(html.find("alert(\"x\")"), std::string::npos);
  EXPECT_EQ(html.find("<script>alert"), std::string::npos);
  EXPECT_EQ(html.find("<img src=x"), std::string::npos);
  EXPECT_EQ(html.find("<b>1</b>"), std::string::npos);
  EXPECT_EQ(html.find("grad<cam>"), std::string::npos);
  EXPECT_NE(html.find("&lt;script&gt;alert(&quot;x&quot;)"), std::string::npos)
      << "the path, escaped, in the table";
  EXPECT_NE(html.find("&lt;img src=x onerror=alert(1)&gt; &quot;quoted&quot;"), std::string::npos);
  EXPECT_NE(html.find("resnet18 &quot;weights&quot;.safetensors"), std::string::npos);
  // Only the page's own two scripts close: the JSON blob cannot be broken out of.
  EXPECT_EQ(count(html, "</script>"), 2u);
  // And the blob still carries the exact text.
  const nlohmann::json data = report_data(html);
  EXPECT_EQ(data["series"][0]["slices"][0]["path"], evil);
  EXPECT_EQ(data["series"][0]["label"], s.series_label);
  EXPECT_EQ(data["methods"][0], "grad<cam>");
}

TEST(InspectionReport, EmbedsImagesAndFetchesNothing) {
  InspectionReport report(ReportInfo{});
  report.add(make_slice("1", "/in/a.dcm", 0, 3));
  const std::string html = report.html();
  EXPECT_NE(html.find("data:image/jpeg;base64,"), std::string::npos);
  EXPECT_NE(html.find("data:image/png;base64,"), std::string::npos);
  EXPECT_EQ(html.find("http://"), std::string::npos);
  EXPECT_EQ(html.find("https://"), std::string::npos);
  EXPECT_FALSE(std::regex_search(html, std::regex(R"(\s(src|href)\s*=\s*"(?!#))")))
      << "no attribute loads a file";
  EXPECT_FALSE(std::regex_search(html, std::regex(R"(<link|@import|url\()"))) << "no stylesheet or CSS fetch";

  // The embedded pictures decode to the slice's size; the heat layer keeps its alpha and its RGB order.
  const nlohmann::json slice = report_data(html)["series"][0]["slices"][0];
  const cv::Mat jpeg = decode_data_uri(slice["windows"][0][1].get<std::string>());
  ASSERT_FALSE(jpeg.empty());
  EXPECT_EQ(jpeg.size(), cv::Size(64, 64));
  const cv::Mat png = decode_data_uri(slice["heat"][0].get<std::string>());
  ASSERT_EQ(png.type(), CV_8UC4);
  const cv::Mat heat = heat_layer(3, 64);
  cv::Mat heat_bgra;
  cv::cvtColor(heat, heat_bgra, cv::COLOR_RGBA2BGRA);
  EXPECT_EQ(cv::norm(png, heat_bgra, cv::NORM_INF), 0.0) << "PNG is lossless and channels are not swapped";
}

TEST(InspectionReport, OrdersSlicesByZWithinEachSeries) {
  InspectionReport report(ReportInfo{});
  report.add(make_slice("b", "/s/b3.dcm", 30, 1));
  report.add(make_slice("a", "/s/a2.dcm", -5, 2));
  report.add(make_slice("b", "/s/b1.dcm", -10, 3));
  report.add(make_slice("b", "/s/b2z.dcm", 0, 4));
  report.add(make_slice("b", "/s/b2a.dcm", 0, 5));  // same z: ordered by path
  EXPECT_EQ(report.size(), 5u);
  const nlohmann::json data = report_data(report.html());
  ASSERT_EQ(data["series"].size(), 2u);
  EXPECT_EQ(data["series"][0]["label"], "series a");
  std::vector<std::string> paths;
  for (const auto& s : data["series"][1]["slices"]) paths.push_back(s["path"]);
  EXPECT_EQ(paths, (std::vector<std::string>{"/s/b1.dcm", "/s/b2a.dcm", "/s/b2z.dcm", "/s/b3.dcm"}));
}

TEST(InspectionReport, SlicesWithoutSeriesUidGroupByFolder) {
  InspectionReport report(ReportInfo{});
  for (const char* path : {"/x/one/a.png", "/x/two/b.png", "/x/one/c.png"}) {
    ReportSlice s = make_slice("", path, 0, 1);
    s.series_label.clear();
    report.add(s);
  }
  const nlohmann::json data = report_data(report.html());
  ASSERT_EQ(data["series"].size(), 2u);
  EXPECT_EQ(data["series"][0]["label"], "/x/one");
  EXPECT_EQ(data["series"][0]["slices"].size(), 2u);
}

TEST(InspectionReport, RejectsInconsistentSlices) {
  InspectionReport report(ReportInfo{});
  auto message_of = [&](const ReportSlice& s) {
    try {
      report.add(s);
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("(accepted)");
  };
  ReportSlice none = make_slice("1", "/in/none.dcm", 0, 1);
  none.windows.clear();
  EXPECT_NE(message_of(none).find("/in/none.dcm frame 0: has no window images"), std::string::npos);

  ReportSlice sizes = make_slice("1", "/in/sizes.dcm", 0, 1);
  sizes.windows[1].second = cv::Mat(32, 64, CV_8UC1, cv::Scalar(0));
  EXPECT_NE(message_of(sizes).find("window 'lung' is 64x32, the first window is 64x64"), std::string::npos);

  ReportSlice heat_size = make_slice("1", "/in/heat.dcm", 0, 1);
  heat_size.methods[1].heat = cv::Mat(64, 32, CV_8UC4, cv::Scalar(0));
  EXPECT_NE(message_of(heat_size).find("heat layer of method 'cbam' is 32x64"), std::string::npos);

  ReportSlice heat_type = make_slice("1", "/in/heat.dcm", 0, 1);
  heat_type.methods[0].heat = cv::Mat(64, 64, CV_8UC3, cv::Scalar(0));
  EXPECT_NE(message_of(heat_type).find("is not 8-bit RGBA"), std::string::npos);
  EXPECT_EQ(report.size(), 0u) << "refused slices leave nothing behind";

  report.add(make_slice("1", "/in/first.dcm", 0, 1));
  EXPECT_NE(message_of(make_slice("1", "/in/m.dcm", 1, 1, {"cbam", "gradcam"}))
                .find("methods [cbam, gradcam] differ from the first slice's [gradcam, cbam]"),
            std::string::npos);
  EXPECT_NE(message_of(make_slice("1", "/in/m.dcm", 1, 1, {"gradcam"})).find("differ"), std::string::npos);
  EXPECT_EQ(report.size(), 1u);
}

TEST(InspectionReport, RegionTableSaysWhenSizesAreInPixels) {
  InspectionReport report(ReportInfo{});
  ReportSlice s = make_slice("1", "/in/a.dcm", 0, 1);
  ReportRegion mm;
  mm.area_mm2 = 123.45, mm.diameter_mm = 15.25, mm.peak = 0.9, mm.mean = 0.5;
  ReportRegion px;
  px.area_px = 40, px.diameter_px = 9.5;
  s.methods[0].regions = {mm};
  s.methods[1].regions = {px};
  report.add(s);
  const std::string html = report.html();
  EXPECT_EQ(count(html, "class=\"region-link\""), 2u);
  EXPECT_NE(html.find("123.5 mm²"), std::string::npos);
  EXPECT_NE(html.find("15.2 mm"), std::string::npos);
  EXPECT_NE(html.find("40 px <small>(no spacing)</small>"), std::string::npos);
  EXPECT_NE(html.find("9.5 px <small>(no spacing)</small>"), std::string::npos);
}

TEST(InspectionReport, WritesThePageAtomically) {
  ScratchDir dir;
  InspectionReport report(ReportInfo{});
  report.add(make_slice("1", "/in/a.dcm", 0, 1));
  report.write(dir / "report.html");
  std::ifstream in(dir / "report.html", std::ios::binary);
  const std::string written((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(written, report.html());
  EXPECT_EQ(std::distance(fs::directory_iterator(dir.path()), fs::directory_iterator()), 1)
      << "no temporary left";
  try {
    report.write(dir / "missing/report.html");
    FAIL() << "wrote into a folder that does not exist";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("missing/report.html"), std::string::npos) << e.what();
  }
}

// ---- the page in a real browser ----

// Loads report.html in a same-origin iframe, records the page's errors, drives its controls the way a reader
// would, and checks what the viewer shows against the page's own data. The verdict goes into #result, which
// --dump-dom prints. Everything runs synchronously on the iframe's load (the viewer renders synchronously),
// so --virtual-time-budget only has to cover loading.
const char* const kHarness = R"HTML(<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>report harness</title></head>
<body><pre id="result">PENDING</pre>
<script>
var frame = document.createElement('iframe');
frame.width = '1280';
frame.height = '900';
frame.addEventListener('load', function () {
  var w = frame.contentWindow, d = w.document, errors = [], failures = [], checks = 0;
  var realError = w.console.error;
  w.console.error = function () { errors.push('console.error: ' + Array.prototype.join.call(arguments, ' ')); realError.apply(w.console, arguments); };
  w.onerror = function (msg, src, line) { errors.push('onerror: ' + msg + ' at ' + line); };
  function check(ok, what) { ++checks; if (!ok) failures.push(what); }
  function $(id) { return d.getElementById(id); }
  function fire(el, type) { el.dispatchEvent(new w.Event(type, { bubbles: true })); }
  function key(k) { d.dispatchEvent(new w.KeyboardEvent('keydown', { key: k, bubbles: true, cancelable: true })); }
  function shown() { return Number($('slice-index').dataset.index); }
  try {
    var data = JSON.parse($('report-data').textContent);
    var active = function () { return d.querySelector('.series-item.active').dataset.series; };
    var expectView = function (s, k, win, m, what) {
      var slice = data.series[s].slices[k];
      check(active() === String(s), what + ': series ' + s + ' active, got ' + active());
      check(shown() === k, what + ': slice ' + k + ' shown, got ' + shown());
      check($('slice-index').textContent === (k + 1) + ' / ' + data.series[s].slices.length, what + ': index text ' + $('slice-index').textContent);
      check($('slice-image').src === slice.windows[win][1], what + ': slice image of window ' + win);
      check($('heat-image').src === slice.heat[m], what + ': heat layer of method ' + m);
      check($('slice-file').textContent === slice.path, what + ': file name');
    };
    // The script ran at load: the first slice of the first series is on show.
    check($('slice-image').src.indexOf('data:image/jpeg;base64,') === 0, 'slice image is an embedded JPEG');
    check($('heat-image').src.indexOf('data:image/png;base64,') === 0, 'heat layer is an embedded PNG');
    check(!$('method-switch').hidden, 'method switch shown for two methods');
    check(d.querySelectorAll('.window-btn').length === 2, 'two window buttons');
    expectView(0, 0, 0, 0, 'initial');
    var first = $('slice-image').src;

    var slider = $('slice-slider');
    check(slider.max === String(data.series[0].slices.length - 1), 'slider range covers the series');
    slider.value = '3'; fire(slider, 'input');
    expectView(0, 3, 0, 0, 'slider input');
    check($('slice-image').src !== first, 'slice image changed');
    slider.value = '1'; fire(slider, 'change');
    expectView(0, 1, 0, 0, 'slider change');

    key('ArrowRight'); expectView(0, 2, 0, 0, 'ArrowRight');
    key('ArrowUp'); expectView(0, 3, 0, 0, 'ArrowUp');
    key('ArrowLeft'); key('ArrowLeft'); expectView(0, 1, 0, 0, 'ArrowLeft twice');
    key('ArrowDown'); key('ArrowDown'); expectView(0, 0, 0, 0, 'ArrowDown past the first slice');
    check(slider.value === '0', 'slider follows the keys');

    var opacity = $('opacity-slider');
    opacity.value = '30'; fire(opacity, 'input');
    check(Math.abs(Number($('heat-image').style.opacity) - 0.3) < 1e-6, 'overlay opacity 0.3, got ' + $('heat-image').style.opacity);

    d.querySelectorAll('.window-btn')[1].click();
    expectView(0, 0, 1, 0, 'window preset 2');
    var select = $('method-select');
    select.value = '1'; fire(select, 'change');
    expectView(0, 0, 1, 1, 'method 2');

    var link = d.querySelector('.region-link[data-series="1"][data-slice="2"][data-method="0"]');
    check(link !== null, 'region link for series 1, slice 2, method 0');
    if (link) {
      link.click();
      expectView(1, 2, 1, 0, 'region link');
      check(!$('region-box').hidden, 'region box shown');
      check(select.value === '0', 'method switch follows the link');
      key('ArrowRight'); expectView(1, 2, 1, 0, 'ArrowRight past the last slice');
      key('ArrowLeft'); expectView(1, 1, 1, 0, 'ArrowLeft in series 2');
      check($('region-box').hidden, 'region box hidden on another slice');
    }
    $('series-item-0').click();
    expectView(0, 0, 1, 0, 'series list click');
  } catch (e) {
    failures.push('harness exception: ' + e + (e.stack ? '\n' + e.stack : ''));
  }
  failures = failures.concat(errors);
  document.getElementById('result').textContent =
      (failures.length ? 'FAIL\n' + failures.join('\n') : 'PASS') + '\nchecks: ' + checks + '\nerrors: ' + errors.length;
});
frame.src = 'report.html';  // after the listener is in place, so the load cannot be missed
document.body.appendChild(frame);
</script></body></html>
)HTML";

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// Headless Chromium on `url` with `mode_args`; the new headless mode first, the old one where that is
// missing. Chromium as root needs --no-sandbox; `timeout` ends a browser that hangs, so nothing is killed by
// name. `done` tells from the output whether a mode worked.
std::string run_chromium(const std::string& mode_args, const std::string& url,
                         const std::function<bool(const std::string&)>& done) {
  std::string out;
  for (const char* headless : {"--headless=new", "--headless"}) {
    out = run_shell("timeout 60 chromium " + std::string(headless) +
                    " --no-sandbox --disable-gpu --allow-file-access-from-files --no-first-run"
                    " --enable-logging=stderr --v=0 " +
                    mode_args + " " + shell_quote(url));
    if (done(out)) break;
  }
  return out;
}

// ATTNVISION_TEST_ARTIFACTS (a folder) when set, else <build>/test_artifacts beside the test binaries'
// folder.
fs::path artifacts_dir() {
  if (const char* env = std::getenv("ATTNVISION_TEST_ARTIFACTS"); env && *env) return env;
  return fs::read_symlink("/proc/self/exe").parent_path().parent_path() / "test_artifacts";
}

void build_browser_report(InspectionReport& report) {
  const int sizes[] = {5, 3};
  for (int g = 0; g < 2; ++g)
    for (int k = sizes[g] - 1; k >= 0; --k) {  // added in reverse: the page must order them by z
      const std::string uid = "1.2.840." + std::to_string(g + 1);
      ReportSlice s =
          make_slice(uid, "/study/series" + std::to_string(g + 1) + "/slice" + std::to_string(k) + ".dcm",
                     2.5 * k, k + 1 + 3 * g);
      s.series_label = "CT series " + std::to_string(g + 1) + " (" + std::to_string(sizes[g]) + " slices)";
      if (s.anomalous || (g == 1 && k == 2)) {
        ReportRegion r;
        r.x = 12 + k, r.y = 10, r.width = 20, r.height = 18;
        r.area_mm2 = 210.5 + k, r.diameter_mm = 19.4, r.area_px = 280, r.diameter_px = 22;
        r.peak = 0.92, r.mean = 0.61;
        s.methods[0].regions.push_back(r);
        r.area_mm2.reset(), r.diameter_mm.reset();
        s.methods[1].regions.push_back(r);
      }
      report.add(s);
    }
}

TEST(InspectionReport, WorksInHeadlessChromium) {
  ASSERT_FALSE(run_shell("command -v chromium").empty())
      << "chromium is not installed: the report's browser test needs it (setup.sh installs the Debian "
         "package 'chromium'; or apt-get install --no-install-recommends chromium)";
  ScratchDir dir;
  ReportInfo info;
  info.title = "attnvision anomaly saliency (browser test)";
  info.model = "cbam_resnet18 (phantom_anomaly.safetensors)";
  info.operating_threshold = 0.5;
  info.generated_by = "attnvision saliency /study --method gradcam,cbam";
  InspectionReport report(info);
  build_browser_report(report);
  report.write(dir / "report.html");
  attnvision::testing::write_text(dir / "harness.html", kHarness);

  const std::string dom =
      run_chromium("--virtual-time-budget=10000 --dump-dom", "file://" + (dir / "harness.html"),
                   [](const std::string& out) { return out.find("id=\"result\"") != std::string::npos; });
  const std::smatch verdict = [&] {
    std::smatch m;
    std::regex_search(dom, m, std::regex(R"(<pre id="result">([\s\S]*?)</pre>)"));
    return m;
  }();
  ASSERT_FALSE(verdict.empty()) << "no verdict in Chromium's output:\n" << dom;
  const std::string result = verdict[1];
  std::printf("browser harness: %s\n", result.c_str());
  EXPECT_EQ(result.rfind("PASS", 0), 0u) << result;
  EXPECT_NE(result.find("errors: 0"), std::string::npos) << result;
  // Errors thrown while the page loaded (before the harness could hook them) reach Chromium's console log.
  EXPECT_EQ(dom.find("Uncaught"), std::string::npos) << dom;

  const fs::path shot = artifacts_dir() / "report_screenshot.png";
  fs::create_directories(shot.parent_path());
  fs::remove(shot);
  const std::string log =
      run_chromium("--window-size=1280,900 --hide-scrollbars --screenshot=" + shell_quote(shot.string()),
                   "file://" + (dir / "report.html"), [&](const std::string&) { return fs::exists(shot); });
  ASSERT_TRUE(fs::exists(shot)) << "no screenshot at " << shot << ":\n" << log;
  const cv::Mat png = cv::imread(shot.string(), cv::IMREAD_COLOR);
  ASSERT_EQ(png.size(), cv::Size(1280, 900)) << shot;
  cv::Mat mean, stddev;
  cv::meanStdDev(png, mean, stddev);
  EXPECT_GT(stddev.at<double>(0), 10.0) << "the screenshot is (nearly) one colour: " << shot;
  std::printf("report screenshot: %s\n", shot.c_str());
}

}  // namespace
}  // namespace attnvision::pipelines
