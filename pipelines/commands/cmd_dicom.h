// `attnvision dicom PATH... [--info] [--series] [--check] [--window SPEC] [--png OUT] [--raw OUT.tiff]`
#pragma once

#include "pipelines/commands/command.h"

namespace CLI {
class App;
}

namespace attnvision::pipelines {

CommandRun define_dicom(CLI::App& app);

}  // namespace attnvision::pipelines
