// Hostile inputs (tests/data/dicom/hostile, written by make_hostile.py): each must end in one clear
// error line (or, for broken codec streams, whatever the codec salvages), within a second, with bounded
// memory, and never crash or hang. Each file is read in a child process whose address space is capped
// at 512 MiB above the test's own, so that a crash, an abort or an attempt to allocate a bomb shows up
// as a failed child instead of taking the test runner down.
#include "vision/dicom.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>

namespace {
using attnvision::vision::DicomError;
using attnvision::vision::DicomFrames;
using attnvision::vision::read_dicom;
using attnvision::vision::read_dicom_buffer;
using Kind = DicomError::Kind;

const std::string kDir = std::string(ATTNVISION_TEST_DATA_DIR) + "/dicom/hostile";

const std::map<std::string, Kind>& kinds() {
  static const std::map<std::string, Kind> table = {
      {"io", Kind::io},           {"not_dicom", Kind::not_dicom}, {"not_image", Kind::not_image},
      {"corrupt", Kind::corrupt}, {"too_large", Kind::too_large}, {"unsupported", Kind::unsupported}};
  return table;
}

size_t virtual_size() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line))
    if (line.rfind("VmSize:", 0) == 0) return size_t(std::stoull(line.substr(7))) * 1024;
  return 0;
}

struct Outcome {
  bool exited_cleanly = false;  // no signal, no timeout, no abort
  char what = '?';              // 'E' DicomError, 'O' decoded, 'X' another exception
  int kind = -1;
  std::string message;
  double seconds = 0;
};

// Runs `read` in a child with capped memory and a 10 s alarm; reports how it ended.
Outcome run_isolated(const std::function<void()>& work) {
  int fds[2];
  if (pipe(fds) != 0) return {};
  const size_t cap = virtual_size() + (size_t(512) << 20);
  const auto start = std::chrono::steady_clock::now();
  const pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    rlimit limit{cap, cap};
    setrlimit(RLIMIT_AS, &limit);
    alarm(10);
    std::string report;
    try {
      work();
      report = "O";
    } catch (const DicomError& e) {
      report = "E" + std::to_string(int(e.kind())) + "|" + e.what();
    } catch (const std::exception& e) {
      report = std::string("X|") + e.what();
    }
    (void)!write(fds[1], report.data(), report.size());
    _exit(0);
  }
  close(fds[1]);
  std::string report;
  char buffer[4096];
  ssize_t n;
  while ((n = ::read(fds[0], buffer, sizeof buffer)) > 0) report.append(buffer, size_t(n));
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  Outcome outcome;
  outcome.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  outcome.exited_cleanly = WIFEXITED(status) && WEXITSTATUS(status) == 0 && !report.empty();
  if (!outcome.exited_cleanly) {
    outcome.message =
        WIFSIGNALED(status) ? std::string("killed by signal ") + strsignal(WTERMSIG(status)) : "no report";
    return outcome;
  }
  outcome.what = report[0];
  if (outcome.what == 'E') {
    const size_t bar = report.find('|');
    outcome.kind = std::stoi(report.substr(1, bar - 1));
    outcome.message = report.substr(bar + 1);
  } else if (outcome.what == 'X') {
    outcome.message = report.substr(2);
  }
  return outcome;
}

TEST(DicomHostile, EveryFileFailsCleanlyWithinASecond) {
  std::ifstream in(kDir + "/manifest.json");
  const nlohmann::json manifest = nlohmann::json::parse(in);
  ASSERT_GE(manifest.size(), 40u);
  for (const auto& [file, expected] : manifest.items()) {
    SCOPED_TRACE(file);
    const std::string path = kDir + "/" + file;
    const Outcome outcome = run_isolated([&] { read_dicom(path); });
    ASSERT_TRUE(outcome.exited_cleanly) << outcome.message;
    EXPECT_LT(outcome.seconds, 1.0);
    EXPECT_NE(outcome.what, 'X') << "not a DicomError: " << outcome.message;
    const std::string expect = expected["expect"];
    if (expect == "ok") {
      EXPECT_EQ(outcome.what, 'O') << outcome.message;
      continue;
    }
    if (outcome.what == 'E') {
      EXPECT_EQ(outcome.message.rfind(path + ": ", 0), 0u) << outcome.message;
      EXPECT_EQ(outcome.message.find('\n'), std::string::npos);
      EXPECT_LT(outcome.message.size(), 300u) << outcome.message;
    }
    if (expect == "error") {
      ASSERT_EQ(outcome.what, 'E');
      EXPECT_EQ(outcome.kind, int(kinds().at(expected["kind"]))) << outcome.message;
      EXPECT_NE(outcome.message.find(expected["phrase"].get<std::string>()), std::string::npos)
          << outcome.message;
    }
  }
}

