#!/bin/sh
# Builds the DICOM reader fuzzer with clang (-fsanitize=fuzzer,address,undefined) in build-fuzz/ and runs
# it, seeded with the project's DICOM test files (and pydicom's corpus when installed).
#   tests/fuzz/run_fuzz.sh [SECONDS]      default 600; SECONDS=0 runs until stopped
# Needs: clang, libclang-rt-14-dev (Debian). A finding is written as build-fuzz/crash-* / leak-* / oom-* /
# timeout-*; rerun one with: build-fuzz/tests/fuzz/fuzz_dicom_reader FILE
set -eu
seconds=${1:-600}
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${BUILD:-$root/build-fuzz}
CC=clang CXX=clang++ cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DATTNVISION_FUZZ=ON \
  -DATTNVISION_BUILD_TESTS=ON >/dev/null
ninja -C "$build" -j2 fuzz_dicom_reader
corpus=$build/fuzz-corpus
seeds=$build/fuzz-seeds
mkdir -p "$corpus" "$seeds"
find "$root/tests/data/dicom" -type f -name '*.dcm' -size -256k -exec cp {} "$seeds/" \;
pydicom=/usr/lib/python3/dist-packages/pydicom/data/test_files
if [ -d "$pydicom" ]; then
  find "$pydicom" -maxdepth 1 -type f -name '*.dcm' -size -256k | while read -r f; do cp "$f" "$seeds/pydicom_$(basename "$f")"; done
fi
cd "$build"
exec "$build/tests/fuzz/fuzz_dicom_reader" -dict="$root/tests/fuzz/dicom.dict" -max_total_time="$seconds" \
  -timeout=5 -rss_limit_mb=2048 -max_len=262144 -print_final_stats=1 "$corpus" "$seeds"
