// The one way attnvision writes a file: produce it whole under a temporary name in the same folder, fsync it,
// rename it over the target (and fsync the folder). A reader sees the old file or the complete new one; a
// killed run leaves at most a temporary, which remove_temporaries() finds by its name and deletes.
// Plain C++17 and POSIX (no OpenCV, no torch), so every layer writes through it.
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace attnvision::vision {

// Writes `path` through `produce`, which gets the temporary path to write the complete file to (it keeps the
// target's extension, so encoders that pick a format by name still work). Throws std::runtime_error naming
// `path` when producing, syncing or renaming fails; the temporary is removed then.
void write_file_atomically(const std::string& path, const std::function<void(const std::string& tmp)>& produce);

// The same for bytes in memory: the pieces are written one after another.
void write_bytes_atomically(const std::string& path, const std::vector<std::pair<const void*, size_t>>& pieces);
void write_text_atomically(const std::string& path, const std::string& text);

// True for the names write_file_atomically gives its temporaries (hidden: ".<name>.attnvision-tmp-...").
bool is_temporary_name(const std::string& path);

// Deletes every temporary below `folder` (recursively) that a killed run left behind; returns how many.
size_t remove_temporaries(const std::string& folder);

}  // namespace attnvision::vision
