#include "pipelines/config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace attnvision::pipelines {
using nlohmann::json;

namespace {

constexpr std::uintmax_t kMaxConfigBytes = 4 << 20;  // a config is text; anything bigger is a mistake
constexpr int kMaxDepth = 32;

// Plain scalars become the narrowest type YAML 1.2 core schema reads them as; quoted ones stay strings.
json scalar_to_json(const YAML::Node& node) {
  const std::string& s = node.Scalar();
  if (node.Tag() == "!") return s;  // quoted
  if (s == "true" || s == "True" || s == "TRUE") return true;
  if (s == "false" || s == "False" || s == "FALSE") return false;
  if (s == "null" || s == "~" || s.empty()) return nullptr;
  try {
    size_t used = 0;
    long long i = std::stoll(s, &used, 0);
    if (used == s.size()) return i;
  } catch (const std::exception&) {
  }
  try {
    size_t used = 0;
    double d = std::stod(s, &used);
    if (used == s.size()) return d;
  } catch (const std::exception&) {
  }
  return s;
}

json to_json(const YAML::Node& node, const std::string& path, ConfigDoc& doc, int depth) {
  if (depth > kMaxDepth) throw ConfigError(doc.source + ": nesting deeper than " + std::to_string(kMaxDepth));
  if (!path.empty()) doc.lines[path] = node.Mark().line + 1;
  switch (node.Type()) {
    case YAML::NodeType::Map: {
      json obj = json::object();
      for (const auto& kv : node) {
        if (!kv.first.IsScalar())
          throw ConfigError(doc.source + ":" + std::to_string(kv.first.Mark().line + 1) + ": keys must be plain names");
        const std::string key = kv.first.Scalar();
        const std::string child = path.empty() ? key : path + "." + key;
        if (obj.contains(key))
          throw ConfigError(doc.source + ":" + std::to_string(kv.first.Mark().line + 1) + ": duplicate key '" + child + "'");
        doc.lines[child] = kv.first.Mark().line + 1;
        obj[key] = to_json(kv.second, child, doc, depth + 1);
        doc.lines[child] = kv.first.Mark().line + 1;
      }
      return obj;
    }
    case YAML::NodeType::Sequence: {
      json arr = json::array();
      for (const auto& item : node) arr.push_back(to_json(item, "", doc, depth + 1));
      return arr;
    }
    case YAML::NodeType::Scalar:
      return scalar_to_json(node);
    default:
      return nullptr;
  }
}

std::string kind_name(Kind k) {
  switch (k) {
    case Kind::kString: return "a string";
    case Kind::kInt: return "an integer";
    case Kind::kNumber: return "a number";
    case Kind::kBool: return "true or false";
    case Kind::kIntList: return "a list of integers";
    case Kind::kNumberList: return "a list of numbers";
    case Kind::kStringList: return "a list of strings";
    case Kind::kObject: return "a mapping";
  }
  return "?";
}

bool matches(const json& v, Kind k) {
  auto all = [&](auto pred) {
    if (!v.is_array()) return false;
    for (const json& e : v)
      if (!pred(e)) return false;
    return true;
  };
  switch (k) {
    case Kind::kString: return v.is_string();
    case Kind::kInt: return v.is_number_integer();
    case Kind::kNumber: return v.is_number();
    case Kind::kBool: return v.is_boolean();
    case Kind::kIntList: return all([](const json& e) { return e.is_number_integer(); });
    case Kind::kNumberList: return all([](const json& e) { return e.is_number(); });
    case Kind::kStringList: return all([](const json& e) { return e.is_string(); });
    case Kind::kObject: return v.is_object();
  }
  return false;
}

const KeySpec* find_spec(const std::vector<KeySpec>& schema, const std::string& path) {
  for (const KeySpec& s : schema)
    if (s.path == path) return &s;
  return nullptr;
}

void check_object(const ConfigDoc& doc, const json& obj, const std::string& prefix, const std::vector<KeySpec>& schema) {
  for (auto it = obj.begin(); it != obj.end(); ++it) {
    const std::string path = prefix.empty() ? it.key() : prefix + "." + it.key();
    const KeySpec* spec = find_spec(schema, path);
    if (!spec) {
      std::string known;
      for (const KeySpec& s : schema) {
        const bool sibling = s.path.rfind(prefix.empty() ? "" : prefix + ".", 0) == 0 &&
                             s.path.find('.', prefix.empty() ? 0 : prefix.size() + 1) == std::string::npos;
        if (sibling) known += (known.empty() ? "" : ", ") + s.path;
      }
      throw ConfigError(doc.where(path) + ": unknown key '" + path + "' (known: " + known + ")");
    }
    if (!matches(it.value(), spec->kind))
      throw ConfigError(doc.where(path) + ": '" + path + "' must be " + kind_name(spec->kind) + ", not " +
                        it.value().dump());
    // A mapping whose keys the schema does not list is checked by another schema (see ConfigDoc::subtree).
    const bool has_children = std::any_of(schema.begin(), schema.end(),
                                          [&](const KeySpec& s) { return s.path.rfind(path + ".", 0) == 0; });
    if (spec->kind == Kind::kObject && has_children) check_object(doc, it.value(), path, schema);
  }
}

}  // namespace

