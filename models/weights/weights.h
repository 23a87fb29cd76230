// Weights in and out. Read: safetensors (mmap, the hubs' format) and torch.save state_dicts (a zip
// with a pickled OrderedDict, which libtorch 1.13's pickle_load cannot read). Write: our own
// checkpoint, one safetensors file whose __metadata__ carries the whole ModelCfg as JSON.
#pragma once

#include "models/model_cfg.h"

#include <torch/nn/module.h>
#include <torch/types.h>

#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace attnvision::models {

// Any problem with a weights file; what() is one line naming the file and the problem.
class WeightsError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct TensorFile {
  std::string path;  // the file it came from, for error messages about its content
  std::map<std::string, torch::Tensor> tensors;
  std::map<std::string, std::string> metadata;  // safetensors __metadata__ (empty for torch.save)
  // Further networks one of our checkpoints carries beside its own (a detector's second stage, see
  // save_checkpoint): each a TensorFile of its own, its tensors and metadata under their own names. They are
  // not in `tensors`, so every reader of the file's own network sees that network alone.
  std::vector<TensorFile> parts;
  std::string part;  // the part's name; empty for the file's own network
};

// The part named `name` among `parts` (a TensorFile's), or nullptr.
const TensorFile* find_part(const std::vector<TensorFile>& parts, const std::string& name);

// Validates the header against the file size before touching tensor data. Tensors share the
// file's memory mapping (no copy) and keep it alive; a tensor whose bytes are not aligned to its
// element size is the one exception and gets its own copy. The mapping is private copy-on-write:
// writing into a tensor never reaches the file and never faults. Truncating the file on disk
// while its tensors are alive is undefined (SIGBUS), as for any mmap reader.
TensorFile read_safetensors(const std::string& path);
// Tensors in name order, header padded with spaces so that 8 + N is a multiple of 8. Written to a
// temporary file in the same folder and renamed, so a killed run leaves no half file.
void write_safetensors(const std::string& path, const std::map<std::string, torch::Tensor>& tensors,
                       const std::map<std::string, std::string>& metadata = {});
// torch.save(model.state_dict()) (zip + pickle protocol 2 or 4), also a checkpoint dict holding the
// state_dict under "state_dict" or "model". Tensors view the file's mapping like read_safetensors.
TensorFile read_torch_state_dict(const std::string& path);
// Dispatches on the file's content (zip magic vs safetensors header), not its extension.
TensorFile read_weights(const std::string& path);

// Copies `tensors` into `module`'s parameters and buffers by timm name. Missing keys, unexpected
// keys, shape and dtype mismatches are all collected and thrown as one WeightsError naming them;
// nothing is copied unless everything matches. BatchNorm's num_batches_tracked may be present or
// absent on either side. Floating tensors are converted to the module's dtype (F16/BF16/F64 -> F32).
// With ExtraKeys::kIgnore the file may hold more than the module (a whole network's checkpoint loaded into
// its backbone): the extra tensors are passed over, every other check stays. With MissingKeys::kKeep the
// module may hold more than the file (a model that adds parts to the one the file was trained as): those
// tensors keep their values, and their names are returned.
enum class ExtraKeys { kError, kIgnore };
enum class MissingKeys { kError, kKeep };
std::vector<std::string> load_state_dict(torch::nn::Module& module, const std::map<std::string, torch::Tensor>& tensors,
                                         const std::string& source, ExtraKeys extra = ExtraKeys::kError,
                                         MissingKeys missing_keys = MissingKeys::kError);

// The metadata key that holds the ModelCfg JSON in our checkpoints.
inline constexpr const char* kModelCfgMetadataKey = "attnvision.model_cfg";
// The metadata key that lists a checkpoint's parts, comma-separated.
inline constexpr const char* kPartsMetadataKey = "attnvision.parts";

// A further network to store in a checkpoint: its tensors go in as "NAME.<tensor>", its config as metadata
// "NAME.attnvision.model_cfg", and NAME joins the kPartsMetadataKey list; readers split them back out into
// TensorFile::parts.
struct CheckpointPart {
  std::string name;  // letters, digits and '_'
  torch::nn::Module* module;
  ModelCfg cfg;
};

// Our checkpoint: state_dict (parameters and buffers) + ModelCfg JSON in
// __metadata__["attnvision.model_cfg"] and "format": "attnvision". `storage` is the dtype floating
// tensors are written in (kFloat32, kFloat16 or kBFloat16): half storage halves a shipped file, and
// load_state_dict widens it back to the module's dtype. kChar stores each weight matrix (2 or more dimensions,
// 1024 or more values) as int8 rows with one float32 scale per row (largest magnitude / 127; the tensor
// `NAME.int8_scale`), a quarter of float32, and the rest as float16; read_safetensors widens such a file back
// to float32 rows, so every reader sees plain float tensors.
// `parts` are stored beside the network, each in the same `storage`.
void save_checkpoint(const std::string& path, torch::nn::Module& module, const ModelCfg& cfg,
                     torch::ScalarType storage = torch::kFloat32, const std::vector<CheckpointPart>& parts = {});
// Reads the ModelCfg from a checkpoint's metadata into `cfg` (fields absent from the JSON keep cfg's
// values) and returns true; returns false, leaving cfg alone, when the file carries none. Bad JSON or
// an invalid config is a WeightsError naming file.path.
bool read_checkpoint_cfg(const TensorFile& file, ModelCfg& cfg);

}  // namespace attnvision::models
