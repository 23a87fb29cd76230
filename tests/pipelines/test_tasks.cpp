// Every task of the table: its subcommand exists, a head serves its models, its loss trains and its metric
// counts on a small network; and the manifest's resume rules and the one rule for output names.
#include "models/heads/head.h"
#include "models/registry.h"
#include "pipelines/batch/manifest.h"
#include "pipelines/commands/commands.h"
#include "pipelines/metrics/evaluation.h"
#include "pipelines/tasks/task.h"
#include "test_util.h"
#include "vision/inputs.h"

#include <torch/torch.h>

#include <cmath>
#include <fstream>

namespace attnvision::pipelines {
namespace {

class EveryTask : public ::testing::TestWithParam<std::string> {};

TEST_P(EveryTask, HasASubcommandAHeadALossAndAMetric) {
  const TaskRow& row = task_named(GetParam());
  bool has_command = false;
  for (const CommandSpec& c : command_table()) has_command = has_command || std::string(c.name) == row.name;
  EXPECT_TRUE(has_command) << "the command table derives one subcommand per task";
  EXPECT_EQ(&task_for_model(row.model_task), &row);
  EXPECT_NO_THROW(models::head_for(row.model_task));
  EXPECT_FALSE(row.section_schema().empty());

  models::ModelCfg cfg = models::default_cfg("resnet18");
  cfg.task = row.model_task;
  // An anomaly model is two-class (clean, lesion) with one input channel per CT window.
  const bool captioning = row.model_task == std::string("captioning");
  if (row.model_task == std::string("anomaly")) {
    cfg.labels = {"clean", "lesion"};
    cfg.ct.windows = {"lung", "abdomen", "400,1800"};
  } else if (captioning) {  // a captioner's labels are its vocabulary: the four specials, then words
    cfg.labels = {"<pad>", "<start>", "<end>", "<unk>", "bag", "red"};
  } else {
    cfg.labels = {"a", "b", "c"};
  }
  cfg.num_classes = static_cast<int64_t>(cfg.labels.size());
  models::Network net = models::build_model(cfg);
  const torch::Tensor x = torch::randn({4, cfg.in_chans, 32, 32});
  // The targets each task trains on: class indices, padded boxes [class, x, y, w, h] (class -1: none), lesion
  // masks on the input grid (two of the four slices with a lesion), or reference captions as word ids.
  torch::Tensor masks = torch::zeros({4, 32, 32}, torch::kUInt8);
  masks[1].narrow(0, 3, 4).narrow(1, 20, 5).fill_(1);
  masks[3].narrow(0, 25, 2).narrow(1, 2, 2).fill_(1);
  const torch::Tensor references =
      torch::tensor({1, 5, 4, 2, 1, 4, 2, 0, 1, 3, 2, 0, 1, 5, 5, 2}, torch::kLong).view({4, 1, 4});
  const torch::Tensor y = captioning ? references
                          : row.model_task == std::string("anomaly") ? masks
                          : row.targets_follow_pixels
                              ? torch::tensor({0.f, 2.f, 3.f, 9.f, 12.f, 1.f, 20.f, 16.f, 8.f, 10.f, -1.f, -1.f, -1.f, -1.f,
                                               -1.f, 2.f, 0.f, 0.f, 31.f, 31.f, -1.f, -1.f, -1.f, -1.f, -1.f, 1.f, 5.f,
                                               5.f, 20.f, 20.f, 0.f, 1.f, 1.f, 4.f, 4.f, 2.f, 16.f, 0.f, 16.f, 30.f})
                                    .view({4, 2, 5})
                              : torch::tensor({int64_t{0}, int64_t{1}, cfg.num_classes - 1, int64_t{1}}, torch::kLong);
  const models::Forward f = float32_forward(*net, x, models::Precision::kFloat32, y);
  const torch::Tensor loss = row.loss(cfg, f, y, 0.0);
  EXPECT_EQ(loss.dim(), 0);
  loss.backward();
  bool any_grad = false;
  for (const auto& p : net->parameters()) any_grad = any_grad || (p.grad().defined() && p.grad().abs().sum().item<double>() > 0);
  EXPECT_TRUE(any_grad) << "the loss reaches the parameters";
  // Evaluation's forward pass (eval mode: a decoder captions on its own) is what the metric scores.
  net->eval();
  const models::Forward evaluated = float32_forward(*net, x, models::Precision::kFloat32, y);
  const auto metric = row.make_metric(cfg, cfg.labels);
  metric->add(evaluated.detached(), y);
  EXPECT_EQ(metric->count(), 4);
  EXPECT_GE(metric->score(), 0.0);
  EXPECT_LE(metric->score(), captioning ? 10.0 : 1.0);  // CIDEr-D runs to 10
  // The default saliency target is a differentiable score per image.
  EXPECT_EQ(row.default_target()(evaluated).sizes(), (std::vector<int64_t>{4}));
}

std::vector<std::string> task_names() {
  std::vector<std::string> names;
  for (const TaskRow& row : task_table()) names.emplace_back(row.name);
  return names;
}

INSTANTIATE_TEST_SUITE_P(Tasks, EveryTask, ::testing::ValuesIn(task_names()));

// The anomaly loss supervises each cell of a fine lesion map (lesion_map_stride 4: 8 x 8 cells on 32 x 32) with
// whether the mask touches it: the gradient raises the cells under the lesion and lowers the others.
TEST(Tasks, AFineLesionMapIsSupervisedCellByCell) {
  const TaskRow& row = task_for_model("anomaly");
  models::ModelCfg cfg = models::default_cfg("resnet18");
  cfg.task = "anomaly";
  cfg.labels = {"clean", "lesion"};
  cfg.num_classes = 2;
  cfg.ct.windows = {"lung", "abdomen", "400,1800"};
  cfg.ct.lesion_map_stride = 4;
  cfg.ct.lesion_map_width = 8;
  models::Network net = models::build_model(cfg);
  torch::Tensor masks = torch::zeros({2, 32, 32}, torch::kUInt8);
  masks[1].narrow(0, 5, 6).narrow(1, 20, 3).fill_(1);  // rows 5..10, columns 20..22: cells rows 1..2, column 5
  models::Forward f = net->forward(torch::randn({2, 3, 32, 32}));
  ASSERT_EQ(f.anomaly_map.sizes(), (std::vector<int64_t>{2, 1, 8, 8}));
  f.anomaly_map.retain_grad();
  row.loss(cfg, f, masks, 0.0).backward();
  const torch::Tensor g = f.anomaly_map.grad()[1][0];
  // The slice's own term raises its top cell (multiple-instance learning), wherever that is.
  const int64_t top = f.anomaly_map[1][0].flatten().argmax().item<int64_t>();
  for (int64_t r = 0; r < 8; ++r)
    for (int64_t c = 0; c < 8; ++c) {
      const bool lesion = (r == 1 || r == 2) && c == 5;
      if (r * 8 + c == top && !lesion) continue;
      if (lesion)
        EXPECT_LT(g[r][c].item<float>(), 0.f) << r << "," << c;
      else
        EXPECT_GT(g[r][c].item<float>(), 0.f) << r << "," << c;
    }
  EXPECT_GT(f.anomaly_map.grad()[0].min().item<float>(), 0.f) << "a clean slice lowers every cell";
}

// lesion_map_loss focal: RetinaNet's focal loss (alpha 0.25, gamma 2) summed over the cells and divided by the
// batch's lesion cells, beside the slice's cross-entropy; bce: the cells' mean cross-entropy. Both against the
// formulas written out here on a 2-slice batch of 2 x 2 cells.
TEST(Tasks, TheLesionMapsCellLossesAreTheirFormulas) {
  const TaskRow& row = task_for_model("anomaly");
  models::ModelCfg cfg = models::default_cfg("resnet18");
  cfg.task = "anomaly";
  const std::vector<double> cell_logits = {-3.0, 0.5, -1.0, 2.0, 1.5, -0.5, -4.0, 0.25};  // [slice][row][col]
  models::Forward f;
  f.anomaly_map = torch::tensor(cell_logits, torch::kFloat64).to(torch::kFloat32).view({2, 1, 2, 2});
  f.logits = torch::cat({torch::zeros({2, 1}), std::get<0>(f.anomaly_map.flatten(1).max(1, true))}, 1);
  // Slice 0 clean; slice 1 has lesion pixels in its cells (0, 0) and (1, 1) of 4 x 4 pixels.
  torch::Tensor masks = torch::zeros({2, 4, 4}, torch::kUInt8);
  masks[1][0][1] = 1;
  masks[1][3][2] = 1;
  const std::vector<int> lesion = {0, 0, 0, 0, 1, 0, 0, 1};

  auto sigmoid = [](double x) { return 1.0 / (1.0 + std::exp(-x)); };
  // Slice logits [0, max cell]: slice 0 (clean) has max 2.0, slice 1 (lesion) 1.5.
  const double slice_ce = (std::log(1.0 + std::exp(2.0)) + std::log(1.0 + std::exp(-1.5))) / 2.0;
  double focal = 0.0, bce = 0.0;
  for (size_t i = 0; i < cell_logits.size(); ++i) {
    const double p = sigmoid(cell_logits[i]);
    const double p_true = lesion[i] ? p : 1.0 - p;
    const double alpha = lesion[i] ? 0.25 : 0.75;
    focal += -alpha * (1.0 - p_true) * (1.0 - p_true) * std::log(p_true);
    bce += -std::log(p_true);
  }
  cfg.ct.lesion_map_loss = "focal";
  EXPECT_NEAR(row.loss(cfg, f, masks, 0.0).item<double>(), slice_ce + focal / 2.0, 1e-5);
  cfg.ct.lesion_map_loss = "bce";
  EXPECT_NEAR(row.loss(cfg, f, masks, 0.0).item<double>(), slice_ce + bce / 8.0, 1e-5);
  // A batch without a lesion cell divides by one, not by zero.
  cfg.ct.lesion_map_loss = "focal";
  const torch::Tensor clean = torch::zeros({2, 4, 4}, torch::kUInt8);
  EXPECT_TRUE(std::isfinite(row.loss(cfg, f, clean, 0.0).item<double>()));
}

// lesion_map_loss focal_per_lesion: the focal loss with each lesion's cells sharing one lesion's weight. One
// lesion slice of 8 x 8 cells: lesion A one cell at (1, 1), lesion B four cells at (5..6, 5..6), more than 3
// cells from A. By hand: raw weights A 1, B 1/4 each (sum 2); scaled so the 5 lesion cells' weights sum to 5:
// A 2.5, B 0.625 each; clean cells 1; divided by the 5 lesion cells, as plain focal is.
TEST(Tasks, EachLesionWeighsTheSameUnderTheFocalPerLesionLoss) {
  const TaskRow& row = task_for_model("anomaly");
  models::ModelCfg cfg = models::default_cfg("resnet18");
  cfg.task = "anomaly";
  cfg.ct.lesion_map_loss = "focal_per_lesion";
  const torch::Tensor cell_logits = torch::linspace(-3.0, 2.0, 64, torch::kFloat64).view({1, 1, 8, 8});
  models::Forward f;
  f.anomaly_map = cell_logits.to(torch::kFloat32);
  f.logits = torch::cat({torch::zeros({1, 1}), std::get<0>(f.anomaly_map.flatten(1).max(1, true))}, 1);
  torch::Tensor masks = torch::zeros({1, 8, 8}, torch::kUInt8);
  masks[0][1][1] = 1;
  masks[0].narrow(0, 5, 2).narrow(1, 5, 2).fill_(1);

  auto sigmoid = [](double x) { return 1.0 / (1.0 + std::exp(-x)); };
  const double top = cell_logits.max().item<double>();
  const double slice_ce = std::log(1.0 + std::exp(-top));  // slice logits [0, top], a lesion slice
  double cells = 0.0;
  for (int64_t r = 0; r < 8; ++r)
    for (int64_t c = 0; c < 8; ++c) {
      const bool in_a = r == 1 && c == 1, in_b = r >= 5 && r <= 6 && c >= 5 && c <= 6;
      const double p = sigmoid(cell_logits[0][0][r][c].item<double>());
      const double p_true = (in_a || in_b) ? p : 1.0 - p;
      const double alpha = (in_a || in_b) ? 0.25 : 0.75;
      const double weight = in_a ? 2.5 : in_b ? 0.625 : 1.0;
      cells += -weight * alpha * (1.0 - p_true) * (1.0 - p_true) * std::log(p_true);
    }
  EXPECT_NEAR(row.loss(cfg, f, masks, 0.0).item<double>(), slice_ce + cells / 5.0, 1e-5);
  // Against plain focal, cell by cell: the lone cell's gradient is 2.5 times as large, the larger lesion's cells'
  // 0.625 times, a clean cell's the same (the top cell, (7, 7), also carries the slice's term; left out).
  auto cell_gradients = [&](const std::string& loss) {
    cfg.ct.lesion_map_loss = loss;
    models::Forward g;
    g.anomaly_map = cell_logits.to(torch::kFloat32).requires_grad_(true);
    g.logits = torch::cat({torch::zeros({1, 1}), std::get<0>(g.anomaly_map.flatten(1).max(1, true))}, 1);
    row.loss(cfg, g, masks, 0.0).backward();
    return g.anomaly_map.grad()[0][0];
  };
  const torch::Tensor plain = cell_gradients("focal"), per_lesion = cell_gradients("focal_per_lesion");
  EXPECT_NEAR(per_lesion[1][1].item<double>() / plain[1][1].item<double>(), 2.5, 1e-4);
  EXPECT_NEAR(per_lesion[5][6].item<double>() / plain[5][6].item<double>(), 0.625, 1e-4);
  EXPECT_NEAR(per_lesion[3][4].item<double>() / plain[3][4].item<double>(), 1.0, 1e-4);
  EXPECT_TRUE(std::isfinite(row.loss(cfg, f, torch::zeros({1, 8, 8}, torch::kUInt8), 0.0).item<double>()));
}

TEST(Tasks, UnknownTaskNamesTheKnownOnes) {
  try {
    task_named("detect-everything");
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("classify"), std::string::npos) << e.what();
  }
}

TEST(Manifest, RepairsATornLastLineAndRefusesGarbageInTheMiddle) {
  testing::ScratchDir dir;
  const std::string path = dir / "manifest.jsonl";
  testing::write_text(path, "{\"path\":\"a\",\"status\":\"ok\"}\n{\"path\":\"b\",\"status\":\"error\"}\n{\"path\":\"c\",\"sta");
  {
    Manifest m(path);
    EXPECT_EQ(m.rows(), 2u);
    EXPECT_EQ(m.errors(), 1u);
    EXPECT_TRUE(m.has("a") && m.has("b"));
    EXPECT_FALSE(m.has("c")) << "the torn row's input runs again";
    m.append({{"path", "c"}, {"status", "ok"}});
  }
  EXPECT_EQ(testing::read_text(path),
            "{\"path\":\"a\",\"status\":\"ok\"}\n{\"path\":\"b\",\"status\":\"error\"}\n{\"path\":\"c\",\"status\":\"ok\"}\n");
  {
    Manifest m(path);
    m.drop_errors();
    EXPECT_EQ(m.rows(), 2u);
    EXPECT_FALSE(m.has("b"));
  }
  testing::write_text(path, "{\"path\":\"a\"}\nnot json\n{\"path\":\"c\"}\n");
  try {
    Manifest m(path);
    FAIL();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("manifest.jsonl:2"), std::string::npos) << e.what();
  }
}

