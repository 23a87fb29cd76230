// The subcommand table and the CLI entry point the thin main calls.
#pragma once

#include "pipelines/commands/command.h"

#include <CLI/CLI.hpp>

#include <vector>

namespace attnvision::pipelines {

struct CommandSpec {
  const char* name;
  const char* summary;
  // Declares the subcommand's options on `app` and returns the action that runs it.
  CommandRun (*define)(CLI::App& app);
};

const std::vector<CommandSpec>& command_table();

// Parses argv, runs the chosen subcommand, and turns every failure into one line on stderr:
// exit 0 ok, 1 the work failed (or some inputs did), 2 bad usage.
int run_cli(int argc, char** argv);

}  // namespace attnvision::pipelines
