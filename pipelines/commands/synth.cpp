// `attnvision synth GENERATOR ...`: synthetic data sets, one sub-subcommand per row of the generator table
// (datasets/synth/generator.h), so a new generator needs no edit here.
#include "pipelines/commands/command.h"

#include "datasets/synth/generator.h"

#include <CLI/CLI.hpp>

#include <memory>
#include <utility>
#include <vector>

namespace attnvision::pipelines {

CommandRun define_synth(CLI::App& app) {
  app.require_subcommand(1, 1);
  auto runs = std::make_shared<std::vector<std::pair<CLI::App*, std::function<int()>>>>();
  for (const datasets::synth::GeneratorRow& g : datasets::synth::generator_table()) {
    CLI::App* sub = app.add_subcommand(g.name, g.summary);
    runs->emplace_back(sub, g.define(*sub));
  }
  return [runs] {
    for (const auto& [sub, run] : *runs)
      if (sub->parsed()) return run();
    return 2;  // unreachable: CLI11 requires one generator
  };
}

}  // namespace attnvision::pipelines
