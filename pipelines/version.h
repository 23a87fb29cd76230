#pragma once

namespace attnvision::pipelines {
const char* version();
}
