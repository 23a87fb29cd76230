// The synthetic data generators behind `attnvision synth NAME`: one table, one row per generator (a new
// generator is its own file plus one row in generators.cpp; the synth command derives its subcommands from
// the table and needs no edit).
#pragma once

#include <functional>
#include <vector>

namespace CLI {
class App;
}

namespace attnvision::datasets::synth {

struct GeneratorRow {
  const char* name;
  const char* summary;
  // Declares the generator's options (with their defaults) on its `synth NAME` subcommand and returns the
  // action that generates: it returns the exit code and reports failures as exceptions with a one-line
  // what() naming the file or option.
  std::function<int()> (*define)(CLI::App& app);
};

const std::vector<GeneratorRow>& generator_table();

}  // namespace attnvision::datasets::synth
