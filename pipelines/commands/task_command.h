// What the per-task commands (classify, detect, caption) share, written once: the input options they all take,
// and the run itself: the paths scanned (missing ones reported as results), the task's runner driven through
// the batch pipeline with a progress line, each input's result handed to the command, and the closing counts.
#pragma once

#include "pipelines/batch/runner.h"
#include "pipelines/commands/cli_options.h"
#include "pipelines/tasks/task.h"

#include <CLI/CLI.hpp>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace attnvision::pipelines {

struct InputOptions {
  std::vector<std::string> paths;
  ThreadOptions threads;
  int workers = 0;
  int64_t max_pixels = 200'000'000;
  std::string decode = "exact";  // exact | fast (see kDecodeHelp)
  bool json = false;
};

// --decode's help, shared by every command that decodes images.
extern const char* const kDecodeHelp;

// The positional paths, --threads / --blas-threads, --workers, --max-pixels, --decode and --json (described by
// json_help).
void add_input_options(CLI::App& app, InputOptions& options, const std::string& json_help);

// Prints a failed input: its error line on stderr and, with --json, {path, error} on stdout.
void print_input_error(const InputOptions& options, const std::string& path, const std::string& error);

// Runs `runner` (the task table's row `task`) over the inputs; files the task writes go to files_dir.
// `handle` gets every input's result in input order (a failed one too, after print_input_error) and returns
// whether the input is to be counted as failed. Prints "<verb> N images in S s" and the failure count on stderr;
// returns the number of failed inputs (missing paths included).
size_t run_task_command(const char* task, TaskRunner& runner, const InputOptions& options, const std::string& files_dir,
                        const char* verb, const std::function<bool(const InputResult&)>& handle);

// What a command writing a COCO results file (--coco-images FILE --results FILE) needs: each input's image id,
// matched by bare file name against the COCO file's `images` (instances, captions or image info).
class CocoImageIds {
 public:
  // Both paths or neither (then nothing is matched); one without the other, or a file name the COCO file lists
  // twice, is an error.
  CocoImageIds(const std::string& coco_images, const std::string& results);
  bool wanted() const { return !results_.empty(); }
  // The image id of a successful input whose single-frame output (`task`'s) holds `key`; nothing, with a line
  // on stderr and the input counted as unmatched, when its file name is not listed or it has several frames.
  std::optional<int64_t> of(const InputResult& r, const char* task, const char* key);
  // Closing line on stderr; the count of unmatched inputs.
  size_t report(size_t written, const char* what) const;

 private:
  std::string coco_images_, results_;
  std::unordered_map<std::string, int64_t> ids_;
  size_t unmatched_ = 0;
};

}  // namespace attnvision::pipelines
