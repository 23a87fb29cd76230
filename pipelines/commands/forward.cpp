// `attnvision forward`: a model on a stored tensor, outputs saved by name. This is how parity with timm is
// checked from outside: the same weights and input in Python and here, then compare the files.
#include "models/weights/weights.h"
#include "pipelines/commands/cli_options.h"
#include "pipelines/commands/command.h"
#include "pipelines/model_loader.h"

#include <torch/torch.h>

#include <cstdio>
#include <memory>

namespace attnvision::pipelines {

namespace {

struct ForwardOptions {
  ModelChoice model;
  ThreadOptions threads;
  std::string input;
  std::string tensor;
  std::string output;
  bool activations = false;
};

torch::Tensor pick_input(const models::TensorFile& file, const ForwardOptions& o) {
  if (!o.tensor.empty()) {
    auto it = file.tensors.find(o.tensor);
    if (it == file.tensors.end()) throw ConfigError(o.input + ": no tensor named '" + o.tensor + "'");
    return it->second;
  }
  if (auto it = file.tensors.find("input"); it != file.tensors.end()) return it->second;
  if (file.tensors.size() == 1) return file.tensors.begin()->second;
  throw ConfigError(o.input + ": holds " + std::to_string(file.tensors.size()) +
                    " tensors and none is named 'input'; choose one with --tensor NAME");
}

int run_forward(const ForwardOptions& o) {
  LoadedModel m = load_model(o.model);
  apply_thread_options(o.threads, m);
  models::TensorFile in = models::read_weights(o.input);
  torch::Tensor x = pick_input(in, o).to(torch::kFloat32).contiguous();
  if (x.dim() == 3) x = x.unsqueeze(0);
  if (x.dim() != 4 || x.size(1) != m.cfg.in_chans)
    throw ConfigError(o.input + ": input must be N x " + std::to_string(m.cfg.in_chans) + " x H x W, got " +
                      c10::str(x.sizes()));
  torch::InferenceMode guard;
  models::Forward f = m.net->forward(x, models::ForwardRequest::asking(o.activations, /*attention=*/false));
  std::map<std::string, torch::Tensor> out = {{"logits", f.logits}, {"features", f.pre_logits}};
  if (f.tokens.defined()) out["tokens"] = f.tokens;
  else out["last_feature_map"] = f.feature_map;
  for (const auto& [name, t] : f.activations) out["activations." + name] = t.to(torch::kFloat32);  // bf16 ran: widened
  models::write_safetensors(o.output, out, {{"model", m.cfg.name}});
  std::fprintf(stderr, "wrote %zu tensors to %s (logits %s)\n", out.size(), o.output.c_str(),
               c10::str(f.logits.sizes()).c_str());
  return 0;
}

}  // namespace

CommandRun define_forward(CLI::App& app) {
  auto o = std::make_shared<ForwardOptions>();
  add_model_options(app, o->model);
  add_thread_options(app, o->threads);
  app.add_option("--input,-i", o->input, "safetensors file holding the model input (N x C x H x W, normalised)")
      ->required();
  app.add_option("--tensor", o->tensor, "name of the input tensor in --input (default: 'input', or the only one)");
  app.add_option("--output,-o", o->output,
                 "safetensors file to write: logits, features (pooled pre-logits), last_feature_map (ViT: tokens)")
      ->required();
  app.add_flag("--activations", o->activations, "also write every named intermediate activation");
  return [o] { return run_forward(*o); };
}

}  // namespace attnvision::pipelines
