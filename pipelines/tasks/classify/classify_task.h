// Classification as a task: top-k classes per input (per frame of a multi-frame DICOM), and optionally a
// saliency overlay explaining a class. Shared by the task row (batch) and the `classify` subcommand.
#pragma once

#include "pipelines/tasks/task.h"

#include <cstdint>
#include <string>

namespace attnvision::pipelines {

struct ClassifyOptions {
  ModelChoice model;
  int64_t batch = 16;
  int64_t topk = 5;
  std::string saliency;         // a saliency method; empty: none
  int64_t saliency_class = -1;  // -1: each image's top-1
};

// Loads the network; the options are checked against it (a saliency method it cannot do is an error here).
std::unique_ptr<TaskRunner> make_classify_runner(const ClassifyOptions& options);

}  // namespace attnvision::pipelines
