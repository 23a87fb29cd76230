// A one-line progress meter on stderr for long batch work (only when stderr is a terminal, so logs
// and pipes stay clean).
#pragma once

#include <chrono>
#include <cstddef>
#include <string>

namespace attnvision::pipelines {

class Progress {
 public:
  Progress(std::string what, size_t total);
  void advance(size_t n, size_t failed_so_far);
  // `status` is shown after the rate, e.g. "loss 0.412  acc 86.1%".
  void advance(size_t n, const std::string& status);
  void finish();
  double elapsed_s() const;

 private:
  std::string what_;
  size_t total_;
  size_t done_ = 0;
  bool enabled_;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_draw_;
};

}  // namespace attnvision::pipelines
