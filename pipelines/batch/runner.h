// The batch runner every task plugs into: inputs -> decode and preprocess -> the tasks' networks -> outputs
// written and results handed on, in input order. Three parts joined by bounded queues (oneTBB
// concurrent_bounded_queue), so memory stays flat however many inputs there are:
//
//   decoder thread:  a oneTBB parallel_pipeline on `workers` threads: take the next `batch` inputs (serial),
//                    decode (image | DICOM -> window) and preprocess them for each task (parallel,
//                    datasets::decode_samples), queue them in input order (serial). Only when the model
//                    leaves cores free or decode threads are asked for: otherwise the calling thread decodes
//                    each batch itself, over its torch threads, before running it (see run_tasks)
//   calling thread:  each task's run() under InferenceMode (with autograd when a saliency stage asks for it).
//                    The model stays on one thread: its OpenMP pool and its malloc arena stay warm (run on
//                    pool threads, the same ResNet-50 batches ran 1.5x slower here)
//   writer thread:   every output file (atomically), then the sink (manifest row / printed line)
#pragma once

#include "datasets/samples.h"
#include "pipelines/tasks/task.h"
#include "vision/inputs.h"

#include <nlohmann/json.hpp>

#include <functional>
#include <string>
#include <vector>

namespace attnvision::pipelines {

// A task and its runner, as the batch runs it.
struct TaskInRun {
  const TaskRow* row;
  TaskRunner* runner;
};

// What RunOptions::workers means, as every command's help says it.
inline constexpr const char* kWorkersHelp =
    "decode threads (0: the cores the model leaves free; none free: the model's threads decode each batch)";

struct RunOptions {
  int workers = 0;  // decode threads (0: the cores the model's torch threads leave; none left: the model's
                    // own threads decode each batch before running it)
  int torch_threads = 0;  // the command's thread plan for the model stage (0: leave torch's setting alone)
  datasets::DecodeOptions decode;
  std::string files_dir = ".";    // task files go to <files_dir>/<task>/<output_name><suffix> ...
  bool task_subfolders = true;    // ... or, without, to <files_dir>/<output_name><suffix>
  std::string files_relative_to;  // the paths listed in outputs are relative to this folder ("": as written)
};

// One input's result, handed to the sink in input order.
struct InputResult {
  const vision::BatchInput* input = nullptr;
  std::string error;  // "path: problem"; empty when every task ran
  int frames = 0;
  nlohmann::json outputs = nlohmann::json::object();  // task name -> its output
  bool ok() const { return error.empty(); }
};

using ResultSink = std::function<void(const InputResult&)>;

// Runs every task on every input; calls `sink` once per input, in input order, after that input's files are
// in place. An input that fails to decode, or whose files cannot be written, is a result with an error; a
// task that fails on a whole batch (a saliency method the model cannot do) ends the run with its exception.
void run_tasks(const std::vector<vision::BatchInput>& inputs, const std::vector<TaskInRun>& tasks,
               const RunOptions& options, const ResultSink& sink);

}  // namespace attnvision::pipelines
