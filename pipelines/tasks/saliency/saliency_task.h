// Medical anomaly saliency as a task: per CT slice (per frame of a multi-frame object), the anomaly model's
// probability of a lesion, a saliency map on the source slice's grid, and the regions it lights, measured in
// millimetres and patient coordinates; written as a raw float TIFF map, an overlay PNG and a DICOM Secondary
// Capture in the scan's own study. Shared by the task row (batch) and the `saliency` subcommand.
#pragma once

#include "pipelines/report/inspection_report.h"
#include "pipelines/tasks/task.h"

#include <cstdint>
#include <string>

namespace attnvision::pipelines {

struct SaliencyTaskOptions {
  ModelChoice model;
  int64_t batch = 8;
  // Saliency methods, each giving its own map, overlay and DICOM per slice; empty: the model's default (the
  // method measured best among those under 2 s per slice, kept in its config).
  std::vector<std::string> methods;
  bool flip_test = false;   // explain each slice and its mirror image, averaged (SaliencyReading::flip_test)
  bool write_files = true;  // the raw map (float32 TIFF), the overlay (PNG) and the DICOM Secondary Capture
  // When set, every slice is also added to this report (its windows: report_windows).
  InspectionReport* report = nullptr;
  std::vector<std::string> report_windows{"abdomen", "lung", "bone"};
};

std::unique_ptr<TaskRunner> make_saliency_runner(const SaliencyTaskOptions& options);

// The display window the overlays use when the user names none: soft tissue, where most lesions are seen.
inline constexpr const char* kDefaultSaliencyWindow = "abdomen";

}  // namespace attnvision::pipelines
