#!/usr/bin/env bash
# attnvision set-up: install what is missing (Debian 12 packages), build, then run a job.
#   ./setup.sh run     install + build + evaluate the shipped classifier on the Fashion-MNIST test set
#   ./setup.sh test    install + build + run the whole test suite (what CI runs)
#   ./setup.sh build   install + build only
# Idempotent: installed packages and an up-to-date build are left alone.
set -euo pipefail
cd "$(dirname "$0")"

PACKAGES=(
  build-essential cmake ninja-build ccache pkg-config
  libtorch-dev libdnnl-dev libopenblas0-pthread libtbb-dev libtcmalloc-minimal4 libgoogle-perftools-dev
  libopencv-dev
  libdcmtk-dev dcmtk libopenjp2-7-dev zlib1g-dev
  libyaml-cpp-dev nlohmann-json3-dev libcli11-dev
  libgtest-dev libgloo-dev
  # real data for training and the shipped model's test: Fashion-MNIST (gzip IDX files)
  dataset-fashion-mnist
  # test references: pydicom's real-world DICOM corpus, dciodvfy, Python readers for cross-checks
  python3-pydicom python3-pil python3-numpy dicom3tools
  # the inspection report's browser test drives report.html in headless Chromium
  chromium
)

install_packages() {
  local missing=()
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "setup: installing ${missing[*]}" >&2
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
}

build() {
  local jobs
  jobs=$(nproc)
  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build build -j "$jobs"
}

mode=${1:-run}
case "$mode" in
  run)
    install_packages
    build
    # The main job on the embedded defaults: the shipped classifier on the Fashion-MNIST test set.
    exec build/pipelines/cli/attnvision eval --data fashion-mnist:test --confusion-png build/confusion.png
    ;;
  test)
    install_packages
    build
    exec ctest --test-dir build --output-on-failure -j "$(nproc)"
    ;;
  build)
    install_packages
    build
    ;;
  *)
    echo "usage: ./setup.sh run|test|build" >&2
    exit 2
    ;;
esac
