// `attnvision models`: the registry as a table (or JSON lines), with parameters and GFLOPs measured on
// freshly built models at their default input size.
#include "models/registry.h"
#include "pipelines/commands/command.h"

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <memory>

namespace attnvision::pipelines {

namespace {

std::string describe_attention(const models::ModelCfg& cfg) {
  if (cfg.arch == "vit") return "self-attention";
  return cfg.resnet.attn;
}

int list_models(bool as_json) {
  if (!as_json)
    std::printf("%-24s %10s %9s %-11s %-14s %s\n", "name", "params(M)", "GFLOPs", "input", "attention", "description");
  for (const models::RegisteredModel& m : models::registered_models()) {
    // Only counted: the values stay whatever torch's layer defaults drew.
    models::Network net = models::build_model(m.cfg, models::Initialisation::kNone);
    const double params = models::count_parameters(*net) / 1e6;
    const double gflops = models::forward_gflops(m.cfg);
    const std::string input = std::to_string(m.cfg.input_size[0]) + "x" + std::to_string(m.cfg.input_size[1]) + "x" +
                              std::to_string(m.cfg.input_size[2]);
    if (as_json) {
      nlohmann::json row = {{"name", m.name},          {"params_m", params},       {"gflops", gflops},
                            {"input_size", m.cfg.input_size}, {"attention", describe_attention(m.cfg)},
                            {"arch", m.cfg.arch},      {"summary", m.summary}};
      std::printf("%s\n", row.dump().c_str());
    } else {
      std::printf("%-24s %10.2f %9.2f %-11s %-14s %s\n", m.name.c_str(), params, gflops, input.c_str(),
                  describe_attention(m.cfg).c_str(), m.summary.c_str());
    }
  }
  if (!as_json) std::printf("GFLOPs: 2 x multiply-accumulates of one image at the input size shown.\n");
  return 0;
}

}  // namespace

CommandRun define_models(CLI::App& app) {
  auto as_json = std::make_shared<bool>(false);
  app.add_flag("--json", *as_json, "one JSON object per model instead of a table");
  return [as_json] { return list_models(*as_json); };
}

}  // namespace attnvision::pipelines
