// `attnvision batch` end to end: one manifest row per input (images, DICOM, broken files), outputs named by the
// input's path below its argument, resume after SIGKILL at several moments, torn manifest lines, config errors.
#include "test_util.h"

#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <thread>

extern char** environ;

namespace attnvision {
namespace {

namespace fs = std::filesystem;
using testing::run_attnvision;
using testing::ScratchDir;

std::string quoted(const std::string& s) { return "'" + s + "'"; }

// Small random images, `n` of them, in `dir` (sub-folders a/ and b/ with the same file names).
void make_images(const fs::path& dir, int n) {
  cv::RNG rng(7);
  for (int i = 0; i < n; ++i) {
    const fs::path sub = dir / (i % 2 ? "a" : "b");
    fs::create_directories(sub);
    cv::Mat img(40 + i % 7, 56 + i % 5, CV_8UC3);
    rng.fill(img, cv::RNG::UNIFORM, 0, 255);
    char name[32];
    std::snprintf(name, sizeof(name), "img_%03d.png", i / 2);
    cv::imwrite((sub / name).string(), img);
  }
}

// The manifest's complete lines (a torn last line is left out) as JSON rows.
std::vector<nlohmann::json> manifest_rows(const fs::path& out) {
  std::ifstream in(out / "manifest.jsonl", std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string text = ss.str();
  std::vector<nlohmann::json> rows;
  std::istringstream lines(text.substr(0, text.rfind('\n') == std::string::npos ? 0 : text.rfind('\n') + 1));
  for (std::string l; std::getline(lines, l);) rows.push_back(nlohmann::json::parse(l));
  return rows;
}

std::map<std::string, nlohmann::json> by_path(const std::vector<nlohmann::json>& rows) {
  std::map<std::string, nlohmann::json> m;
  for (const auto& r : rows) EXPECT_TRUE(m.emplace(r["path"].get<std::string>(), r).second) << "duplicate row " << r["path"];
  return m;
}

std::vector<std::string> files_under(const fs::path& dir) {
  std::vector<std::string> files;
  if (!fs::exists(dir)) return files;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file()) files.push_back(e.path().lexically_relative(dir.parent_path()).string());
  return files;
}

// What a finished run must leave: exactly the listed files, none empty, no temporaries.
void expect_clean_outputs(const fs::path& out, const std::map<std::string, nlohmann::json>& rows) {
  std::set<std::string> listed;
  for (const auto& [path, row] : rows)
    for (const auto& f : row["outputs"].value("classify", nlohmann::json::object()).value("files", nlohmann::json::array())) {
      listed.insert(f.get<std::string>());
      EXPECT_GT(fs::file_size(out / f.get<std::string>()), 0u) << f;
    }
  for (const std::string& f : files_under(out / "classify"))
    EXPECT_TRUE(listed.count(f)) << "a file no row lists (partial or temporary): " << f;
  for (const auto& e : fs::recursive_directory_iterator(out))
    EXPECT_EQ(e.path().filename().string().find(".attnvision-tmp-"), std::string::npos) << e.path();
}

TEST(CliBatch, OneRowPerInputWithKindsStatusesAndFiles) {
  ScratchDir dir;
  const fs::path in = dir.path() / "in";
  make_images(in, 4);
  const fs::path dicom = fs::path(ATTNVISION_TEST_DATA_DIR) / "dicom" / "synthetic";
  fs::copy_file(dicom / "enhanced_ct_3frames.dcm", in / "a" / "ct.dcm");
  testing::write_text((in / "b" / "broken.dcm").string(), "not a DICOM file at all");
  testing::write_text((in / "b" / "broken.jpg").string(), "not a JPEG");
  testing::write_text((in / "b" / "notes.txt").string(), "not an input");
  const fs::path out = dir.path() / "out";
  auto r = run_attnvision("batch " + quoted(in.string()) + " " + quoted(dir / "missing") + " --out " +
                          quoted(out.string()) + " --tasks classify --set classify.saliency=gradcam --set classify.topk=3");
  EXPECT_EQ(r.exit_code, 1) << "error rows make the run fail: " << r.err;
  const auto rows = by_path(manifest_rows(out));
  ASSERT_EQ(rows.size(), 4u + 3u + 1u) << "images, the DICOM, two broken files, the missing argument";
  const auto& ct = rows.at((in / "a" / "ct.dcm").string());
  EXPECT_EQ(ct["kind"], "dicom");
  EXPECT_EQ(ct["status"], "ok");
  EXPECT_EQ(ct["frames"], 3);
  EXPECT_EQ(ct["outputs"]["classify"]["frames"].size(), 3u) << "a multi-frame file is one row";
  EXPECT_EQ(rows.at((in / "b" / "broken.dcm").string())["kind"], "dicom");
  EXPECT_EQ(rows.at((in / "b" / "broken.dcm").string())["status"], "error");
  EXPECT_EQ(rows.at((in / "b" / "broken.jpg").string())["kind"], "image");
  EXPECT_NE(rows.at((in / "b" / "broken.jpg").string())["error"].get<std::string>().find("broken.jpg"), std::string::npos);
  EXPECT_EQ(rows.at(dir / "missing")["status"], "error");
  const auto& a0 = rows.at((in / "a" / "img_000.png").string());
  EXPECT_EQ(a0["status"], "ok");
  EXPECT_EQ(a0["outputs"]["classify"]["topk"].size(), 3u);
  // Same-named files in a/ and b/ get their own outputs, named by their path below the argument.
  EXPECT_EQ(a0["outputs"]["classify"]["files"][0], "classify/in/a/img_000.png.gradcam.png");
  EXPECT_EQ(rows.at((in / "b" / "img_000.png").string())["outputs"]["classify"]["files"][0],
            "classify/in/b/img_000.png.gradcam.png");
  expect_clean_outputs(out, rows);
}

TEST(CliBatch, RerunSkipsFinishedInputsAndRetriesErrorsOnlyWhenAsked) {
  ScratchDir dir;
  const fs::path in = dir.path() / "in";
  make_images(in, 6);
  testing::write_text((in / "a" / "bad.png").string(), "not a PNG");
  const std::string cmd = "batch " + quoted(in.string()) + " --out " + quoted(dir / "out");
  EXPECT_EQ(run_attnvision(cmd).exit_code, 1);
  const auto first = manifest_rows(dir.path() / "out");
  ASSERT_EQ(first.size(), 7u);
  auto r = run_attnvision(cmd);
  EXPECT_EQ(r.exit_code, 1) << "the manifest still holds an error";
  EXPECT_NE(r.err.find("0 to run"), std::string::npos) << r.err;
  EXPECT_EQ(manifest_rows(dir.path() / "out"), first) << "nothing redone, nothing duplicated";
  fs::remove(in / "a" / "bad.png");
  cv::imwrite((in / "a" / "bad.png").string(), cv::Mat(30, 30, CV_8UC3, cv::Scalar(9, 99, 199)));
  r = run_attnvision(cmd + " --retry-errors");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  const auto rows = by_path(manifest_rows(dir.path() / "out"));
  ASSERT_EQ(rows.size(), 7u);
  for (const auto& [path, row] : rows) EXPECT_EQ(row["status"], "ok") << path;
}

TEST(CliBatch, TornLastLineIsRepairedOnRestart) {
  ScratchDir dir;
  const fs::path in = dir.path() / "in";
  make_images(in, 4);
  const fs::path out = dir.path() / "out";
  const std::string cmd = "batch " + quoted(in.string()) + " --out " + quoted(out.string());
  ASSERT_EQ(run_attnvision(cmd).exit_code, 0);
  // Keep two rows and half of the third, as a kill in the middle of a write would.
  std::ifstream f(out / "manifest.jsonl");
  std::string l1, l2, l3;
  std::getline(f, l1), std::getline(f, l2), std::getline(f, l3);
  f.close();
  testing::write_text((out / "manifest.jsonl").string(), l1 + "\n" + l2 + "\n" + l3.substr(0, l3.size() / 2));
  auto r = run_attnvision(cmd);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("2 to run"), std::string::npos) << r.err;
  EXPECT_EQ(by_path(manifest_rows(out)).size(), 4u);
}

// A resumed run gives the rows of an uninterrupted one. Scores may differ in the last bits: the inputs are
// batched with other neighbours after a restart, and the convolution algorithm may change with the batch.
void expect_same_row(nlohmann::json got, nlohmann::json want) {
  SCOPED_TRACE(want["path"].get<std::string>());
  auto scores_of = [](nlohmann::json& row) {
    std::vector<double> scores;
    if (row["outputs"].contains("classify"))
      for (auto& t : row["outputs"]["classify"]["topk"]) {
        scores.push_back(t["score"].get<double>());
        t.erase("score");
      }
    return scores;
  };
  const std::vector<double> a = scores_of(got), b = scores_of(want);
  EXPECT_EQ(got, want);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], 1e-5);
}

