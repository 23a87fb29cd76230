#include "pipelines/train/trainer.h"

#include "datasets/augment.h"
#include "datasets/labeled_images.h"
#include "datasets/sampler.h"
#include "models/registry.h"
#include "models/runtime.h"
#include "models/weights/weights.h"
#include "pipelines/train/distributed.h"
#include "datasets/preprocess.h"
#include "pipelines/metrics/evaluation.h"
#include "pipelines/tasks/detect/crop_classifier.h"
#include "pipelines/tasks/task.h"
#include "pipelines/report/progress.h"
#include "vision/files/atomic_write.h"
#include "vision/image_write.h"
#include "vision/plot.h"

#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>

namespace attnvision::pipelines {
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

struct EpochRow {
  int64_t epoch = 0;  // 1-based
  double lr = 0, train_loss = 0, train_acc = 0, val_loss = NAN, val_acc = NAN, images_per_s = 0, seconds = 0;
};

json to_json(const EpochRow& r) {
  auto num = [](double v) { return std::isnan(v) ? json(nullptr) : json(v); };
  return {{"epoch", r.epoch}, {"lr", r.lr}, {"train_loss", r.train_loss}, {"train_acc", r.train_acc},
          {"val_loss", num(r.val_loss)}, {"val_acc", num(r.val_acc)}, {"images_per_s", r.images_per_s},
          {"seconds", r.seconds}};
}

EpochRow row_from_json(const json& j) {
  auto num = [&](const char* k) { return j.at(k).is_null() ? NAN : j.at(k).get<double>(); };
  EpochRow r;
  r.epoch = j.at("epoch").get<int64_t>();
  r.lr = num("lr"), r.train_loss = num("train_loss"), r.train_acc = num("train_acc");
  r.val_loss = num("val_loss"), r.val_acc = num("val_acc"), r.images_per_s = num("images_per_s");
  r.seconds = num("seconds");
  return r;
}

// Weight decay only where it regularises: conv and linear weights. Norm scales and biases (1-D) are exempt.
template <typename Options, typename Optim>
std::unique_ptr<torch::optim::Optimizer> with_decay_groups(torch::nn::Module& m, const Options& opts) {
  std::vector<torch::Tensor> decay, no_decay;
  for (const torch::Tensor& p : m.parameters())
    if (p.requires_grad()) (p.dim() <= 1 ? no_decay : decay).push_back(p);  // a frozen part is not optimised
  Options exempt = opts;
  exempt.weight_decay(0.0);
  std::vector<torch::optim::OptimizerParamGroup> groups;
  if (!decay.empty()) groups.emplace_back(decay, std::make_unique<Options>(opts));
  if (!no_decay.empty()) groups.emplace_back(no_decay, std::make_unique<Options>(exempt));
  return std::make_unique<Optim>(groups, opts);
}

std::unique_ptr<torch::optim::Optimizer> make_optimizer(const OptimCfg& o, torch::nn::Module& m) {
  if (o.name == "adamw") {
    const auto opts = torch::optim::AdamWOptions(o.lr).betas({o.beta1, o.beta2}).eps(o.eps).weight_decay(o.weight_decay);
    return with_decay_groups<torch::optim::AdamWOptions, torch::optim::AdamW>(m, opts);
  }
  const auto opts =
      torch::optim::SGDOptions(o.lr).momentum(o.momentum).nesterov(o.nesterov).weight_decay(o.weight_decay);
  return with_decay_groups<torch::optim::SGDOptions, torch::optim::SGD>(m, opts);
}


void write_log_csv(const fs::path& path, const std::vector<EpochRow>& rows) {
  std::string csv = "epoch,lr,train_loss,train_acc,val_loss,val_acc,images_per_s,epoch_seconds\n";
  char line[256];
  for (const EpochRow& r : rows) {
    std::snprintf(line, sizeof(line), "%lld,%.6g,%.6f,%.6f,%s,%s,%.1f,%.2f\n", static_cast<long long>(r.epoch), r.lr,
                  r.train_loss, r.train_acc, std::isnan(r.val_loss) ? "" : std::to_string(r.val_loss).c_str(),
                  std::isnan(r.val_acc) ? "" : std::to_string(r.val_acc).c_str(), r.images_per_s, r.seconds);
    csv += line;
  }
  vision::write_text_atomically(path, csv);
}

void write_curves_png(const fs::path& path, const std::vector<EpochRow>& rows) {
  vision::Series tl{"train", {}, {}}, vl{"val", {}, {}}, ta{"train", {}, {}}, va{"val", {}, {}};
  for (const EpochRow& r : rows) {
    const double e = static_cast<double>(r.epoch);
    tl.x.push_back(e), tl.y.push_back(r.train_loss), vl.x.push_back(e), vl.y.push_back(r.val_loss);
    ta.x.push_back(e), ta.y.push_back(100 * r.train_acc), va.x.push_back(e), va.y.push_back(100 * r.val_acc);
  }
  vision::write_png(path.string(), vision::plot_panels({{"loss", {tl, vl}}, {"accuracy (%)", {ta, va}}}));
}

// What resume needs besides the weights (last.safetensors): optimiser state, epochs done, the best
// validation accuracy so far, the curves, and the recipe it was started with.
struct RunState {
  int64_t epochs_done = 0;
  double best_val = -1;
  std::vector<EpochRow> history;
  std::string recipe;  // to_json(cfg).dump(): a resume must continue the same run
};

void save_state(const fs::path& path, torch::optim::Optimizer& opt, const RunState& s) {
  torch::serialize::OutputArchive a, opt_archive;
  opt.save(opt_archive);
  a.write("optimizer", opt_archive);
  a.write("epochs_done", c10::IValue(s.epochs_done));
  a.write("best_val", c10::IValue(s.best_val));
  json h = json::array();
  for (const EpochRow& r : s.history) h.push_back(to_json(r));
  a.write("history", c10::IValue(h.dump()));
  a.write("recipe", c10::IValue(s.recipe));
  vision::write_file_atomically(path.string(), [&](const std::string& tmp) { a.save_to(tmp); });
}

RunState load_state(const fs::path& path, torch::optim::Optimizer& opt) {
  if (!fs::exists(path)) throw std::runtime_error(path.string() + ": no training state to resume from");
  RunState s;
  try {
    torch::serialize::InputArchive a, opt_archive;
    a.load_from(path.string());
    a.read("optimizer", opt_archive);
    opt.load(opt_archive);
    c10::IValue v;
    a.read("epochs_done", v), s.epochs_done = v.toInt();
    a.read("best_val", v), s.best_val = v.toDouble();
    a.read("history", v);
    for (const json& r : json::parse(v.toStringRef())) s.history.push_back(row_from_json(r));
    a.read("recipe", v), s.recipe = v.toStringRef();
  } catch (const c10::Error& e) {
    throw std::runtime_error(path.string() + ": not a readable training state (" + e.msg().substr(0, e.msg().find('\n')) + ")");
  }
  return s;
}

// The first top-level recipe key whose value differs, for a resume refused because the recipe changed.
std::string first_difference(const json& a, const json& b) {
  for (auto it = a.begin(); it != a.end(); ++it)
    if (!b.contains(it.key()) || b.at(it.key()) != it.value()) return it.key();
  return "?";
}

struct Data {
  datasets::LabeledImages train, val, test;
};

// Also names the model's classes after the training data's when the recipe does not (and sizes its outputs by
// them for a task whose classes come from the data: a captioner's vocabulary).
Data load_data(TrainCfg& cfg, const TaskRow& task) {
  Data d;
  std::tie(d.train, d.val) = datasets::split_holdout(task.load_data(cfg.train_data, cfg.model), cfg.val_count, cfg.seed);
  if (cfg.limit > 0) d.train = datasets::limit(d.train, cfg.limit);
  if (cfg.model.labels.empty()) cfg.model.labels = d.train.classes;
  if (task.classes_from_data) cfg.model.num_classes = static_cast<int64_t>(cfg.model.labels.size());
  // The test set speaks the training set's language (a captioner's vocabulary comes from its training data).
  if (!cfg.test_data.empty()) d.test = task.load_data(cfg.test_data, cfg.model);
  check_data_fits(d.train, cfg.model);
  if (d.test.images.defined()) check_data_fits(d.test, cfg.model);
  if (d.train.size() < cfg.batch_size)
    throw std::invalid_argument(cfg.train_data + ": " + std::to_string(d.train.size()) + " training images, fewer than " +
                                "one batch of " + std::to_string(cfg.batch_size));
  return d;
}

// Whether early stopping ends the run after the epochs in `history`: `patience` epochs have passed since the
// best validation score. Decided from the history alone, so a resumed run stops where it would have.
bool patience_exhausted(const std::vector<EpochRow>& history, int64_t patience) {
  if (patience <= 0 || history.empty()) return false;
  size_t best = 0;
  for (size_t i = 1; i < history.size(); ++i)
    if (history[i].val_acc > history[best].val_acc) best = i;
  return static_cast<int64_t>(history.size() - 1 - best) >= patience;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Tensor names grouped by their first component, with counts: "det_embed (4), detector (160)".
std::string tensor_groups(const std::vector<std::string>& names) {
  std::map<std::string, int> counts;
  for (const std::string& name : names) ++counts[name.substr(0, name.find('.'))];
  std::string out;
  for (const auto& [group, count] : counts) out += (out.empty() ? "" : ", ") + group + " (" + std::to_string(count) + ")";
  return out;
}

// init_detector's config into `out`, when its file carries one (a timm-style file of bare tensors does not);
// a checkpoint of another task is refused, naming the file.
bool read_detector_cfg(const std::string& path, const models::TensorFile& file, models::ModelCfg& out) {
  if (!models::read_checkpoint_cfg(file, out)) return false;
  if (out.task != "detection")
    throw std::invalid_argument(path + ": init_detector takes a detector's checkpoint, not a '" + out.task +
                                "' model's");
  return true;
}

// A captioner's embedded detector (models/heads/transformer_decoder.cpp, the module `detector`) and any second
// stage of it (the module `second_stage`) from init_detector; a model with one that neither init nor
// init_detector fills is refused, since its detector never trains and would stay random. `fresh`: the tensors
// `init` did not hold.
void load_embedded_detector(const TrainCfg& cfg, models::NetworkImpl& net, const std::vector<std::string>& fresh) {
  std::shared_ptr<torch::nn::Module> detector;
  for (const auto& child : net.named_children())
    if (child.key() == "detector") detector = child.value();
  if (cfg.init_detector.empty()) {
    const bool filled = !cfg.init.empty() && std::none_of(fresh.begin(), fresh.end(), [](const std::string& name) {
      return name.rfind("detector.", 0) == 0 || name.rfind("second_stage.", 0) == 0;
    });
    if (detector && !filled)
      throw std::invalid_argument(cfg.source + ": the model embeds a detector (model.detector_classes), which never "
                                  "trains: give its weights with init_detector (a detector checkpoint)");
    return;
  }
  if (!detector)
    throw std::invalid_argument(cfg.source + ": init_detector needs a captioner that embeds a detector "
                                "(model.detector_classes > 0)");
  const models::TensorFile file = models::read_weights(cfg.init_detector);
  models::ModelCfg file_cfg;
  if (read_detector_cfg(cfg.init_detector, file, file_cfg)) {
    // The detector reads the captioner's input: it must have been trained on the same preprocessing.
    if (file_cfg.mean != cfg.model.mean || file_cfg.std != cfg.model.std || file_cfg.input_size != cfg.model.input_size)
      throw std::invalid_argument(cfg.init_detector + ": the detector was trained on another input (input_size, mean "
                                  "or std) than the captioner's");
  }
  models::load_state_dict(*detector, file.tensors, cfg.init_detector);
  if (!cfg.model.caption.detector_second_stage) return;
  std::shared_ptr<torch::nn::Module> stage;
  for (const auto& child : net.named_children())
    if (child.key() == "second_stage") stage = child.value();
  // fill_second_stage_model found the part (or init's copy, when init_detector is absent, returned above).
  const models::TensorFile* part = models::find_part(file.parts, kSecondStagePart);
  if (!stage || !part) throw std::logic_error("load_embedded_detector: no second stage to load");
  models::load_state_dict(*stage, part->tensors, part->path);
}

// A captioner reading its detector's second stage (model.detector_second_stage) embeds that crop classifier,
// whose config travels with its weights: from init when that is a captioner embedding one already, else from
// init_detector's part "second_stage" (as `attnvision convert --second-stage` stores it).
void fill_second_stage_model(TrainCfg& cfg) {
  models::CaptionArgs& c = cfg.model.caption;
  if (!c.detector_second_stage || !c.second_stage_model.empty()) return;
  if (!cfg.init.empty() && cfg.init_detector.empty()) {
    models::ModelCfg init_cfg;
    if (models::read_checkpoint_cfg(models::read_weights(cfg.init), init_cfg))
      c.second_stage_model = init_cfg.caption.second_stage_model;
    if (c.second_stage_model.empty())
      throw std::invalid_argument(cfg.init + ": embeds no second stage for model.detector_second_stage; give "
                                  "init_detector (a detector checkpoint carrying one) as well");
  } else {
    if (cfg.init_detector.empty())
      throw std::invalid_argument(cfg.source + ": model.detector_second_stage reads the second stage of "
                                  "init_detector (a detector checkpoint carrying one); none is given");
    const models::TensorFile file = models::read_weights(cfg.init_detector);
    models::ModelCfg detector_cfg;  // read for its check: a file of another task is named as that first
    read_detector_cfg(cfg.init_detector, file, detector_cfg);
    const models::TensorFile* part = models::find_part(file.parts, kSecondStagePart);
    models::ModelCfg part_cfg;
    if (!part || !models::read_checkpoint_cfg(*part, part_cfg))
      throw std::invalid_argument(cfg.init_detector + ": carries no second stage (attnvision convert "
                                  "--second-stage stores one), which model.detector_second_stage reads");
    c.second_stage_model = models::to_json(part_cfg).dump();
  }
  cfg.model.validate();
}

}  // namespace

std::string with_todays_defaults(const std::string& stored) {
  json recipe = json::parse(stored);
  if (recipe.contains("augment") && recipe["augment"].is_object()) {
    if (!recipe["augment"].contains("crop_size")) recipe["augment"]["crop_size"] = 0;
    if (!recipe["augment"].contains("foreground_crops")) recipe["augment"]["foreground_crops"] = 0.0;
  }
  if (recipe.contains("model")) {
    try {
      recipe["model"] = models::to_json(models::cfg_from_json(recipe["model"]));
    } catch (const std::exception&) {
      // left as stored: the comparison names the section
    }
  }
  return recipe.dump();
}

double scheduled_lr(const TrainCfg& cfg, int64_t step, int64_t steps_per_epoch) {
  const double total = static_cast<double>(cfg.schedule.epochs * steps_per_epoch);
  const double warmup = std::min(total, cfg.schedule.warmup_epochs * steps_per_epoch);
  const double t = static_cast<double>(step);
  if (t < warmup) return cfg.schedule.warmup_lr + (cfg.optim.lr - cfg.schedule.warmup_lr) * t / warmup;
  const double progress = total > warmup ? (t - warmup) / (total - warmup) : 1.0;
  return cfg.schedule.min_lr + 0.5 * (cfg.optim.lr - cfg.schedule.min_lr) * (1.0 + std::cos(M_PI * progress));
}

TrainSummary train(const TrainCfg& cfg_in, const TrainOptions& options, DataParallel* dp) {
  TrainCfg cfg = cfg_in;
  const int rank = dp ? dp->rank() : 0, world = dp ? dp->world() : 1;
  const bool writer = rank == 0;  // only rank 0 writes files and prints
  models::ThreadPlan plan = models::default_threads(cfg.model.arch.c_str(), /*training=*/true, cfg.precision);
  if (options.core_share > 0) {  // the plan's shape, within this worker's share of the cores
    plan.torch_threads = std::min(plan.torch_threads, options.core_share);
    plan.blas_threads = std::min(plan.blas_threads, options.core_share);
  }
  if (options.threads.torch_threads > 0) plan.torch_threads = options.threads.torch_threads;
  if (options.threads.blas_threads > 0) plan.blas_threads = options.threads.blas_threads;
  models::apply_threads(plan);

  const TaskRow& task = task_for_model(cfg.model.task);  // supplies the data, the loss and the metric
  Data data = load_data(cfg, task);
  // A COCO set's own category ids travel with the checkpoint, so its detections name categories as the data did.
  if (cfg.model.detection.category_ids.empty()) cfg.model.detection.category_ids = data.train.category_ids;
  fill_second_stage_model(cfg);
  torch::manual_seed(cfg.seed);
  models::Network net = models::build_model(cfg.model);
  std::unique_ptr<torch::optim::Optimizer> opt = make_optimizer(cfg.optim, *net);
  std::unique_ptr<SequenceObjective> self_critical;
  if (cfg.self_critical_samples > 0) {
    if (!task.make_self_critical)
      throw std::invalid_argument(cfg.source + ": 'self_critical_samples' needs a task with a sequence reward "
                                  "(captioning); '" + cfg.model.task + "' has none");
    self_critical = task.make_self_critical(cfg.model, data.train.labels, cfg.self_critical_samples);
  }

  const fs::path dir = cfg.output;
  RunState state;
  state.recipe = to_json(cfg).dump();
  if (options.resume) {
    const std::string recipe = state.recipe;
    state = load_state(dir / "state.pt", *opt);
    state.recipe = with_todays_defaults(state.recipe);
    if (state.recipe != recipe)
      throw std::invalid_argument((dir / "state.pt").string() + ": the run was started with a different recipe ('" +
                                  first_difference(json::parse(recipe), json::parse(state.recipe)) +
                                  "' differs); resume needs the same one");
    const std::string last = (dir / "last.safetensors").string();
    models::load_state_dict(*net, models::read_weights(last).tensors, last);
  } else {
    if (writer && fs::exists(dir / "state.pt"))
      throw std::invalid_argument(dir.string() + ": holds a run already; pass --resume to continue it, or choose " +
                                  "another output");
    std::vector<std::string> fresh;  // the model's tensors `init` did not hold
    if (!cfg.init.empty()) {
      const models::TensorFile init = models::read_weights(cfg.init);
      // A captioner's word ids are its vocabulary's: starting from weights that spell words with other ids
      // would train nonsense without a shape ever differing.
      models::ModelCfg init_cfg;
      if (task.classes_from_data && models::read_checkpoint_cfg(init, init_cfg) && !init_cfg.labels.empty() &&
          init_cfg.labels != cfg.model.labels)
        throw std::invalid_argument(cfg.init + ": its classes (a captioner's vocabulary) differ from those of " +
                                    cfg.train_data + "; start from weights trained on the same data");
      fresh = models::load_state_dict(*net, init.tensors, cfg.init, models::ExtraKeys::kError,
                                       cfg.init_partial ? models::MissingKeys::kKeep : models::MissingKeys::kError);
      if (writer && !fresh.empty())
        std::fprintf(stderr, "%s: not in %s, so starting fresh: %s\n", cfg.source.c_str(), cfg.init.c_str(),
                     tensor_groups(fresh).c_str());
    }
    if (!cfg.init_backbone.empty())
      models::load_state_dict(net->backbone(), models::read_weights(cfg.init_backbone).tensors,
                              cfg.init_backbone, models::ExtraKeys::kIgnore);
    load_embedded_detector(cfg, *net, fresh);
  }
  if (dp) dp->broadcast_state(*net);
  if (writer) {
    fs::create_directories(dir);
    vision::write_text_atomically(dir / "config.json", to_json(cfg).dump(2) + "\n");
    std::fprintf(stderr, "%s: %s, %.2fM parameters, %.4f GFLOPs/image; %lld train, %lld val images; %d process%s; %s\n",
                 cfg.source.c_str(), cfg.model.name.c_str(), models::count_parameters(*net) / 1e6,
                 models::forward_gflops(cfg.model), static_cast<long long>(data.train.size()),
                 static_cast<long long>(data.val.size()), world, world > 1 ? "es" : "",
                 models::to_string(cfg.precision));
  }

  const int64_t per_rank = static_cast<int64_t>(datasets::epoch_order(data.train.size(), cfg.seed, 0, rank, world).size());
  const int64_t steps_per_epoch = per_rank / cfg.batch_size;  // the last partial batch is dropped
  const int64_t last_epoch = options.stop_after > 0 ? std::min(cfg.schedule.epochs, options.stop_after)
                                                    : cfg.schedule.epochs;
  TrainSummary summary;
  summary.metric = task.make_metric(cfg.model, cfg.model.labels)->score_name();
  const auto run_start = std::chrono::steady_clock::now();

  bool stopped_early = data.val.size() > 0 && patience_exhausted(state.history, cfg.schedule.patience);
  for (int64_t epoch = state.epochs_done; epoch < last_epoch && !stopped_early; ++epoch) {
    const auto t0 = std::chrono::steady_clock::now();
    const std::vector<int64_t> order = datasets::epoch_order(data.train.size(), cfg.seed, epoch, rank, world);
    std::seed_seq seq{cfg.seed, static_cast<uint64_t>(epoch), static_cast<uint64_t>(rank)};
    std::mt19937_64 rng(seq);
    net->train();
    // An epoch can take a quarter of an hour: off a terminal (a log file under nohup) a line every 10 s says how
    // far it is.
    Progress progress("epoch " + std::to_string(epoch + 1) + "/" + std::to_string(cfg.schedule.epochs),
                      steps_per_epoch * cfg.batch_size * world, Progress::Mode::kAuto);
    torch::Tensor totals = torch::zeros({3}, torch::kFloat64);  // loss sum, seen, self-critical reward sum
    const std::unique_ptr<Metric> train_metric = task.make_metric(cfg.model, cfg.model.labels);
    double lr = 0;
    for (int64_t s = 0; s < steps_per_epoch; ++s) {
      const torch::Tensor idx = torch::from_blob(const_cast<int64_t*>(order.data()) + s * cfg.batch_size,
                                                 {cfg.batch_size}, torch::kInt64);
      torch::Tensor y = data.train.labels.index_select(0, idx);
      const torch::Tensor x = datasets::augment_batch(data.train.images.index_select(0, idx), cfg.augment,
                                                      cfg.model.mean, cfg.model.std, rng,
                                                      task.targets_follow_pixels ? &y : nullptr);
      lr = scheduled_lr(cfg, epoch * steps_per_epoch + s, steps_per_epoch);
      for (auto& group : opt->param_groups()) group.options().set_lr(lr);
      opt->zero_grad();
      torch::Tensor loss;
      double reward = NAN;
      if (self_critical) {
        loss = self_critical->loss(*net, x, y, cfg.precision, reward);
      } else {
        const models::Forward f = float32_forward(*net, x, cfg.precision, y);
        loss = task.loss(cfg.model, f, y, cfg.label_smoothing);
        torch::NoGradGuard no_grad;
        train_metric->add(f.detached(), y);
      }
      loss.backward();
      if (dp) dp->average_gradients(*net);
      if (cfg.clip_grad_norm > 0) torch::nn::utils::clip_grad_norm_(net->parameters(), cfg.clip_grad_norm);
      opt->step();
      const double batch_loss = loss.item<double>();
      totals[0] += batch_loss * cfg.batch_size, totals[1] += cfg.batch_size;
      if (self_critical) totals[2] += reward * cfg.batch_size;
      if (writer) {
        // The batch's loss and the epoch's running training score so far (self-critical: the draws' reward).
        char score[48];
        if (self_critical)
          std::snprintf(score, sizeof(score), "reward %.3f", reward);
        else
          std::snprintf(score, sizeof(score), "%s", train_metric->progress().c_str());
        char status[112];
        std::snprintf(status, sizeof(status), "loss %.4f  %s  lr %.4g", batch_loss, score, lr);
        progress.advance(cfg.batch_size * world, status);
      }
    }
    progress.finish();
    const double train_s = seconds_since(t0);
    if (dp) {
      dp->sum(totals);
      if (train_metric->merges_by_sum()) dp->sum(train_metric->counts());  // else: rank 0's shard's score
      dp->average_buffers(*net);  // each rank's BatchNorm statistics saw only its shard
      const int64_t digest = dp->check_replicas_identical(*net, "after epoch " + std::to_string(epoch + 1));
      if (writer) std::fprintf(stderr, "replicas identical after epoch %lld (weight digest %lld)\n",
                               static_cast<long long>(epoch + 1), static_cast<long long>(digest));
    }
    EpochRow row;
    row.epoch = epoch + 1;
    row.lr = lr;
    row.train_loss = totals[0].item<double>() / totals[1].item<double>();
    // Self-critical: the mean reward of the epoch's drawn captions (their CIDEr-D over the training set).
    row.train_acc = self_critical ? totals[2].item<double>() / totals[1].item<double>() : train_metric->score();
    row.images_per_s = totals[1].item<double>() / train_s;
    if (data.val.size() > 0) {
      const std::unique_ptr<Metric> v = task.make_metric(cfg.model, cfg.model.labels);
      evaluate(*net, cfg.model, data.val, 512, *v, dp, cfg.precision);
      row.val_loss = v->loss(), row.val_acc = v->score();
    }
    row.seconds = seconds_since(t0);
    state.history.push_back(row);
    state.epochs_done = epoch + 1;
    summary.images_per_s = row.images_per_s;

    if (writer) {
      // Checkpoint first, state last: a run killed in between resumes from the previous epoch's state, and
      // its weights file is simply rewritten.
      models::save_checkpoint((dir / "last.safetensors").string(), *net, cfg.model);
      const bool best = data.val.size() == 0 || row.val_acc > state.best_val;
      if (best) {
        state.best_val = data.val.size() ? row.val_acc : -1;
        models::save_checkpoint((dir / "best.safetensors").string(), *net, cfg.model);
      }
      save_state(dir / "state.pt", *opt, state);
      write_log_csv(dir / "log.csv", state.history);
      write_curves_png(dir / "curves.png", state.history);
      const double eta = row.seconds * (last_epoch - epoch - 1);
      const char* score = train_metric->score_name();
      char train_score[64];  // a metric that scores nothing on training batches (captions) gives its running figure
      if (self_critical) std::snprintf(train_score, sizeof(train_score), "draws' %s %.4f", score, row.train_acc);
      else if (std::isnan(row.train_acc)) std::snprintf(train_score, sizeof(train_score), "%s", train_metric->progress().c_str());
      else std::snprintf(train_score, sizeof(train_score), "%s %.2f%%", score, 100 * row.train_acc);
      std::fprintf(stderr,
                   "epoch %lld/%lld  lr %.4g  train loss %.4f %s  val loss %.4f %s %.2f%%%s  %.0f img/s  "
                   "%.1f s  ETA %.0f s\n",
                   static_cast<long long>(epoch + 1), static_cast<long long>(cfg.schedule.epochs), lr, row.train_loss,
                   train_score, row.val_loss, score, 100 * row.val_acc, best && data.val.size() ? " (best)" : "",
                   row.images_per_s, row.seconds, eta);
    }
    stopped_early = data.val.size() > 0 && patience_exhausted(state.history, cfg.schedule.patience);
    if (stopped_early && writer)
      std::fprintf(stderr, "early stop: no better validation %s in %lld epochs\n", train_metric->score_name(),
                   static_cast<long long>(cfg.schedule.patience));
  }
  summary.train_seconds = seconds_since(run_start);
  for (const EpochRow& r : state.history) summary.total_train_seconds += r.seconds;
  summary.epochs_done = state.epochs_done;
  summary.best_val_accuracy = state.best_val;

  if (data.test.images.defined() && (state.epochs_done == cfg.schedule.epochs || stopped_early)) {
    if (dp) dp->barrier();  // rank 0 has written best.safetensors
    const std::string best = (dir / "best.safetensors").string();
    models::load_state_dict(*net, models::read_weights(best).tensors, best);
    const std::unique_ptr<Metric> t = task.make_metric(cfg.model, cfg.model.labels);
    evaluate(*net, cfg.model, data.test, 512, *t, dp);
    summary.test_accuracy = t->score();
    if (writer) {
      vision::write_text_atomically(dir / "test.json", t->summary().dump(2) + "\n");
      t->write_chart((dir / "test_confusion.png").string());
      std::fprintf(stderr, "test (%s, best.safetensors): %s", cfg.test_data.c_str(), t->report().c_str());
    }
  }
  if (writer) {
    vision::write_text_atomically(dir / "summary.json",
                          json{{"model", cfg.model.name},
                               {"parameters", models::count_parameters(*net)},
                               {"gflops_per_image", models::forward_gflops(cfg.model)},
                               {"processes", world},
                               {"precision", models::to_string(cfg.precision)},
                               {"epochs_done", summary.epochs_done},
                               {"metric", summary.metric},
                               {"best_val_accuracy", summary.best_val_accuracy},
                               {"test_accuracy", summary.test_accuracy},
                               {"last_epoch_images_per_s", summary.images_per_s},
                               {"train_seconds", summary.total_train_seconds}}
                                  .dump(2) +
                              "\n");
  }
  return summary;
}

}  // namespace attnvision::pipelines
