#include "pipelines/version.h"

namespace attnvision::pipelines {
const char* version() { return ATTNVISION_VERSION; }
}  // namespace attnvision::pipelines
