// The shape every subcommand shares: define_<name>(CLI::App&) declares its options and returns this.
#pragma once

#include <functional>

namespace attnvision::pipelines {

// Runs a subcommand after its options were parsed; returns the process exit code.
using CommandRun = std::function<int()>;

}  // namespace attnvision::pipelines