std::string ConfigDoc::where(const std::string& path) const {
  auto it = lines.find(path);
  if (it == lines.end()) return source;
  return it->second == 0 ? std::string("--set ") + path : source + ":" + std::to_string(it->second);
}

ConfigDoc ConfigDoc::subtree(const std::string& key) const {
  ConfigDoc sub;
  sub.source = source;
  if (root.contains(key)) sub.root = root.at(key);
  const std::string prefix = key + ".";
  for (const auto& [path, line] : lines)
    if (path.rfind(prefix, 0) == 0) sub.lines[path.substr(prefix.size())] = line;
  return sub;
}

ConfigDoc parse_yaml(const std::string& text, const std::string& source) {
  ConfigDoc doc;
  doc.source = source;
  YAML::Node node;
  try {
    node = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    throw ConfigError(source + ":" + std::to_string(e.mark.line + 1) + ": not valid YAML (" + e.msg + ")");
  }
  if (node.IsNull()) return doc;  // an empty file is an empty config
  if (!node.IsMap()) throw ConfigError(source + ": the top level must be a mapping of key: value");
  doc.root = to_json(node, "", doc, 0);
  return doc;
}

ConfigDoc load_yaml_file(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) throw ConfigError(path + ": no such config file");
  if (std::filesystem::file_size(path, ec) > kMaxConfigBytes) throw ConfigError(path + ": too large for a config file");
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  if (!in) throw ConfigError(path + ": cannot read");
  return parse_yaml(ss.str(), path);
}

void apply_set(ConfigDoc& doc, const std::string& assignment) {
  const size_t eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0)
    throw ConfigError("--set " + assignment + ": expected key.path=value");
  const std::string path = assignment.substr(0, eq);
  ConfigDoc value_doc = parse_yaml("v: " + assignment.substr(eq + 1), "--set " + path);
  json* node = &doc.root;
  size_t start = 0;
  while (true) {
    const size_t dot = path.find('.', start);
    const std::string key = path.substr(start, dot - start);
    if (key.empty()) throw ConfigError("--set " + assignment + ": empty key in '" + path + "'");
    if (!node->is_object()) throw ConfigError("--set " + path + ": '" + path.substr(0, start - 1) + "' is not a mapping");
    if (dot == std::string::npos) {
      (*node)[key] = value_doc.root["v"];
      break;
    }
    node = &(*node)[key];
    if (node->is_null()) *node = json::object();
    start = dot + 1;
  }
  doc.lines[path] = 0;
}

const json* find_path(const json& root, const std::string& path) {
  const json* node = &root;
  size_t start = 0;
  while (true) {
    const size_t dot = path.find('.', start);
    const std::string key = path.substr(start, dot - start);
    if (!node->is_object() || !node->contains(key)) return nullptr;
    node = &node->at(key);
    if (dot == std::string::npos) return node;
    start = dot + 1;
  }
}

void validate(const ConfigDoc& doc, const std::vector<KeySpec>& schema) {
  check_object(doc, doc.root, "", schema);
  for (const KeySpec& s : schema) {
    if (s.required && !find_path(doc.root, s.path))
      throw ConfigError(doc.source + ": missing required key '" + s.path + "' (" + s.help + ")");
  }
}

}  // namespace attnvision::pipelines
