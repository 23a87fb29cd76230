// Inference precision from the command line: bf16 on the shipped classifier agrees with fp32 image by image
// over all of Fashion-MNIST's test set, a CPU without native bf16 falls back to fp32 with one line, `bench`
// reports the precision and thread plan it ran with (and whether its heap is in huge pages), and the batch
// config's `precision` key is checked.
#include "models/runtime.h"
#include "test_util.h"

#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

namespace attnvision {
namespace {

using testing::have_fashion_mnist;
using testing::json_lines;
using testing::run_attnvision;
using testing::ScratchDir;

const char* kFallbackLine = "precision bf16: this CPU has no AVX512-BF16; running in fp32";

// Sets an environment variable for the scope's lifetime (the binary the test runs inherits it).
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) { setenv(name, value, 1); }
  ~ScopedEnv() { unsetenv(name_); }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* name_;
};

std::vector<nlohmann::json> predictions(const std::string& precision, const std::string& path, int limit,
                                        std::string* err = nullptr) {
  const auto r = run_attnvision("eval --data fashion-mnist:test --confusion-png '' --precision " + precision +
                                (limit ? " --limit " + std::to_string(limit) : std::string()) + " --predictions '" +
                                path + "'");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  if (err) *err = r.err;
  return json_lines(testing::read_text(path));
}

TEST(Precision, Bf16AgreesWithFp32OnTheTop1OfAtLeast99PercentOfTheFashionMnistTestImages) {
  if (!have_fashion_mnist()) GTEST_SKIP() << "Debian's dataset-fashion-mnist is not installed";
  if (!models::cpu_has_native_bf16()) GTEST_SKIP() << "this CPU has no AVX512-BF16: bf16 falls back to fp32";
  ScratchDir dir;
  std::string err;
  const auto fp32 = predictions("fp32", dir / "fp32.jsonl", 0);
  const auto bf16 = predictions("bf16", dir / "bf16.jsonl", 0, &err);
  EXPECT_NE(err.find("precision bf16: AVX512-BF16 found"), std::string::npos) << err;
  ASSERT_EQ(fp32.size(), 10000u);
  ASSERT_EQ(bf16.size(), fp32.size());
  size_t agree = 0, changed_scores = 0;
  double max_score_diff = 0;
  for (size_t i = 0; i < fp32.size(); ++i) {
    ASSERT_EQ(bf16[i]["index"], fp32[i]["index"]);
    ASSERT_EQ(bf16[i]["label"], fp32[i]["label"]);
    agree += bf16[i]["predicted"] == fp32[i]["predicted"];
    const double d = std::abs(bf16[i]["score"].get<double>() - fp32[i]["score"].get<double>());
    changed_scores += d > 0;
    max_score_diff = std::max(max_score_diff, d);
  }
  const double agreement = double(agree) / fp32.size();
  std::printf("[ bf16     ] shipped classifier, %zu Fashion-MNIST test images: top-1 agreement with fp32 %.2f%% "
              "(%zu differ), max top-1 probability difference %.4f\n",
              fp32.size(), 100 * agreement, fp32.size() - agree, max_score_diff);
  EXPECT_GE(agreement, 0.99);
  // bf16 really ran: the probabilities moved (fp32 twice would give the same bits).
  EXPECT_GT(changed_scores, fp32.size() / 2);
}

TEST(Precision, ACpuWithoutNativeBf16RunsFp32AndSaysSoInOneLine) {
  if (!have_fashion_mnist()) GTEST_SKIP() << "Debian's dataset-fashion-mnist is not installed";
  ScratchDir dir;
  const auto fp32 = predictions("fp32", dir / "fp32.jsonl", 300);
  std::string err;
  std::vector<nlohmann::json> fallback;
  {
    ScopedEnv no_bf16("ATTNVISION_NO_BF16", "1");
    fallback = predictions("bf16", dir / "bf16.jsonl", 300, &err);
  }
  EXPECT_EQ(err, std::string(kFallbackLine) + "\n");
  ASSERT_EQ(fallback.size(), 300u);
  for (size_t i = 0; i < fp32.size(); ++i) EXPECT_EQ(fallback[i], fp32[i]) << "image " << i;
}

