// Class names: from the model config, a --labels file, or the embedded ImageNet-1k list.
#pragma once

#include <string>
#include <vector>

namespace attnvision::pipelines {

// The 1000 ImageNet-1k class names in index order (configs/labels/imagenet1k.txt, embedded at build time).
const std::vector<std::string>& imagenet_labels();

// One name per line; blank lines at the end ignored. Throws ConfigError naming the file.
std::vector<std::string> read_labels_file(const std::string& path);

}  // namespace attnvision::pipelines
