#include "pipelines/report/progress.h"

#include <unistd.h>

#include <cstdio>

namespace attnvision::pipelines {

Progress::Progress(std::string what, size_t total, Mode mode)
    : what_(std::move(what)), total_(total), tty_(mode != Mode::kSilent && isatty(STDERR_FILENO) == 1),
      log_lines_(mode == Mode::kAuto && !tty_), start_(std::chrono::steady_clock::now()), last_draw_(start_) {}

double Progress::elapsed_s() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void Progress::advance(size_t n, size_t failed) { advance(n, "failed " + std::to_string(failed)); }

void Progress::advance(size_t n, const std::string& status) {
  done_ += n;
  if (!tty_ && !log_lines_) return;
  const auto now = std::chrono::steady_clock::now();
  const auto every = tty_ ? std::chrono::milliseconds(200) : std::chrono::milliseconds(10000);
  if (done_ < total_ && now - last_draw_ < every) return;
  if (!tty_ && done_ >= total_) return;  // the caller's summary line says the rest
  last_draw_ = now;
  const double s = elapsed_s();
  const double rate = s > 0 ? done_ / s : 0.0;
  const double eta = rate > 0 ? (total_ - done_) / rate : 0.0;
  std::fprintf(stderr, tty_ ? "\r%s %zu/%zu  %.1f/s  %s  ETA %.0fs   " : "%s %zu/%zu  %.1f/s  %s  ETA %.0fs\n",
               what_.c_str(), done_, total_, rate, status.c_str(), eta);
  std::fflush(stderr);
}

void Progress::finish() {
  if (tty_) std::fprintf(stderr, "\n");
}

}  // namespace attnvision::pipelines
