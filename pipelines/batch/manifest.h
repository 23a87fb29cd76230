// The run manifest, DIR/manifest.jsonl: one JSON row per input ({path, kind, status ok|error, outputs, error}),
// appended and flushed per input, so a killed run is resumed by skipping the inputs it already has a row for.
#pragma once

#include <nlohmann/json.hpp>

#include <cstddef>
#include <set>
#include <string>

namespace attnvision::pipelines {

class Manifest {
 public:
  // Opens or creates `path`. A last line without its newline (a run killed mid-write) is cut off; any other
  // line that is not a JSON row with a "path" is an error naming the file and line.
  explicit Manifest(std::string path);
  ~Manifest();
  Manifest(const Manifest&) = delete;
  Manifest& operator=(const Manifest&) = delete;

  // Drops the error rows (rewriting the file atomically), so that their inputs run again.
  void drop_errors();
  bool has(const std::string& input_path) const { return paths_.count(input_path) > 0; }
  // Appends one row with a single write(2) on an O_APPEND descriptor: a kill leaves at most a torn last line.
  void append(const nlohmann::ordered_json& row);

  size_t rows() const { return paths_.size(); }
  size_t errors() const { return errors_; }
  const std::string& path() const { return path_; }

 private:
  void read_rows(const std::string& text);

  std::string path_;
  int fd_ = -1;
  std::set<std::string> paths_;
  size_t errors_ = 0;
  std::string kept_;  // the text of the rows read at open (for drop_errors)
};

}  // namespace attnvision::pipelines
