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
#include <string>
#include <unordered_map>
#include <vector>

namespace attnvision::pipelines {

struct InputOptions {
  std::vector<std::string> paths;
  ThreadOptions threads;
  int workers = 0;
  int64_t max_pixels = 200'000'000;
  bool json = false;
};

// The positional paths, --threads / --blas-threads, --workers, --max-pixels and --json (described by json_help).
void add_input_options(CLI::App& app, InputOptions& options, const std::string& json_help);

// Prints a failed input: its error line on stderr and, with --json, {path, error} on stdout.
void print_input_error(const InputOptions& options, const std::string& path, const std::string& error);

// Runs `runner` (the task table's row `task`) over the inputs; files the task writes go to files_dir.
// `handle` gets every input's result in input order (a failed one too, after print_input_error) and returns
// whether the input is to be counted as failed. Prints "<verb> N images in S s" and the failure count on stderr;
// returns the number of failed inputs (missing paths included).
size_t run_task_command(const char* task, TaskRunner& runner, const InputOptions& options, const std::string& files_dir,
                        const char* verb, const std::function<bool(const InputResult&)>& handle);

// COCO image ids by bare file name, from a COCO file's `images` (instances, captions or image info): how a
// results file names the inputs. A file name listed twice is an error naming it.
std::unordered_map<std::string, int64_t> coco_image_ids_by_name(const std::string& path);

}  // namespace attnvision::pipelines