// Inputs the fuzzer (tests/fuzz) once found slow or broken, kept so they stay fixed.
TEST(DicomHostile, FuzzRegressions) {
  const std::string dir = std::string(ATTNVISION_TEST_DATA_DIR) + "/dicom/fuzz_regressions";
  int count = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    SCOPED_TRACE(entry.path().filename().string());
    const Outcome outcome = run_isolated([&] { read_dicom(entry.path().string()); });
    ASSERT_TRUE(outcome.exited_cleanly) << outcome.message;
    EXPECT_LT(outcome.seconds, 1.0);
    EXPECT_NE(outcome.what, 'X') << outcome.message;
    ++count;
  }
  EXPECT_GE(count, 1);
}

// Built in memory: too large to commit. DCMTK's own parser overflows the stack on such a file.
TEST(DicomHostile, TwentyThousandNestedSequences) {
  std::vector<uint8_t> bytes(132, 0);
  std::memcpy(bytes.data() + 128, "DICM", 4);
  auto put16 = [&](uint16_t v) { bytes.push_back(uint8_t(v)), bytes.push_back(uint8_t(v >> 8)); };
  auto put32 = [&](uint32_t v) { put16(uint16_t(v)), put16(uint16_t(v >> 16)); };
  // A meta group naming explicit VR little endian, then sequence after sequence, each in an item.
  const std::string ts = "1.2.840.10008.1.2.1";
  put16(0x0002), put16(0x0010), bytes.push_back('U'), bytes.push_back('I'), put16(uint16_t(ts.size() + 1));
  bytes.insert(bytes.end(), ts.begin(), ts.end());
  bytes.push_back(0);
  for (int level = 0; level < 20000; ++level) {
    put16(0x0008), put16(0x1115), bytes.push_back('S'), bytes.push_back('Q'), put16(0), put32(0xFFFFFFFF);
    put16(0xFFFE), put16(0xE000), put32(0xFFFFFFFF);
  }
  const Outcome outcome = run_isolated([&] { read_dicom_buffer(bytes.data(), bytes.size(), "deep"); });
  ASSERT_TRUE(outcome.exited_cleanly) << outcome.message;
  EXPECT_EQ(outcome.kind, int(Kind::too_large));
  EXPECT_EQ(outcome.message, "deep: sequences nested deeper than 32 levels");
}

TEST(DicomHostile, RepeatedElementsAreJunk) {
  // What a deflate bomb of zeros becomes: (0000,0000) over and over.
  std::vector<uint8_t> bytes(8 * 100'000, 0);
  bytes[0] = 0x08;  // starts like a bare data set: (0008,0000)
  const Outcome outcome = run_isolated([&] { read_dicom_buffer(bytes.data(), bytes.size(), "zeros"); });
  ASSERT_TRUE(outcome.exited_cleanly) << outcome.message;
  EXPECT_EQ(outcome.message, "zeros: more than 1000 data elements out of order or repeated");
}

TEST(DicomHostile, MillionsOfTinyElements) {
  std::vector<uint8_t> bytes;
  bytes.reserve(3'000'000 * 8);
  for (uint32_t i = 0; i < 3'000'000; ++i) {
    // (0009..,xxxx) LO of length 0 in ascending order, explicit VR little endian, without a meta group.
    const uint16_t group = uint16_t(0x0009 + 2 * (i >> 16));
    const uint8_t element[8] = {
        uint8_t(group), uint8_t(group >> 8), uint8_t(i), uint8_t(i >> 8), 'L', 'O', 0, 0};
    bytes.insert(bytes.end(), element, element + 8);
  }
  bytes[0] = 0x08;  // a bare data set starts with group 0008 (then 0009, 000B, ...)
  const Outcome outcome = run_isolated([&] { read_dicom_buffer(bytes.data(), bytes.size(), "many"); });
  ASSERT_TRUE(outcome.exited_cleanly) << outcome.message;
  EXPECT_LT(outcome.seconds, 1.0);
  EXPECT_EQ(outcome.kind, int(Kind::too_large));
  EXPECT_EQ(outcome.message, "many: more than 1000000 data elements");
}

// Every prefix of a valid file (truncation at any byte) fails cleanly or decodes; nothing else.
TEST(DicomHostile, EveryTruncationOfAValidFile) {
  std::ifstream in(std::string(ATTNVISION_TEST_DATA_DIR) + "/dicom/synthetic/enhanced_ct_3frames.dcm",
                   std::ios::binary);
  const std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ASSERT_GT(bytes.size(), 1000u);
  const Outcome outcome = run_isolated([&] {
    for (size_t n = 0; n < bytes.size(); ++n) {
      try {
        read_dicom_buffer(bytes.data(), n, "prefix");
      } catch (const DicomError&) {
      }
    }
  });
  ASSERT_TRUE(outcome.exited_cleanly) << outcome.message;
  EXPECT_EQ(outcome.what, 'O') << outcome.message;
}

}  // namespace
