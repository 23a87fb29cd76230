// `attnvision synth scenes`: the real binary on a tiny Fashion-MNIST made of IDX files, its help, and its
// one-line errors.
#include "datasets/idx_writer.h"
#include "test_util.h"

#include <nlohmann/json.hpp>

#include <cstdlib>
#include <fstream>
#include <optional>
#include <sstream>

namespace attnvision {
namespace {

using datasets::testing::idx_bytes;
using datasets::testing::write_gzip;
using testing::run_attnvision;
using testing::ScratchDir;

size_t line_count(const std::string& s) {
  std::istringstream in(s);
  size_t n = 0;
  for (std::string l; std::getline(in, l);) n += !l.empty();
  return n;
}

// Points ATTNVISION_FASHION_MNIST_DIR (which the binary inherits) at `dir` while the object lives.
class FashionDir {
 public:
  explicit FashionDir(const std::string& dir) {
    if (const char* old = std::getenv(kName)) old_ = old;
    setenv(kName, dir.c_str(), 1);
  }
  ~FashionDir() {
    if (old_)
      setenv(kName, old_->c_str(), 1);
    else
      unsetenv(kName);
  }

 private:
  static constexpr const char* kName = "ATTNVISION_FASHION_MNIST_DIR";
  std::optional<std::string> old_;
};

// Debian's four file names, 10 images each (one per class): a bright block of varying size.
void write_tiny_fashion_mnist(const std::filesystem::path& dir) {
  std::string images(10 * 784, '\0');
  for (int i = 0; i < 10; ++i)
    for (int y = 4; y < 24; ++y)
      for (int x = 2 + i; x < 26; ++x)
        images[static_cast<size_t>(i * 784 + y * 28 + x)] = static_cast<char>(200);
  const std::string labels = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
  for (const char* stem : {"train", "t10k"}) {
    write_gzip((dir / (std::string(stem) + "-images-idx3-ubyte.gz")).string(),
               idx_bytes({10, 28, 28}, images));
    write_gzip((dir / (std::string(stem) + "-labels-idx1-ubyte.gz")).string(), idx_bytes({10}, labels));
  }
}

nlohmann::json read_json(const std::string& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in);
}

TEST(CliSynth, ScenesWritesACocoFolder) {
  ScratchDir dir;
  write_tiny_fashion_mnist(dir.path());
  FashionDir env(dir.path().string());
  const std::string out = dir / "scenes";
  auto r = run_attnvision("synth scenes --out '" + out + "' --images 4 --seed 3 --split test --size 96");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("wrote 4 images"), std::string::npos) << r.out;
  const nlohmann::json instances = read_json(out + "/instances.json");
  const nlohmann::json captions = read_json(out + "/captions.json");
  ASSERT_EQ(instances["images"].size(), 4u);
  EXPECT_EQ(captions["images"], instances["images"]);
  EXPECT_EQ(captions["annotations"].size(), 20u);
  EXPECT_GE(instances["annotations"].size(), 4u);
  for (const auto& image : instances["images"]) {
    EXPECT_EQ(image["width"], 96);
    const std::string name = image["file_name"];
    EXPECT_EQ(name.rfind("test_s3_", 0), 0u) << name;
    EXPECT_TRUE(std::filesystem::exists(out + "/images/" + name)) << name;
  }
}

// `synth crops`: one PNG per box in its category's folder, as an image folder the trainer reads.
TEST(CliSynth, CropsWritesOneImagePerBoxInItsCategorysFolder) {
  ScratchDir dir;
  write_tiny_fashion_mnist(dir.path());
  FashionDir env(dir.path().string());
  const std::string scenes = dir / "scenes", crops = dir / "crops";
  ASSERT_EQ(run_attnvision("synth scenes --out '" + scenes + "' --images 3 --seed 5 --split train").exit_code, 0);
  auto r = run_attnvision("synth crops --from '" + scenes + "' --out '" + crops + "' --size 24");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const nlohmann::json instances = read_json(scenes + "/instances.json");
  for (const auto& a : instances["annotations"]) {
    char folder[8];
    std::snprintf(folder, sizeof folder, "%02d", a["category_id"].get<int>());
    const std::string png = crops + "/" + folder + "/" + std::to_string(a["id"].get<int>()) + ".png";
    EXPECT_TRUE(std::filesystem::exists(png)) << png;
  }
  size_t files = 0;
  for (const auto& e : std::filesystem::recursive_directory_iterator(crops)) files += e.path().extension() == ".png";
  EXPECT_EQ(files, instances["annotations"].size());
  std::ifstream labels(crops + "/labels.txt");
  std::string first;
  std::getline(labels, first);
  EXPECT_EQ(first, "T-shirt/top");
  // Bad input: no scenes folder, a size out of range.
  r = run_attnvision("synth crops --from '" + (dir / "absent") + "' --out '" + crops + "'");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(line_count(r.err), 1u) << r.err;
  EXPECT_NE(r.err.find("absent"), std::string::npos) << r.err;
  r = run_attnvision("synth crops --from '" + scenes + "' --out '" + crops + "' --size 4");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(line_count(r.err), 1u) << r.err;
}

TEST(CliSynth, HelpNamesEveryOptionAndDefault) {
  auto r = run_attnvision("synth --help");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("scenes"), std::string::npos) << r.out;
  r = run_attnvision("synth scenes --help");
  EXPECT_EQ(r.exit_code, 0);
  for (const char* option :
       {"--out", "--images", "--seed", "--split", "--size", "128", "ATTNVISION_FASHION_MNIST_DIR"})
    EXPECT_NE(r.out.find(option), std::string::npos) << option << "\n" << r.out;
}

TEST(CliSynth, BadInputIsOneLine) {
  ScratchDir dir;
  write_tiny_fashion_mnist(dir.path());
  FashionDir env(dir.path().string());
  const std::string out = " --out '" + (dir / "out") + "'";
  for (const std::string& args :
       {std::string("synth"), "synth scenes" + out + " --images 0 --seed 1 --split train",
        "synth scenes" + out + " --images 2 --seed 1 --split train --size 32",
        "synth scenes" + out + " --images 2 --seed 1 --split val",
        "synth scenes" + out + " --seed 1 --split train"}) {
    auto r = run_attnvision(args);
    EXPECT_EQ(r.exit_code, 2) << args;
    EXPECT_EQ(line_count(r.err), 1u) << args << ": " << r.err;
  }
  FashionDir missing(dir / "absent");
  auto r = run_attnvision("synth scenes" + out + " --images 2 --seed 1 --split train");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(line_count(r.err), 1u) << r.err;
  EXPECT_NE(r.err.find("dataset-fashion-mnist"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(dir / "out/instances.json"));
}

}  // namespace
}  // namespace attnvision