TEST(Precision, BenchReportsThePrecisionAndTheThreadPlanItRanWith) {
  for (const char* asked : {"fp32", "bf16"}) {
    SCOPED_TRACE(asked);
    const auto r = run_attnvision(std::string("bench -m resnet18 --size 64 --batch 2 --iters 2 --warmup 0 --json "
                                              "--precision ") + asked);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const auto j = nlohmann::json::parse(r.out);
    const std::string ran = std::string(asked) == "bf16" && models::cpu_has_native_bf16() ? "bf16" : "fp32";
    EXPECT_EQ(j["precision_asked"], asked);
    EXPECT_EQ(j["precision"], ran);
    EXPECT_EQ(j["matmul_peak_precision"], ran);
    EXPECT_EQ(j["cpu_native_bf16"], models::cpu_has_native_bf16());
    EXPECT_GE(j["torch_threads"].get<int>(), 1);
    EXPECT_GE(j["blas_threads"].get<int>(), 1);
    EXPECT_EQ(j["workers"], 0);
    EXPECT_GT(j["matmul_peak_gflop_s"].get<double>(), 0);
    EXPECT_GT(j["images_per_s"].get<double>(), 0);
    // The fastest forward is at least the mean, and the share of the peak is taken at it.
    EXPECT_GE(j["fastest_forward_images_per_s"].get<double>(), j["images_per_s"].get<double>() * (1 - 1e-9));
    EXPECT_NEAR(j["percent_of_matmul_peak"].get<double>(),
                100 * j["fastest_forward_gflop_s"].get<double>() / j["matmul_peak_gflop_s"].get<double>(), 1e-6);
    // A CNN in bf16 runs everything in oneDNN on torch's threads: OpenBLAS keeps one.
    if (ran == "bf16") {
      EXPECT_EQ(j["blas_threads"], 1);
    }
  }
}

// The binary asks tcmalloc for its heap in transparent huge pages (pipelines/cli/huge_pages.h), and
// ATTNVISION_HUGE_PAGES=0 leaves tcmalloc alone; `bench` reports what the kernel made of it.
TEST(Precision, BenchReportsTheHeapInHugePagesUnlessTurnedOff) {
  std::ifstream mode_file("/sys/kernel/mm/transparent_hugepage/enabled");
  std::string mode;
  std::getline(mode_file, mode);
  if (mode.empty() || mode.find("[never]") != std::string::npos) GTEST_SKIP() << "no transparent huge pages here";
  const std::string cmd = "bench -m resnet18 --size 32 --batch 1 --iters 1 --warmup 0 --json";
  const auto on = run_attnvision(cmd);
  ASSERT_EQ(on.exit_code, 0) << on.err;
  EXPECT_EQ(nlohmann::json::parse(on.out)["heap_huge_pages"], true) << "kernel mode: " << mode;
  // With the kernel's mode at [always] every region gets them, asked or not: nothing to tell apart.
  if (mode.find("[madvise]") == std::string::npos) return;
  ScopedEnv off("ATTNVISION_HUGE_PAGES", "0");
  const auto plain = run_attnvision(cmd);
  ASSERT_EQ(plain.exit_code, 0) << plain.err;
  EXPECT_EQ(nlohmann::json::parse(plain.out)["heap_huge_pages"], false);
}

TEST(Precision, TheBatchConfigKeyIsCheckedAndReachesEveryTask) {
  ScratchDir dir;
  cv::Mat img(28, 28, CV_8UC1, cv::Scalar(0));
  img(cv::Rect(8, 2, 12, 20)).setTo(200);
  ASSERT_TRUE(cv::imwrite(dir / "in.png", img));
  const auto bad = run_attnvision("batch '" + (dir / "in.png") + "' --out '" + (dir / "out") +
                                  "' --quiet --set precision=fp16");
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.err.find("--set precision: precision 'fp16': expected fp32 or bf16"), std::string::npos) << bad.err;

  {
    ScopedEnv no_bf16("ATTNVISION_NO_BF16", "1");
    const auto ok = run_attnvision("batch '" + (dir / "in.png") + "' --out '" + (dir / "out") +
                                   "' --quiet --set precision=bf16");
    EXPECT_EQ(ok.exit_code, 0) << ok.err;
    EXPECT_NE(ok.err.find(kFallbackLine), std::string::npos) << "the run's precision reached classify: " << ok.err;
  }
  const auto own = run_attnvision("batch '" + (dir / "in.png") + "' --out '" + (dir / "out2") +
                                  "' --quiet --set precision=bf16 --set classify.precision=fp32");
  EXPECT_EQ(own.exit_code, 0) << own.err;
  EXPECT_EQ(own.err.find("precision bf16"), std::string::npos) << "a task's own precision wins: " << own.err;
}

}  // namespace
}  // namespace attnvision
