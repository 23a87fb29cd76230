// Input discovery for batch runs: files and folders (recursive) to a sorted, de-duplicated list.
#pragma once

#include <string>
#include <vector>

namespace attnvision::vision {

struct InputScan {
  std::vector<std::string> files;   // sorted, deterministic
  std::vector<std::string> missing;  // arguments that name nothing on disk
};

// Files named directly are kept whatever their extension (the reader decides); folders are walked
// recursively and contribute the files `accept` returns true for. Hidden entries are skipped.
InputScan scan_inputs(const std::vector<std::string>& paths, bool (*accept)(const std::string& path));

enum class InputKind { kImage, kDicom };
const char* to_string(InputKind kind);  // "image" | "dicom"
bool has_dicom_extension(const std::string& path);  // .dcm or .dicom, any case

// One input of a batch run.
struct BatchInput {
  std::string path;  // as found: the argument itself, or the argument joined with the path below it
  InputKind kind = InputKind::kImage;
  // The one rule for output names: the input's path below the argument it was found under, prefixed with
  // that argument's own name ("scans/a/b.dcm" found under "scans" -> "scans/a/b.dcm"; a file argument
  // "x/y.png" -> "y.png"). Arguments sharing a name get "~2", "~3", ... in argument order, so two inputs
  // never share an output name. Outputs are "<out>/<task>/<output_name>.<suffix>".
  std::string output_name;
};

struct BatchInputScan {
  std::vector<BatchInput> inputs;    // sorted by path, de-duplicated
  std::vector<std::string> missing;  // arguments that name nothing on disk
};

// Inputs of a batch run. In folders (walked recursively, hidden entries skipped): files with an image
// extension (any case), and DICOM recognised by content or by a .dcm extension (so a corrupt .dcm is still
// an input, of kind dicom). A file named directly is always an input: DICOM when it looks like DICOM or is
// named .dcm, an image otherwise (the reader then says what is wrong with it). A file with an image extension
// is an image.
BatchInputScan scan_batch_inputs(const std::vector<std::string>& paths);

}  // namespace attnvision::vision
