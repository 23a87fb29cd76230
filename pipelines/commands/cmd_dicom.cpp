// The `dicom` subcommand: DICOM files or PACS export folders -> attributes (JSON lines), series, windowed
// PNGs, float TIFFs of the modality values. One bad file is one line on stderr; the batch goes on.
#include "pipelines/commands/cmd_dicom.h"

#include "vision/dicom.h"
#include "vision/image_write.h"
#include "vision/dicom_series.h"
#include "vision/inputs.h"

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <filesystem>
#include <iostream>
#include <memory>

namespace attnvision::pipelines {
namespace {
namespace fs = std::filesystem;
using nlohmann::ordered_json;
using vision::DicomError;

struct DicomOptions {
  std::vector<std::string> paths;
  bool info = false;
  bool series = false;
  bool check = false;
  std::string window = "auto";
  std::string png;
  std::string raw;
};

struct Input {
  std::string path;
  std::string name;  // output base name: the file's stem, or its path inside the folder given, flattened
  bool from_folder = false;
};

bool accept_any(const std::string&) { return true; }

std::string flattened(const fs::path& relative) {
  std::string name = relative.parent_path().empty() ? "" : relative.parent_path().generic_string() + "_";
  name += relative.stem().string().empty() ? relative.filename().string() : relative.stem().string();
  for (char& c : name)
    if (c == '/') c = '_';
  return name;
}

// Files named directly, and every file under folders named; missing paths are reported (exit 1).
std::vector<Input> collect(const std::vector<std::string>& args, int& rc) {
  std::vector<Input> inputs;
  for (const std::string& arg : args) {
    std::error_code ec;
    if (fs::is_directory(arg, ec)) {
      for (const std::string& file : vision::scan_inputs({arg}, accept_any).files)
        inputs.push_back({file, flattened(fs::relative(file, arg, ec)), true});
    } else if (fs::exists(arg, ec)) {
      inputs.push_back({arg, fs::path(arg).stem().string(), false});
    } else {
      std::cerr << arg << ": no such file or directory\n";
      rc = 1;
    }
  }
  return inputs;
}

ordered_json window_json(const vision::Window& w) {
  static const char* const functions[] = {"LINEAR", "LINEAR_EXACT", "SIGMOID"};
  return {{"center", w.center},
          {"width", w.width},
          {"function", functions[int(w.function)]},
          {"explanation", w.name}};
}

template <typename T>
ordered_json optional_json(const std::optional<T>& v) {
  return v ? ordered_json(*v) : ordered_json(nullptr);
}

ordered_json info_json(const vision::DicomInfo& info) {
  ordered_json j;
  j["path"] = info.path;
  j["image"] = info.has_pixel_data;
  j["sop_class"] = info.sop_class_name.empty() ? info.sop_class_uid : info.sop_class_name;
  j["modality"] = info.modality;
  j["transfer_syntax"] = {{"uid", info.transfer_syntax_uid}, {"name", info.transfer_syntax_name}};
  j["study_instance_uid"] = info.study_instance_uid;
  j["series_instance_uid"] = info.series_instance_uid;
  j["sop_instance_uid"] = info.sop_instance_uid;
  if (!info.has_pixel_data) return j;
  j["rows"] = info.rows;
  j["columns"] = info.columns;
  j["frames"] = info.frames;
  j["samples_per_pixel"] = info.samples_per_pixel;
  j["photometric"] = info.photometric;
  j["bits_allocated"] = info.bits_allocated;
  j["bits_stored"] = info.bits_stored;
  j["signed"] = info.is_signed;
  j["lossy"] = info.lossy;
  j["spacing"] =
      info.pixel_spacing ? ordered_json{(*info.pixel_spacing)[0], (*info.pixel_spacing)[1]} : nullptr;
  j["slice_thickness"] = optional_json(info.slice_thickness);
  j["position"] =
      info.image_positions.empty() ? ordered_json(nullptr) : ordered_json(info.image_positions.front());
  j["orientation"] = info.image_orientation ? ordered_json(*info.image_orientation) : ordered_json(nullptr);
  j["rescale"] = {{"slope", info.rescale_slope},
                  {"intercept", info.rescale_intercept},
                  {"type", info.rescale_type},
                  {"per_frame", !info.frame_rescale.empty()}};
  j["modality_lut"] =
      info.modality_lut ? ordered_json(info.modality_lut->data.size()) : ordered_json(nullptr);
  ordered_json windows = ordered_json::array();
  for (const vision::Window& w : info.windows) windows.push_back(window_json(w));
  j["windows"] = windows;
  ordered_json luts = ordered_json::array();
  for (const vision::DicomLut& lut : info.voi_luts)
    luts.push_back({{"entries", lut.data.size()},
                    {"first_mapped", lut.first_mapped},
                    {"bits", lut.bits},
                    {"explanation", lut.explanation}});
  j["voi_luts"] = luts;
  return j;
}

ordered_json series_json(const vision::DicomSeries& s) {
  ordered_json paths = ordered_json::array();
  for (const vision::DicomInfo& info : s.instances) paths.push_back(info.path);
  return {{"series_instance_uid", s.series_instance_uid},
          {"study_instance_uid", s.study_instance_uid},
          {"modality", s.modality},
          {"description", s.description},
          {"series_number", optional_json(s.series_number)},
          {"instances", s.instances.size()},
          {"ordering", s.ordering},
          {"warnings", s.warnings},
          {"files", paths}};
}

// Where the outputs of `input` go: OUT itself for a single input file when OUT has the extension and is
// not a folder; else OUT/<name><ext>. Multi-frame outputs of a PNG get _0001, _0002, ... appended.
class OutputPlan {
 public:
  OutputPlan(std::string out, std::vector<std::string> extensions, size_t inputs)
      : out_(std::move(out)), extensions_(std::move(extensions)) {
    std::error_code ec;
    const std::string ext = fs::path(out_).extension().string();
    single_ = inputs == 1 && !fs::is_directory(out_, ec) &&
              std::find(extensions_.begin(), extensions_.end(), ext) != extensions_.end();
  }
  std::string path(const Input& input, int frame, int frames) const {
    fs::path base = single_ ? fs::path(out_) : fs::path(out_) / (input.name + extensions_.front());
    if (frames > 1 && frame >= 0) {
      char suffix[16];
      std::snprintf(suffix, sizeof suffix, "_%04d", frame + 1);
      base = base.parent_path() / (base.stem().string() + suffix + base.extension().string());
    }
    return base.string();
  }
  void prepare() const {
    const fs::path folder = single_ ? fs::path(out_).parent_path() : fs::path(out_);
    if (!folder.empty()) fs::create_directories(folder);
  }

