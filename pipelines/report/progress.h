// Progress on stderr for long work: a one-line meter redrawn in place on a terminal (done / total, rate, ETA,
// status), and off one, in kAuto mode, a plain log line every 10 seconds, so logs and pipes stay readable.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>

namespace attnvision::pipelines {

class Progress {
 public:
  enum class Mode {
    kAuto,      // the meter on a terminal, log lines otherwise
    kTerminal,  // the meter on a terminal, nothing otherwise
    kSilent,
  };
  Progress(std::string what, size_t total, Mode mode = Mode::kTerminal);
  void advance(size_t n, size_t failed_so_far);
  // `status` is shown after the rate, e.g. "loss 0.412  acc 86.1%".
  void advance(size_t n, const std::string& status);
  void finish();
  double elapsed_s() const;

 private:
  std::string what_;
  size_t total_;
  size_t done_ = 0;
  bool tty_;
  bool log_lines_;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_draw_;
};

}  // namespace attnvision::pipelines
