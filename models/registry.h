// The model registry: one explicit list of names -> default ModelCfg, and one table of architectures
// -> builder. Variants are data: `seresnet50` is ResNet-50 with attn = "se". No self-registering
// globals (a static library would drop them).
#pragma once

#include "models/model_cfg.h"
#include "models/network.h"

#include <string>
#include <vector>

namespace attnvision::models {

struct RegisteredModel {
  std::string name;
  std::string summary;  // one line for `attnvision models`
  ModelCfg cfg;
};

const std::vector<RegisteredModel>& registered_models();
// Throws std::invalid_argument listing close names when `name` is not registered.
ModelCfg default_cfg(const std::string& name);

// How build_model initialises the parameters. kNone is for a caller that overwrites every parameter and
// buffer next (a checkpoint through load_state_dict): it skips the backbone family's own initialisation and
// keeps only torch's per-layer defaults (ResNet-50's kaiming-normal pass alone takes about 0.08 s here).
enum class Initialisation { kRandom, kNone };

// Builds a network: the architecture's backbone and the head cfg.task asks for (models/heads/), untrained
// with timm's initialisation where it matters (kRandom). Throws std::invalid_argument for an invalid cfg.
Network build_model(const ModelCfg& cfg, Initialisation init = Initialisation::kRandom);

// Parameter count and multiply-accumulate based FLOPs (2 per MAC) of one forward (backbone and head) at
// cfg.input_size.
int64_t count_parameters(torch::nn::Module& model);
double forward_gflops(const ModelCfg& cfg);

}  // namespace attnvision::models
