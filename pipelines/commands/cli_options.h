// Option groups several subcommands share, declared once so every command spells them the same way.
#pragma once

#include "models/runtime.h"
#include "pipelines/model_loader.h"

#include <CLI/CLI.hpp>

namespace attnvision::pipelines {

// --model, --weights, --set, --labels, --random-init and, for a command that runs the network (`inference`),
// --precision
void add_model_options(CLI::App& app, ModelChoice& choice, bool inference = true);

// --threads / --blas-threads (0 = the default plan for the model's architecture)
struct ThreadOptions {
  int torch_threads = 0;
  int blas_threads = 0;
};
void add_thread_options(CLI::App& app, ThreadOptions& threads);
// Applies the options over the default plan for the model's architecture and precision; returns the plan as
// applied.
models::ThreadPlan apply_thread_options(const ThreadOptions& threads, const LoadedModel& model);

}  // namespace attnvision::pipelines
