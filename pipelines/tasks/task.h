// The task table: what each task (classify today; detect, caption and saliency next) declares so that the
// rest of the house needs no edit when one arrives. A task is one folder (pipelines/tasks/<name>/) and one row
// in tasks.cpp: the command table derives its subcommand, `batch --tasks NAME` runs it, `eval` and the
// trainer take its metric and loss, and saliency explains its target.
#pragma once

#include "datasets/labeled_images.h"
#include "datasets/samples.h"
#include "models/model_cfg.h"
#include "models/network.h"
#include "models/runtime.h"
#include "models/saliency/saliency.h"
#include "pipelines/commands/command.h"
#include "pipelines/config.h"
#include "pipelines/metrics/metric.h"
#include "pipelines/model_loader.h"

#include <nlohmann/json.hpp>

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace CLI {
class App;
}

namespace attnvision::pipelines {

// A file a task wants written for one input. The batch's writer stage writes it (atomically) at
// "<out>/<task>/<output_name><suffix>" and lists the path, relative to --out, in the output's "files".
struct PendingFile {
  std::string suffix;                                    // e.g. ".gradcam.png"
  std::function<void(const std::string& path)> write;   // writes the complete file at `path`
  // Where the task's JSON also names the file (a JSON pointer into TaskOutput::json, e.g. "/slices/0/map"),
  // set to the listed path once written; empty: listed in "files" only.
  std::string json_pointer = {};
};

// What a task made of one input: its manifest entry (outputs.<task>) and the files to write.
struct TaskOutput {
  nlohmann::json json = nlohmann::json::object();
  std::vector<PendingFile> files;
};

// Puts one frame's `entry` into a sample's output with the sample's width and height: merged into the output
// for a single-frame input, appended to its "frames" list (with "frame") for a multi-frame one. Returns the
// frame's suffix for the files it gets: "" for a single frame, ".frameK" otherwise.
std::string add_frame_entry(TaskOutput& out, const datasets::Sample& sample, int frame, nlohmann::json entry);

// A task ready to run in a batch: its network loaded and its options read.
class TaskRunner {
 public:
  virtual ~TaskRunner() = default;
  virtual const LoadedModel& model() const = 0;
  virtual int64_t batch_size() const = 0;
  virtual const models::ModelCfg& model_cfg() const { return model().cfg; }  // the preprocessing comes from it
  virtual bool needs_display() const { return false; }  // keep the decoded frames (for overlays)
  virtual bool needs_grad() const { return false; }     // a saliency stage runs with autograd
  virtual bool needs_modality() const { return false; } // keep DICOM modality values (HU) to window again
  // Runs the network on `x` (the rows of `batch`: batch.sample_of / frame_of) and returns one output per
  // sample of `batch`, in order (failed samples get an empty output).
  virtual std::vector<TaskOutput> run(const datasets::SampleBatch& batch, const torch::Tensor& x) = 0;
};

// Reinforcement on a sequence task's own score (captioning: self-critical sequence training on CIDEr-D), in
// place of its loss. Made once per run, from the training targets the rewards are measured against.
class SequenceObjective {
 public:
  virtual ~SequenceObjective() = default;
  // One training step's loss for the images `x` (normalised) with their `targets`: draws outputs from `net`
  // in training mode under `precision`, rewards each against the targets, and returns what to back-propagate.
  // `mean_reward` gets the draws' mean reward, for the progress line.
  virtual torch::Tensor loss(models::NetworkImpl& net, const torch::Tensor& x, const torch::Tensor& targets,
                             models::Precision precision, double& mean_reward) = 0;
};

struct TaskRow {
  const char* name;        // "classify": the subcommand, the `batch --tasks` entry, the batch config section
  const char* model_task;  // the ModelCfg task its networks carry ("classification")
  const char* summary;     // one line for --help
  // The keys of its batch config section (relative to the section).
  const std::vector<KeySpec>& (*section_schema)();
  // Loads the network and reads a validated config section (with --set overrides applied).
  std::unique_ptr<TaskRunner> (*make_runner)(const ConfigDoc& section);
  // Declares its subcommand's options on `app` and returns the action.
  CommandRun (*define_command)(CLI::App& app);
  // Training and evaluation data: the set `spec` names (a classifier: fashion-mnist:SPLIT or a class-folder
  // tree; a detector: a scenes folder), as image rows shaped for a network of `cfg`, each with its target.
  datasets::LabeledImages (*load_data)(const std::string& spec, const models::ModelCfg& cfg);
  // Whether the training augmentation must move the targets with the pixels (boxes do; class labels do not).
  bool targets_follow_pixels;
  // A new, empty metric for a network of `cfg` whose classes are called `labels`, and the training loss of a
  // batch (float32 outputs, the targets, the recipe's label smoothing where the task has labels to smooth).
  std::unique_ptr<Metric> (*make_metric)(const models::ModelCfg& cfg, const std::vector<std::string>& labels);
  torch::Tensor (*loss)(const models::ModelCfg& cfg, const models::Forward& f, const torch::Tensor& targets,
                        double label_smoothing);
  // What saliency explains for a task when nothing else is asked (a classifier: each image's top-1 class).
  models::ScoreFn (*default_target)();
  // Whether the network's outputs are sized by the training data's classes (a captioner's vocabulary, built
  // from its training captions) rather than by the recipe's num_classes.
  bool classes_from_data = false;
  // Self-critical training for the task, drawing `samples` outputs per image (`train self_critical_samples`),
  // for a network of `cfg` (its labels set) and the training targets; null where the task has no such reward.
  std::unique_ptr<SequenceObjective> (*make_self_critical)(const models::ModelCfg& cfg,
                                                           const torch::Tensor& train_targets,
                                                           int64_t samples) = nullptr;
};

const std::vector<TaskRow>& task_table();

// The keys every task's batch config section starts with (model, weights, set, labels, random_init, batch,
// precision),
// then the task's own; `shipped` names the task's default model in the help text.
std::vector<KeySpec> section_schema_with_model_keys(const std::string& shipped, std::vector<KeySpec> own);
// Reads those shared keys of a validated section into `choice` and `batch`.
void take_model_keys(const ConfigDoc& section, ModelChoice& choice, int64_t& batch);
// The network a task runs: the task's shipped model when neither a model nor weights is named, and an error
// naming `task` when the network was built for another task (a detector handed to classify, say).
LoadedModel load_task_model(ModelChoice choice, const TaskRow& task);
// By row name ("classify"); std::invalid_argument naming the known tasks otherwise.
const TaskRow& task_named(const std::string& name);
// The row whose networks carry ModelCfg task `model_task` ("classification").
const TaskRow& task_for_model(const std::string& model_task);

}  // namespace attnvision::pipelines