// Kills a real run with SIGKILL once the manifest holds `rows` rows (or when it ends by itself).
void run_and_kill_at(const std::vector<std::string>& args, const fs::path& out, size_t rows) {
  std::vector<char*> argv;
  for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
  pid_t pid = 0;
  ASSERT_EQ(posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), environ), 0);
  posix_spawn_file_actions_destroy(&actions);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  int status = 0;
  while (waitpid(pid, &status, WNOHANG) == 0) {
    if (manifest_rows(out).size() >= rows || std::chrono::steady_clock::now() > deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

TEST(CliBatch, KilledAtSeveralMomentsAndRestartedFinishesExactlyOnce) {
  ScratchDir dir;
  const fs::path in = dir.path() / "in";
  make_images(in, 48);
  testing::write_text((in / "b" / "zz_broken.png").string(), "broken");
  // The uninterrupted run, for reference.
  const std::string common = " --set classify.saliency=gradcam --set classify.batch=2 --set workers=1";
  ASSERT_EQ(run_attnvision("batch " + quoted(in.string()) + " --out " + quoted(dir / "ref") + common).exit_code, 1);
  const auto reference = by_path(manifest_rows(dir.path() / "ref"));
  ASSERT_EQ(reference.size(), 49u);

  const fs::path out = dir.path() / "out";
  const std::vector<std::string> args = {ATTNVISION_BINARY, "batch", in.string(), "--out", out.string(),
                                         "--set", "classify.saliency=gradcam", "--set", "classify.batch=2",
                                         "--set", "workers=1"};
  int killed_mid_run = 0;
  for (size_t at : {1u, 9u, 10u, 23u, 40u}) {
    run_and_kill_at(args, out, at);
    const auto rows = manifest_rows(out);
    killed_mid_run += rows.size() < reference.size();
    std::set<std::string> unique;
    for (const auto& r : rows) EXPECT_TRUE(unique.insert(r["path"].get<std::string>()).second) << "after kill at " << at;
  }
  EXPECT_GE(killed_mid_run, 4) << "the kills must land while the run is working";
  auto r = run_attnvision("batch " + quoted(in.string()) + " --out " + quoted(out.string()) + common);
  EXPECT_EQ(r.exit_code, 1) << r.err;  // the broken file's row
  const auto rows = by_path(manifest_rows(out));
  ASSERT_EQ(rows.size(), reference.size());
  for (const auto& [path, row] : reference) {
    ASSERT_TRUE(rows.count(path)) << path;
    expect_same_row(rows.at(path), row);
  }
  expect_clean_outputs(out, rows);
}

TEST(CliBatch, FastDecodeAgreesWithTheExactDecodeOnLargeJpegs) {
  ScratchDir dir;
  const fs::path in = dir.path() / "in";
  fs::create_directories(in);
  // Smooth pictures with a few shapes, large enough for libjpeg's 1/2 .. 1/8 scales.
  cv::RNG rng(11);
  for (int i = 0; i < 6; ++i) {
    cv::Mat img(240 + 40 * i, 320, CV_8UC3);
    for (int y = 0; y < img.rows; ++y)
      for (int x = 0; x < img.cols; ++x)
        img.at<cv::Vec3b>(y, x) = cv::Vec3b(static_cast<uint8_t>(x * 255 / img.cols), static_cast<uint8_t>(y * 255 / img.rows),
                                            static_cast<uint8_t>(40 * i));
    for (int k = 0; k < 4; ++k) {
      const cv::Point c(rng.uniform(40, 280), rng.uniform(40, 200));
      cv::circle(img, c, rng.uniform(15, 60), cv::Scalar(rng.uniform(0, 255), rng.uniform(0, 255), rng.uniform(0, 255)), -1);
    }
    cv::imwrite((in / ("photo_" + std::to_string(i) + ".jpg")).string(), img);
  }
  const std::string base = "batch " + quoted(in) + " --tasks classify --set classify.topk=3 --out ";
  auto exact = run_attnvision(base + quoted(dir / "exact"));
  ASSERT_EQ(exact.exit_code, 0) << exact.err;
  auto fast = run_attnvision(base + quoted(dir / "fast") + " --decode fast");
  ASSERT_EQ(fast.exit_code, 0) << fast.err;
  const auto want = by_path(manifest_rows(dir / "exact"));
  const auto got = by_path(manifest_rows(dir / "fast"));
  ASSERT_EQ(got.size(), 6u);
  double max_diff = 0;
  for (const auto& [path, row] : want) {
    const nlohmann::json& w = row["outputs"]["classify"]["topk"];
    const nlohmann::json& g = got.at(path)["outputs"]["classify"]["topk"];
    EXPECT_EQ(g[0]["index"], w[0]["index"]) << path;
    for (const nlohmann::json& wk : w)
      for (const nlohmann::json& gk : g)
        if (gk["index"] == wk["index"]) max_diff = std::max(max_diff, std::abs(gk["score"].get<double>() - wk["score"].get<double>()));
  }
  EXPECT_GT(max_diff, 0.0) << "the fast decode gave the model exactly the exact path's inputs: nothing was reduced";
  EXPECT_LT(max_diff, 0.1);
}

TEST(CliBatch, ConfigErrorsNameTheKey) {
  ScratchDir dir;
  make_images(dir.path() / "in", 2);
  const std::string base = "batch " + quoted(dir / "in") + " --out " + quoted(dir / "out");
  auto r = run_attnvision(base + " --set classify.bogus=1");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("classify.bogus"), std::string::npos) << r.err;
  r = run_attnvision(base + " --tasks nosuchtask");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("known: classify"), std::string::npos) << r.err;
  testing::write_text(dir / "bad.yaml", "tasks: [classify]\nclassify:\n  topk: 0\n");
  r = run_attnvision(base + " --config " + quoted(dir / "bad.yaml"));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("bad.yaml:3"), std::string::npos) << "the line of the key: " << r.err;
  testing::write_text(dir / "bad_decode.yaml", "tasks: [classify]\ndecode: sloppy\n");
  r = run_attnvision(base + " --config " + quoted(dir / "bad_decode.yaml"));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("bad_decode.yaml:2: 'decode' must be exact or fast"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir.path() / "out" / "manifest.jsonl")) << "nothing runs on a bad config";
}

}  // namespace
}  // namespace attnvision
