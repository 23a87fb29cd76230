// Configs: YAML files (and --set overrides) become a JSON tree that remembers the line each key came
// from, then a schema validates them. This module is the only place yaml-cpp is included; everything
// else sees nlohmann::json.
#pragma once

#include <nlohmann/json.hpp>

#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace attnvision::pipelines {

// A bad config; what() is one line "source:line: problem with 'key'".
class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct ConfigDoc {
  nlohmann::json root = nlohmann::json::object();
  std::string source;                // file path, or "<string>"
  std::map<std::string, int> lines;  // dotted key path -> 1-based line in source ("--set" keys: 0)

  // "file.yaml:12" for keys read from the file, "--set" for overrides, "file.yaml" otherwise.
  std::string where(const std::string& path) const;
  // The mapping under `key` as a document of its own (keys and lines relative to it), for a section
  // that another schema validates, e.g. the `model:` section of a training config.
  ConfigDoc subtree(const std::string& key) const;
};

ConfigDoc load_yaml_file(const std::string& path);
ConfigDoc parse_yaml(const std::string& text, const std::string& source);

// Applies one `key.path=value` override; the value is read as YAML (so 3, 0.5, true, [1, 2], "text").
void apply_set(ConfigDoc& doc, const std::string& assignment);

enum class Kind { kString, kInt, kNumber, kBool, kIntList, kNumberList, kStringList, kObject };

struct KeySpec {
  std::string path;  // dotted, e.g. "model.attn"
  Kind kind;
  bool required = false;
  std::string help;  // one line, shown in errors naming known keys and in docs
};

// Unknown keys, wrong types and missing required keys are errors naming the key and its line.
void validate(const ConfigDoc& doc, const std::vector<KeySpec>& schema);

// The value at a dotted `path` ("optim.lr") of a validated document, or nullptr when it is absent.
const nlohmann::json* find_path(const nlohmann::json& root, const std::string& path);

// Sets `out` from the value at `path` when the document has one, and leaves it alone otherwise.
template <typename T>
void take(const nlohmann::json& root, const std::string& path, T& out) {
  if (const nlohmann::json* v = find_path(root, path)) out = v->get<T>();
}

}  // namespace attnvision::pipelines