 private:
  std::string out_;
  std::vector<std::string> extensions_;
  bool single_ = false;
};

void process(const Input& input, const DicomOptions& o, const OutputPlan* png, const OutputPlan* raw) {
  const vision::DicomFrames image = vision::read_dicom(input.path);
  if (png) {
    const vision::Window window = vision::resolve_window(o.window, image);
    const std::vector<cv::Mat> shown = vision::window_to_8bit(image, window);
    png->prepare();
    for (size_t f = 0; f < shown.size(); ++f)
      vision::write_png(png->path(input, int(f), int(shown.size())), shown[f]);
  }
  if (raw) {
    raw->prepare();
    vision::write_float_tiff(raw->path(input, -1, 1), image.frames);
  }
}

int run_dicom(const DicomOptions& o) {
  int rc = 0;
  std::vector<Input> inputs;
  for (Input& input : collect(o.paths, rc)) {
    if (input.from_folder && !vision::looks_like_dicom(input.path)) {
      // Folders from a PACS hold viewers, READMEs and indexes too: note them, do not fail on them.
      std::cerr << input.path << ": skipped, not a DICOM file\n";
      continue;
    }
    inputs.push_back(std::move(input));
  }
  const bool info = o.info || (!o.series && !o.check && o.png.empty() && o.raw.empty());
  if (o.series) {
    std::vector<std::string> files;
    for (const Input& input : inputs) files.push_back(input.path);
    const vision::SeriesScan scan = vision::group_series(files);
    for (const vision::DicomSeries& s : scan.series) std::cout << series_json(s).dump() << "\n";
    for (const auto& skipped : scan.skipped) {
      std::cerr << skipped.path << ": " << (skipped.error ? "" : "skipped, ") << skipped.reason << "\n";
      rc = skipped.error ? 1 : rc;
    }
  }
  const std::optional<OutputPlan> png =
      o.png.empty() ? std::nullopt : std::optional<OutputPlan>(OutputPlan(o.png, {".png"}, inputs.size()));
  const std::optional<OutputPlan> raw =
      o.raw.empty() ? std::nullopt
                    : std::optional<OutputPlan>(OutputPlan(o.raw, {".tiff", ".tif"}, inputs.size()));
  for (const Input& input : inputs) {
    try {
      if (info) std::cout << info_json(vision::read_dicom_info(input.path)).dump() << "\n";
      if (png || raw) {
        process(input, o, png ? &*png : nullptr, raw ? &*raw : nullptr);
      } else if (o.check) {
        vision::read_dicom(input.path);  // decode every frame; a failure is reported below
      }
    } catch (const DicomError& e) {
      if (e.kind() == DicomError::Kind::not_image) {
        const std::string message = e.what();
        std::cerr << input.path << ": skipped, "
                  << message.substr(std::min(message.size(), input.path.size() + 2)) << "\n";
        continue;
      }
      std::cerr << e.what() << "\n";
      rc = 1;
    } catch (const std::exception& e) {
      const std::string message = e.what();
      std::cerr << (message.rfind(input.path, 0) == 0 ? message : input.path + ": " + message) << "\n";
      rc = 1;
    }
  }
  std::cout.flush();
  return rc;
}

}  // namespace

CommandRun define_dicom(CLI::App& app) {
  auto o = std::make_shared<DicomOptions>();
  app.description(
      "Read DICOM files or folders: print attributes as JSON lines, group series, write windowed "
      "PNGs or modality values as float TIFF");
  app.add_option("paths", o->paths, "DICOM files or folders (searched recursively)")->required();
  app.add_flag("--info", o->info,
               "print one JSON object per file (the default when no other output is asked)");
  app.add_flag("--series", o->series, "group the files into series and print one JSON object per series");
  app.add_flag("--check", o->check, "decode every frame of every file and report only the failures");
  app.add_option(
         "--window", o->window,
         "auto | file[:N] | voi-lut[:N] | minmax | percentile[:LO,HI] | lung | mediastinum | bone | brain "
         "| abdomen | C,W")
      ->capture_default_str();
  app.add_option(
      "--png", o->png,
      "write the windowed image (8-bit, MONOCHROME1 inverted): OUT.png for one input, else a folder; "
      "frames of a multi-frame file get _0001, _0002, ...");
  app.add_option(
      "--raw", o->raw,
      "write the modality values as 32-bit float TIFF, a page per frame (colour: 3 samples per pixel): "
      "OUT.tiff for one input, else a folder");
  return [o] { return run_dicom(*o); };
}

}  // namespace attnvision::pipelines
