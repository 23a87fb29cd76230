// `attnvision synth phantoms`: the real binary writes CT series, masks and lesions.json; the same seed
// gives the same files, another seed other UIDs and folders; its help, and its one-line errors.
#include "test_util.h"
#include "vision/dicom.h"

#include <nlohmann/json.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

namespace attnvision {
namespace {

namespace fs = std::filesystem;
using testing::run_attnvision;
using testing::ScratchDir;

constexpr const char* kCtImageStorage = "1.2.840.10008.5.1.4.1.1.2";

size_t line_count(const std::string& s) {
  std::istringstream in(s);
  size_t n = 0;
  for (std::string l; std::getline(in, l);) n += !l.empty();
  return n;
}

std::string read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

nlohmann::json read_json(const fs::path& path) { return nlohmann::json::parse(read_bytes(path)); }

std::string phantoms(const std::string& out, int seed) {
  return "synth phantoms --out '" + out + "' --series 2 --seed " + std::to_string(seed) + " --size 256";
}

std::set<std::string> uids_of(const nlohmann::json& set) {
  std::set<std::string> uids;
  for (const auto& series : set["series"]) {
    uids.insert(series["series_instance_uid"].get<std::string>());
    for (const auto& slice : series["slices"]) uids.insert(slice["sop_instance_uid"].get<std::string>());
  }
  return uids;
}

TEST(CliPhantoms, WritesCtSeriesMasksAndLesionsJson) {
  ScratchDir dir;
  const std::string out = dir / "a";
  auto r = run_attnvision(phantoms(out, 7));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("wrote 2 series"), std::string::npos) << r.out;
  const nlohmann::json set = read_json(fs::path(out) / "lesions.json");
  ASSERT_EQ(set["series"].size(), 2u);
  size_t slices = 0, with_lesions = 0;
  for (const auto& series : set["series"]) {
    const std::string folder = series["folder"];
    EXPECT_EQ(folder.rfind("series_7_", 0), 0u) << folder;
    for (const auto& slice : series["slices"]) {
      ++slices;
      const vision::DicomInfo info = vision::read_dicom_info(out + "/" + slice["file"].get<std::string>());
      EXPECT_EQ(info.modality, "CT");
      EXPECT_EQ(info.sop_class_uid, kCtImageStorage);
      EXPECT_EQ(info.rows, 256);
      EXPECT_EQ(info.sop_instance_uid, slice["sop_instance_uid"].get<std::string>());
      EXPECT_EQ(info.series_instance_uid, series["series_instance_uid"].get<std::string>());
      for (const auto& lesion : slice["lesions"]) {
        EXPECT_TRUE(fs::exists(out + "/" + lesion["mask"].get<std::string>()));
        EXPECT_EQ(lesion["center_px"].size(), 2u);
        for (const char* key : {"diameter_mm", "contrast_hu", "organ"})
          EXPECT_TRUE(lesion.contains(key)) << key;
      }
      with_lesions += !slice["lesions"].empty();
      EXPECT_EQ(slice["mask"].is_null(), slice["lesions"].empty());
    }
  }
  EXPECT_GE(slices, 16u);
  EXPECT_GT(with_lesions, 0u);
  EXPECT_LT(with_lesions, slices);
}

TEST(CliPhantoms, SameSeedSameFilesOtherSeedOtherUids) {
  ScratchDir dir;
  const std::string a = dir / "a", b = dir / "b", c = dir / "c";
  for (const auto& [out, seed] : {std::pair{a, 21}, std::pair{b, 21}, std::pair{c, 22}}) {
    auto r = run_attnvision(phantoms(out, seed));
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  EXPECT_EQ(read_bytes(fs::path(a) / "lesions.json"), read_bytes(fs::path(b) / "lesions.json"));
  size_t files = 0;
  for (const auto& entry : fs::recursive_directory_iterator(a)) {
    if (!entry.is_regular_file()) continue;
    const fs::path relative = fs::relative(entry.path(), a);
    EXPECT_EQ(read_bytes(entry.path()), read_bytes(fs::path(b) / relative)) << relative;
    ++files;
  }
  EXPECT_GT(files, 16u);
  const nlohmann::json set_a = read_json(fs::path(a) / "lesions.json");
  const nlohmann::json set_c = read_json(fs::path(c) / "lesions.json");
  const std::set<std::string> uids_a = uids_of(set_a), uids_c = uids_of(set_c);
  for (const std::string& uid : uids_c) EXPECT_EQ(uids_a.count(uid), 0u) << uid;
  EXPECT_NE(set_a["series"][0]["folder"], set_c["series"][0]["folder"]);
}

TEST(CliPhantoms, PassesDciodvfy) {
  if (std::system("command -v dciodvfy >/dev/null 2>&1") != 0)
    GTEST_SKIP() << "dicom3tools (dciodvfy) is not installed";
  ScratchDir dir;
  const std::string out = dir / "a";
  ASSERT_EQ(run_attnvision("synth phantoms --out '" + out + "' --series 1 --seed 3").exit_code, 0);
  const nlohmann::json set = read_json(fs::path(out) / "lesions.json");
  const std::string file = out + "/" + set["series"][0]["slices"][0]["file"].get<std::string>();
  const std::string report_file = dir / "report.txt";
  std::system(("dciodvfy '" + file + "' >'" + report_file + "' 2>&1").c_str());
  const std::string report = read_bytes(report_file);
  EXPECT_EQ(report.find("Error"), std::string::npos) << report;
  EXPECT_NE(report.find("CTImage"), std::string::npos) << report;
}

TEST(CliPhantoms, HelpNamesEveryOption) {
  auto r = run_attnvision("synth --help");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("phantoms"), std::string::npos) << r.out;
  r = run_attnvision("synth phantoms --help");
  EXPECT_EQ(r.exit_code, 0);
  for (const char* text : {"--out", "--series", "--seed", "--size", "lesions.json", "center_px", "HU"})
    EXPECT_NE(r.out.find(text), std::string::npos) << text << "\n" << r.out;
}

TEST(CliPhantoms, BadInputIsOneLine) {
  ScratchDir dir;
  const std::string out = " --out '" + (dir / "out") + "'";
  for (const std::string& args :
       {"synth phantoms" + out + " --series 1 --seed 1 --size 300",
        "synth phantoms" + out + " --series 1 --seed 1 --size 128",
        "synth phantoms" + out + " --series 0 --seed 1", "synth phantoms" + out + " --series 10001 --seed 1",
        "synth phantoms" + out + " --series 1", std::string("synth phantoms --series 1 --seed 1"),
        "synth phantoms" + out + " --series 1 --seed -3"}) {
    auto r = run_attnvision(args);
    EXPECT_EQ(r.exit_code, 2) << args;
    EXPECT_EQ(line_count(r.err), 1u) << args << ": " << r.err;
  }
  EXPECT_FALSE(fs::exists(dir / "out/lesions.json"));
}

}  // namespace
}  // namespace attnvision
