// The attnvision binary: everything lives in the pipelines' command table.
#include "pipelines/cli/heap.h"
#include "pipelines/commands/commands.h"

#include <cstdio>
#include <cstdlib>

// Ends without running the libraries' exit handlers (libtorch's registries, oneDNN's and OpenMP's pools: about
// 40 ms of a one-image command here, measured with perf). Every file a command writes is complete, closed or
// renamed into place, before run_cli returns; only the standard streams are left to flush.
int main(int argc, char** argv) {
  attnvision::cli::tune_heap();
  const int code = attnvision::pipelines::run_cli(argc, argv);
  std::fflush(nullptr);
  std::_Exit(code);
}