TEST(BatchInputs, OutputNamesMirrorThePathBelowTheArgumentAndNeverCollide) {
  testing::ScratchDir dir;
  namespace fs = std::filesystem;
  for (const char* sub : {"x/scans/a", "y/scans"}) fs::create_directories(dir.path() / sub);
  testing::write_text(dir / "x/scans/a/1.png", "png?");
  testing::write_text(dir / "x/scans/a/1.jpg", "jpg?");
  testing::write_text(dir / "x/scans/readme.txt", "skipped");
  testing::write_text(dir / "x/scans/a/.hidden.png", "skipped");
  testing::write_text(dir / "x/scans/a/slice.DCM", "a corrupt DICOM is still an input");
  testing::write_text(dir / "y/scans/a.png", "png?");
  const vision::BatchInputScan scan =
      vision::scan_batch_inputs({dir / "x/scans", dir / "y/scans/", dir / "y/scans/a.png", dir / "nothing"});
  ASSERT_EQ(scan.missing, std::vector<std::string>{dir / "nothing"});
  std::map<std::string, std::string> names;
  std::map<std::string, vision::InputKind> kinds;
  for (const auto& in : scan.inputs) {
    names[fs::path(in.path).lexically_relative(dir.path()).string()] = in.output_name;
    kinds[in.output_name] = in.kind;
  }
  EXPECT_EQ(names.size(), 4u) << "each file once, hidden and non-image files skipped";
  EXPECT_EQ(names["x/scans/a/1.png"], "scans/a/1.png");
  EXPECT_EQ(names["x/scans/a/1.jpg"], "scans/a/1.jpg");
  EXPECT_EQ(names["x/scans/a/slice.DCM"], "scans/a/slice.DCM");
  EXPECT_EQ(names["y/scans/a.png"], "scans~2/a.png") << "a second argument of the same name";
  EXPECT_EQ(kinds["scans/a/slice.DCM"], vision::InputKind::kDicom);
  EXPECT_EQ(kinds["scans/a/1.png"], vision::InputKind::kImage);
}

}  // namespace
}  // namespace attnvision::pipelines
