// read_idx: raw and gzip round trips against files written here with zlib, and hostile headers and
// payloads (bad magic, unsupported type, truncation, trailing bytes, absurd dims, corrupt gzip).
#include "datasets/idx.h"

#include "datasets/idx_writer.h"
#include "test_util.h"

#include <gtest/gtest.h>

#include <chrono>
#include <random>

namespace ad = attnvision::datasets;
using ad::testing::Bytes;
using ad::testing::gzip_bytes;
using ad::testing::idx_bytes;
using ad::testing::pattern_bytes;
using ad::testing::write_file;
using ad::testing::write_gzip;
using attnvision::testing::ScratchDir;

namespace {

// read_idx's error message for `path` ("" when it reads fine); every message is one line naming the file.
std::string idx_error(const std::string& path) {
  try {
    ad::read_idx(path);
  } catch (const std::runtime_error& e) {
    const std::string what = e.what();
    EXPECT_EQ(what.rfind(path + ": ", 0), 0u) << what;
    EXPECT_EQ(what.find('\n'), std::string::npos) << what;
    return what;
  }
  return "";
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

void expect_bytes(const torch::Tensor& t, const std::vector<int64_t>& dims, const Bytes& payload) {
  ASSERT_EQ(t.scalar_type(), torch::kUInt8);
  ASSERT_TRUE(t.is_contiguous());
  ASSERT_EQ(t.sizes().vec(), dims);
  ASSERT_EQ(static_cast<size_t>(t.numel()), payload.size());
  EXPECT_EQ(Bytes(reinterpret_cast<const char*>(t.data_ptr<uint8_t>()), payload.size()), payload);
}

TEST(Idx, RawRoundTrip) {
  ScratchDir dir;
  const Bytes payload = pattern_bytes(3 * 4 * 5);
  write_file(dir / "images.idx", idx_bytes({3, 4, 5}, payload));
  expect_bytes(ad::read_idx(dir / "images.idx"), {3, 4, 5}, payload);
}

TEST(Idx, GzipRoundTrip) {
  ScratchDir dir;
  const Bytes images = pattern_bytes(7 * 28 * 28);
  write_gzip(dir / "images.gz", idx_bytes({7, 28, 28}, images));
  expect_bytes(ad::read_idx(dir / "images.gz"), {7, 28, 28}, images);
  const Bytes labels = pattern_bytes(7);
  write_gzip(dir / "labels.gz", idx_bytes({7}, labels));
  expect_bytes(ad::read_idx(dir / "labels.gz"), {7}, labels);
  // Four dims, the most the format has.
  const Bytes four = pattern_bytes(2 * 3 * 4 * 5);
  write_gzip(dir / "four.gz", idx_bytes({2, 3, 4, 5}, four));
  expect_bytes(ad::read_idx(dir / "four.gz"), {2, 3, 4, 5}, four);
}

TEST(Idx, GzipIsDetectedByContentNotName) {
  ScratchDir dir;
  const Bytes payload = pattern_bytes(100);
  write_gzip(dir / "looks-raw.idx", idx_bytes({100}, payload));
  write_file(dir / "looks-compressed.gz", idx_bytes({100}, payload));
  expect_bytes(ad::read_idx(dir / "looks-raw.idx"), {100}, payload);
  expect_bytes(ad::read_idx(dir / "looks-compressed.gz"), {100}, payload);
}

TEST(Idx, ConcatenatedGzipMembersAreOneStream) {
  ScratchDir dir;
  const Bytes whole = idx_bytes({50, 40}, pattern_bytes(2000));
  const Bytes first = gzip_bytes(dir / "a", whole.substr(0, 777));
  const Bytes second = gzip_bytes(dir / "b", whole.substr(777));
  write_file(dir / "two.gz", first + second);
  expect_bytes(ad::read_idx(dir / "two.gz"), {50, 40}, pattern_bytes(2000));
}

TEST(Idx, GzipMemberBoundaryAtTheEndOfTheReadBuffer) {
  // The reader reads 64 KiB at a time: a first member of 65535 bytes leaves only the first byte of the
  // next member's magic in the buffer. The member is padded to that size with a gzip file name (FNAME).
  ScratchDir dir;
  std::mt19937 gen(1);
  Bytes payload(60000, '\0');
  for (char& c : payload) c = static_cast<char>(gen() & 0xff);  // incompressible: stays about 60000 bytes
  const Bytes whole = idx_bytes({60000}, payload);
  Bytes first = gzip_bytes(dir / "a", whole.substr(0, 30000));
  ASSERT_LT(first.size(), 65535u);
  first[3] = static_cast<char>(first[3] | 0x08);
  first.insert(10, Bytes(65535 - first.size() - 1, 'n') + '\0');
  ASSERT_EQ(first.size(), 65535u);
  write_file(dir / "boundary.gz", first + gzip_bytes(dir / "b", whole.substr(30000)));
  expect_bytes(ad::read_idx(dir / "boundary.gz"), {60000}, payload);
}

TEST(Idx, BadMagicIsRefused) {
  ScratchDir dir;
  // A gzip file compressed twice: once inflated, its bytes start with the gzip magic, not IDX's.
  const Bytes once = gzip_bytes(dir / "once", idx_bytes({10}, pattern_bytes(10)));
  write_gzip(dir / "twice.gz", once);
  EXPECT_TRUE(contains(idx_error(dir / "twice.gz"), "not an IDX file (magic 0x1f8b08"))
      << idx_error(dir / "twice.gz");

  write_file(dir / "text.idx", "hello world, not an IDX file");
  EXPECT_TRUE(contains(idx_error(dir / "text.idx"), "not an IDX file (magic 0x68656c6c)"));
  write_file(dir / "rank0.idx", Bytes{'\0', '\0', '\x08', '\0'} + "xxxx");
  EXPECT_TRUE(contains(idx_error(dir / "rank0.idx"), "not an IDX file (magic 0x00000800)"));
  write_file(dir / "rank5.idx", idx_bytes({1, 1, 1, 1, 1}, "x"));
  EXPECT_TRUE(contains(idx_error(dir / "rank5.idx"), "not an IDX file"));
  write_file(dir / "short.idx", Bytes{'\0', '\0'});
  EXPECT_TRUE(contains(idx_error(dir / "short.idx"), "not an IDX file (only 2 bytes)"));
  // Signed byte (0x09) and float (0x0d) data are valid IDX but not what we read.
  write_file(dir / "signed.idx", idx_bytes({4}, "abcd", 0x09));
  EXPECT_TRUE(contains(idx_error(dir / "signed.idx"), "IDX data type 0x09 is not supported"));
  write_file(dir / "float.idx", idx_bytes({1}, "abcd", 0x0d));
  EXPECT_TRUE(contains(idx_error(dir / "float.idx"), "IDX data type 0x0d is not supported"));
}

TEST(Idx, MissingFileAndFolder) {
  ScratchDir dir;
  EXPECT_TRUE(contains(idx_error(dir / "absent.gz"), "cannot open: No such file or directory"));
  EXPECT_TRUE(contains(idx_error(dir.path().string()), "is a folder"));
}

TEST(Idx, TruncatedPayloadIsRefused) {
  ScratchDir dir;
  write_file(dir / "raw.idx", idx_bytes({10, 28, 28}, pattern_bytes(1000)));
  EXPECT_EQ(idx_error(dir / "raw.idx"),
            (dir / "raw.idx") + ": truncated: header declares 7840 bytes of data, file has 1000");
  // A complete gzip stream that holds less than the header declares.
  write_gzip(dir / "short.gz", idx_bytes({10, 28, 28}, pattern_bytes(1000)));
  EXPECT_EQ(idx_error(dir / "short.gz"),
            (dir / "short.gz") + ": truncated: header declares 7840 bytes of data, file has 1000");
  // A header cut inside its dims.
  write_file(dir / "header.idx", idx_bytes({10, 28, 28}, "").substr(0, 9));
  EXPECT_TRUE(
      contains(idx_error(dir / "header.idx"), "truncated: the IDX header has 3 dims (12 bytes), file has 5"));
}

TEST(Idx, TruncatedGzipStreamIsRefused) {
  ScratchDir dir;
  const Bytes whole = gzip_bytes(dir / "whole", idx_bytes({200, 28, 28}, pattern_bytes(200 * 28 * 28)));
  // Cut inside the compressed data: fewer bytes come out than declared.
  write_file(dir / "half.gz", whole.substr(0, whole.size() / 2));
  const std::string half = idx_error(dir / "half.gz");
  EXPECT_TRUE(contains(half, "truncated: header declares 156800 bytes of data, file has ")) << half;
  // Cut inside the 8-byte trailer: all data is there, the CRC is not.
  write_file(dir / "trailer.gz", whole.substr(0, whole.size() - 4));
  EXPECT_TRUE(contains(idx_error(dir / "trailer.gz"), "truncated gzip stream"))
      << idx_error(dir / "trailer.gz");
}

TEST(Idx, CorruptGzipDataIsRefused) {
  ScratchDir dir;
  Bytes gz = gzip_bytes(dir / "whole", idx_bytes({100, 100}, pattern_bytes(10000)));
  gz[gz.size() - 6] = static_cast<char>(gz[gz.size() - 6] ^ 0x55);  // inside the CRC32 of the trailer
  write_file(dir / "crc.gz", gz);
  EXPECT_TRUE(contains(idx_error(dir / "crc.gz"), "corrupt gzip data (incorrect data check)"))
      << idx_error(dir / "crc.gz");
}

TEST(Idx, TrailingBytesAreRefused) {
  ScratchDir dir;
  write_file(dir / "raw.idx", idx_bytes({4, 2}, pattern_bytes(9)));
  EXPECT_TRUE(
      contains(idx_error(dir / "raw.idx"), "trailing bytes after the 8 bytes of data the header declares"));
  write_gzip(dir / "data.gz", idx_bytes({4, 2}, pattern_bytes(9)));
  EXPECT_TRUE(
      contains(idx_error(dir / "data.gz"), "trailing bytes after the 8 bytes of data the header declares"));
  // Junk after a complete gzip member (gunzip calls it "trailing garbage").
  write_file(dir / "junk.gz", gzip_bytes(dir / "m", idx_bytes({4, 2}, pattern_bytes(8))) + "junk");
  EXPECT_TRUE(contains(idx_error(dir / "junk.gz"), "trailing bytes after the gzip stream"));
}

TEST(Idx, AbsurdDimsAreRefusedBeforeAllocating) {
  ScratchDir dir;
  const auto start = std::chrono::steady_clock::now();
  write_file(dir / "zero.idx", idx_bytes({10, 0, 28}, ""));
  EXPECT_TRUE(contains(idx_error(dir / "zero.idx"), "IDX dim 1 is 0"));
  // 2^32 elements, and 2^128 (a product that overflows 64 bits if multiplied naively).
  write_file(dir / "huge.idx", idx_bytes({65536, 65536}, "x"));
  EXPECT_TRUE(contains(idx_error(dir / "huge.idx"), "more than 2^31 elements"));
  write_gzip(dir / "overflow.gz", idx_bytes({0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu}, "x"));
  EXPECT_TRUE(contains(idx_error(dir / "overflow.gz"), "more than 2^31 elements"));
  // Within 2^31 but more than the file can hold: refused from the file size, nothing inflated.
  write_file(dir / "big.idx", idx_bytes({0x7fffffffu}, "tiny"));
  EXPECT_EQ(idx_error(dir / "big.idx"),
            (dir / "big.idx") + ": truncated: header declares 2147483647 bytes of data, file has 4");
  write_gzip(dir / "big.gz", idx_bytes({60000, 28, 28}, pattern_bytes(100)));
  EXPECT_TRUE(
      contains(idx_error(dir / "big.gz"), "header declares 47040000 bytes of data, more than a gzip file of"))
      << idx_error(dir / "big.gz");
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
}

TEST(Idx, GzipBombIsBoundedByTheHeader) {
  ScratchDir dir;
  // 16 MB of zeros compress to ~16 KB; the header claims 100 bytes: the reader stops after 101.
  write_gzip(dir / "bomb.gz", idx_bytes({100}, Bytes(size_t{16} << 20, '\0')));
  EXPECT_TRUE(contains(idx_error(dir / "bomb.gz"), "trailing bytes after the 100 bytes"));
}

TEST(Idx, RealFashionMnistLabels) {
  const std::string path = "/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz";
  if (!std::filesystem::exists(path)) GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  const torch::Tensor labels = ad::read_idx(path);
  EXPECT_EQ(labels.sizes().vec(), std::vector<int64_t>{10000});
  EXPECT_EQ(labels.max().item<int>(), 9);
}

}  // namespace
